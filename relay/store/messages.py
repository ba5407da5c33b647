"""Message records (SPEC 14): derived from stored events by a background step, off the
ingest path, through the stores' ``read`` and ``change`` (the statements written once).

The step reads the events after ``message_cursor``, folds each into its message with one
upsert whose every column is order-free (each state's time is the earliest given, the
state is the highest ranked, a report or operator once known stays), then moves the
cursor. Applying an event twice changes nothing, so a crash between the upserts and the
cursor's move, or two instances stepping at once on PostgreSQL, costs only repeated work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from relay.messages.lifecycle import MessageUpdate
from relay.store.migrations import V7_STATES
from relay.store.sql import Readable, Statement, collect

_FILLED = ("contact", "tag", "report", "reason", "operator", "location")


def _upsert(state: str) -> Statement:
    column = f"{state}_at"
    keep = ",\n    ".join(f"{c} = coalesce(messages.{c}, excluded.{c})" for c in _FILLED)
    return Statement(f"""
INSERT INTO messages (product, send_id, state, rank, {column}, contact, tag, report, reason,
                      operator, location, updated_at)
VALUES (:product, :send_id, :state, :rank, :at, :contact, :tag, :report, :reason, :operator,
        :location, :updated_at)
ON CONFLICT (product, send_id) DO UPDATE SET
    {column} = CASE WHEN messages.{column} IS NULL OR excluded.{column} < messages.{column}
                    THEN excluded.{column} ELSE messages.{column} END,
    state = CASE WHEN excluded.rank > messages.rank THEN excluded.state ELSE messages.state END,
    rank = CASE WHEN excluded.rank > messages.rank THEN excluded.rank ELSE messages.rank END,
    updated_at = CASE WHEN excluded.updated_at > messages.updated_at
                      THEN excluded.updated_at ELSE messages.updated_at END,
    {keep}
""")  # noqa: S608 (only the layout's column names go into it)


#: One upsert per state: a state's time is its own column.
UPSERTS: Mapping[str, Statement] = {state: _upsert(state) for state in V7_STATES}

_COLUMNS = ", ".join(["product", "send_id", "state", "contact", "tag",
                      *(f"{s}_at" for s in V7_STATES), "report", "reason", "operator",
                      "location", "updated_at"])

MESSAGES_OF = Statement(f"""
SELECT {_COLUMNS} FROM messages WHERE send_id = :send_id ORDER BY product
""")  # noqa: S608

#: The records of the send_ids of a batch of events (the caller keeps its products' rows).
MESSAGES_OF_MANY = Statement(f"""
SELECT {_COLUMNS} FROM messages WHERE send_id IN (:send_ids)
""", array=("send_ids", "text"))  # noqa: S608

MESSAGES_SINCE = Statement(f"""
SELECT {_COLUMNS} FROM messages WHERE updated_at >= :since
""")  # noqa: S608

CURSOR = Statement("SELECT last_id FROM message_cursor WHERE name = 'messages'")

MOVE_CURSOR = Statement("""
UPDATE message_cursor SET last_id = :last_id WHERE name = 'messages' AND last_id < :last_id
""")

PRUNE_MESSAGES = Statement("DELETE FROM messages WHERE updated_at < :before")

STATEMENTS = {**collect(globals()),
              **collect({f"upsert_{s}": statement for s, statement in UPSERTS.items()})}


async def apply(store: Readable, updates: Sequence[MessageUpdate]) -> None:
    """Fold each update into its message: all asked at once, so the store's grouped writer
    commits them together."""
    await asyncio.gather(*(store.change(
        UPSERTS[u.state], product=u.product, send_id=u.send_id, state=u.state, rank=u.rank,
        at=u.at, contact=u.contact, tag=u.tag, report=u.report, reason=u.reason,
        operator=u.operator, location=u.location, updated_at=u.updated_at) for u in updates))


async def cursor(store: Readable) -> int:
    rows = await store.read(CURSOR)
    return int(rows[0]["last_id"]) if rows else 0


async def move_cursor(store: Readable, last_id: int) -> None:
    await store.change(MOVE_CURSOR, last_id=last_id)


async def of_send_id(store: Readable, send_id: str) -> list[dict[str, Any]]:
    return await store.read(MESSAGES_OF, send_id=send_id)


async def of_messages(store: Readable,
                      keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The records of these (product, send_id), by key; those with none left out."""
    if not keys:
        return {}
    wanted = set(keys)
    rows = await store.read(MESSAGES_OF_MANY, send_ids=sorted({s for _, s in keys}))
    return {(r["product"], r["send_id"]): r for r in rows
            if (r["product"], r["send_id"]) in wanted}


async def since(store: Readable, at: float) -> list[dict[str, Any]]:
    return await store.read(MESSAGES_SINCE, since=at)


async def prune(store: Readable, before: float) -> None:
    await store.change(PRUNE_MESSAGES, before=before)
