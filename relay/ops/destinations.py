"""Destinations for operators (SPEC 17): list, pause, resume, "retry now"; and what a
running relay does when one changes state. The CLI, the admin API and the console call
these same functions; the store's side is relay/store/destinations.py.

A pause is kept in the store, so it survives a restart and every relay on the store obeys
it (each reads the pauses every ``CONTROL_POLL_S``). Resume and retry make every pending
delivery of the destination due at once, oldest accepted first.
"""

from __future__ import annotations

import logging
from typing import Any

from relay.config import Settings
from relay.delivery.alerts import Alerter, Notice
from relay.delivery.breaker import State
from relay.delivery.health import DestinationHealth
from relay.errors import RelayError
from relay.redact import redact_url
from relay.routing import Destination
from relay.store import destinations as store_destinations
from relay.store.sql import Readable
from relay.times import iso

log = logging.getLogger("relay.destinations")

unlease = store_destinations.unlease


class UnknownDestination(RelayError):
    """No destination of the config has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no destination named {name!r} in the config "
                         f"(known: {', '.join(known) or 'none'})")
        self.name = name


def _known(settings: Settings, name: str) -> Destination:
    destinations = settings.destinations()
    if name not in destinations:
        raise UnknownDestination(name, sorted(destinations))
    return destinations[name]


async def listing(store: Readable, settings: Settings, now: float,
                  health: DestinationHealth | None = None) -> list[dict[str, Any]]:
    """Every configured destination: URL (secrets masked), state, backlog, next attempt,
    last error, and the pause if one stands. ``health``: the running relay's own view
    (else the state its workers last reported to the store)."""
    rows = await store_destinations.rows(store)
    backlog = await store_destinations.backlog(store)
    listed = []
    for name, destination in sorted(settings.destinations().items()):
        row, queue = rows.get(name, {}), backlog.get(name, {})
        if row.get("paused_at") is not None:
            state = State.PAUSED.value
        elif health is not None:
            state = health.state(name).value
        else:
            state = row.get("state") or State.HEALTHY.value
        pending = int(queue.get("pending") or 0)
        listed.append({
            "name": name, "url": redact_url(destination.url), "state": state,
            "pending": pending,
            "oldest_pending": iso(queue.get("oldest")) if pending else None,
            "oldest_pending_s": round(now - queue["oldest"], 1) if pending else None,
            "next_attempt": iso(max(now, queue["next_attempt_at"])) if pending else None,
            "last_error": (await store_destinations.last_error(store, name) if pending
                           else None) or row.get("last_error"),
            "paused": None if row.get("paused_at") is None else {
                "at": iso(row["paused_at"]), "by": row.get("paused_by"),
                "reason": row.get("reason")},
            "rate": destination.rate, "order": destination.order,
            "breaker": None if destination.breaker.after is None else {
                "after": destination.breaker.after, "probe": destination.breaker.probe},
        })
    return listed


async def pause(store: Readable, settings: Settings, name: str, by: str,
                reason: str | None, now: float) -> float:
    """Pause ``name``: no attempts until resumed, new events still queued; when it began."""
    _known(settings, name)
    return await store_destinations.pause(store, name, by, reason, now)


async def resume(store: Readable, settings: Settings, name: str, now: float) -> int | None:
    """Lift the pause on ``name``; its pending deliveries made due (None: not paused)."""
    _known(settings, name)
    return await store_destinations.resume(store, name, now)


async def retry(store: Readable, settings: Settings, name: str) -> int:
    """Every pending delivery of ``name`` due now; how many were waiting for a backoff."""
    _known(settings, name)
    return await wake(store, name)


async def wake(store: Readable, name: str) -> int:
    return await store_destinations.due_now(store, name)


def _kind(before: State, after: State) -> str | None:
    """The alert kind of a change of state, if it has one."""
    if after is State.PAUSED:
        return "destination.paused"
    if before is State.PAUSED:
        return "destination.resumed"
    if after is State.OPEN:
        return "destination.open"
    if before is State.OPEN and after is State.HEALTHY:
        return "destination.closed"
    return None


async def changed(store: Readable, name: str, before: State, after: State,
                  health: DestinationHealth, destination: Destination | None,
                  alerter: Alerter | None, now: float) -> None:
    """Apply a change of a destination's state: the log line, the state reported to the
    store (for ``relay destinations list`` from another process), the alert."""
    kind = _kind(before, after)
    detail = ""
    context = {"destination": name, "state": after.value}
    try:
        if kind == "destination.open":
            held = (await store_destinations.backlog(store)).get(name, {}).get("pending", 0)
            probe = destination.breaker.probe if destination is not None else 0
            failures = health.breaker(name).failures
            detail = (f"open after {failures} failures; holding {held} deliveries, "
                      f"probing every {probe:g}s")
            log.warning("destination %s %s", name, detail, extra=context)
        elif kind == "destination.closed":
            detail = "closed: it answered again; its held deliveries are due now"
            log.info("destination %s %s", name, detail, extra=context)
        elif kind == "destination.paused":
            by, reason = health.paused.get(name, (None, None))
            detail = f"paused by {by or 'an operator'}: {reason or 'no reason given'}"
            log.warning("destination %s %s", name, detail, extra=context)
        elif kind == "destination.resumed":
            detail = "resumed"
            log.info("destination %s resumed", name, extra=context)
        if after is not State.PAUSED and before is not State.PAUSED:
            await store_destinations.report_state(store, name, after.value,
                                                  health.last_error(name), now)
    except RelayError as exc:
        log.warning("destination %s: could not report its state %s: %s", name, after.value,
                    exc)
    if kind is not None and alerter is not None:
        alerter.notify(Notice(kind, name, now, detail))
