from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from typing import Any

import pytest
from conftest import Client, MakeRelay, MakeSink, signed, wait_settled
from standardwebhooks import Webhook

from relay.store import deliveries, sqlite
from relay.store.sqlite import SqliteStore
from relay.web.state import STORE

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()


def route_to(*sinks: tuple[str, str], extra: str = "") -> str:
    dests = ", ".join(f'{{name: {n}, url: "{u}"{extra}}}' for n, u in sinks)
    return f"  - {{name: all, destinations: [{dests}]}}"


def event(send_id: str = "s1") -> dict[str, Any]:
    return signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                          "send_id": send_id, "timestamp": int(time.time())})


async def accept(client: Client, fields: dict[str, Any]) -> str:
    response = await client.post("/subhook/sms", json=fields)
    body = await response.json()
    assert response.status == 200, body
    return str(body["webhook_id"])


async def wait_dead(client: Client, count: int, within: float = 10.0) -> list[dict[str, Any]]:
    assert client.app is not None
    store = client.app[STORE]
    deadline = time.monotonic() + within
    while True:
        rows = await deliveries.dead_letters(store)
        if len(rows) >= count:
            for row in rows:
                row["attempts"] = await deliveries.attempts(store, row["id"])
            return list(rows)
        assert time.monotonic() < deadline, f"{len(rows)} dead letters, wanted {count}"
        await asyncio.sleep(0.02)


async def test_retries_on_5xx_then_delivers_with_stable_id(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """503, 500, 408 then 200: four attempts, one webhook-id, attempt header counts up."""
    sink = await make_sink(script=[503, 500, 408])
    client = await make_relay(route_to(("s", sink.url)))
    webhook_id = await accept(client, event())
    got = await sink.wait_for(4)
    assert [r.headers["X-Relay-Attempt"] for r in got] == ["1", "2", "3", "4"]
    assert {r.headers["webhook-id"] for r in got} == {webhook_id}
    await wait_settled(client)  # the store has it delivered: no fifth attempt can follow
    assert len(sink.received) == 4


async def test_retry_after_is_honoured(make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """429 with Retry-After: 1 delays the next attempt by at least a second (backoff is 50ms)."""
    sink = await make_sink(script=[(429, {"Retry-After": "1"})])
    client = await make_relay(route_to(("s", sink.url)))
    await accept(client, event())
    first, second = await sink.wait_for(2, within=5)
    assert second.at - first.at >= 0.95


async def test_other_4xx_is_a_dead_letter_at_once(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """400 ends the delivery after one attempt; the attempt log keeps status and error."""
    sink = await make_sink(script=[400])
    client = await make_relay(route_to(("s", sink.url)))
    await accept(client, event())
    (dead,) = await wait_dead(client, 1)
    assert dead["attempt"] == 1
    (attempt,) = dead["attempts"]
    assert attempt["http_status"] == 400
    assert attempt["outcome"] == "dead"
    assert "not retryable" in attempt["error"]
    await wait_settled(client)  # nothing pending, nothing in flight: no second attempt
    assert len(sink.received) == 1


async def test_max_attempts_then_dead_letter_then_replay(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """Five 503s exhaust max_attempts; replay through the admin API delivers it."""
    sink = await make_sink(script=[503] * 5)
    client = await make_relay(route_to(("s", sink.url)), "admin: {token: t0ken}\n")
    await accept(client, event())
    (dead,) = await wait_dead(client, 1)
    assert [a["http_status"] for a in dead["attempts"]] == [503] * 5
    assert "max_attempts" in dead["last_error"]
    durations = [a["duration_ms"] for a in dead["attempts"]]
    assert all(d >= 0 for d in durations)
    assert (await client.post("/admin/dead/replay", json={"all": True})).status == 401
    response = await client.post("/admin/dead/replay", json={"ids": [dead["id"]]},
                                 headers={"Authorization": "Bearer t0ken"})
    assert await response.json() == {"replayed": 1, "ids": [dead["id"]], "missing": []}
    got = await sink.wait_for(6)
    assert got[-1].headers["X-Relay-Attempt"] == "1"
    assert client.app is not None
    assert await deliveries.dead_letters(client.app[STORE]) == []


async def test_connection_refused_and_timeout_are_retried(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """A closed port and a service slower than `timeout` are retried, then dead-lettered."""
    slow = await make_sink(delay=1.0)
    client = await make_relay(route_to(("closed", "http://127.0.0.1:9/hook"),
                                       ("slow", slow.url), extra=", timeout: 100ms"))
    await accept(client, event())
    rows = await wait_dead(client, 2, within=15)
    errors = {r["destination"]: r["attempts"][0]["error"] for r in rows}
    assert errors["closed"].startswith("ConnectError: Connection refused"), errors
    assert errors["slow"].startswith("timeout after 0.1s")
    assert all(len(r["attempts"]) == 5 for r in rows)


async def test_slow_destination_never_delays_the_others(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """While one service hangs on every request, another gets every event promptly."""
    slow, fast = await make_sink(delay=5.0), await make_sink()
    client = await make_relay(route_to(("slow", slow.url), ("fast", fast.url),
                                       extra=", max_in_flight: 2, timeout: 10s"))
    started = time.monotonic()
    for index in range(20):
        await accept(client, event(f"s{index}"))
    await fast.wait_for(20, within=4)
    assert time.monotonic() - started < 4.5
    assert slow.received == []  # still stuck on its first two


async def test_a_service_never_has_more_requests_open_than_its_slots(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """``max_in_flight`` caps the requests a service has open at once, and the relay keeps
    that many open while events wait (a slot is freed when the service has answered)."""
    sink = await make_sink(delay=0.05)
    client = await make_relay(route_to(("s", sink.url), extra=", max_in_flight: 3"))
    for index in range(12):
        await accept(client, event(f"c{index}"))
    await sink.wait_for(12)
    assert sink.most_in_flight == 3
    await wait_settled(client)


async def test_standard_webhooks_signature_verifies(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """With a `secret`, services verify the request with the standardwebhooks library."""
    sink = await make_sink()
    client = await make_relay(route_to(("s", sink.url), extra=f', secret: "{SECRET}"'))
    fields = event()
    await accept(client, fields)
    (got,) = await sink.wait_for(1)
    headers = {k.lower(): v for k, v in got.headers.items()}
    # the forwarded event leaves SUBMAIL's token and signature out (SPEC 16)
    assert Webhook(SECRET).verify(got.body, headers) == {
        k: v for k, v in fields.items() if k not in ("token", "signature")}
    tampered = got.body.replace(b"13800138000", b"13800138001")
    try:
        Webhook(SECRET).verify(tampered, headers)
    except Exception as exc:  # the library's WebhookVerificationError
        assert "signature" in str(exc).lower()
    else:
        raise AssertionError("a tampered body verified")


async def test_rows_whose_lease_was_rolled_back_are_not_sent_twice(
        make_relay: MakeRelay, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sends a claim's rows before the claim's group commits; when that COMMIT
    fails the leases are rolled back and the next claim returns the same rows, which the
    worker already holds: each delivery still reaches the service once."""
    state = {"armed": False, "failed": False}
    finish, claim = SqliteStore._finish, sqlite._claim

    def claiming(*args: Any) -> Any:
        rows = claim(*args)
        if rows and not state["failed"]:
            state["armed"] = True  # this group's COMMIT fails
        return rows

    def boom(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    def failing(self: SqliteStore, conn: sqlite3.Connection, fns: Any) -> Any:
        if state["armed"]:
            state["armed"], state["failed"] = False, True
            return finish(self, conn, [*fns, boom])
        return finish(self, conn, fns)

    monkeypatch.setattr(SqliteStore, "_finish", failing)
    monkeypatch.setattr(sqlite, "_claim", claiming)
    sink = await make_sink(delay=0.6)  # answers after the next claims
    client = await make_relay(route_to(("s", sink.url)))
    # s0 alone first: its push is committed before any claim can see it (claims run first
    # in their group), so the group that fails holds no push
    await accept(client, event("s0"))
    deadline = time.monotonic() + 10
    while not state["failed"]:
        assert time.monotonic() < deadline, "no claim of s0 was rolled back"
        await asyncio.sleep(0.01)
    for n in (1, 2):
        await accept(client, event(f"s{n}"))
    await sink.wait_for(3)
    await wait_settled(client)
    assert sorted(json.loads(r.body)["send_id"] for r in sink.received) == ["s0", "s1", "s2"]


async def test_a_row_claimed_again_while_its_attempt_is_recorded_is_not_stranded(
        make_relay: MakeRelay, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim may return a row whose attempt was just recorded (due again 10 ms later)
    before the worker has let go of it: it is not sent twice, and the lease that claim
    took (50 s by default) is freed, so the retry is made at once, not after the lease."""
    record = SqliteStore.record

    async def slow_to_return(self: SqliteStore, records: Any) -> None:
        await record(self, records)
        await asyncio.sleep(0.6)  # committed; the worker's polls claim meanwhile

    monkeypatch.setattr(SqliteStore, "record", slow_to_return)
    sink = await make_sink(script=[503])
    client = await make_relay(route_to(("s", sink.url)))
    webhook_id = await accept(client, event())
    got = await sink.wait_for(2, within=5)
    assert [r.headers["webhook-id"] for r in got] == [webhook_id] * 2
    assert [r.headers["X-Relay-Attempt"] for r in got] == ["1", "2"]
