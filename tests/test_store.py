from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import AttemptRecord, NewEvent, QuarantinedPush
from relay.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open store on a fresh file, closed after the test."""
    opened = SqliteStore(tmp_path / "relay.db")
    await opened.open()
    yield opened
    await opened.close()


def new_event(n: int, destinations: tuple[str, ...] = ("a", "b")) -> NewEvent:
    now = time.time()
    return NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", "sms", "delivered", None,
                    f'{{"n":{n}}}', b"n=1", "application/x-www-form-urlencoded", now,
                    tuple((d, now + 3600) for d in destinations))


async def test_concurrent_ingests_share_commits(store: SqliteStore) -> None:
    """200 pushes arriving together are committed in far fewer transactions."""
    ids = await asyncio.gather(*(store.ingest(new_event(n)) for n in range(200)))
    assert len(set(ids)) == 200
    assert None not in ids
    assert store.commits < 20
    assert await store.counts() == (400, 0)


async def test_dedupe_by_token_and_identity_survives_reopen(tmp_path: Path) -> None:
    """A token or identity seen before is refused, also after the file is reopened."""
    path = tmp_path / "relay.db"
    store = SqliteStore(path)
    await store.open()
    assert await store.ingest(new_event(1)) is not None
    await store.close()
    store = SqliteStore(path)
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


async def test_claim_lease_record_and_replay(store: SqliteStore) -> None:
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
    (dead,) = await store.dead_letters()
    assert dead["attempt"] == 2
    assert [a["http_status"] for a in await store.attempts(claimed.id)] == [503, 400]
    assert await store.replay_dead(None, now, 3600) == 1
    assert await store.dead_letters() == []
    (again,) = await store.claim("a", 10, "w1", now + 60, now + 1)
    assert again.attempt == 0


async def test_quarantine_keeps_one_row_per_identity(store: SqliteStore) -> None:
    """SUBMAIL re-pushing an invalid event does not fill the quarantine."""
    push = QuarantinedPush("id-1", "/subhook/sms", "sms", "{}", b"", "text/plain", '["x"]',
                           time.time())
    first = await store.quarantine(push)
    assert await store.quarantine(push) == first
    (row,) = await store.quarantined()
    assert row["problems"] == ["x"]
    await store.resolve_quarantine(first, None, "done")
    assert await store.quarantined() == []


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    """Opening twice applies each migration once and records the version."""
    path = tmp_path / "relay.db"
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
