"""Destinations as the store keeps them (SPEC 17): pauses, the breaker state workers
report, the backlog per destination, and making pending deliveries due at once. Written
once for both stores, run through ``read`` and ``change`` (relay/store/lookup.py's way).

A pause is a row with ``paused_at`` set: every relay on the store reads it within
``CONTROL_POLL_S`` and claims nothing for that destination while it stands; its
deliveries' ``expires_at`` move on by the time they spent paused when it is lifted, so a
pause never makes a dead letter. "Due at once" sets a pending delivery's
``next_attempt_at`` back to its event's ``received_at``: every one is due, and claims
(ordered by ``next_attempt_at``) take them oldest accepted first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.store.base import Store
from relay.store.sql import Readable, Statement, collect

PAUSES = Statement("""
SELECT name, paused_at, paused_by, reason FROM destinations WHERE paused_at IS NOT NULL
""")

ROWS = Statement("SELECT name, state, state_at, last_error, paused_at, paused_by, reason "
                 "FROM destinations")

PAUSE = Statement("""
INSERT INTO destinations (name, paused_at, paused_by, reason)
VALUES (:name, :now, :by, :reason)
ON CONFLICT (name) DO UPDATE SET paused_at = coalesce(destinations.paused_at, :now),
    paused_by = :by, reason = :reason
RETURNING name, paused_at
""")

#: Before a pause is lifted: its deliveries' expiry moves on by the time each spent paused.
EXTEND_PAUSED = Statement("""
UPDATE deliveries SET expires_at = expires_at + (:now - {greatest}(
        (SELECT paused_at FROM destinations WHERE name = :name),
        (SELECT received_at FROM events WHERE events.id = deliveries.event_id)))
WHERE destination = :name AND state = {pending}
  AND EXISTS (SELECT 1 FROM destinations WHERE name = :name AND paused_at < :now)
""")

RESUME = Statement("""
UPDATE destinations SET paused_at = NULL, paused_by = NULL, reason = NULL
WHERE name = :name AND paused_at IS NOT NULL
RETURNING name
""")

REPORT_STATE = Statement("""
INSERT INTO destinations (name, state, state_at, last_error)
VALUES (:name, :state, :now, :last_error)
ON CONFLICT (name) DO UPDATE SET state = :state, state_at = :now, last_error = :last_error
""")

#: Every pending delivery of a destination due now, at its event's acceptance time.
DUE_NOW = Statement("""
UPDATE deliveries SET next_attempt_at = (
    SELECT received_at FROM events WHERE events.id = deliveries.event_id)
WHERE destination = :name AND state = {pending}
  AND next_attempt_at > (SELECT received_at FROM events WHERE events.id = deliveries.event_id)
RETURNING id
""")

BACKLOG = Statement("""
SELECT d.destination, count(*) AS pending, min(e.received_at) AS oldest,
       min(d.next_attempt_at) AS next_attempt_at, max(d.updated_at) AS updated_at
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.state = {pending}
GROUP BY d.destination
""")

LAST_ERROR = Statement("""
SELECT last_error FROM deliveries
WHERE destination = :name AND state = {pending} AND last_error IS NOT NULL
ORDER BY updated_at DESC LIMIT 1
""")

LIVE_INSTANCES = Statement("""
SELECT count(*) AS live FROM instances WHERE heartbeat_at >= {db_now} - :dead_after
""")

@dataclass(frozen=True)
class Pause:
    name: str
    paused_at: float
    paused_by: str | None
    reason: str | None


async def pauses(store: Readable) -> dict[str, Pause]:
    return {row["name"]: Pause(row["name"], row["paused_at"], row["paused_by"], row["reason"])
            for row in await store.read(PAUSES)}


async def pause(store: Readable, name: str, by: str, reason: str | None, now: float) -> float:
    """Pause ``name`` (again: the reason changes, the time it started stays); when it
    started."""
    (row,) = await store.change(PAUSE, name=name, now=now, by=by, reason=reason)
    return float(row["paused_at"])


async def resume(store: Readable, name: str, now: float) -> int | None:
    """Lift the pause on ``name``: its deliveries' expiry moves on by the time paused and
    every one is due at once. None when it was not paused; else how many were made due."""
    await store.change(EXTEND_PAUSED, name=name, now=now)
    if not await store.change(RESUME, name=name):
        return None
    return await due_now(store, name)


async def due_now(store: Readable, name: str) -> int:
    """Every pending delivery of ``name`` due now, oldest accepted first; how many moved."""
    return len(await store.change(DUE_NOW, name=name))


async def report_state(store: Readable, name: str, state: str, last_error: str | None,
                       now: float) -> None:
    await store.change(REPORT_STATE, name=name, state=state, now=now, last_error=last_error)


async def rows(store: Readable) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in await store.read(ROWS)}


async def backlog(store: Readable) -> dict[str, dict[str, Any]]:
    return {row["destination"]: row for row in await store.read(BACKLOG)}


async def last_error(store: Readable, name: str) -> str | None:
    found = await store.read(LAST_ERROR, name=name)
    return found[0]["last_error"] if found else None


async def live_instances(store: Store) -> int:
    """Relays beating on the store within its ``dead_after`` (PostgreSQL); 1 without asking
    where there are no heartbeats (SQLite has one owner)."""
    if store.dead_after is None:
        return 1
    (row,) = await store.read(LIVE_INSTANCES, dead_after=store.dead_after)
    return max(1, int(row["live"]))


UNLEASE = Statement("""
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
WHERE id IN (:ids) AND lease_owner = :owner AND state = {pending}
""", array=("ids", "bigint"))


async def unlease(store: Readable, ids: list[int], owner: str) -> None:
    """Free the leases ``owner`` holds on ``ids`` (claimed, then held back)."""
    await store.change(UNLEASE, ids=ids, owner=owner)


STATEMENTS = collect(globals())
