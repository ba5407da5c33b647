"""The delivery queue as the operator, /metrics, the worker's scheduler and retention see
it: counts, gauges, which destinations have due rows, dead letters and their attempts,
replays, discards and pruning. Written once for both stores, run through ``read`` and
``change`` (relay/store/lookup.py's way); only ingest, claims and attempt records, the
hot path, are each store's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.constants import INSTANCE_FORGET_AFTER_S
from relay.store.base import DeliveryState, Gauges, Store
from relay.store.destinations import backlog
from relay.store.sql import Dialect, Readable, Statement, collect

COUNTS = Statement("""
SELECT (SELECT count(*) FROM deliveries WHERE state = {pending}) AS pending,
       (SELECT count(*) FROM deliveries WHERE state = {dead}) AS dead
""")

DEAD_AND_HELD = Statement("""
SELECT (SELECT count(*) FROM deliveries WHERE state = {dead}) AS dead,
       (SELECT count(*) FROM quarantine WHERE state = {held}) AS held
""")

#: Destinations with a due row free to claim (as in queries.DUE): SQLite's one owner.
PENDING_DESTINATIONS = Statement("""
SELECT DISTINCT destination FROM deliveries
WHERE state = {pending} AND next_attempt_at <= :now
  AND (lease_until IS NULL OR lease_until < :now)
""", only=Dialect.SQLITE)

#: Destinations with a due row free to claim (as in queries.CLAIM): a lease also ends with
#: its owner's heartbeat.
PENDING_DESTINATIONS_ALIVE = Statement("""
SELECT DISTINCT destination FROM deliveries
WHERE state = {pending} AND next_attempt_at <= :now
  AND (lease_until IS NULL OR lease_until < :now
       OR lease_owner NOT IN (
           SELECT owner FROM instances WHERE heartbeat_at >= {db_now} - :dead_after))
""", only=Dialect.POSTGRES)

#: Dead letters, oldest first; each filter applies when given (None: any). Each parameter
#: is compared with a column as well, which gives PostgreSQL its type.
DEAD_LETTERS = Statement("""
SELECT d.id, d.destination, d.attempt, d.last_error, d.updated_at, e.webhook_id,
       e.product, e.event, e.fields
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.state = {dead}
  AND (d.destination = :destination OR :destination IS NULL)
  AND (e.product = :product OR :product IS NULL)
  AND (e.event = :event OR :event IS NULL)
  AND (d.updated_at >= :since OR :since IS NULL)
ORDER BY d.id LIMIT :limit
""")

ATTEMPTS = Statement("""
SELECT attempt, started_at, duration_ms, http_status, error, outcome, replay, answer
FROM attempts WHERE delivery_id = :delivery_id ORDER BY id
""")

#: The attempts of several deliveries, each delivery's in the order they were made.
ATTEMPTS_OF_DELIVERIES = Statement("""
SELECT delivery_id, attempt, started_at, duration_ms, http_status, error, outcome, replay,
       answer
FROM attempts WHERE delivery_id IN (:ids) ORDER BY id
""", array=("ids", "bigint"))

#: Every dead letter when ``every``, else those of ``ids``: pending again with a fresh
#: budget of attempts, the attempts from here on marked with the next replay number.
REPLAY_DEAD = Statement("""
UPDATE deliveries SET state = :state, attempt = 0, next_attempt_at = :now,
       expires_at = :expires_at, lease_owner = NULL, lease_until = NULL, updated_at = :now,
       replays = replays + 1
WHERE state = {dead} AND (:every OR id IN (:ids))
RETURNING id
""", array=("ids", "bigint"))

DISCARD_DEAD = Statement("""
UPDATE deliveries SET state = :state, lease_owner = NULL, lease_until = NULL,
       updated_at = :now
WHERE state = {dead} AND (:every OR id IN (:ids))
RETURNING id
""", array=("ids", "bigint"))

#: Events every delivery of which was delivered (or discarded) before the cut; their
#: deliveries and attempts go with them (ON DELETE CASCADE). Dead and pending deliveries
#: keep their event.
PRUNE_EVENTS = Statement("""
DELETE FROM events
WHERE received_at < :delivered_before AND NOT EXISTS (
    SELECT 1 FROM deliveries d WHERE d.event_id = events.id
    AND (d.state NOT IN ({delivered}, {discarded}) OR d.updated_at >= :delivered_before))
RETURNING id
""")

PRUNE_TOKENS = Statement("""
DELETE FROM token_memory WHERE seen_at < :tokens_before RETURNING key
""")

#: Instances that stopped beating long ago (PostgreSQL's several relays; SQLite has none).
FORGET_INSTANCES = Statement("""
DELETE FROM instances WHERE heartbeat_at < {db_now} - :forget_after RETURNING owner
""")

STATEMENTS = collect(globals())


async def counts(store: Readable) -> tuple[int, int]:
    """(pending, dead) deliveries."""
    (row,) = await store.read(COUNTS)
    return int(row["pending"]), int(row["dead"])


async def gauges(store: Readable) -> Gauges:
    """What /metrics shows of the store at one moment."""
    pending = await backlog(store)
    (totals,) = await store.read(DEAD_AND_HELD)
    return Gauges({name: (int(row["pending"]), float(row["oldest"]))
                   for name, row in pending.items()}, int(totals["dead"]), int(totals["held"]))


async def pending_destinations(store: Store, now: float) -> list[str]:
    """Destinations with a delivery due and free to claim (the worker's next round)."""
    if store.dead_after is None:
        rows = await store.read(PENDING_DESTINATIONS, now=now)
    else:
        rows = await store.read(PENDING_DESTINATIONS_ALIVE, now=now,
                                dead_after=store.dead_after)
    return [row["destination"] for row in rows]


async def dead_letters(store: Readable, limit: int = 1000, *, destination: str | None = None,
                       product: str | None = None, event: str | None = None,
                       since: float | None = None) -> list[dict[str, Any]]:
    return await store.read(DEAD_LETTERS, limit=limit, destination=destination,
                            product=product, event=event, since=since)


async def attempts(store: Readable, delivery_id: int) -> list[dict[str, Any]]:
    return await store.read(ATTEMPTS, delivery_id=delivery_id)


async def attempts_of(store: Readable, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The attempts of each of the deliveries ``ids``, in one query."""
    by_delivery: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for row in await store.read(ATTEMPTS_OF_DELIVERIES, ids=list(ids)):
            by_delivery[row.pop("delivery_id")].append(row)
    return by_delivery


async def replay_dead(store: Readable, ids: Sequence[int] | None, now: float,
                      max_age: float) -> list[int]:
    """Queue dead letters again (every one when ``ids`` is None); the ids requeued."""
    rows = await store.change(REPLAY_DEAD, state=DeliveryState.PENDING, now=now,
                              expires_at=now + max_age, every=ids is None,
                              ids=list(ids or []))
    return sorted(int(row["id"]) for row in rows)


async def discard_dead(store: Readable, ids: Sequence[int] | None, now: float) -> list[int]:
    """Dead letters out of the list (every one when ``ids`` is None); the ids discarded.
    The event and its attempts stay for lookups until retention prunes them."""
    rows = await store.change(DISCARD_DEAD, state=DeliveryState.DISCARDED, now=now,
                              every=ids is None, ids=list(ids or []))
    return sorted(row["id"] for row in rows)


async def prune(store: Readable, delivered_before: float,
                tokens_before: float) -> tuple[int, int]:
    """Delete events every delivery of which was delivered before ``delivered_before``,
    with their deliveries and attempts, and tokens seen before ``tokens_before``;
    (events, tokens) deleted. Dead and pending deliveries keep their event."""
    events = await store.change(PRUNE_EVENTS, delivered_before=delivered_before)
    tokens = await store.change(PRUNE_TOKENS, tokens_before=tokens_before)
    await store.change(FORGET_INSTANCES, forget_after=INSTANCE_FORGET_AFTER_S)
    return len(events), len(tokens)
