"""Grouped writes: one bad operation fails alone and never hangs its neighbours."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relay.store import NewEvent, StoreUnavailable, deliveries, sqlite, sqlite_group
from relay.store.grouping import GroupedWriter
from relay.store.sqlite import SqliteStore


def event(n: int) -> NewEvent:
    now = time.time()
    return NewEvent(f"msg_{n}", f"id{n}", f"tok{n}", "sms", "mo", None, "{}", b"", "text/plain",
                    now, (("svc", now + 3600),))


async def test_an_op_sqlite_cannot_take_fails_alone(tmp_path: Path) -> None:
    """An id too large for SQLite (OverflowError in the driver) fails that replay alone;
    the ingests grouped with it commit, and nothing waits for ever."""
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(store.ingest(event(n)) for n in range(3)),
            deliveries.replay_dead(store, [10**30], time.time(), 60),
            *(store.ingest(event(n)) for n in range(3, 6)),
            return_exceptions=True), timeout=10)
        assert isinstance(results[3], StoreUnavailable)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3)
        assert await deliveries.counts(store) == (6, 0)
    finally:
        await store.close()


async def test_a_group_that_raises_answers_every_caller() -> None:
    """Whatever a commit raises, every caller of the group gets a StoreUnavailable."""
    async def commit(ops: list[Any]) -> list[Any]:
        raise RuntimeError("driver bug")

    writer: GroupedWriter[int] = GroupedWriter(commit)
    results = await asyncio.wait_for(asyncio.gather(
        *(writer.write(n) for n in range(4)), return_exceptions=True), timeout=5)
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert "driver bug" in str(results[0])
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(writer.write(5), timeout=5)


async def test_a_push_sqlite_cannot_take_fails_alone_beside_thread_ops(tmp_path: Path) -> None:
    """A push's statements run on the event loop's thread, a replay's on the store's, in one
    transaction: a push with a value SQLite cannot take fails alone, the rest commit."""
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        bad = replace(event(99), received_at=10**30)  # OverflowError when bound
        results = await asyncio.wait_for(asyncio.gather(
            store.ingest(event(1)), store.ingest(bad),
            deliveries.replay_dead(store, [], time.time(), 60),
            store.ingest(event(2)), return_exceptions=True), timeout=10)
        assert isinstance(results[1], StoreUnavailable)
        assert isinstance(results[0], int) and isinstance(results[3], int)
        assert results[2] == []
        assert await deliveries.counts(store) == (2, 0)
        assert store.commits == 1
    finally:
        await store.close()


async def test_a_push_waits_for_another_writer_without_stopping_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process holds SQLite's write lock (an operator's command writing),
    a push waits for it on the store's thread: the event loop goes on turning meanwhile
    (the holder lets go only once it has seen it turn), and the push is stored after."""
    monkeypatch.setattr(sqlite_group, "BUSY_TIMEOUT_MS", 30_000)  # longer than the holder
    path = tmp_path / "relay.db"
    store = SqliteStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    held, turned = threading.Event(), threading.Event()

    def hold() -> bool:
        other.execute("BEGIN IMMEDIATE")
        held.set()
        seen = turned.wait(10)
        other.execute("COMMIT")
        return seen

    try:
        holder = asyncio.create_task(asyncio.to_thread(hold))
        await asyncio.to_thread(held.wait, 10)
        pushed = asyncio.create_task(store.ingest(event(1)))
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not pushed.done()
        turned.set()
        assert await asyncio.wait_for(holder, timeout=20), "the loop stopped while waiting"
        assert isinstance(await asyncio.wait_for(pushed, timeout=10), int)
        assert await deliveries.counts(store) == (1, 0)
    finally:
        other.close()
        await store.close()


async def test_a_claim_is_answered_before_its_commit_and_never_takes_its_groups_push(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim's rows are this process's as soon as their lease is written: the claim is
    answered while its group's COMMIT still waits. It runs first in its group, so a push
    that joined the same group (not yet committed, not yet answered) is not among them."""
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    release = threading.Event()
    finish = SqliteStore._finish

    def slow_finish(self: SqliteStore, conn: sqlite3.Connection, fns: Any) -> Any:
        release.wait(10)
        return finish(self, conn, fns)

    try:
        first = await store.ingest(event(1))
        monkeypatch.setattr(SqliteStore, "_finish", slow_finish)
        now = time.time() + 1
        pushed = asyncio.create_task(store.ingest(event(2)))
        claiming = asyncio.create_task(store.claim_due({"svc": (10, now + 60)}, "w", now))
        claimed = await asyncio.wait_for(claiming, timeout=5)
        assert [d.event_id for d in claimed] == [first]
        assert not pushed.done(), "the push was answered before its commit"
        release.set()
        second = await asyncio.wait_for(pushed, timeout=10)
        assert [d.event_id for d in await store.claim_due(
            {"svc": (10, now + 60)}, "w", now)] == [second]
    finally:
        release.set()
        await store.close()


async def test_only_a_claim_answered_before_its_group_failed_is_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A claim whose own statements fail raises to the worker and nothing else is said; a
    claim already answered with its rows when its group's COMMIT fails is logged, since
    its caller cannot know that those leases were rolled back."""
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    claim, finish = sqlite._claim, SqliteStore._finish
    now = time.time() + 1
    wants = {"svc": (10, now + 60)}

    def broken(*args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    def failing(self: SqliteStore, conn: sqlite3.Connection, fns: Any) -> Any:
        return finish(self, conn, [*fns, broken])

    try:
        first = await store.ingest(event(1))
        monkeypatch.setattr(sqlite, "_claim", broken)
        with caplog.at_level("WARNING", logger="relay.store"):
            with pytest.raises(StoreUnavailable, match="disk I/O error"):
                await store.claim_due(wants, "w", now)
            await store._writer.drain()  # the group and its callbacks are done
            assert "claim's group failed" not in caplog.text

            monkeypatch.setattr(sqlite, "_claim", claim)
            monkeypatch.setattr(SqliteStore, "_finish", failing)
            assert [d.event_id for d in await store.claim_due(wants, "w", now)] == [first]
            await store._writer.drain()  # the group and its callbacks are done
        assert caplog.text.count("claim's group failed to commit") == 1, caplog.text
        monkeypatch.setattr(SqliteStore, "_finish", finish)
        # the lease was rolled back: the row is due again
        assert [d.event_id for d in await store.claim_due(wants, "w", now)] == [first]
    finally:
        await store.close()
