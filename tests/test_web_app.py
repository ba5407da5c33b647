from __future__ import annotations

import gc
import time
import weakref
from typing import Any

from conftest import MakeRelay, MakeSink, eventually, signed

from relay.store import deliveries
from relay.web.app import GC_YOUNG_THRESHOLD
from relay.web.state import STORE


def delivered(send_id: str) -> dict[str, Any]:
    return signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": send_id,
                          "timestamp": int(time.time())})


async def test_health_ready_and_metrics(make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """/healthz and /readyz answer; /metrics counts pushes by outcome and deliveries."""
    sink = await make_sink()
    client = await make_relay(f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}')
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    push = delivered("a")
    assert (await client.post("/subhook/sms", data=push)).status == 200
    assert (await client.post("/subhook/sms", data=push)).status == 200  # duplicate
    assert (await client.post("/subhook/sms", data={"events": "x"})).status == 401
    await sink.wait_for(1)
    text = ""

    async def recorded() -> bool:
        # The counters move when the attempt ends, the store's gauges when its record is
        # committed a moment later: wait for both.
        nonlocal text
        text = await (await client.get("/metrics")).text()
        return 'relay_deliveries_total{destination="s",state="delivered"} 1.0' in text \
            and 'relay_queue_depth{destination="s"} 0.0' in text

    await eventually(recorded, 5, "the delivery counted and recorded in /metrics")
    for line in (
        'relay_events_received_total{event="delivered",outcome="accepted",product="sms"} 1.0',
        'relay_events_received_total{event="delivered",outcome="duplicate",product="sms"} 1.0',
        'relay_events_received_total{event="-",outcome="invalid_signature",product="sms"} 1.0',
        'relay_delivery_attempts_total{destination="s",outcome="delivered"} 1.0',
        'relay_deliveries_total{destination="s",state="delivered"} 1.0',
        'relay_queue_depth{destination="s"} 0.0',
        'relay_destination_up{destination="s"} 1.0',
        "relay_dead_letters 0.0",
        "relay_quarantine_size 0.0",
    ):
        assert line in text
    assert "relay_ingest_seconds_bucket" in text
    assert "relay_delivery_attempt_seconds_bucket" in text


async def test_admin_needs_a_configured_token(make_relay: MakeRelay) -> None:
    """Admin endpoints are off without a token, and refuse a missing or wrong one."""
    client = await make_relay("  []")
    assert (await client.get("/admin/dead")).status == 404
    client = await make_relay("  []", "admin: {token: s3cret}\n")
    assert (await client.get("/admin/dead")).status == 401
    assert (await client.get("/admin/dead", headers={"Authorization": "Bearer nope"})).status \
        == 401
    ok = await client.get("/admin/dead", headers={"Authorization": "Bearer s3cret"})
    assert (ok.status, await ok.json()) == (200, {"dead_letters": []})
    bad = await client.post("/admin/dead/replay", json={"ids": "all"},
                            headers={"Authorization": "Bearer s3cret"})
    assert bad.status == 400


async def test_retention_job_prunes_delivered_events_while_running(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """With a 1 s replay window and short retentions, the running relay forgets a delivered
    event and its token by itself; a dead letter stays."""
    ok = await make_sink()
    refusing = await make_sink(script=[400])
    client = await make_relay(
        f'  - {{name: all, match: {{tag: null}}, destinations: [{{name: ok, url: "{ok.url}"}}]}}\n'
        f'  - {{name: picky, match: {{tag: "p"}}, destinations: [{{name: refuser, url: '
        f'"{refusing.url}"}}]}}',
        "replay_window: {past: 1s, future: 1s}\n"
        "retention: {delivered: 1ms, interval: 200ms, tokens: 2s}\n")
    assert client.app is not None
    store = client.app[STORE]
    fields = delivered("kept-briefly")
    assert (await client.post("/subhook/sms", data=fields)).status == 200
    dead = signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": "dead",
                          "tag": "p", "timestamp": int(time.time())})
    assert (await client.post("/subhook/sms", data=dead)).status == 200
    await ok.wait_for(1)
    await refusing.wait_for(1)
    assert await store.seen(str(fields["token"]), "")

    async def pruned() -> bool:
        return not await store.seen(str(fields["token"]), "")

    await eventually(pruned, 10, "the delivered event's token pruned", every=0.1)
    assert len(await deliveries.dead_letters(store)) == 1
    assert await deliveries.counts(store) == (0, 1)


async def test_garbage_collector_is_set_for_serving_and_restored(
        make_relay: MakeRelay, aiohttp_client: Any) -> None:
    """While the app runs, what existed at start is frozen out of the collector's scans and
    young collections come every GC_YOUNG_THRESHOLD objects; reference cycles made while
    serving are still collected without anyone asking; stopping restores both."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    client = await make_relay("  []")
    assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])

    class Node:
        def __init__(self) -> None:
            self.me = self

    cycle = Node()
    gone = weakref.ref(cycle)
    del cycle
    assert gone() is not None  # only the cyclic collector frees it
    kept = [[i] for i in range(GC_YOUNG_THRESHOLD + 100)]  # enough new objects for a collection
    assert gone() is None
    del kept
    assert (await client.get("/healthz")).status == 200
    await client.close()
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == frozen
