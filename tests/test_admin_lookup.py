"""The admin API of SPEC 12 (relay/web/admin.py): events listed by the filters of `relay
events list`, paged by cursor; one event with every attempt; replay; discards of dead letters
and held pushes. A real relay app on a real SQLite file, real services on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Client, MakeRelay, MakeSink, relay_config, signed, wait_settled
from relayproc import Relay, free_port, subhooks_yaml, wait_until

from relay.runtime import RunningConfig
from relay.store import deliveries
from relay.web.app import create_app
from relay.web.state import STORE

TOKEN = "l00kup-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN = f"admin: {{token: {TOKEN}}}\n"
PHONE = "13812345678"


def route_to(url: str) -> str:
    return f'  - {{name: all, destinations: [{{name: svc, url: "{url}"}}]}}'


def sms(send_id: str, address: str = "13900000000", event: str = "delivered") -> dict[str, Any]:
    return signed("sms", {"events": event, "address": address, "app": 1, "send_id": send_id,
                          "timestamp": int(time.time())})


async def push(client: Client, fields: dict[str, Any]) -> dict[str, Any]:
    """Push to the sms SUBHOOK; what the relay answered (accepted: with its webhook_id)."""
    response = await client.post("/subhook/sms", data=fields)
    answer: dict[str, Any] = await response.json()
    assert response.status == 200, answer
    return answer


async def get(client: Client, path: str, params: dict[str, str] | None = None,
              status: int = 200) -> Any:
    response = await client.get(path, params=params or {}, headers=AUTH)
    body = await response.json()
    assert response.status == status, body
    return body


async def post(client: Client, path: str, body: Any = None, status: int = 200) -> Any:
    response = await client.post(path, json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == status, answer
    return answer


async def listed(client: Client, **params: str) -> list[int]:
    """The ids GET /admin/events lists for these parameters (one page)."""
    return [e["id"] for e in (await get(client, "/admin/events", params))["events"]]


def attempts(shown: dict[str, Any]) -> list[tuple[int, int, int, str]]:
    (delivery,) = shown["deliveries"]
    return [(a["replay"], a["attempt"], a["status"], a["answer"]) for a in delivery["attempts"]]


class AnsweringService:
    """A service answering each request in turn with a scripted (status, body), then
    (200, "ok"); records the webhook-id of each request."""

    def __init__(self, script: list[tuple[int, str]]) -> None:
        self.script = list(script)
        self.webhook_ids: list[str] = []
        self.server: TestServer | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.webhook_ids.append(request.headers["webhook-id"])
            status, text = self.script.pop(0) if self.script else (200, "ok")
            return web.Response(status=status, text=text)

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hook"))


@pytest.fixture
async def answering() -> AsyncIterator[Callable[[list[tuple[int, str]]],
                                                Awaitable[tuple[AnsweringService, str]]]]:
    """Factory of AnsweringServices (started, with their URL), closed after the test."""
    made: list[AnsweringService] = []

    async def make(script: list[tuple[int, str]]) -> tuple[AnsweringService, str]:
        service = AnsweringService(script)
        made.append(service)
        return service, await service.start()

    yield make
    for service in made:
        if service.server is not None:
            await service.server.close()


async def test_lookup_by_send_id_and_by_full_contact_shown_masked(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """send_id finds exactly its events, newest first; a full phone number (in any usual
    form) finds its events although the answer shows it masked and never in full."""
    sink = await make_sink()
    client = await make_relay(route_to(sink.url), ADMIN)
    await push(client, sms("order-1", PHONE))
    await push(client, sms("order-2", PHONE))
    await push(client, sms("order-2", "13900000000"))
    await wait_settled(client)
    a, b, c = sorted(await listed(client))
    assert await listed(client, send_id="order-2") == [c, b]
    assert await listed(client, send_id="order-1") == [a]
    assert await listed(client, send_id="order-3") == []
    for typed in (PHONE, "+86 138-1234-5678"):
        response = await client.get("/admin/events", params={"contact": typed}, headers=AUTH)
        text = await response.text()
        assert response.status == 200
        assert PHONE not in text and "138****5678" in text
        page = await response.json()
        assert [e["id"] for e in page["events"]] == [b, a], typed
        assert [e["contact"] for e in page["events"]] == ["138****5678"] * 2
        assert page["events"][0]["fields"]["address"] == "138****5678"
        assert page["next_cursor"] is None
    assert await listed(client, contact=PHONE, send_id="order-2") == [b]
    assert await listed(client, contact=PHONE, product="mail") == []
    (event,) = (await get(client, "/admin/events", {"send_id": "order-1"}))["events"]
    assert "token" not in event["fields"] and "signature" not in event["fields"]
    assert event["deliveries"][0]["state"] == "delivered"
    assert event["received_at"].endswith("Z")


async def test_state_filter_finds_the_dead_letter(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """A service answering 410 makes a dead letter: state=dead lists its event only,
    state=delivered the other one."""
    sink = await make_sink(script=[410])
    client = await make_relay(route_to(sink.url), ADMIN)
    await push(client, sms("gone"))
    await wait_settled(client)
    await push(client, sms("fine"))
    await wait_settled(client)
    (dead,) = await listed(client, send_id="gone")
    (fine,) = await listed(client, send_id="fine")
    assert await listed(client, state="dead") == [dead]
    assert await listed(client, state="delivered") == [fine]
    assert await listed(client, state="pending") == []
    (event,) = (await get(client, "/admin/events", {"state": "dead"}))["events"]
    assert event["deliveries"][0]["state"] == "dead"
    assert event["deliveries"][0]["last_error"]


async def test_since_and_until_take_iso_times_and_durations(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """since is inclusive, until exclusive, at the millisecond the listing shows; a
    duration counts back from now."""
    sink = await make_sink()
    client = await make_relay(route_to(sink.url), ADMIN)
    await push(client, sms("early"))
    (first,) = (await get(client, "/admin/events"))["events"]
    early_at = datetime.fromisoformat(first["received_at"]).timestamp()
    await wait_until(lambda: time.time() >= early_at + 0.002, 5,
                     "the clock past the millisecond of the first push")
    await push(client, sms("late"))
    events = (await get(client, "/admin/events"))["events"]
    (late, early) = [e["id"] for e in events]
    late_iso = events[0]["received_at"]
    assert early == first["id"]
    assert await listed(client, since=first["received_at"]) == [late, early]
    assert await listed(client, since=late_iso) == [late]
    assert await listed(client, until=late_iso) == [early]
    assert await listed(client, until=first["received_at"]) == []
    assert await listed(client, since="1h") == [late, early]
    assert await listed(client, until="1h") == []
    assert await listed(client, since="2h", until="1h") == []
    in_an_hour = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()  # +00:00
    assert await listed(client, until=in_an_hour) == [late, early]
    assert await listed(client, since=in_an_hour) == []


async def test_paging_returns_each_event_once_newest_first_while_new_ones_arrive(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """Pages of 2 over 5 events, 2 new events pushed between pages: the 5 come back once
    each, newest first; the new ones are not in later pages; the last cursor is null."""
    sink = await make_sink()
    client = await make_relay(route_to(sink.url), ADMIN)
    for n in range(5):
        await push(client, sms(f"page-{n}"))
    first_five = sorted(await listed(client), reverse=True)
    assert len(first_five) == 5
    seen: list[int] = []
    cursors: list[str | None] = []
    params: dict[str, str] = {"limit": "2"}
    for round_ in range(10):
        page = await get(client, "/admin/events", params)
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        cursors.append(page["next_cursor"])
        await push(client, sms(f"new-{round_}-a"))
        await push(client, sms(f"new-{round_}-b"))
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == first_five
    assert len(cursors) == 3 and cursors[-1] is None and None not in cursors[:-1]
    newest = await listed(client, limit="6")
    assert len(newest) == 6 and not set(newest) & set(first_five)
    assert min(newest) > max(first_five)


async def test_show_by_id_and_webhook_id_then_replay(
        make_relay: MakeRelay,
        answering: Callable[[list[tuple[int, str]]],
                            Awaitable[tuple[AnsweringService, str]]]) -> None:
    """An event shows every attempt in order with the service's answer text, by id and by
    webhook-id alike; a replay (by either key) adds attempts marked with its number after
    the old ones."""
    service, url = await answering([(503, "busy 1"), (503, "busy 2"), (200, "ok 3"),
                                    (200, "again"), (200, "once more")])
    client = await make_relay(route_to(url), ADMIN)
    accepted = await push(client, sms("shown", PHONE))
    await wait_settled(client)
    (event_id,) = await listed(client)
    by_id = await get(client, f"/admin/events/{event_id}")
    by_webhook_id = await get(client, f"/admin/events/{accepted['webhook_id']}")
    assert by_id == by_webhook_id
    assert by_id["webhook_id"] == accepted["webhook_id"] == service.webhook_ids[0]
    assert attempts(by_id) == [(0, 1, 503, "busy 1"), (0, 2, 503, "busy 2"),
                               (0, 3, 200, "ok 3")]
    (delivery,) = by_id["deliveries"]
    assert (delivery["destination"], delivery["state"], delivery["replays"]) == \
        ("svc", "delivered", 0)
    first = delivery["attempts"][0]
    assert first["started_at"].endswith("Z") and first["duration_ms"] >= 0
    assert first["outcome"] and first["error"]
    assert PHONE not in str(by_id) and by_id["fields"]["address"] == "138****5678"

    replayed = await post(client, f"/admin/events/{event_id}/replay")
    assert replayed == {"replayed": [{"event_id": event_id, "deliveries": [delivery["id"]]}],
                        "unchanged": [], "missing": []}
    await wait_settled(client)
    shown = await get(client, f"/admin/events/{event_id}")
    assert attempts(shown) == [(0, 1, 503, "busy 1"), (0, 2, 503, "busy 2"),
                               (0, 3, 200, "ok 3"), (1, 1, 200, "again")]
    assert (shown["deliveries"][0]["state"], shown["deliveries"][0]["replays"]) == \
        ("delivered", 1)
    await post(client, f"/admin/events/{accepted['webhook_id']}/replay")
    await wait_settled(client)
    shown = await get(client, f"/admin/events/{accepted['webhook_id']}")
    assert attempts(shown)[-2:] == [(1, 1, 200, "again"), (2, 1, 200, "once more")]
    assert service.webhook_ids == [accepted["webhook_id"]] * 5


async def test_unknown_events_are_404_naming_them(make_relay: MakeRelay) -> None:
    """Show and replay of an id or webhook-id that names nothing: 404 not_found naming it;
    a key that is neither is no event either (never a 500)."""
    client = await make_relay("  []", ADMIN)
    await push(client, sms("lonely"))
    (event_id,) = await listed(client)
    unknown_webhook_id = "msg_" + "0" * 32
    for key in (str(event_id + 1), unknown_webhook_id, "nonsense", "0", "²"):
        body = await get(client, f"/admin/events/{key}", status=404)
        assert body == {"status": "error", "error": "not_found",
                        "problems": [f"no event with id or webhook-id {key}"]}
        body = await post(client, f"/admin/events/{key}/replay", status=404)
        assert body["error"] == "not_found" and key in body["problems"][0]
    assert (await get(client, f"/admin/events/{event_id}"))["id"] == event_id


@pytest.mark.parametrize(("params", "named"), [
    ({"state": "lost"}, "state"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"cursor": "12abc"}, "cursor"),
    ({"cursor": "0"}, "cursor"),
    ({"cursor": "²"}, "cursor"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"product": "fax"}, "product"),
    ({"contact": " "}, "contact"),
    ({"sendid": "x"}, "sendid"),
    ({"send_id": "a\x00b"}, "send_id"),
])
async def test_bad_parameters_are_400_naming_them(
        make_relay: MakeRelay, params: dict[str, str], named: str) -> None:
    """A bad parameter answers 400 with the one error body, its problem naming the
    parameter."""
    client = await make_relay("  []", ADMIN)
    body = await get(client, "/admin/events", params, status=400)
    assert body["status"] == "error" and body["error"] == "bad_request"
    (problem,) = body["problems"]
    assert problem.startswith(f"{named}:"), problem


async def test_a_parameter_given_twice_is_400(make_relay: MakeRelay) -> None:
    """send_id=a&send_id=b cannot be one filter: 400 naming send_id."""
    client = await make_relay("  []", ADMIN)
    response = await client.get("/admin/events?send_id=a&send_id=b", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["problems"][0].startswith("send_id:")


async def test_on_both_stores_nul_is_refused_before_the_store(
        store_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    """On SQLite and PostgreSQL alike: lookups by send_id, webhook-id and cursor work, and a
    NUL (which PostgreSQL refuses in text) in a parameter is 400 naming it, in a key 404:
    never a 500."""
    config = tmp_path / "relay.yaml"
    config.write_text(relay_config("  []", ADMIN).replace("sqlite:///relay.db", store_url),
                      encoding="utf-8")
    client: Client = await aiohttp_client(create_app(RunningConfig.load(config)))
    accepted = [await push(client, sms(f"both-{n}")) for n in range(3)]
    _, middle, oldest = await listed(client)
    assert await listed(client, send_id="both-1") == [middle]
    page = await get(client, "/admin/events", {"limit": "2"})
    assert await listed(client, limit="2", cursor=page["next_cursor"]) == [oldest]
    assert (await get(client, f"/admin/events/{accepted[0]['webhook_id']}"))["id"] == oldest
    for name in ("send_id", "contact", "event", "since"):
        body = await get(client, "/admin/events", {name: "a\x00b"}, status=400)
        assert body["problems"][0].startswith(f"{name}:")
    for key in ("msg_\x00", "msg_" + "0" * 31 + "\x00"):
        assert (await get(client, f"/admin/events/{key}", status=404))["error"] == "not_found"
        await post(client, f"/admin/events/{key}/replay", status=404)
    assert await post(client, "/admin/dead/discard", {"all": True}) == {
        "discarded": [], "missing": []}


async def dead_letters(client: Client) -> list[int]:
    return [d["id"] for d in (await get(client, "/admin/dead"))["dead_letters"]]


async def test_dead_discard_takes_them_off_the_list(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """Discarded dead letters leave GET /admin/dead (their events stay findable); ids that
    match nothing are 404 naming them beside what was discarded; a body that is neither
    form is 400 and discards nothing."""
    sink = await make_sink(script=[410, 410, 410])
    client = await make_relay(route_to(sink.url), ADMIN)
    for n in range(3):
        await push(client, sms(f"dead-{n}"))
    assert (await wait_settled(client))[1] == 3
    one, two, three = sorted(await dead_letters(client))
    bodies: list[Any] = [{"ids": []}, {"ids": "all"}, {"ids": [0]}, {"ids": [True]},
                         {"ids": [10**30]}, {"all": False}, {"all": "true"},
                         {"all": True, "ids": [one]}, [one], None]
    for body in bodies:
        answer = await post(client, "/admin/dead/discard", body, status=400)
        assert answer["error"] == "bad_request" and answer["problems"], body
    assert sorted(await dead_letters(client)) == [one, two, three]
    answer = await post(client, "/admin/dead/discard", {"ids": [one, 999_999]}, status=404)
    assert answer == {"status": "error", "error": "not_found",
                      "problems": ["no dead letter with id 999999"],
                      "discarded": [one], "missing": [999_999]}
    assert sorted(await dead_letters(client)) == [two, three]
    assert len(await listed(client, state="discarded")) == 1
    assert await post(client, "/admin/dead/discard", {"ids": [two]}) == {
        "discarded": [two], "missing": []}
    answer = await post(client, "/admin/dead/discard", {"ids": [two]}, status=404)
    assert (answer["discarded"], answer["missing"]) == ([], [two])
    assert await post(client, "/admin/dead/discard", {"all": True}) == {
        "discarded": [three], "missing": []}
    assert await dead_letters(client) == []
    assert len(await listed(client, state="discarded")) == 3
    assert len(await listed(client)) == 3


async def held(client: Client) -> list[int]:
    return [q["id"] for q in (await get(client, "/admin/quarantine"))["quarantine"]]


async def test_quarantine_discard_takes_them_off_the_list(make_relay: MakeRelay) -> None:
    """Held pushes leave GET /admin/quarantine when discarded, one by id or all; ids that
    match nothing are 404 naming them."""
    client = await make_relay("  []", ADMIN)
    for n in range(3):
        response = await client.post("/subhook/sms", data=sms(f"q-{n}", event="keyword_reply"))
        assert response.status == 422
    one, two, three = sorted(await held(client))
    await post(client, "/admin/quarantine/discard", {"ids": []}, status=400)
    answer = await post(client, "/admin/quarantine/discard", {"ids": [one, 998]}, status=404)
    assert answer == {"status": "error", "error": "not_found",
                      "problems": ["no quarantined push with id 998"],
                      "discarded": [one], "missing": [998]}
    assert sorted(await held(client)) == [two, three]
    assert await post(client, "/admin/quarantine/discard", {"all": True}) == {
        "discarded": [two, three], "missing": []}
    assert await held(client) == []
    answer = await post(client, "/admin/quarantine/discard", {"ids": [one]}, status=404)
    assert answer["missing"] == [one]


async def test_every_lookup_endpoint_needs_the_token(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """Without the token (or with a wrong one) each endpoint is 401 (429 once this address
    has sent ten wrong ones) and changes nothing; without a configured token they are off
    (404)."""
    sink = await make_sink(script=[410])
    client = await make_relay(route_to(sink.url), ADMIN)
    accepted = await push(client, sms("secret", PHONE))
    await wait_settled(client)
    (dead,) = await dead_letters(client)
    (event_id,) = await listed(client)
    calls = [("GET", "/admin/events?contact=" + PHONE), ("GET", f"/admin/events/{event_id}"),
             ("GET", f"/admin/events/{accepted['webhook_id']}"),
             ("POST", f"/admin/events/{event_id}/replay"),
             ("POST", "/admin/dead/discard"), ("POST", "/admin/quarantine/discard")]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in calls:
            response = await client.request(method, path, json={"all": True},
                                            headers=headers)
            text = await response.text()
            assert response.status in (401, 429), (method, path, headers)
            assert PHONE not in text and "138****5678" not in text
    assert client.app is not None  # the API itself is 429 for this address now
    assert [d["id"] for d in await deliveries.dead_letters(client.app[STORE])] == [dead]
    assert len(sink.received) == 1
    off = await make_relay("  []")
    for method, path in calls:
        assert (await off.request(method, path, headers=AUTH)).status == 404


async def test_lookup_endpoints_follow_admin_listen(tmp_path: Path) -> None:
    """With admin_listen, the lookup endpoints answer on the admin port only."""
    port, admin_port = free_port(), free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
                      f"subhooks:\n{subhooks_yaml()}\nroutes: []\n"
                      f"admin_listen: 127.0.0.1:{admin_port}\n{ADMIN}", encoding="utf-8")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    edge, admin = relay.url, f"http://127.0.0.1:{admin_port}"
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.post(edge + "/subhook/sms", data=sms("split")) as response:
                assert response.status == 200
                webhook_id = (await response.json())["webhook_id"]
            for method, path in (("GET", "/admin/events"),
                                 ("GET", f"/admin/events/{webhook_id}"),
                                 ("POST", f"/admin/events/{webhook_id}/replay"),
                                 ("POST", "/admin/dead/discard")):
                async with session.request(method, edge + path, json={"all": True}) as response:
                    assert response.status == 404, path
                    assert (await response.json())["problems"] == [f"no such path: {path}"]
            async with session.get(admin + "/admin/events") as response:
                assert response.status == 200
                (event,) = (await response.json())["events"]
                assert event["webhook_id"] == webhook_id
            async with session.post(admin + "/admin/dead/discard", json={"all": True}) as r:
                assert (r.status, await r.json()) == (200, {"discarded": [], "missing": []})
    finally:
        relay.stop()
