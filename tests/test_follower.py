"""relay/messages/follower.py's step on both stores: stored events folded into their
messages once each, the cursor moved, SPEC 14's metrics counted, without a running app."""

from __future__ import annotations

import json
import secrets

from relay.messages.follower import MessageFollower
from relay.metrics import Metrics
from relay.store import NewEvent, Store, messages

T0 = 1_800_000_000


async def push(store: Store, event: str, send_id: str, at: int, **more: str) -> int:
    """One stored sms event of ``send_id`` at SUBMAIL's time ``at``; its id."""
    n = secrets.token_hex(6)
    fields = {"events": event, "send_id": send_id, "address": "13812345678",
              "timestamp": str(at), **more}
    event_id = await store.ingest(NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", "sms",
                                           event, None, json.dumps(fields), b"", "text/plain",
                                           float(at), ()))
    assert event_id is not None
    return event_id


async def test_a_step_folds_new_events_into_their_messages(store: Store) -> None:
    """One step applies every new event: the record knows each state's time and its contact."""
    await push(store, "request", "s-1", T0)
    await push(store, "delivered", "s-1", T0 + 4)
    follower = MessageFollower(store)
    assert await follower.step() == 2
    [record] = await messages.of_send_id(store, "s-1")
    assert (record["state"], record["request_at"], record["delivered_at"]) == \
        ("delivered", T0, T0 + 4)
    assert record["contact"] == "138****5678"


async def test_a_step_reads_an_event_once_and_moves_the_cursor(store: Store) -> None:
    """A second step reads nothing new; the cursor stands at the newest event applied."""
    await push(store, "request", "s-2", T0)
    newest = await push(store, "sending", "s-2", T0 + 1)
    follower = MessageFollower(store)
    await follower.step()
    assert await follower.step() == 0
    assert await messages.cursor(store) == newest


async def test_an_event_that_is_no_step_of_a_message_changes_no_record(store: Store) -> None:
    """An event without a send_id is read (the cursor passes it) and makes no record."""
    await push(store, "request", "", T0)
    follower = MessageFollower(store)
    assert await follower.step() == 1
    assert await messages.of_send_id(store, "") == []


async def test_a_step_counts_each_state_reached_once(store: Store) -> None:
    """States reached, drops by class and request-to-delivered are counted as first seen."""
    metrics = Metrics()
    follower = MessageFollower(store, metrics)
    await push(store, "request", "s-3", T0)
    await push(store, "delivered", "s-3", T0 + 7)
    await push(store, "request", "s-4", T0)
    await push(store, "dropped", "s-4", T0 + 2, report="MK:0001")
    await follower.step()
    await push(store, "delivered", "s-3", T0 + 8)  # SUBMAIL pushed it again
    await follower.step()
    exposition = metrics.registry.get_sample_value
    assert exposition("relay_messages_total", {"product": "sms", "state": "delivered"}) == 1
    assert exposition("relay_messages_total", {"product": "sms", "state": "request"}) == 2
    assert exposition("relay_message_delivery_seconds_count", {"product": "sms"}) == 1
    assert exposition("relay_message_delivery_seconds_sum", {"product": "sms"}) == 7
    dropped = [s for m in metrics.messages_dropped.collect() for s in m.samples
               if s.name == "relay_messages_dropped_total"]
    assert [s.value for s in dropped] == [1.0]
