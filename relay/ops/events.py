"""Events as operators look them up and replay them (SPEC 12): the CLI, the admin API and
the console show what these functions return, as relay/ops/shown.py shows it."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from relay.config import Settings
from relay.ops import shown
from relay.ops.filters import check_event
from relay.products import PRODUCTS, canonical_event, contact_forms
from relay.store import Store
from relay.store import lookup as q
from relay.store.base import DeliveryState
from relay.times import parse_time

#: Events per page unless asked otherwise.
DEFAULT_LIMIT = 50


def event_filter(*, send_id: str | None = None, contact: str | None = None,
                 product: str | None = None, event: str | None = None,
                 state: str | None = None, since: str | None = None,
                 until: str | None = None, now: float | None = None,
                 known_events: Collection[str] = ()) -> q.EventFilter:
    """The filter the CLI's options and the admin API's query name; ValueError naming the
    first bad one. ``known_events``: the events of the schemas, for a filter on an event
    none of them is (a typo that would match nothing) to be refused with a suggestion."""
    now = time.time() if now is None else now
    given = {"send_id": send_id, "contact": contact, "product": product, "event": event,
             "state": state, "since": since, "until": until}
    for name, value in given.items():
        if value is not None and "\x00" in value:
            raise ValueError(f"{name}: must not hold a NUL character")
    if product is not None and product not in PRODUCTS:
        raise ValueError(f"product: {product!r} is not one of {', '.join(PRODUCTS)}")
    states = [s.value for s in DeliveryState]
    if state is not None and state not in states:
        raise ValueError(f"state: {state!r} is not one of {', '.join(states)}")
    if contact is not None and not contact.strip():
        raise ValueError("contact: empty")
    if event is not None:
        check_event(event, known_events)
    return q.EventFilter(
        send_id=send_id, contacts=tuple(contact_forms(contact)) if contact else (),
        product=product, event=canonical_event(event) if event else None,
        state=DeliveryState(state) if state else None,
        since=_time("since", since, now), until=_time("until", until, now))


def _time(name: str, text: str | None, now: float) -> float | None:
    try:
        return parse_time(text, now) if text else None
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None






async def list_events(store: Store, which: q.EventFilter, limit: int = DEFAULT_LIMIT,
                      cursor: str | None = None) -> dict[str, Any]:
    """One page, newest first: ``events`` and ``next_cursor`` (None on the last page)."""
    before = None
    if cursor is not None:
        before = shown.row_id(cursor)
        if before is None:
            raise ValueError(f"cursor: {cursor!r} is not a cursor this relay gave")
    if not 0 < limit <= q.MAX_PAGE:
        raise ValueError(f"limit: must be 1 to {q.MAX_PAGE}")
    rows = await q.events(store, which, limit + 1, before)  # one more: is there a next page?
    page = rows[:limit]
    return {"events": [shown.event(r) for r in page],
            "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None}


def event_key(text: str) -> int | str | None:
    """An event's id (digits) or webhook-id (``msg_...``); None for neither."""
    if text.isascii() and text.isdigit():
        return shown.row_id(text)
    return text if text.startswith("msg_") and len(text) <= 64 and "\x00" not in text \
        else None


async def show_event(store: Store, key: int | str) -> dict[str, Any] | None:
    found = await q.event(store, key)
    return None if found is None else shown.event(found)


async def replay_events(store: Store, settings: Settings, ids: Sequence[int] = (),
                        send_id: str | None = None) -> dict[str, Any]:
    """Deliver the events again to every destination they were routed to: each delivery
    that is delivered or dead is queued again (a pending one is already on its way).
    ``missing``: ids that name no event; ``pending``: events with nothing to replay."""
    wanted = [i for i in ids if shown.valid_id(i)]
    if send_id is not None:
        wanted += await q.event_ids_of_send_id(store, send_id)
    found = await q.existing(store, wanted)
    requeued = await q.replay_events(store, sorted(found), time.time(),
                                     settings.retry.max_age) if found else []
    by_event: dict[int, list[int]] = {}
    for row in requeued:
        by_event.setdefault(row["event_id"], []).append(row["id"])
    return {"replayed": [{"event_id": e, "deliveries": sorted(d)}
                         for e, d in sorted(by_event.items())],
            "unchanged": sorted(found - set(by_event)),
            "missing": sorted(set(ids) - found)}


