from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from relay.store import (
    AttemptRecord,
    NewEvent,
    QuarantinedPush,
    deliveries,
    open_store,
    sqlite_path,
)
from relay.store import quarantine as held
from relay.store.migrations import LATEST
from relay.store.postgres import PostgresStore
from relay.store.sqlite import SqliteStore

"""The store interface, every test run against SQLite and against PostgreSQL."""

AnyStore = SqliteStore | PostgresStore


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[AnyStore]:
    """An open, empty store of each kind, closed after the test."""
    opened = open_store(store_url)
    assert isinstance(opened, SqliteStore | PostgresStore)
    await opened.open()
    yield opened
    await opened.close()


def new_event(n: int, destinations: tuple[str, ...] = ("a", "b")) -> NewEvent:
    now = time.time()
    return NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", "sms", "delivered", None,
                    f'{{"n":{n}}}', b"n=1", "application/x-www-form-urlencoded", now,
                    tuple((d, now + 3600) for d in destinations))


async def test_concurrent_ingests_share_commits(store: AnyStore) -> None:
    """200 pushes arriving together are committed in far fewer transactions."""
    ids = await asyncio.gather(*(store.ingest(new_event(n)) for n in range(200)))
    assert len(set(ids)) == 200
    assert None not in ids
    assert store.commits < 20
    assert await deliveries.counts(store) == (400, 0)


async def test_dedupe_by_token_and_identity_survives_reopen(store_url: str) -> None:
    """A token or identity seen before is refused, also after the store is reopened."""
    store = open_store(store_url)
    await store.open()
    assert await store.ingest(new_event(1)) is not None
    await store.close()
    store = open_store(store_url)
    await store.open()
    try:
        assert await store.ingest(new_event(1)) is None
        same_identity = new_event(1)
        other_token = NewEvent(**{**same_identity.__dict__, "token": "fresh-token"})
        assert await store.ingest(other_token) is None
        assert await store.seen("token-1", "nothing")
        assert await store.seen("nothing", "identity-1")
        assert not await store.seen("nothing", "nothing")
    finally:
        await store.close()


async def test_claim_lease_record_and_replay(store: AnyStore) -> None:
    """Claimed rows are leased (not claimed twice); outcomes update state and attempt log."""
    await store.ingest(new_event(1, ("a",)))
    now = time.time() + 1
    (claimed,) = await store.claim("a", 10, "w1", now + 60, now)
    assert await store.claim("a", 10, "w2", now + 60, now) == []
    assert await store.claim("a", 10, "w2", now + 120, now + 61) != []  # lease ran out
    await store.record([AttemptRecord(claimed.id, 1, now, 5.0, 503, "HTTP 503", "pending",
                                      now + 10)])
    assert await store.claim("a", 10, "w1", now + 60, now + 5) == []  # not due yet
    await store.record([AttemptRecord(claimed.id, 2, now, 5.0, 400, "HTTP 400", "dead")])
    (dead,) = await deliveries.dead_letters(store)
    assert dead["attempt"] == 2
    assert [a["http_status"] for a in await deliveries.attempts(store, claimed.id)] == [503, 400]
    assert await deliveries.replay_dead(store, None, now, 3600) == [dead["id"]]
    assert await deliveries.dead_letters(store) == []
    (again,) = await store.claim("a", 10, "w1", now + 60, now + 1)
    assert again.attempt == 0


async def test_quarantine_keeps_one_row_per_identity(store: AnyStore) -> None:
    """SUBMAIL re-pushing an invalid event does not fill the quarantine."""
    push = QuarantinedPush("id-1", "/subhook/sms", "sms", "{}", b"", "text/plain", '["x"]',
                           time.time())
    first = await store.quarantine(push)
    assert await store.quarantine(push) == first
    (row,) = await held.quarantined(store)
    assert row["problems"] == ["x"]
    await held.resolve(store, first, None, "done")
    assert await held.quarantined(store) == []


async def test_migrations_are_versioned_and_idempotent(store_url: str, store_kind: str) -> None:
    """Opening twice (for PostgreSQL: three instances at once) applies each migration once
    and records the version."""
    if store_kind == "sqlite":
        for _ in range(2):
            store = open_store(store_url)
            await store.open()
            await store.close()
        with sqlite3.connect(sqlite_path(store_url)) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() \
                == [(v,) for v in range(1, LATEST + 1)]
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        return
    stores = [open_store(store_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    pg = await asyncpg.connect(store_url)
    try:
        assert [tuple(r) for r in await pg.fetch("SELECT version FROM schema_version")] \
            == [(v,) for v in range(1, LATEST + 1)]
    finally:
        await pg.close()


async def test_claims_by_two_owners_never_overlap_while_leases_hold(store: AnyStore) -> None:
    """Two workers claiming the same destination at once get disjoint rows (SKIP LOCKED on
    PostgreSQL, one writer on SQLite); all rows are claimed exactly once."""
    await asyncio.gather(*(store.ingest(new_event(n, ("a",))) for n in range(100)))
    now = time.time() + 1
    first, second = await asyncio.gather(
        *(store.claim("a", 60, owner, now + 60, now) for owner in ("w1", "w2")))
    ids1, ids2 = {d.id for d in first}, {d.id for d in second}
    assert not ids1 & ids2
    assert len(ids1 | ids2) == 100
    assert await store.claim("a", 100, "w3", now + 60, now + 30) == []
    assert await store.release("w1") == len(ids1)
    assert {d.id for d in await store.claim("a", 100, "w3", now + 60, now + 30)} == ids1


async def test_retention_prunes_delivered_events_and_old_tokens(store: AnyStore) -> None:
    """Events all of whose deliveries were delivered before the cut go, with their attempt
    log; pending and dead ones stay; tokens older than the cut go."""
    for n in range(3):
        await store.ingest(new_event(n, ("a",)))
    now = time.time() + 1
    claimed = sorted(await store.claim("a", 10, "w", now + 60, now), key=lambda d: d.id)
    await store.record([
        AttemptRecord(claimed[0].id, 1, now, 1.0, 200, None, "delivered"),
        AttemptRecord(claimed[1].id, 1, now, 1.0, 400, "HTTP 400", "dead"),
    ])
    assert await deliveries.prune(store, now - 10, now - 10) == (0, 0)  # nothing old enough yet
    assert await deliveries.prune(store, now + 10, now + 10) == (1, 3)
    assert [d["id"] for d in await deliveries.dead_letters(store)] == [claimed[1].id]
    assert await deliveries.attempts(store, claimed[0].id) == []
    assert await deliveries.counts(store) == (1, 1)
    # A pruned event's identity is no longer known; its token neither.
    assert not await store.seen("token-0", "identity-0")
    assert await store.seen("nothing", "identity-1")


async def test_a_bug_in_a_bind_is_not_store_unavailable(store: AnyStore) -> None:
    """A TypeError from a statement's bind (a bug, not the database) reaches the caller as
    it is, reading or writing, on both stores; the store's own errors alone become
    StoreUnavailable (one boundary per store)."""
    with pytest.raises(TypeError):
        await store.read(deliveries.COUNTS, nothing=1)
    with pytest.raises(TypeError):
        await store.change(deliveries.REPLAY_DEAD, now=1.0)
    assert await deliveries.counts(store) == (0, 0)  # and the store serves on
