"""Attempt records written in groups (relay/delivery/settle.py): the records of deliveries
that end together share one write, and one the store refuses fails none of the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.config import Settings
from relay.delivery.worker import Worker
from relay.metrics import Metrics
from relay.store import AttemptRecord, NewEvent, Store, StoreUnavailable, deliveries


async def test_a_refused_record_fails_no_neighbour(store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A record the store refuses (its delivery does not exist) and a good one end in the
    same group: the group's write fails, the good one is written alone at once, and the
    refused one keeps being retried alone until the worker stops."""
    now = time.time()
    await store.ingest(NewEvent("msg_1", "identity-1", "token-1", "sms", "delivered", None,
                                '{"events":"delivered"}', b"events=delivered",
                                "application/x-www-form-urlencoded", now,
                                (("a", now + 3600),)))
    (claimed,) = await store.claim("a", 10, "w1", now + 60, now)
    groups: list[list[int]] = []
    record = store.record

    async def counted(records: list[AttemptRecord]) -> None:
        groups.append([r.delivery_id for r in records])
        await record(records)

    monkeypatch.setattr(store, "record", counted)
    worker = Worker(store, lambda: Settings(subhooks=(), routes=()), "w1", Metrics())
    good = AttemptRecord(claimed.id, 1, now, 5.0, 200, None, "delivered")
    refused = AttemptRecord(claimed.id + 1000, 1, now, 5.0, 200, None, "delivered")
    retrying = asyncio.create_task(worker._record(refused))
    await asyncio.wait_for(worker._record(good), 10)

    assert sorted(groups[0]) == sorted([claimed.id, claimed.id + 1000]), groups
    assert [claimed.id] in groups[1:], groups
    rows = await deliveries.attempts(store, claimed.id)
    assert [(r["attempt"], r["outcome"], r["http_status"]) for r in rows] == \
        [(1, "delivered", 200)]
    assert await deliveries.counts(store) == (0, 0)
    assert not retrying.done()  # still retried alone, as one record always was
    worker._stopping = True
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(retrying, 10)
