"""Which dead letters or quarantined pushes an operator means (SPEC 21): by destination,
product, event and since when, the same in the CLI, the admin API and the console; a bulk
replay or discard acts on the rows the filter shows."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from relay.products import PRODUCTS, canonical_event
from relay.runtime import RunningConfig
from relay.times import parse_time

#: The filter's names, as CLI options (``--since``), query parameters and form fields.
NAMES = ("destination", "product", "event", "since")


@dataclass(frozen=True)
class ListFilter:
    """Every one given must hold; none given: every row."""

    destination: str | None = None
    product: str | None = None
    #: the one name (an alias spelling is read as its event)
    event: str | None = None
    #: rows that became dead letters (or were quarantined) at or after this time
    since: float | None = None
    #: the filter as it was written (``since: 2h``), for a link or a form to carry on
    given: tuple[tuple[str, str], ...] = ()

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.destination, self.product, self.event,
                                           self.since))

    def query(self) -> dict[str, str]:
        return dict(self.given)

    def holds_held(self, row: Mapping[str, Any]) -> bool:
        """Whether a quarantined push (a row of relay/store/quarantine.py) is one of these."""
        if self.product is not None and row["product"] != self.product:
            return False
        if self.since is not None and row["received_at"] < self.since:
            return False
        if self.event is not None:
            fields = row["fields"] if isinstance(row["fields"], dict) \
                else json.loads(row["fields"])
            return canonical_event(str(fields.get("events", ""))) == self.event
        return True


def check_event(event: str, known_events: Collection[str]) -> None:
    """ValueError when ``event`` (an alias spelling is its event) is none of
    ``known_events``, naming the closest; nothing when ``known_events`` is empty."""
    if known_events and canonical_event(event) not in known_events:
        close = difflib.get_close_matches(canonical_event(event), sorted(known_events), 3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(f"event: {event!r} is no event of the schemas{hint}")


def config_filter(values: Mapping[str, str | None], running: RunningConfig) -> ListFilter:
    """``list_filter`` checked against the running config: its schemas' events and its
    destinations (what the CLI, the admin API and the console all ask)."""
    return list_filter(values, known_events=running.schemas.event_names(),
                       destinations=running.settings.destinations())


def list_filter(values: Mapping[str, str | None], known_events: Collection[str] = (),
                destinations: Collection[str] | None = None,
                now: float | None = None) -> ListFilter:
    """The filter named by ``values`` (empty ones ignored); ValueError naming the first bad
    one: an unknown product, an event none of the schemas has (with the closest), a
    destination the config lacks (when ``destinations`` is given), a time not understood."""
    given = {k: v.strip() for k, v in values.items() if k in NAMES and v and v.strip()}
    product, event = given.get("product"), given.get("event")
    if product is not None and product not in PRODUCTS:
        raise ValueError(f"product: {product!r} is not one of {', '.join(PRODUCTS)}")
    if event is not None:
        check_event(given["event"], known_events)
        event = canonical_event(event)
    destination = given.get("destination")
    if destination is not None and destinations is not None \
            and destination not in destinations:
        raise ValueError(f"destination: no destination named {destination!r} in the config "
                         f"(known: {', '.join(sorted(destinations)) or 'none'})")
    since = None
    if "since" in given:
        try:
            since = parse_time(given["since"], time.time() if now is None else now)
        except ValueError as exc:
            raise ValueError(f"since: {exc}") from None
    return ListFilter(destination, product, event, since, tuple(sorted(given.items())))


#: No filter: every row.
EVERY = ListFilter()
