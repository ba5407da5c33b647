"""relay/ops/filters.py: which dead letters or quarantined pushes an operator means (pure)."""

from __future__ import annotations

import json

import pytest

from relay.ops.filters import EVERY, ListFilter, list_filter

pytestmark = pytest.mark.fast

NOW = 1_800_000_000.0
EVENTS = {"delivered", "dropped", "unknown"}


def test_nothing_given_is_every_row() -> None:
    """Empty or blank values filter nothing, and the filter says it is inactive."""
    which = list_filter({"product": "", "event": "  ", "other": "x"}, EVENTS, now=NOW)
    assert which == EVERY and not which.active and which.query() == {}


def test_values_are_read_and_kept_as_written() -> None:
    """Each filter is read (since from now back), and its text kept for the next link."""
    which = list_filter({"destination": "a", "product": "sms", "event": "delivered",
                         "since": "2h"}, EVENTS, destinations={"a"}, now=NOW)
    assert (which.destination, which.product, which.event, which.since) == \
        ("a", "sms", "delivered", NOW - 7200)
    assert which.active
    assert which.query() == {"destination": "a", "event": "delivered", "product": "sms",
                             "since": "2h"}


def test_an_alias_spelling_is_read_as_its_event() -> None:
    """``unkown`` (SUBMAIL's spelling) filters on the event ``unknown``."""
    assert list_filter({"event": "unkown"}, EVENTS, now=NOW).event == "unknown"


@pytest.mark.parametrize(("values", "says"), [
    ({"product": "fax"}, "product: 'fax' is not one of"),
    ({"event": "deliverd"}, "did you mean delivered?"),
    ({"destination": "b"}, "no destination named 'b' in the config (known: a)"),
    ({"since": "yesterday"}, "since: not a time: 'yesterday'"),
])
def test_a_bad_value_is_refused_by_name(values: dict[str, str], says: str) -> None:
    """The first bad filter is named, with what would be right where there is a hint."""
    with pytest.raises(ValueError) as refused:
        list_filter(values, EVENTS, destinations={"a"}, now=NOW)
    assert says in str(refused.value)


def test_a_held_push_is_held_to_every_filter_given() -> None:
    """A quarantined push is one of the filter's when its product, time and event hold."""
    row = {"product": "sms", "received_at": NOW, "fields": json.dumps({"events": "unkown"})}
    assert ListFilter(product="sms", event="unknown", since=NOW).holds_held(row)
    assert not ListFilter(product="mail").holds_held(row)
    assert not ListFilter(since=NOW + 1).holds_held(row)
    assert not ListFilter(event="delivered").holds_held(row)
