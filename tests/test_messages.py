"""Message records (SPEC 14) on both stores: ranked by lifecycle whatever the order the
events arrive in, re-pushes change nothing, drops classed, stats from known data; and the
records kept up to date by a running relay, read by the CLI and the admin API."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import MakeRelay, MakeSink, eventually, signed

from relay.messages.lifecycle import submail_time, update_of
from relay.messages.stats import hourly, percentile, stats
from relay.store import Store, open_store
from relay.store import messages as records

T0 = 1_700_000_000
TIMELINE = {"request": T0, "sending": T0 + 2, "delivered": T0 + 9}


def event(state: str, send_id: str, at: int, **extra: Any) -> dict[str, Any]:
    return {"events": state, "address": "13812345678", "send_id": send_id, "app": 1,
            "timestamp": at, **extra}


async def opened(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


async def test_any_order_and_any_repeat_end_in_the_same_record(store_url: str) -> None:
    """request, sending and delivered applied in all six orders, each twice in some, end
    in one record: delivered, each state's SUBMAIL time, latency 9 s, contact masked."""
    store = await opened(store_url)
    try:
        orders = list(itertools.permutations(TIMELINE))
        for n, order in enumerate(orders):
            updates = [update_of("sms", s, event(s, f"m{n}", TIMELINE[s]), T0 + 100)
                       for s in order]
            await records.apply(store, [u for u in updates if u is not None])
            await records.apply(store, [u for u in updates[:n % 3] if u is not None])
        rows = [(await records.of_send_id(store, f"m{n}"))[0] for n in range(len(orders))]
        for row in rows:
            assert (row["state"], row["request_at"], row["sending_at"], row["delivered_at"]) \
                == ("delivered", T0, T0 + 2, T0 + 9)
            assert row["contact"] == "138****5678"
        assert stats(rows)["sms"]["latency_s"]["p50"] == 9
    finally:
        await store.close()


async def test_drops_are_classed_and_the_first_report_stays(store_url: str) -> None:
    store = await opened(store_url)
    try:
        for send_id, report, operator in (("a", " MK:0001", "cmcc"), ("b", "DB:0141", "cucc"),
                                          ("c", "ABC", None)):
            update = update_of("sms", "dropped", event("dropped", send_id, T0, report=report,
                                                       operator=operator), T0)
            assert update is not None
            await records.apply(store, [update])
        found = {s: (await records.of_send_id(store, s))[0] for s in "abc"}
        assert [(r["state"], r["reason"], r["report"]) for r in found.values()] == [
            ("dropped", "number", " MK:0001"), ("dropped", "blacklist", "DB:0141"),
            ("dropped", "other", "ABC")]
        assert found["a"]["operator"] == "cmcc"
        # a late `sending` does not undo the drop
        late = update_of("sms", "sending", event("sending", "a", T0 - 5), T0 + 60)
        assert late is not None
        await records.apply(store, [late])
        (again,) = await records.of_send_id(store, "a")
        assert (again["state"], again["sending_at"], again["reason"]) == (
            "dropped", T0 - 5, "number")
    finally:
        await store.close()


def test_stats_from_a_known_set_of_messages() -> None:
    """Figures computed here from the test's own data, then by stats()."""
    latencies = [3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0]
    rows: list[dict[str, Any]] = [
        {"product": "sms", "state": "delivered", "request_at": T0, "delivered_at": T0 + s,
         "reason": None, "operator": "cmcc"} for s in latencies]
    drops = [("number", "cmcc"), ("number", "cucc"), ("blacklist", None)]
    rows += [{"product": "sms", "state": "dropped", "request_at": T0, "delivered_at": None,
              "reason": reason, "operator": operator} for reason, operator in drops]
    rows.append({"product": "voice", "state": "sending", "request_at": T0,
                 "delivered_at": None, "reason": None, "operator": None})
    got = stats(rows)
    sms = got["sms"]
    assert (sms["messages"], sms["delivered"], sms["dropped"]) == (10, 7, 3)
    assert sms["delivered_share"] == 7 / 10
    ordered = sorted(latencies)
    assert sms["latency_s"] == {"p50": ordered[3], "p90": ordered[6], "p99": ordered[6]}
    assert sms["drops_by_class"] == {"number": 2, "blacklist": 1}
    assert sms["drops_by_operator"] == {"cmcc": 1, "cucc": 1, "(unknown)": 1}
    assert got["voice"]["delivered_share"] == 0 and got["voice"]["latency_s"]["p50"] is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile([], 0.9) is None


def test_submail_times_and_events_without_a_message() -> None:
    assert submail_time(1415014855) == submail_time("1415014855") == 1415014855.0
    # one reading (SPEC 18): a date is refused at the edge, so it is no time of a message
    assert submail_time("2019-11-18 08:00:00") is None
    assert submail_time("soon") is None and submail_time(True) is None
    assert update_of("sms", "mo", event("mo", "x", T0), T0) is None
    assert update_of("sms", "delivered", {"events": "delivered"}, T0) is None
    mail = update_of("mail", "bounced", {"send_id": "m", "email": "leo@submail.cn",
                                         "reason": "550 rejected", "timestamp": T0}, T0)
    assert mail is not None and (mail.contact, mail.report) == ("l***@submail.cn",
                                                               "550 rejected")


async def test_a_running_relay_keeps_records_the_cli_and_api_show(
        make_relay: MakeRelay, make_sink: MakeSink, tmp_path: Path) -> None:
    """Pushes of one send_id, delivered before its request arrives: the record, read by
    `relay messages show`, `relay stats` and GET /admin/messages/{send_id}, is delivered."""
    client = await make_relay("  []", "admin: {token: messages-token-0123456789}\n")
    now = int(time.time())
    for state, at in (("delivered", now - 1), ("sending", now - 5), ("request", now - 9)):
        fields = signed("sms", event(state, "order-42", at))
        assert (await client.post("/subhook/sms", data=fields)).status == 200
    auth = {"Authorization": "Bearer messages-token-0123456789"}

    async def reached_all() -> bool:
        response = await client.get("/admin/messages/order-42", headers=auth)
        return response.status == 200 and \
            len((await response.json())["messages"][0]["reached"]) == 3

    await eventually(reached_all, what="the message record reaching 3 states")
    response = await client.get("/admin/messages/order-42", headers=auth)
    (message,) = (await response.json())["messages"]
    assert message["state"] == "delivered"
    assert list(message["reached"]) == ["request", "sending", "delivered"]
    assert message["contact"] == "138****5678"
    # request (now - 9) to delivered (now - 1): SUBMAIL's own times
    assert message["latency"] == {"to": "delivered", "seconds": 8.0}
    assert (await client.get("/admin/messages/nope", headers=auth)).status == 404
    # a second `delivered` of the message (another event: a later time) counts nothing new
    again = signed("sms", event("delivered", "order-42", now))
    for _ in range(2):  # and SUBMAIL pushing that event again (a duplicate) counts nothing
        assert (await client.post("/subhook/sms", data=again)).status == 200
    dropped = signed("sms", event("dropped", "order-43", now, report="DB:0141"))
    assert (await client.post("/subhook/sms", data=dropped)).status == 200
    deadline = time.monotonic() + 10
    while 'relay_messages_dropped_total{product="sms",reason="blacklist"} 1.0' not in (
            metrics := await (await client.get("/metrics")).text()):
        assert time.monotonic() < deadline, metrics
        await asyncio.sleep(0.2)
    for line in ('relay_messages_total{product="sms",state="delivered"} 1.0',
                 'relay_messages_total{product="sms",state="request"} 1.0',
                 'relay_messages_total{product="sms",state="dropped"} 1.0',
                 'relay_message_delivery_seconds_count{product="sms"} 1.0',
                 'relay_message_delivery_seconds_bucket{le="10.0",product="sms"} 1.0',
                 'relay_message_delivery_seconds_bucket{le="5.0",product="sms"} 0.0'):
        assert line in metrics, line

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args, "--config",
                               str(tmp_path / "relay.yaml")], capture_output=True, text=True,
                              check=False, cwd=tmp_path, timeout=60)

    shown = cli("messages", "show", "order-42")
    assert shown.returncode == 0 and "sms order-42: delivered" in shown.stdout, shown.stderr
    assert "request→delivered 8 s" in shown.stdout, shown.stdout
    assert cli("messages", "show", "nope").returncode == 1
    figures = cli("stats", "--since", "1h")
    assert "sms: 2 message(s), 50.0% delivered; request->delivered p50 8s" in figures.stdout
    assert "drops by class: blacklist 1" in figures.stdout
    assert cli("stats", "--since", "yesterday").returncode == 2


def test_hourly_series_for_the_console_chart() -> None:
    """Two hours of a product's messages: each hour's delivered share and median latency;
    an hour without messages is a gap."""
    def row(hour: int, delivered_after: float | None) -> dict[str, Any]:
        request = T0 + hour * 3600 + 10
        return {"product": "sms", "request_at": request, "updated_at": request,
                "delivered_at": None if delivered_after is None else request + delivered_after}

    rows = [row(0, 4), row(0, 6), row(0, None), row(2, 30)]
    series = hourly(rows, T0, T0 + 3 * 3600 - 1)["sms"]
    assert series["time"] == [T0, T0 + 3600, T0 + 7200]
    assert series["delivered_share"] == [200 / 3, None, 100.0]
    assert series["p50_s"] == [4, None, 30]


async def test_records_follow_the_events_retention(store_url: str) -> None:
    """A record whose last event is older than the cut is pruned; a newer one stays."""
    store = await opened(store_url)
    try:
        for send_id, received in (("old", T0), ("new", T0 + 7200)):
            update = update_of("sms", "request", event("request", send_id, T0), received)
            assert update is not None
            await records.apply(store, [update])
        await records.prune(store, T0 + 3600)
        assert await records.of_send_id(store, "old") == []
        assert len(await records.of_send_id(store, "new")) == 1
    finally:
        await store.close()
