"""Grouped writes: one bad operation fails alone and never hangs its neighbours."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from relay.store import NewEvent, StoreUnavailable
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
            store.replay_dead([10**30], time.time(), 60),
            *(store.ingest(event(n)) for n in range(3, 6)),
            return_exceptions=True), timeout=10)
        assert isinstance(results[3], StoreUnavailable)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3)
        assert await store.counts() == (6, 0)
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
