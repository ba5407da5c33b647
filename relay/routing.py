"""Routing: which destinations an event reaches, and why. Pure functions, no I/O.

A route matches when all three matchers accept the event, and its field conditions
(``match.fields``, ``match.drop_class``: relay/conditions.py) hold:

- a matcher is a pattern or a list of patterns; ``*`` matches any run of characters and
  ``?`` one character, nothing else is special; an omitted matcher matches anything;
- ``tag: null`` matches only an event with no tag or an empty one; ``null`` may also stand in
  a list beside patterns (``[null, "order-*"]``); a pattern never matches a missing tag
  except one made only of ``*``, which means "any tag or none", like an omitted matcher.

Every matching route delivers (fan-out); a destination reached by several routes is
returned once, at the place of its first route.

Field conditions are compiled closures called with the event's fields only for a route
whose product, event and tag matchers already took it: a route without them costs what it
did. Called without fields (None: not known, as for ``relay check``'s unrouted notes), a
route's field conditions are taken to hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from relay import constants as c
from relay.delivery.backoff import RetryPolicy
from relay.delivery.breaker import BreakerPolicy
from relay.products import canonical_event


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def glob_match(pattern: str, value: str) -> bool:
    """``*`` and ``?`` globbing over the whole value, case-sensitive."""
    return _compile(pattern).fullmatch(value) is not None


class FieldTest(Protocol):
    """A route's compiled field conditions (relay/conditions.py FieldMatch)."""

    def __call__(self, event: str, fields: Mapping[str, Any]) -> bool: ...

    def explain(self, event: str, fields: Mapping[str, Any]) -> Sequence[tuple[str, bool, str]]:
        """(field, held, why) of each condition."""
        ...

    def describe(self) -> str:
        """The conditions as one line."""
        ...


class Body(Protocol):
    """A destination's compiled ``body:`` template (relay/templates.py BodyTemplate)."""

    def encode(self, fields: str, product: str, event: str, webhook_id: str) -> bytes:
        """The JSON body sent for an event (its stored fields JSON)."""
        ...


@dataclass(frozen=True)
class Match:
    """The matchers of a route; None means "omitted, matches anything"."""

    product: tuple[str, ...] | None = None
    event: tuple[str, ...] | None = None
    tag: tuple[str | None, ...] | None = None
    #: ``fields`` and ``drop_class``, compiled; None: the route has neither
    fields: FieldTest | None = None


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    secret: str | None = field(default=None, repr=False)
    timeout: float = c.DEFAULT_TIMEOUT_S
    format: str = "json"
    #: keep SUBMAIL's token and signature in the forwarded JSON body (off: they are a
    #: credential for ever, SPEC 16)
    include_signature: bool = False
    #: may carry a credential (``Authorization``): never in a repr
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    max_in_flight: int = c.DEFAULT_MAX_IN_FLIGHT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    #: deliveries started per second at most (``rate: 50/s``); None: no limit
    rate: float | None = None
    #: ``send_id``: one message's deliveries one at a time, in the order accepted
    order: str | None = None
    #: ``body:``, compiled: the JSON sent instead of the event's fields; None: as they came
    body: Body | None = None


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    destinations: tuple[Destination, ...]


@dataclass(frozen=True)
class EventKey:
    """What routing looks at: product, canonical event name and tag (None when absent)."""

    product: str
    event: str
    tag: str | None = None

    @classmethod
    def of(cls, product: str, event: str, tag: str | None) -> EventKey:
        return cls(product, canonical_event(event), tag or None)


def _any_pattern(patterns: tuple[str, ...] | None, value: str) -> bool:
    return patterns is None or any(glob_match(p, value) for p in patterns)


def tag_matches(patterns: tuple[str | None, ...] | None, tag: str | None) -> bool:
    if patterns is None:
        return True
    for pattern in patterns:
        if pattern is None:
            if not tag:
                return True
        elif tag:
            if glob_match(pattern, tag):
                return True
        elif pattern and set(pattern) == {"*"}:
            return True
    return False


def _event_patterns(patterns: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if patterns is None else tuple(canonical_event(p) for p in patterns)


def matches(match: Match, key: EventKey, fields: Mapping[str, Any] | None = None) -> bool:
    return (
        _any_pattern(match.product, key.product)
        and _any_pattern(_event_patterns(match.event), key.event)
        and tag_matches(match.tag, key.tag)
        and (match.fields is None or fields is None or match.fields(key.event, fields))
    )


def destinations_for(key: EventKey, routes: Sequence[Route],
                     fields: Mapping[str, Any] | None = None) -> list[Destination]:
    """The ordered, de-duplicated destinations of every route that matches ``key`` and
    whose field conditions hold for ``fields`` (None: taken to hold)."""
    seen: dict[str, Destination] = {}
    for route in routes:
        if matches(route.match, key, fields):
            for destination in route.destinations:
                seen.setdefault(destination.name, destination)
    return list(seen.values())


def _describe_matcher(name: str, patterns: tuple[str | None, ...] | None, value: str | None,
                      ok: bool) -> str:
    if patterns is None:
        return f"{name}: any (omitted)"
    # as a person reads it (and as the config wrote it), not as a Python list
    shown = " or ".join("null (no tag)" if p is None else p for p in patterns)
    actual = "no tag" if value is None else value
    verdict = "matches" if ok else "does not match"
    return f"{name}: {actual} {verdict} {shown}"


@dataclass(frozen=True)
class RouteVerdict:
    """Why one route does or does not take an event."""

    route: str
    matched: bool
    reasons: tuple[str, ...]
    destinations: tuple[str, ...]


def explain(key: EventKey, routes: Sequence[Route],
            fields: Mapping[str, Any] | None = None) -> list[RouteVerdict]:
    """One verdict per route, in config order, each matcher's outcome spelled out (and each
    field condition's, on ``fields``: none given is an event with no other field)."""
    verdicts = []
    for route in routes:
        m = route.match
        checks = (
            ("product", m.product, key.product, _any_pattern(m.product, key.product)),
            ("event", _event_patterns(m.event), key.event,
             _any_pattern(_event_patterns(m.event), key.event)),
            ("tag", m.tag, key.tag, tag_matches(m.tag, key.tag)),
        )
        reasons = tuple(_describe_matcher(*check) for check in checks)
        field_checks = () if m.fields is None else tuple(m.fields.explain(key.event,
                                                                           fields or {}))
        verdicts.append(
            RouteVerdict(
                route=route.name,
                matched=all(check[3] for check in checks)
                and all(held for _, held, _ in field_checks),
                reasons=reasons + tuple(why for _, _, why in field_checks),
                destinations=tuple(d.name for d in route.destinations),
            )
        )
    return verdicts
