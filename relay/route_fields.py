"""The event fields a config's routes and bodies name, checked against the event schemas
(SPEC 19): a ``fields:`` condition or ``body:`` placeholder naming a field that no event it
can see has is a typo, refused when the config loads, with its key path and line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from relay.conditions import DROPPED, FieldMatch
from relay.config import Settings
from relay.config.yamltools import KeyPath, Problems
from relay.products import canonical_event
from relay.routing import Match, glob_match
from relay.schemas import EventSchemas
from relay.templates import BodyTemplate

Event = tuple[str, str]

#: Fields SUBMAIL's pushes carry that the docs the schemas come from do not list yet (SPEC 2:
#: ``operator`` and ``location`` on ``delivered``; SPEC 14 reads them from any receipt):
#: routing on the carrier is one of SPEC 19's reasons to be, so they are never refused.
UNLISTED_FIELDS = frozenset({"operator", "location"})


def matched_events(match: Match, schemas: EventSchemas) -> set[Event]:
    """(product, event) of every event with a schema that the route's product and event
    matchers take (and, with ``drop_class``, only ``dropped`` ones)."""
    events = {
        (product, event) for product, event in schemas
        if (match.product is None or any(glob_match(p, product) for p in match.product))
        and (match.event is None or any(glob_match(canonical_event(p), event)
                                        for p in match.event))
    }
    if isinstance(match.fields, FieldMatch) and match.fields.drop_classes is not None:
        events = {(p, e) for p, e in events if e == DROPPED}
    return events


def schema_fields(schemas: EventSchemas, events: Iterable[Event]) -> set[str]:
    """Every field the schemas of ``events`` list, and the UNLISTED_FIELDS."""
    names: set[str] = set(UNLISTED_FIELDS)
    for key in events:
        schema = schemas.validators[key].schema
        if isinstance(schema, dict):
            names.update(schema.get("properties") or {})
    return names


def _unknown(problems: Problems, path: KeyPath, name: str, events: set[Event],
             known: set[str], what: str) -> None:
    shown = ", ".join(f"{p} {e}" for p, e in sorted(events)[:4]) + (
        f" and {len(events) - 4} more" if len(events) > 4 else "")
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    problems.add(path, f"no event {what} has a field {name!r}{hint}; the fields of "
                       f"{shown}: {', '.join(sorted(known))}")


class _Collected(Problems):
    """The problems found, by key path (the loader adds each with its line)."""

    def __init__(self) -> None:
        super().__init__({}, "")
        self.pairs: list[tuple[KeyPath, str]] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.pairs.append((path, message))


def field_problems(settings: Settings, schemas: EventSchemas) -> list[tuple[KeyPath, str]]:
    """Each field condition and body placeholder naming a field none of the events it
    applies to has; a ``drop_class`` on a route that can see no ``dropped`` event."""
    problems = _Collected()
    reached: dict[str, set[Event]] = {}
    first: dict[str, KeyPath] = {}
    for index, route in enumerate(settings.routes):
        where: KeyPath = ("routes", index, "match")
        events = matched_events(route.match, schemas)
        test = route.match.fields
        if isinstance(test, FieldMatch):
            if test.drop_classes is not None and not events:
                problems.add((*where, "drop_class"), "matches dropped events only, and this "
                                                     "route's product and event take none")
            known = schema_fields(schemas, events)
            for name in test.names():
                if events and name not in known:
                    _unknown(problems, (*where, "fields", name), name, events, known,
                             "this route matches")
        for d_index, destination in enumerate(route.destinations):
            reached.setdefault(destination.name, set()).update(events)
            first.setdefault(destination.name, ("routes", index, "destinations", d_index))
    for name, destination in settings.destinations().items():
        if not isinstance(destination.body, BodyTemplate) or not reached.get(name):
            continue
        known = schema_fields(schemas, reached[name])
        for path, field in destination.body.fields():
            if field not in known:
                _unknown(problems, (*first[name], "body", *path), field, reached[name], known,
                         "this destination gets")
    return problems.pairs
