from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.routing import (
    Destination,
    EventKey,
    Match,
    Route,
    destinations_for,
    explain,
    glob_match,
    matches,
)

pytestmark = pytest.mark.fast

ALPHABET = "ab-_.*?"
words = st.text(alphabet="ab-_.", max_size=6)
patterns = st.text(alphabet=ALPHABET, max_size=6)
tags = st.one_of(st.none(), st.just(""), words)
products = st.sampled_from(["sms", "internationalsms", "mms"])
events = st.sampled_from(["request", "delivered", "dropped", "unknown", "unkown", "mo"])


def dest(name: str) -> Destination:
    return Destination(name=name, url=f"http://127.0.0.1/{name}")


@given(patterns, words)
def test_glob_agrees_with_fnmatch_on_star_and_question(pattern: str, value: str) -> None:
    """`*` and `?` mean what they mean in shell globs (no brackets here)."""
    assert glob_match(pattern, value) == fnmatch.fnmatchcase(value, pattern)


@given(st.text(max_size=8), st.text(max_size=8))
def test_brackets_and_regex_characters_are_literal(prefix: str, value: str) -> None:
    """Only `*` and `?` are special: `[`, `.`, `+`, `(` match themselves."""
    literal = prefix.replace("*", "").replace("?", "") + "[a].+("
    assert glob_match(literal, literal)
    assert not glob_match(literal, literal + "x")
    assert glob_match(literal, value) == (value == literal)


@given(products, events, tags)
def test_omitted_matchers_match_everything(product: str, event: str, tag: str | None) -> None:
    """A route with no `match` takes every event."""
    assert matches(Match(), EventKey.of(product, event, tag))


@given(products, events, tags)
def test_star_is_the_same_as_omitted(product: str, event: str, tag: str | None) -> None:
    """`*` on every matcher, tag included, accepts events with or without a tag."""
    assert matches(Match(("*",), ("*",), ("*",)), EventKey.of(product, event, tag))


@given(tags, st.lists(st.one_of(st.none(), patterns), min_size=1, max_size=3))
def test_tag_semantics(tag: str | None, pattern_list: list[str | None]) -> None:
    """null takes only untagged events; a pattern takes a tag it globs (or none, if all `*`)."""
    key = EventKey.of("sms", "delivered", tag)
    expected = any(
        (not tag) if p is None
        else (fnmatch.fnmatchcase(tag, p) if tag else (p != "" and set(p) == {"*"}))
        for p in pattern_list
    )
    assert matches(Match(tag=tuple(pattern_list)), key) == expected


def test_tag_null_examples() -> None:
    """Concrete cases of SPEC section 5's `tag: null`."""
    untagged = Match(tag=(None,))
    assert matches(untagged, EventKey.of("sms", "delivered", None))
    assert matches(untagged, EventKey.of("sms", "delivered", ""))
    assert not matches(untagged, EventKey.of("sms", "delivered", "order-1"))
    orders = Match(tag=("order-*",))
    assert matches(orders, EventKey.of("sms", "delivered", "order-1"))
    assert not matches(orders, EventKey.of("sms", "delivered", None))
    assert not matches(orders, EventKey.of("sms", "delivered", "Order-1"))


@given(events)
def test_unkown_and_unknown_are_one_event(event: str) -> None:
    """A matcher spelled either way matches the event spelled either way."""
    for spelled in ("unknown", "unkown"):
        expected = event in ("unknown", "unkown")
        assert matches(Match(event=(spelled,)), EventKey.of("sms", event, None)) == expected


route_strategy = st.builds(
    lambda name, product, event, tag, dests: Route(
        name=name,
        match=Match(product=product, event=event, tag=tag),
        destinations=tuple(dest(d) for d in dests),
    ),
    st.text(alphabet="rst", min_size=1, max_size=3),
    st.one_of(st.none(), st.lists(st.sampled_from(["sms", "mms", "*", "?ms"]), min_size=1,
                                   max_size=2).map(tuple)),
    st.one_of(st.none(), st.lists(st.sampled_from(["delivered", "d*", "unkown", "*"]),
                                   min_size=1, max_size=2).map(tuple)),
    st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(["a*", "*", "b"])),
                                   min_size=1, max_size=2).map(tuple)),
    st.lists(st.sampled_from(["d1", "d2", "d3", "d4"]), min_size=1, max_size=3),
)


@given(st.lists(route_strategy, max_size=5), products, events, tags)
def test_fan_out_is_ordered_union_without_duplicates(
    routes: list[Route], product: str, event: str, tag: str | None
) -> None:
    """Destinations = every matching route's, each once, in order of first appearance."""
    key = EventKey.of(product, event, tag)
    got = [d.name for d in destinations_for(key, routes)]
    expected: list[str] = []
    for route in routes:
        if matches(route.match, key):
            for d in route.destinations:
                if d.name not in expected:
                    expected.append(d.name)
    assert got == expected
    assert len(got) == len(set(got))
    verdicts = explain(key, routes)
    assert [v.matched for v in verdicts] == [matches(r.match, key) for r in routes]


def test_explain_names_the_failing_matcher() -> None:
    """`explain` says which matcher refused and what it compared."""
    route = Route("receipts", Match(product=("sms",), event=("delivered", "dropped"),
                                    tag=("order-*",)), (dest("orders"),))
    (verdict,) = explain(EventKey.of("sms", "delivered", "promo-1"), [route])
    assert not verdict.matched
    assert verdict.reasons == (
        "product: sms matches sms",
        "event: delivered matches delivered or dropped",
        "tag: promo-1 does not match order-*",
    )
    assert verdict.destinations == ("orders",)
