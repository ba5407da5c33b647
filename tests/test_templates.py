from __future__ import annotations

import json
from typing import Any

import pytest

from relay.routing import Destination
from relay.templates import (
    EXAMPLE_WEBHOOK_ID,
    BodyTemplate,
    TemplateError,
    from_config,
    parse_fields,
    preview,
    split,
)

pytestmark = pytest.mark.fast

DROPPED = {"events": "dropped", "address": "+14155550100", "app": 10001, "send_id": "s-1",
           "report": "BLACK", "token": "t0k3n", "signature": "s1g"}


def render(template: dict[str, Any], fields: dict[str, Any] | None = None,
           event: str = "dropped") -> Any:
    return BodyTemplate.compile(template).render(DROPPED if fields is None else fields,
                                                 "sms", event, "msg_1")


def test_a_whole_placeholder_keeps_the_field_json_type() -> None:
    """`{app}` alone is the field's value as sent: a number stays a number, text stays text."""
    assert render({"a": "{app}", "b": "{address}"}) == {"a": 10001, "b": "+14155550100"}
    assert render({"a": "{app}"}, {"app": "10001"}) == {"a": "10001"}


def test_a_missing_field_is_null() -> None:
    """A whole placeholder of a field the event lacks is null; inside text it is nothing."""
    assert render({"a": "{operator}", "b": "op={operator}."}) == {"a": None, "b": "op=."}
    assert render({"a": "{address}"}, {}) == {"a": None}


def test_placeholders_inside_text_are_the_values_text() -> None:
    """Mixed text renders each value as text (a number without quotes or decimals)."""
    assert render({"a": "app {app} to {address}"}) == {"a": "app 10001 to +14155550100"}
    assert render({"a": "{app}{app}"}, {"app": 1.0}) == {"a": "11"}


def test_other_values_are_literals() -> None:
    """Numbers, booleans, null, keys and text without placeholders are sent as written;
    doubled braces are literal braces."""
    template = {"n": 1, "t": True, "z": None, "s": "plain", "{app}": "x", "b": "{{app}}"}
    assert render(template) == {"n": 1, "t": True, "z": None, "s": "plain", "{app}": "x",
                                "b": "{app}"}


def test_nested_mappings_and_lists() -> None:
    """Placeholders work at any depth, in mappings and lists."""
    template = {"order": {"ids": ["{send_id}", "{app}", 3], "to": {"phone": "{address}"}}}
    assert render(template) == {"order": {"ids": ["s-1", 10001, 3],
                                          "to": {"phone": "+14155550100"}}}


def test_relay_values() -> None:
    """$product, $event (the canonical name), $webhook_id, $drop_class (null unless the
    event is a dropped one)."""
    template = {"p": "{$product}", "e": "{$event}", "w": "{$webhook_id}", "c": "{$drop_class}"}
    assert render(template) == {"p": "sms", "e": "dropped", "w": "msg_1", "c": "blacklist"}
    delivered = render(template, {"report": "DELIVRD"}, event="delivered")
    assert delivered == {"p": "sms", "e": "delivered", "w": "msg_1", "c": None}
    mail = BodyTemplate.compile({"c": "{$drop_class}"}).render(
        {"reason": "unsubscribe"}, "mail", "dropped", "msg_2")
    assert mail == {"c": "unsubscribed"}


@pytest.mark.parametrize(("value", "message"), [
    ("{unclosed", "'{' at character 1 is not closed"),
    ("a } b", "a lone '}' at character 3"),
    ("{}", "{} is not a placeholder"),
    ("{ app }", "{ app } is not a placeholder"),
    ("{a{b}", "'{' at character 1 is not closed"),
    ("{$nope}", "unknown {$nope}"),
])
def test_malformed_placeholders_are_refused_with_their_path(value: str, message: str) -> None:
    """A malformed placeholder is a config problem naming where it is in the body."""
    with pytest.raises(TemplateError) as caught:
        BodyTemplate.compile({"outer": [{"inner": value}]})
    ((path, text),) = caught.value.problems
    assert path == ("outer", 0, "inner")
    assert message in text


def test_well_formed_placeholders() -> None:
    """Field names with dots and dashes, and every $ value, are placeholders."""
    assert split("a{b.c-d}e{$event}") == ["a", ("b.c-d",), "e", ("$event",)]
    assert split("{{}}") == ["{}"]


def test_token_and_signature_need_include_signature() -> None:
    """SUBMAIL's token and signature are a credential (SPEC 16): a template may name them
    only on a destination with include_signature."""
    with pytest.raises(TemplateError, match="credential"):
        BodyTemplate.compile({"t": "{token}"})
    assert BodyTemplate.compile({"t": "{token}"}, include_signature=True).render(
        DROPPED, "sms", "dropped", "m") == {"t": "t0k3n"}
    # without a placeholder naming them they are never sent
    assert "t0k3n" not in json.dumps(render({"all": "{address}"}))


def test_from_config_refuses_body_with_format_original() -> None:
    """`body:` replaces the JSON body; `format: original` passes SUBMAIL's through: one."""
    template, problems = from_config({"body": {"a": 1}, "format": "original"})
    assert template is None and problems[0][0] == ("format",)
    assert from_config({"url": "x"}) == (None, [])
    template, problems = from_config({"body": {"a": "{b"}})
    assert template is None and problems[0][0] == ("body", "a")


def test_encode_is_compact_json_rendered_once_per_event() -> None:
    """The bytes sent are the rendered template as compact JSON; the same event and
    destination render once (a retry reuses them)."""
    template = BodyTemplate.compile({"phone": "{address}", "id": "{$webhook_id}"})
    fields = json.dumps(DROPPED)
    body = template.encode(fields, "sms", "dropped", "msg_9")
    assert body == b'{"phone":"+14155550100","id":"msg_9"}'
    assert template.encode(fields, "sms", "dropped", "msg_9") is body


def test_templates_compare_by_source() -> None:
    """One template loaded twice is equal (the config's check that a destination is
    defined identically everywhere relies on it)."""
    assert BodyTemplate.compile({"a": "{b}"}) == BodyTemplate.compile({"a": "{b}"})
    assert BodyTemplate.compile({"a": "{b}"}) != BodyTemplate.compile({"a": "{c}"})


def test_preview_shows_what_each_destination_gets() -> None:
    """The body a destination would be sent: its template rendered, the fields without
    SUBMAIL's credential, or a note for format: original."""
    templated = Destination("t", "http://x/", body=BodyTemplate.compile(
        {"id": "{$webhook_id}", "phone": "{address}"}))
    assert json.loads(preview(templated, "sms", "dropped", DROPPED)) == {
        "id": EXAMPLE_WEBHOOK_ID, "phone": "+14155550100"}
    plain = json.loads(preview(Destination("p", "http://x/"), "sms", "dropped", DROPPED))
    assert "token" not in plain and plain["app"] == 10001
    assert "as received" in preview(Destination("o", "http://x/", format="original"),
                                    "sms", "dropped", DROPPED)


def test_parse_fields() -> None:
    """NAME=VALUE items become text fields; a malformed one is refused."""
    assert parse_fields(["app=10001", "note=a=b"]) == {"app": "10001", "note": "a=b"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_fields(["app"])
