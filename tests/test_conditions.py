from __future__ import annotations

import fnmatch
import json
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.conditions import OPERATORS, FieldMatch, from_config, parse_condition
from relay.drop_reasons import DropClass, drop_class
from relay.routing import Destination, EventKey, Match, Route, destinations_for, explain

pytestmark = pytest.mark.fast


def field_match(fields: dict[str, Any], drop: Any = None) -> FieldMatch:
    raw: dict[str, Any] = {"fields": fields}
    if drop is not None:
        raw["drop_class"] = drop
    compiled, problems = from_config(raw)
    assert problems == [] and compiled is not None
    return compiled


def routed(condition: Any, event: dict[str, Any], name: str = "f",
           event_name: str = "delivered") -> bool:
    """Whether a route holding only ``{name: condition}`` takes the event, via routing."""
    route = Route("r", Match(fields=field_match({name: condition})),
                  (Destination("d", "http://127.0.0.1/d"),))
    return bool(destinations_for(EventKey.of("sms", event_name, None), [route], event))


# One case per operator and per bare form: (condition, an event that must match, one that
# must not).
CASES = [
    ("glob string", "100*", {"f": "10001"}, {"f": "20001"}),
    ("glob string, number sent", "10001", {"f": 10001}, {"f": 10002}),
    ("bare number is equals", 10001, {"f": "10001"}, {"f": "10001x"}),
    ("bare true is equals", True, {"f": "true"}, {"f": "false"}),
    ("bare null is exists false", None, {"g": "1"}, {"f": "1"}),
    ("list is any of", ["a", {"prefix": "+44"}], {"f": "+447700900000"}, {"f": "b"}),
    ("equals text and number", {"equals": "10001"}, {"f": 10001}, {"f": 10010}),
    ("equals number and text", {"equals": 10001}, {"f": "10001"}, {"f": "10001a"}),
    ("equals number, float form", {"equals": 1}, {"f": "1.0"}, {"f": "1.5"}),
    ("equals two texts never numbers", {"equals": "010"}, {"f": "010"}, {"f": "10"}),
    ("in", {"in": ["cmcc", 46001]}, {"f": "46001"}, {"f": "46002"}),
    ("prefix", {"prefix": "+1"}, {"f": "+14155550100"}, {"f": "+447700900000"}),
    ("prefix on a number sent", {"prefix": "86"}, {"f": 8613800000000}, {"f": 13800000000}),
    ("suffix", {"suffix": "@example.com"}, {"f": "a@example.com"}, {"f": "a@example.org"}),
    ("glob operator", {"glob": "order-??"}, {"f": "order-12"}, {"f": "order-123"}),
    ("glob brackets are literal", {"glob": "[a]*"}, {"f": "[a]x"}, {"f": "ax"}),
    ("exists true", {"exists": True}, {"f": "x"}, {"g": "x"}),
    ("exists true, empty is missing", {"exists": True}, {"f": 0}, {"f": ""}),
    ("exists false", {"exists": False}, {"f": None}, {"f": "x"}),
    ("gte numeric", {"gte": 100}, {"f": "100"}, {"f": "99"}),
    ("gte numeric, not text order", {"gte": 9}, {"f": "10"}, {"f": "8.5"}),
    ("gte numeric fails a non-number", {"gte": "5"}, {"f": 5.0}, {"f": "five"}),
    ("lte numeric", {"lte": 2.5}, {"f": "2.5"}, {"f": 3}),
    ("lte text order", {"lte": "2026-12-05"}, {"f": "2026-12-04 23:59:59"},
     {"f": "2026-12-05 00:00:01"}),
    ("gte text order", {"gte": "2026-12-05"}, {"f": "2026-12-05 10:00:00"},
     {"f": "2026-12-04"}),
    ("not", {"not": {"prefix": "+86"}}, {"f": "+14155550100"}, {"f": "+8613800000000"}),
    ("not holds for a missing field", {"not": "x"}, {"g": "x"}, {"f": "x"}),
]


@pytest.mark.parametrize(("condition", "yes", "no"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_operator_takes_one_event_and_refuses_another(
        condition: Any, yes: dict[str, Any], no: dict[str, Any]) -> None:
    """Every operator and bare form matches the event it must and refuses the other."""
    assert routed(condition, yes)
    assert not routed(condition, no)


@pytest.mark.parametrize("condition", [
    "*", ["*"], {"equals": ""}, {"in": ["x"]}, {"prefix": ""}, {"suffix": ""}, {"glob": "*"},
    {"exists": True}, {"gte": 0}, {"lte": "zzz"}, 1])
def test_a_missing_field_fails_every_condition_but_exists_false_and_not(
        condition: Any) -> None:
    """Absent, null and "" are missing: no condition but exists false and not holds."""
    for event in ({}, {"f": None}, {"f": ""}):
        assert not routed(condition, event)
        assert routed({"not": condition}, event)
    assert routed({"exists": False}, {})


def test_drop_class_matches_dropped_events_of_the_class() -> None:
    """drop_class takes a dropped event whose report (mail: reason) is of a listed class."""
    route = Route("r", Match(fields=field_match({}, ["blacklist", "unsubscribed"])),
                  (Destination("d", "http://127.0.0.1/d"),))
    key, other = EventKey.of("sms", "dropped", None), EventKey.of("sms", "delivered", None)
    assert destinations_for(key, [route], {"report": "DB:0141"})
    assert destinations_for(key, [route], {"report": "unsubscribe"})
    assert destinations_for(EventKey.of("mail", "dropped", None), [route],
                            {"reason": "BLACK"})
    assert not destinations_for(key, [route], {"report": "UNDELIV"})
    assert not destinations_for(key, [route], {})  # no report: class other
    assert not destinations_for(other, [route], {"report": "BLACK"})
    single = Route("r", Match(fields=field_match({}, "other")), route.destinations)
    assert destinations_for(key, [single], {"report": "no such code"})


def test_fields_and_drop_class_must_all_hold() -> None:
    """Every field condition and the drop class must hold together."""
    match = field_match({"app": "10001", "address": {"prefix": "+1"}}, "number")
    good = {"app": 10001, "address": "+14155550100", "report": "UNDELIV"}
    assert match("dropped", good)
    for name, value in (("app", "10002"), ("address", "+44"), ("report", "BLACK")):
        assert not match("dropped", {**good, name: value})


def test_routes_without_fields_do_not_look_at_the_event_fields() -> None:
    """A route with no field conditions matches whatever the fields; None fields (not
    known) take a route's conditions as holding."""
    plain = Route("p", Match(product=("sms",)), (Destination("a", "http://127.0.0.1/a"),))
    fielded = Route("f", Match(fields=field_match({"app": "1"})),
                    (Destination("b", "http://127.0.0.1/b"),))
    key = EventKey.of("sms", "delivered", None)
    assert [d.name for d in destinations_for(key, [plain, fielded], {"app": "2"})] == ["a"]
    assert [d.name for d in destinations_for(key, [plain, fielded], None)] == ["a", "b"]


def test_explain_says_why_each_condition_holds_or_not() -> None:
    """The explanation names each field, its value and the condition, held or not."""
    route = Route("r", Match(fields=field_match(
        {"app": "10001", "address": {"prefix": "+1"}, "operator": {"exists": True}},
        "blacklist")), (Destination("d", "http://127.0.0.1/d"),))
    (verdict,) = explain(EventKey.of("sms", "dropped", None), [route],
                         {"app": "10001", "address": "+447700900000", "report": "BLACK"})
    assert not verdict.matched
    assert "drop_class: report class blacklist is in [blacklist]" in verdict.reasons
    assert "fields.app: '10001' holds glob '10001'" in verdict.reasons
    assert "fields.address: '+447700900000' does not hold prefix '+1'" in verdict.reasons
    assert "fields.operator: missing does not hold exists true" in verdict.reasons
    (delivered,) = explain(EventKey.of("sms", "delivered", None), [route], {})
    assert "drop_class: a delivered event is not in [blacklist]" in delivered.reasons


@pytest.mark.parametrize(("raw", "where", "message"), [
    ({"startswith": "+1"}, ("fields", "f", "startswith"), "unknown operator 'startswith'"),
    ({"gte": 1, "lte": 2}, ("fields", "f"), "one operator per condition, not 2"),
    ({"prefix": 1}, ("fields", "f", "prefix"), "must be a text, quoted"),
    ({"exists": "yes"}, ("fields", "f", "exists"), "must be true or false"),
    ({"in": "x"}, ("fields", "f", "in"), "must be a list"),
    ({"equals": [1]}, ("fields", "f", "equals"), "must be a text or a number"),
    ([], ("fields", "f"), "an empty list matches nothing"),
    ({"not": {"nope": 1}}, ("fields", "f", "not", "nope"), "unknown operator 'nope'"),
    (["a", {"suffix": 2}], ("fields", "f", 1, "suffix"), "must be a text"),
])
def test_malformed_conditions_name_their_key_path(raw: Any, where: tuple[Any, ...],
                                                   message: str) -> None:
    """Each mistake is refused with the key path below match and what is wrong."""
    compiled, problems = from_config({"fields": {"f": raw}})
    assert compiled is None
    assert [p for p, m in problems if message in m] == [where]


def test_unknown_drop_class_is_refused() -> None:
    """A drop class that SPEC 14 does not name is refused, listing the known ones."""
    compiled, problems = from_config({"drop_class": ["blacklist", "spam"]})
    assert compiled is None
    assert problems == [(("drop_class",), "unknown drop class 'spam' (known: number, content, "
                         "blacklist, frequency, routing, signature, unsubscribed, other)")]


def test_one_config_loaded_twice_compares_equal() -> None:
    """Compiled conditions compare by what was configured, not by their closures."""
    assert field_match({"a": {"in": [1, "2"]}}, "number") == \
        field_match({"a": {"in": [1, "2"]}}, "number")
    assert field_match({"a": "1"}) != field_match({"a": "2"})


# -- the property: routing equals a straightforward reference evaluation -------------------

def _num(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    try:  # the texts generated below are plain decimals or no number at all
        return Decimal(value)
    except InvalidOperation:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(value: Any, expected: Any) -> bool:
    numeric = any(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in (value, expected))
    if numeric and _num(value) is not None and _num(expected) is not None:
        return _num(value) == _num(expected)
    return _text(value) == _text(expected)


def reference(condition: Any, present: bool, value: Any) -> bool:  # noqa: C901, PLR0911, PLR0912
    """SPEC 19 read plainly, one rule at a time."""
    if isinstance(condition, dict) and "not" in condition:
        return not reference(condition["not"], present, value)
    if condition is None:
        return not present
    if isinstance(condition, dict) and "exists" in condition:
        return present is bool(condition["exists"])
    if isinstance(condition, list):
        return any(reference(c, present, value) for c in condition)
    if not present:
        return False
    if isinstance(condition, str):
        return fnmatch.fnmatchcase(_text(value), condition)
    if not isinstance(condition, dict):
        return _equal(value, condition)
    ((op, arg),) = condition.items()
    if op == "equals":
        return _equal(value, arg)
    if op == "in":
        return any(_equal(value, a) for a in arg)
    if op == "prefix":
        return _text(value).startswith(arg)
    if op == "suffix":
        return _text(value).endswith(arg)
    if op == "glob":
        return fnmatch.fnmatchcase(_text(value), arg)
    bound = _num(arg)
    if bound is None:
        return _text(value) >= str(arg) if op == "gte" else _text(value) <= str(arg)
    got = _num(value)
    return got is not None and (got >= bound if op == "gte" else got <= bound)


texts = st.sampled_from(["", "1", "10", "010", "1.0", "1.5", "-2", "+1", "+14155", "a",
                         "a1", "1a", "abc", "10001", "2026-12-05", "true"])
numbers = st.one_of(st.integers(-3, 12), st.sampled_from([1.0, 1.5, -2.0, 10001, 10.0]))
values = st.one_of(texts, numbers, st.booleans(), st.none())
scalars = st.one_of(texts, numbers)
globs = st.sampled_from(["*", "1*", "?", "a*", "*1", "1?", "+1*", "10001"])
def compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`not` of a condition, or a list of them (any of)."""
    return st.one_of(inner.map(lambda c: {"not": c}), st.lists(inner, min_size=1, max_size=3))


conditions = st.recursive(
    st.one_of(
        globs, numbers, st.none(),
        st.builds(lambda v: {"equals": v}, scalars),
        st.builds(lambda v: {"in": v}, st.lists(scalars, min_size=1, max_size=3)),
        st.builds(lambda v: {"prefix": v}, texts),
        st.builds(lambda v: {"suffix": v}, texts),
        st.builds(lambda v: {"glob": v}, globs),
        st.builds(lambda v: {"exists": v}, st.booleans()),
        st.builds(lambda v: {"gte": v}, scalars),
        st.builds(lambda v: {"lte": v}, scalars),
    ),
    compound,
    max_leaves=6,
)
names = st.sampled_from(["app", "address", "operator"])
events = st.dictionaries(names, values, max_size=3)
reports = st.sampled_from(["BLACK", "UNDELIV", "unsubscribe", "", "whatever"])
classes = st.one_of(st.none(), st.lists(st.sampled_from(
    ["number", "blacklist", "unsubscribed", "other"]), min_size=1, max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(names, conditions, max_size=3), events, classes, reports,
       st.sampled_from(["dropped", "delivered"]))
def test_routing_equals_a_reference_evaluation(
        raw: dict[str, Any], event: dict[str, Any], drop: list[str] | None, report: str,
        name: str) -> None:
    """For random conditions and events, routing takes the event exactly when every
    condition, read plainly, holds (and the drop class, for a dropped event)."""
    compiled, problems = from_config({"fields": raw, "drop_class": drop})
    assert problems == []
    route = Route("r", Match(product=("sms",), fields=compiled),
                  (Destination("d", "http://127.0.0.1/d"),))
    fields = {**event, "report": report}
    expected = all(reference(c, fields.get(f) not in (None, ""), fields.get(f))
                   for f, c in raw.items())
    if drop is not None:
        expected = expected and name == "dropped" and drop_class(report) in drop
    got = destinations_for(EventKey.of("sms", name, None), [route], fields)
    assert bool(got) == expected
    (verdict,) = explain(EventKey.of("sms", name, None), [route], fields)
    assert verdict.matched == expected


def test_parse_condition_reads_bare_forms() -> None:
    """The bare forms are the operators they stand for."""
    assert parse_condition("a*")[0] == parse_condition({"glob": "a*"})[0]
    assert parse_condition(None)[0] == parse_condition({"exists": False})[0]
    assert parse_condition(5)[0] == parse_condition({"equals": 5})[0]


def test_a_range_is_written_with_not() -> None:
    """One operator per object: a range is `not` of a list of the two bounds' negations,
    as docs/decisions.md writes it."""
    between = {"not": [{"not": {"gte": 1}}, {"not": {"lte": 9}}]}
    assert [routed(between, {"f": v}) for v in ("0", "1", "5", 9, "10", "x")] == [
        False, True, True, True, False, False]
    assert not routed(between, {})


def test_the_config_schema_knows_every_operator() -> None:
    """schemas/config.schema.json lists fields, drop_class, body and every operator."""
    schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
    match = schema["properties"]["routes"]["items"]["properties"]["match"]["properties"]
    assert {"fields", "drop_class"} <= set(match)
    assert set(schema["$defs"]["condition"]["properties"]) == set(OPERATORS)
    assert "body" in schema["$defs"]["destination"]["properties"]
    assert all(c.value in schema["$defs"]["drop_class"]["description"]
               for c in DropClass)
