"""relay/ops/events.py's pure part: how an operator names an event and a lookup (the
lookups themselves, on both stores: tests/test_lookup.py)."""

from __future__ import annotations

import pytest

from relay.ops import events

pytestmark = pytest.mark.fast


def test_an_event_is_named_by_its_id_or_its_webhook_id() -> None:
    """Digits are an id, ``msg_...`` a webhook-id; anything else names no event."""
    assert events.event_key("42") == 42
    assert events.event_key("msg_2a9f") == "msg_2a9f"
    assert [events.event_key(t) for t in ("0", "²", "x42", "msg_\x00", "msg_" + "a" * 61)] \
        == [None] * 5


def test_a_lookup_filter_is_refused_by_name() -> None:
    """A NUL, an unknown product or state, an empty contact and a misspelt event are named."""
    for name, value, says in (("send_id", "a\x00", "send_id: must not hold a NUL"),
                              ("product", "fax", "product: 'fax' is not one of"),
                              ("state", "lost", "state: 'lost' is not one of"),
                              ("contact", " ", "contact: empty")):
        with pytest.raises(ValueError) as refused:
            events.event_filter(**{name: value})  # type: ignore[arg-type]
        assert says in str(refused.value)
    with pytest.raises(ValueError, match="did you mean delivered"):
        events.event_filter(event="deliverd", known_events={"delivered"})


def test_a_contact_is_looked_up_in_each_form_it_is_stored_in() -> None:
    """A phone number given with +86 is looked up as stored too; an alias is its event."""
    which = events.event_filter(contact="+8613812345678", event="unkown", since="2h", now=1e9)
    assert "13812345678" in which.contacts
    assert which.event == "unknown"
    assert which.since == 1e9 - 7200
