"""A destination's bad day (SPEC 17), end to end on both stores: the breaker holds and
probes, a pause survives a restart, a recovered service gets its backlog oldest first,
``order: send_id`` and ``rate`` hold, and each alert format reaches a real server."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import KEYS, Client, MakeSink, Sink, eventually, signed
from standardwebhooks import Webhook

from relay.delivery.client import Kind, new_client, send
from relay.routing import Destination
from relay.runtime import RunningConfig
from relay.store import ClaimedDelivery, deliveries
from relay.web.app import create_app
from relay.web.state import STORE, WORKER

OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789"
SECRET = "whsec_" + "c2VjcmV0LWRlc3RpbmF0aW9uLWtleS0wMTIzNDU2Nzg="

MakeBadDayRelay = Callable[..., Awaitable[Client]]


def config(store_url: str, destination: str, extra: str = "") -> str:
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    return (f"listen: 127.0.0.1:0\nstore: {store_url}\nsubhooks:\n{subhooks}\n"
            f"routes:\n  - {{name: all, destinations: [{destination}]}}\n"
            "retry: {initial_delay: 10ms, max_delay: 50ms, max_age: 1h}\n"
            f"admin: {{tokens: [{{name: alice, token: {OPERATOR}, role: operator}}, "
            f"{{name: eve, token: {VIEWER}, role: viewer}}]}}\n" + extra)


@pytest.fixture
async def make_bad_day_relay(tmp_path: Path, store_url: str,
                             aiohttp_client: Any) -> AsyncIterator[MakeBadDayRelay]:
    """Factory: a relay app on the test's store (SQLite or PostgreSQL) with one destination;
    a second call on the same store is a restart (the first is closed before)."""
    made: list[Client] = []

    async def make(destination: str, extra: str = "") -> Client:
        if made:
            await made[-1].close()
        path = tmp_path / "relay.yaml"
        path.write_text(config(store_url, destination, extra), encoding="utf-8")
        client: Client = await aiohttp_client(create_app(RunningConfig.load(path)))
        made.append(client)
        return client

    yield make


def event(send_id: str, n: int = 0, at: int | None = None) -> dict[str, Any]:
    """An event of message ``send_id``; events of one message differ by ``n`` seconds
    before ``at`` (now when None: pushes a second apart would then be the same event)."""
    timestamp = (int(time.time()) if at is None else at) - n
    return signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                          "send_id": send_id, "timestamp": timestamp})


async def push(client: Client, send_id: str, n: int = 0, at: int | None = None) -> str:
    response = await client.post("/subhook/sms", json=event(send_id, n, at))
    body = await response.json()
    assert response.status == 200, body
    return str(body["webhook_id"])


async def admin(client: Client, verb: str, name: str, token: str = OPERATOR,
                body: Any = None) -> tuple[int, Any]:
    response = await client.post(f"/admin/destinations/{name}/{verb}", json=body,
                                 headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def pending_dead(client: Client) -> tuple[int, int]:
    assert client.app is not None
    counts: tuple[int, int] = await deliveries.counts(client.app[STORE])
    return counts


async def test_outage_of_100_failures_ends_delivered_with_one_probe_per_interval(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink) -> None:
    """100 retryable failures in a row: the breaker opens after 20, then one probe (the
    oldest held delivery) per interval; the first 200 closes it and every event is
    delivered, none dead. (One request at a time, so the 20th failure is the 20th request.)"""
    sink = await make_sink(script=[503] * 100)
    client = await make_bad_day_relay(
        f'{{name: svc, url: "{sink.url}", max_in_flight: 1, '
        'breaker: {after: 20, probe: 50ms}}')
    ids = [await push(client, f"s{n}") for n in range(5)]
    await sink.wait_for(101 + 4, within=30)
    await eventually(lambda: _settled(client), what="every delivery settled")
    assert await pending_dead(client) == (0, 0)
    delivered = {r.headers["webhook-id"] for r in sink.received if r is sink.received[-1]
                 or sink.received.index(r) >= 100}
    assert delivered == set(ids)
    # while open (from the 20th failure, until the first 200) attempts are probes: each
    # one a probe interval after the one before, and each the oldest held delivery. (The
    # request that took the slot the 20th freed may have started before it was judged.)
    first = next(i for i in range(20, 101) if all(
        r.headers["webhook-id"] == ids[0] for r in sink.received[i:101]))
    assert first <= 21
    probes = sink.received[first:101]
    gaps = [b.at - a.at for a, b in itertools.pairwise(probes)]
    assert min(gaps) >= 0.045, gaps
    assert client.app is not None
    assert client.app[WORKER].health.state("svc").value == "healthy"


async def _settled(client: Client) -> bool:
    assert client.app is not None
    pending, _ = await deliveries.counts(client.app[STORE])
    return pending == 0 and not sum(client.app[WORKER].in_flight.values())


async def test_pause_survives_a_restart_and_resume_delivers_oldest_first(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink) -> None:
    """A pause made through the admin API stands after a restart: events are accepted and
    queued, no attempt is made; resume delivers them in the order accepted."""
    sink = await make_sink()
    destination = f'{{name: svc, url: "{sink.url}"}}'
    client = await make_bad_day_relay(destination)
    status, body = await admin(client, "pause", "svc", body={"reason": "deploy 42"})
    assert (status, body["state"]) == (200, "paused")
    client = await make_bad_day_relay(destination)  # a restart on the same store
    assert client.app is not None
    worker = client.app[WORKER]
    ids = [await push(client, f"p{n}") for n in range(3)]
    read = worker.controls_read
    await eventually(lambda: _after(worker, read + 3), what="three reads of the pauses")
    assert sink.received == []
    assert worker.health.state("svc").value == "paused"
    listed = await client.get("/admin/destinations",
                              headers={"Authorization": f"Bearer {VIEWER}"})
    (row,) = (await listed.json())["destinations"]
    assert (row["state"], row["pending"], row["paused"]["by"], row["paused"]["reason"]) == \
        ("paused", 3, "alice", "deploy 42")
    assert (await admin(client, "resume", "svc", token=VIEWER))[0] == 403
    status, body = await admin(client, "resume", "svc")
    assert (status, body["resumed"]) == (200, True)
    await sink.wait_for(3)
    assert [r.headers["webhook-id"] for r in sink.received] == ids


async def _after(worker: Any, count: int) -> bool:
    return bool(worker.controls_read >= count)


async def test_unknown_destination_is_404_and_a_bad_body_400(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink) -> None:
    """Admin actions on a name the config lacks are 404 naming it; a pause body that is
    not {"reason": "..."} is 400."""
    sink = await make_sink()
    client = await make_bad_day_relay(f'{{name: svc, url: "{sink.url}"}}')
    for verb in ("pause", "resume", "retry"):
        status, body = await admin(client, verb, "nope")
        assert status == 404 and "nope" in body["problems"][0], body
    status, body = await admin(client, "pause", "svc", body=["x"])
    assert status == 400, body


async def test_recovery_wakes_backed_off_deliveries_oldest_first(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink) -> None:
    """Deliveries backed off for a minute are sent within seconds of the service's first
    success, oldest accepted first: a recovered service gets its backlog at once."""
    sink = await make_sink(script=[503] * 3)
    client = await make_bad_day_relay(
        f'{{name: svc, url: "{sink.url}", retry: {{initial_delay: 60s, max_delay: 60s}}}}')
    old = [await push(client, f"o{n}") for n in range(3)]
    await sink.wait_for(3)  # each failed once and waits up to a minute
    new = await push(client, "new")  # due at once: the first success
    got = await sink.wait_for(7, within=5)
    assert got[3].headers["webhook-id"] == new
    assert [r.headers["webhook-id"] for r in got[4:]] == old


async def test_order_send_id_delivers_a_message_in_acceptance_order(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink) -> None:
    """With ``order: send_id`` three events of one message arrive in the order accepted
    while the first is refused a few times; another message is not held back."""
    sink = await make_sink()
    client = await make_bad_day_relay(
        f'{{name: svc, url: "{sink.url}", order: send_id, max_in_flight: 8}}')
    assert client.app is not None
    # paused (this relay obeys at once), so every event is queued before any attempt
    await admin(client, "pause", "svc")
    at = int(time.time())
    ids = [await push(client, "m1", n, at) for n in range(3)]
    other = await push(client, "m2")
    sink.script = [503, 503, 503]
    await admin(client, "resume", "svc")
    got = await sink.wait_for(7)
    delivered = [r.headers["webhook-id"] for r in got
                 if r.headers["webhook-id"] in ids]
    # the first message's attempts: the first event until it is taken, then the others
    assert delivered == [ids[0]] * 4 + ids[1:] or delivered[-3:] == ids, delivered
    first_ok = max(i for i, r in enumerate(got) if r.headers["webhook-id"] == ids[0])
    assert all(got.index(r) > first_ok for r in got if r.headers["webhook-id"] in ids[1:])
    assert other in {r.headers["webhook-id"] for r in got}


async def test_rate_is_never_exceeded(make_bad_day_relay: MakeBadDayRelay,
                                      make_sink: MakeSink) -> None:
    """``rate: 5/s`` over 40 queued deliveries: in any stretch of time the starts are no
    more than the bucket allows (a burst of 5, then 5 a second)."""
    sink = await make_sink()
    client = await make_bad_day_relay(f'{{name: svc, url: "{sink.url}", rate: 5/s}}')
    await admin(client, "pause", "svc")
    for n in range(40):
        await push(client, f"r{n}")
    await admin(client, "resume", "svc")
    got = await sink.wait_for(40, within=30)
    at = [r.at for r in got]
    for i in range(len(at)):
        for j in range(i + 1, len(at)):
            # a request's arrival may lag its start by a few ms: one of slack
            assert j - i + 1 <= 5 + 5 * (at[j] - at[i]) + 1, (i, j, at[j] - at[i])
    assert at[-1] - at[0] >= (40 - 5 - 1) / 5


async def test_a_delivery_that_cannot_be_built_is_a_recorded_permanent_failure() -> None:
    """A secret that is not base64 (the config refuses it; this is the backstop) makes a
    permanent failure with its reason, never an exception that leaves it pending."""
    delivery = ClaimedDelivery(1, 1, "svc", 0, time.time() + 60, "msg_1", "sms",
                               "delivered", "{}", b"{}", "application/json")
    client = new_client()
    try:
        outcome = await send(client, delivery,
                             Destination("svc", "http://127.0.0.1:9/x", secret="whsec_abc"), 1)
    finally:
        await client.close()
    assert outcome.kind is Kind.PERMANENT
    assert outcome.error is not None and outcome.error.startswith("request not built")


# -- alerts ---------------------------------------------------------------------------------

@pytest.fixture
async def alert_server() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str], Any]]]]:
    """A real HTTP server recording (path, headers, JSON body) of each alert it gets."""
    got: list[tuple[str, dict[str, str], Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((request.path, dict(request.headers), json.loads(await request.read())))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{kind}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), got
    await server.close()


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_alerts_reach_each_format(
        make_bad_day_relay: MakeBadDayRelay, make_sink: MakeSink,
        alert_server: tuple[str, list[tuple[str, dict[str, str], Any]]]) -> None:
    """Open, closed, paused, resumed and dead letters reach every format's target; the json
    one is signed like a delivery (Standard Webhooks) and ``kinds`` filters."""
    base, got = alert_server
    sink = await make_sink(script=[503, 503, 400])
    formats = ["json", "slack", "dingtalk", "wecom", "feishu"]
    alerts = "".join(f'  - {{name: a-{f}, url: "{base}/{f}", format: {f}'
                     + (f", secret: {SECRET}" if f == "json" else "") + "}\n"
                     for f in formats)
    alerts += f'  - {{name: only-dead, url: "{base}/dead", kinds: [dead_letter]}}\n'
    client = await make_bad_day_relay(
        f'{{name: svc, url: "{sink.url}", breaker: {{after: 2, probe: 50ms}}}}',
        "alerts:\n" + alerts)
    await push(client, "a1")
    await eventually(lambda: _has(got, "dead", "dead_letter"), what="dead-letter alert")
    await admin(client, "pause", "svc", body={"reason": "maintenance"})
    await admin(client, "resume", "svc")
    for kind in ("destination.open", "destination.closed", "destination.paused",
                 "destination.resumed", "dead_letter"):
        await eventually(lambda kind=kind: _has(got, "json", kind), what=kind)  # type: ignore[misc]
    texts = {f: [_text(f, body) for path, _, body in got if path == f"/{f}"]
             for f in formats[1:]}
    for f, seen in texts.items():
        assert any("destination.open" in t and "svc" in t for t in seen), (f, seen)
        assert any("paused by alice: maintenance" in t for t in seen), (f, seen)
    signed_one = next((h, b) for p, h, b in got if p == "/json")
    headers, body = signed_one
    Webhook(SECRET).verify(json.dumps(body, ensure_ascii=False).encode(),
                           {k.lower(): v for k, v in headers.items()})
    assert {b["type"] for p, _, b in got if p == "/dead"} == {"dead_letter"}


def _text(fmt: str, body: Any) -> str:
    if fmt == "slack":
        return str(body["text"])
    if fmt == "feishu":
        assert body["msg_type"] == "text"
        return str(body["content"]["text"])
    assert body["msgtype"] == "text"
    return str(body["text"]["content"])


async def _has(got: list[tuple[str, dict[str, str], Any]], path: str, kind: str) -> bool:
    return any(p == f"/{path}" and (b.get("type") == kind or kind in json.dumps(b))
               for p, _, b in got)


_ = (Sink, TestClient)
