"""Pushes a schema refused, as the store holds them: listed, paged, resolved, discarded.
Written once for both stores, run through ``read`` and ``change``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from relay.store.base import QuarantineState
from relay.store.sql import Readable, Statement, collect

QUARANTINED = Statement("""
SELECT id, subhook_path, product, fields, body, content_type, problems, received_at
FROM quarantine WHERE state = {held} ORDER BY id LIMIT :limit
""")

#: Held pushes after ``after`` (by id), oldest first: how a replay of every one pages.
HELD_AFTER = Statement("""
SELECT id, subhook_path, product, fields, body, content_type, problems, received_at
FROM quarantine WHERE state = {held} AND id > :after ORDER BY id LIMIT :limit
""")

RESOLVE = Statement("""
UPDATE quarantine SET state = :state, event_id = :event_id, note = :note WHERE id = :id
""")

DISCARD_HELD = Statement("""
UPDATE quarantine SET state = :state, note = :note
WHERE state = {held} AND (:every OR id IN (:ids))
RETURNING id
""", array=("ids", "bigint"))

STATEMENTS = collect(globals())


def _listing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["problems"] = json.loads(row["problems"])
    return rows


async def quarantined(store: Readable, limit: int = 1000) -> list[dict[str, Any]]:
    """Held pushes, oldest first, their problems the list they were stored as."""
    return _listing(await store.read(QUARANTINED, limit=limit))


async def every_held(store: Readable, page: int = 500) -> AsyncIterator[dict[str, Any]]:
    """Every held push, oldest first, read a page at a time (also while they are
    resolved)."""
    after = 0
    while rows := _listing(await store.read(HELD_AFTER, after=after, limit=page)):
        for row in rows:
            yield row
        after = rows[-1]["id"]


async def resolve(store: Readable, qid: int, event_id: int | None, note: str) -> None:
    """A held push replayed: ingested as ``event_id``, or (None) a duplicate."""
    await store.change(RESOLVE, state=QuarantineState.REPLAYED, event_id=event_id,
                       note=note, id=qid)


async def discard(store: Readable, ids: Sequence[int] | None) -> list[int]:
    """Quarantined pushes out of the list (every one when ``ids`` is None)."""
    rows = await store.change(DISCARD_HELD, state=QuarantineState.DISCARDED,
                              note="discarded", every=ids is None, ids=list(ids or []))
    return sorted(row["id"] for row in rows)
