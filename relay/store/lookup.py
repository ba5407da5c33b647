"""Looking events up (SPEC 12): the statements, written once for both stores, and the
functions that run them through a store's ``read`` and ``change``.

Events are listed newest first and paged by cursor: a page holds ids below ``before``, the
next page's cursor is the last id of this one. New events take higher ids, so paging while
they arrive returns every event of the listing once (on PostgreSQL an event committed late
with an id below the cursor is not in the pages after: it is as new as one pushed then).
Lookups by send_id and contact use the indexes migration 6 made (``events_send_id``,
``events_contact``); a time range uses ``events_received``; other filters walk the events
newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from relay.store.base import DeliveryState
from relay.store.sql import Readable, Statement, collect

#: Most events one page holds.
MAX_PAGE = 500

_EVENT = """e.id, e.webhook_id, e.product, e.event, e.tag, e.send_id, e.fields,
       e.received_at, e.content_type"""


@dataclass(frozen=True)
class EventFilter:
    """Which events: every filter given must hold."""

    send_id: str | None = None
    #: the forms the contact may be stored in (products.contact_forms)
    contacts: tuple[str, ...] = ()
    product: str | None = None
    event: str | None = None
    #: events with a delivery in this state
    state: DeliveryState | None = None
    since: float | None = None
    until: float | None = None


@lru_cache(maxsize=128)
def _listing(send_id: bool, contacts: bool, product: bool, event: bool,
             state: DeliveryState | None, since: bool, until: bool,
             before: bool) -> Statement:
    """The listing for one combination of filters (each combination one text, so each is
    planned with the index it can use; only names and literals go into it, never values)."""
    where = [clause for present, clause in (
        (send_id, "e.send_id = :send_id"),
        (contacts, "e.contact IN (:contacts)"),
        (product, "e.product = :product"),
        (event, "e.event = :event"),
        (since, "e.received_at >= :since"),
        (until, "e.received_at < :until"),
        (before, "e.id < :before"),
    ) if present]
    if state is DeliveryState.DELIVERED:
        # most events: walk them newest first, each checked through its deliveries' key
        where.append("EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id"
                     " AND d.state = {delivered})")
    elif state is not None:
        # few events: their ids from the deliveries in that state (the state a literal, so
        # the partial indexes deliveries_dead and deliveries_due serve dead and pending)
        where.append("e.id IN (SELECT d.event_id FROM deliveries d"  # noqa: S608
                     f" WHERE d.state = {{{state.name.lower()}}})")
    text = f"SELECT {_EVENT} FROM events e WHERE {' AND '.join(where) or '1 = 1'}"  # noqa: S608
    return Statement(text + " ORDER BY e.id DESC LIMIT :limit",
                     array=("contacts", "text") if contacts else None)


EVENT_BY_ID = Statement(f"SELECT {_EVENT} FROM events e WHERE e.id = :id")  # noqa: S608

#: A webhook-id is ``msg_`` and the first 32 characters of the identity (identity.py): a
#: range of the identity's unique index finds it.
EVENT_BY_WEBHOOK_ID = Statement(f"""
SELECT {_EVENT} FROM events e
WHERE e.identity >= :low AND e.identity < :high AND e.webhook_id = :webhook_id
""")  # noqa: S608

DELIVERIES_OF = Statement("""
SELECT id, event_id, destination, state, attempt, replays, last_error, next_attempt_at,
       updated_at
FROM deliveries WHERE event_id IN (:event_ids) ORDER BY id
""", array=("event_ids", "bigint"))

ATTEMPTS_OF = Statement("""
SELECT a.delivery_id, a.attempt, a.replay, a.started_at, a.duration_ms, a.http_status,
       a.error, a.outcome, a.answer
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.event_id = :event_id ORDER BY a.id
""")

#: Every delivery of the events that is not pending: pending again, a fresh budget of
#: attempts, its attempts from here on marked with the next replay number. A pending one
#: is left alone (it may be in flight: replaying it could send it twice).
REPLAY_EVENTS = Statement("""
UPDATE deliveries SET state = :state, attempt = 0, next_attempt_at = :now,
       expires_at = :expires_at, lease_owner = NULL, lease_until = NULL, updated_at = :now,
       replays = replays + 1
WHERE event_id IN (:event_ids) AND state <> {pending}
RETURNING id, event_id
""", array=("event_ids", "bigint"))

EXISTING = Statement("""
SELECT id FROM events WHERE id IN (:ids)
""", array=("ids", "bigint"))

EVENTS_OF_SEND_ID = Statement("""
SELECT id FROM events WHERE send_id = :send_id ORDER BY id
""")

#: What ``relay tail`` follows: events and attempts after the ids it has shown.
EVENTS_AFTER = Statement(f"""
SELECT {_EVENT} FROM events e WHERE e.id > :after ORDER BY e.id LIMIT :limit
""")  # noqa: S608

ATTEMPTS_AFTER = Statement("""
SELECT a.id, a.attempt, a.replay, a.started_at, a.duration_ms, a.http_status, a.error,
       a.outcome, d.destination, e.id AS event_id, e.webhook_id, e.product, e.event,
       e.fields
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id
WHERE a.id > :after ORDER BY a.id LIMIT :limit
""")

LAST_IDS = Statement("""
SELECT (SELECT coalesce(max(id), 0) FROM events) AS event,
       (SELECT coalesce(max(id), 0) FROM attempts) AS attempt
""")

#: Every fixed statement by name (the layout test prepares each on each dialect).
STATEMENTS = collect(globals())


def listing(which: EventFilter, paged: bool) -> Statement:
    """The statement listing the events ``which`` selects (below a cursor when paged)."""
    return _listing(which.send_id is not None, bool(which.contacts), which.product is not None,
                    which.event is not None, which.state, which.since is not None,
                    which.until is not None, paged)


async def events(store: Readable, which: EventFilter, limit: int,
                 before: int | None = None) -> list[dict[str, Any]]:
    """Events matching ``which``, newest first, ids below ``before``; each with its
    ``deliveries`` (a list, in the order they were made)."""
    statement = listing(which, before is not None)
    values = {"send_id": which.send_id, "contacts": list(which.contacts),
              "product": which.product, "event": which.event, "since": which.since,
              "until": which.until, "before": before, "limit": min(limit, MAX_PAGE + 1)}
    rows = await store.read(statement, **{k: v for k, v in values.items()
                                          if k in statement.params})
    return await _with_deliveries(store, rows)


async def event(store: Readable, key: int | str) -> dict[str, Any] | None:
    """One event by id or webhook-id, with its deliveries and each one's ``attempts`` in
    the order they were made; None when there is none."""
    if isinstance(key, int):
        rows = await store.read(EVENT_BY_ID, id=key)
    else:
        prefix = key.removeprefix("msg_")
        # the identity is hex, which sorts below "g"
        rows = await store.read(EVENT_BY_WEBHOOK_ID, low=prefix, high=prefix + "g",
                                webhook_id=key)
    if not rows:
        return None
    (found,) = await _with_deliveries(store, rows[:1])
    attempts = await store.read(ATTEMPTS_OF, event_id=found["id"])
    for delivery in found["deliveries"]:
        delivery["attempts"] = [a for a in attempts if a["delivery_id"] == delivery["id"]]
    return found


async def _with_deliveries(store: Readable,
                           rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return rows
    deliveries = await store.read(DELIVERIES_OF, event_ids=[r["id"] for r in rows])
    by_event: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for delivery in deliveries:
        by_event[delivery["event_id"]].append(delivery)
    for row in rows:
        row["deliveries"] = by_event[row["id"]]
    return rows


async def existing(store: Readable, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` name an event."""
    if not ids:
        return set()
    return {row["id"] for row in await store.read(EXISTING, ids=list(ids))}


async def event_ids_of_send_id(store: Readable, send_id: str) -> list[int]:
    return [row["id"] for row in await store.read(EVENTS_OF_SEND_ID, send_id=send_id)]


async def replay_events(store: Readable, event_ids: Sequence[int], now: float,
                        max_age: float) -> list[dict[str, Any]]:
    """Queue again every delivery of the events that is delivered or dead; the
    (id, event_id) of each delivery requeued."""
    return await store.change(REPLAY_EVENTS, state=DeliveryState.PENDING, now=now,
                              expires_at=now + max_age, event_ids=list(event_ids))


async def last_ids(store: Readable) -> tuple[int, int]:
    """The newest (event id, attempt id): where ``relay tail`` starts."""
    (row,) = await store.read(LAST_IDS)
    return int(row["event"]), int(row["attempt"])


async def events_after(store: Readable, after: int, limit: int = 500) -> list[dict[str, Any]]:
    return await store.read(EVENTS_AFTER, after=after, limit=limit)


async def attempts_after(store: Readable, after: int,
                         limit: int = 500) -> list[dict[str, Any]]:
    return await store.read(ATTEMPTS_AFTER, after=after, limit=limit)
