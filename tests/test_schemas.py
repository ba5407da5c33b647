from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import docs2schema
from relay.errors import EventInvalid, SchemaLoadError
from relay.products import PRODUCTS, canonical_event
from relay.schemas import EventSchemas, ecma_pattern

ROOT = Path(__file__).resolve().parent.parent


def doc_examples(docs_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    return docs2schema.examples(docs_dir)


@pytest.fixture(scope="module")
def schemas() -> EventSchemas:
    return EventSchemas.load()


def _schema(schemas: EventSchemas, product: str, event: str) -> dict[str, Any]:
    schema = schemas.validators[(product, event)].schema
    assert isinstance(schema, dict)
    return schema


def _fixed(event: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "events": event}


def test_doc_examples_name_their_section_but_one(docs_dir: Path,
                                                  schemas: EventSchemas) -> None:
    """Only the known doc quirk labels an example with another event than its section."""
    mislabelled = [
        (product, event, fields["events"])
        for product, event, fields in doc_examples(docs_dir)
        if schemas.validate(product, _fixed(event, fields)) != event
        or canonical_event(fields["events"]) != event
    ]
    assert mislabelled == [("internationalsms", "template_reject", "template_accept"),
                           ("shorturl", "shorturl_reject", "shorturl_create")]


def test_every_doc_example_validates(docs_dir: Path, schemas: EventSchemas) -> None:
    """Each repaired doc example is a valid push of its event."""
    examples = doc_examples(docs_dir)
    # sms 8, internationalsms 10 (two docs), mms 14, mail 13, voice 5, shorturl 9
    assert len(examples) == 59
    assert {product for product, _, _ in examples} == set(PRODUCTS)
    for product, event, fields in examples:
        assert schemas.problems(product, _fixed(event, fields)) == [], (product, event)


def test_examples_with_unknown_fields_validate(docs_dir: Path, schemas: EventSchemas) -> None:
    """Newer docs add fields (operator, location ...): a schema never rejects them."""
    for product, event, fields in doc_examples(docs_dir):
        extra = {**_fixed(event, fields), "operator": "cmcc", "location": "上海", "x_new": 7}
        assert schemas.problems(product, extra) == [], (product, event)


def test_each_required_field_removed_fails_naming_it(docs_dir: Path, schemas: EventSchemas) -> None:
    """Dropping any required field fails with `<field>: required`."""
    checked = 0
    for product, event, fields in doc_examples(docs_dir):
        push = _fixed(event, fields)
        required = _schema(schemas, product, event)["required"]
        for name in required:
            if name == "events":
                continue
            broken = {k: v for k, v in push.items() if k != name}
            assert schemas.problems(product, broken) == [f"{name}: required"]
            with pytest.raises(EventInvalid, match=f"{name}: required"):
                schemas.validate(product, broken)
            checked += 1
    assert checked > 150


def test_each_field_takes_any_scalar_and_nothing_else(docs_dir: Path,
                                                      schemas: EventSchemas) -> None:
    """SPEC 10: a descriptive field takes a string or a number (SUBMAIL has changed types
    between doc versions); an object, a list, true/false or null is refused, named. `token`
    and `signature` stay strings; a field the docs give as a number takes no fraction."""
    checked = 0
    for product, event, fields in doc_examples(docs_dir):
        push = _fixed(event, fields)
        integers = schemas.integer_fields(product)
        for name in push:
            if name == "events":
                continue
            if name in ("token", "signature"):
                assert schemas.problems(product, {**push, name: 12345}) == [
                    f"{name}: must be a string"]
                continue
            for loose in ("2019-11-18 00:00:00", "", 1415014855, 0):
                assert schemas.problems(product, {**push, name: loose}) == [], (product, name)
            kind = "an integer" if name in integers else "a number"
            for wrong in ({"a": 1}, ["a"], True, None):
                assert schemas.problems(product, {**push, name: wrong}) == [
                    f"{name}: must be a string or {kind}"], (product, event, name, wrong)
                checked += 1
        if "tag" in _schema(schemas, product, event)["properties"]:
            assert schemas.problems(product, {**push, "tag": ["a"]}) == [
                "tag: must be a string or a number"]
    assert checked > 1200


def test_app_and_timestamp_take_numbers_and_text(schemas: EventSchemas) -> None:
    """Form pushes send `app` and `timestamp` as strings, JSON pushes as numbers, and older
    docs show a timestamp as formatted text: all pass; a fraction does not."""
    base = {"events": "mo", "address": "138", "content": "hi", "token": "t", "signature": "s"}
    for app, ts in ((1, 2), ("1", "2"), (12345, "1415014855"), ("xxxx", "2019-11-18 00:00:00")):
        assert schemas.problems("sms", {**base, "app": app, "timestamp": ts}) == []
    assert schemas.problems("sms", {**base, "app": 1.5, "timestamp": 1}) == [
        "app: must be a string or an integer"]
    assert {"app", "timestamp"} <= schemas.integer_fields("sms")
    assert "address" not in schemas.integer_fields("sms")


def test_unknown_event_and_missing_events_are_named(schemas: EventSchemas) -> None:
    """An event the product does not have, or no `events` at all, is a clear failure."""
    assert schemas.problems("sms", {"token": "t"}) == ["events: required"]
    (problem,) = schemas.problems("internationalsms", {"events": "mo"})
    assert problem.startswith("events: unknown event 'mo' for product internationalsms")
    assert schemas.problems("sms", {"events": ["mo"]}) == ["events: must be of type string"]


def test_unkown_spelling_validates_as_unknown(schemas: EventSchemas) -> None:
    """`unkown` and `unknown` are one event."""
    push = {"events": "unkown", "address": "1", "app": 1, "send_id": "s", "timestamp": 1,
            "token": "t", "signature": "s"}
    assert schemas.validate("sms", push) == "unknown"
    assert schemas.validate("sms", {**push, "events": "unknown"}) == "unknown"


def test_operator_folder_adds_and_overrides(tmp_path: Path, schemas: EventSchemas) -> None:
    """`schemas_dir` adds new events and replaces bundled ones."""
    (tmp_path / "sms").mkdir()
    strict_mo = {"type": "object", "required": ["events", "content", "keyword"]}
    (tmp_path / "sms" / "mo.json").write_text(json.dumps(strict_mo), encoding="utf-8")
    (tmp_path / "sms" / "report_new.json").write_text('{"type": "object"}', encoding="utf-8")
    custom = EventSchemas.load(tmp_path)
    push = {"events": "mo", "content": "hi"}
    assert custom.problems("sms", push) == ["keyword: required"]
    assert custom.problems("sms", {"events": "report_new"}) == []
    assert schemas.problems("sms", {"events": "report_new"})[0].startswith("events: unknown")


def test_broken_operator_schema_is_refused(tmp_path: Path) -> None:
    """A schema file that is not JSON or not a schema is an error naming the file."""
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "mo.json").write_text('{"type": 5}', encoding="utf-8")
    with pytest.raises(SchemaLoadError, match=r"mo\.json"):
        EventSchemas.load(tmp_path)
    with pytest.raises(SchemaLoadError, match="not a folder"):
        EventSchemas.load(tmp_path / "missing")


@pytest.mark.timeout(180)
def test_installed_package_finds_its_schemas(tmp_path: Path) -> None:
    """A wheel carries the schemas; installed away from the source tree it loads them."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import relay.schemas as s; "
        "print(s.bundled_schema_dir()); print(len(list(s.EventSchemas.load())))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target)], cwd=tmp_path, check=True,
        capture_output=True, text=True,
    ).stdout.split()
    assert out[0].startswith(str(target))
    assert int(out[1]) == len(list(EventSchemas.load())) == 55
    assert (target / "relay" / "bundled_schemas" / "config.schema.json").exists()


# -- the compiled fast path against the jsonschema reference ----------------------------------

_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=8), st.sampled_from(["0", "12", "1.5", "12\n", "", "١٢"]))


_LOADED = EventSchemas.load()


@pytest.mark.parametrize("key", sorted(_LOADED.validators))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_check_agrees_with_jsonschema(key: tuple[str, str], data: st.DataObject) -> None:
    """For every bundled schema, on pushes built from its own fields with some removed and
    some given odd types, the compiled check says valid exactly when jsonschema does."""
    loaded = _LOADED
    check = loaded.fast.get(key)
    assert check is not None, "every bundled schema takes the compiled path"
    reference = loaded.validators[key]
    schema = reference.schema
    assert isinstance(schema, dict)
    names = sorted(schema["properties"])
    fields = {name: data.draw(st.one_of(_values, st.just("1")), label=name) for name in
              data.draw(st.lists(st.sampled_from(names), unique=True), label="present")}
    if data.draw(st.booleans(), label="right event"):
        fields["events"] = key[1]
    try:
        check(fields)
        fast_valid = True
    except fastjsonschema.JsonSchemaException:
        fast_valid = False
    assert fast_valid == reference.is_valid(fields), fields


def test_schema_with_other_keywords_is_checked_by_jsonschema_only(tmp_path: Path) -> None:
    """A custom schema using a keyword the compiled path does not know stays on jsonschema,
    and validate() still enforces it."""
    folder = tmp_path / "sms"
    folder.mkdir()
    (folder / "delivered.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"events": {"const": "delivered"}},
        "dependentRequired": {"send_id": ["address"]}}), encoding="utf-8")
    loaded = EventSchemas.load(tmp_path)
    assert ("sms", "delivered") not in loaded.fast
    assert ("sms", "dropped") in loaded.fast
    with pytest.raises(EventInvalid, match="address"):
        loaded.validate("sms", {"events": "delivered", "send_id": "1"})
    assert loaded.validate("sms", {"events": "delivered", "send_id": "1", "address": "1"}) \
        == "delivered"


@pytest.mark.parametrize(("pattern", "python"), [
    ("^[0-9]+$", "^[0-9]+\\Z"),
    ("^a[$]b$", "^a[$]b\\Z"),
    ("^a\\$b$", "^a\\$b\\Z"),
    ("^(x|y$)", "^(x|y\\Z)"),
])
def test_patterns_read_dollar_as_the_end_of_the_string(pattern: str, python: str) -> None:
    assert ecma_pattern(pattern) == python


def test_a_digits_field_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    """Python's "$" would take "12\\n" as digits; JSON Schema's (ECMA-262) does not, and
    neither does either of the relay's checks on an operator's schema with a pattern (found
    by the comparison test above, when the bundled schemas still had patterns)."""
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "delivered.json").write_text(json.dumps({
        "type": "object", "required": ["events", "timestamp"],
        "properties": {"timestamp": {"type": "string", "pattern": "^[0-9]+$"}}}),
        encoding="utf-8")
    loaded = EventSchemas.load(tmp_path)
    assert ("sms", "delivered") in loaded.fast
    good = {"events": "delivered", "timestamp": "1700000000"}
    assert loaded.validate("sms", good) == "delivered"
    with pytest.raises(EventInvalid, match=r"timestamp: must match '\^\[0-9\]\+\$'"):
        loaded.validate("sms", {**good, "timestamp": "1700000000\n"})
