from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from relay import docs2schema
from relay.errors import DocParseError

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_EVENTS = {
    "sms": {"request", "delivered", "dropped", "sending", "mo", "unknown",
            "template_accept", "template_reject"},
    "internationalsms": {"request", "delivered", "dropped", "sending",
                         "template_accept", "template_reject"},
}
EXPECTED_EVENTS["mms"] = EXPECTED_EVENTS["sms"] | {
    f"{op}_template_{kind}" for op in ("cm", "cu", "ct") for kind in ("accept", "reject")
}


def _generated(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob("*/*.json"))
    }


def test_regenerated_schemas_are_byte_identical_to_committed(
    docs_dir: Path, tmp_path: Path
) -> None:
    """Rebuilding from ../shared/subhook-docs reproduces schemas/ exactly, file for file."""
    docs2schema.build(docs_dir, tmp_path)
    fresh, committed = _generated(tmp_path), _generated(ROOT / "schemas")
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], f"regenerate with `relay schemas build`: {changed} differ"


def test_every_required_event_has_a_schema(docs_dir: Path) -> None:
    """Each product has at least the events the docs describe, `unkown` folded into `unknown`."""
    schemas = docs2schema.build_schemas(docs2schema.doc_files(docs_dir))
    for product, events in EXPECTED_EVENTS.items():
        found = {e for p, e in schemas if p == product}
        assert events <= found, f"{product} lacks {events - found}"
    assert not any(e == "unkown" for _, e in schemas)


def test_required_fields_follow_the_examples_and_tag_is_optional(docs_dir: Path) -> None:
    """Required = in every example; `tag` optional everywhere; `app`/`timestamp` integer-like."""
    schemas = docs2schema.build_schemas(docs2schema.doc_files(docs_dir))
    for (product, event), schema in schemas.items():
        assert "tag" not in schema["required"], (product, event)
        assert schema["additionalProperties"] is True
        for name in ("app", "timestamp"):
            if name in schema["properties"]:
                assert schema["properties"][name] == docs2schema.INTEGER_LIKE, (product, event)
    assert schemas[("sms", "delivered")]["required"] == [
        "events", "address", "app", "send_id", "timestamp", "token", "signature"]
    assert "report" in schemas[("sms", "dropped")]["required"]
    assert "reason" in schemas[("sms", "template_reject")]["required"]
    # Two docs of international SMS merge: fields only the traditional-Chinese doc has
    # are known but not required; the template events come from that doc alone.
    intl = schemas[("internationalsms", "delivered")]
    assert {"content", "template_id", "tag"} <= set(intl["properties"])
    assert not {"content", "template_id"} & set(intl["required"])
    assert "template_id" in schemas[("internationalsms", "template_accept")]["required"]
    assert schemas[("sms", "unknown")]["properties"]["events"] == {"enum": ["unknown", "unkown"]}


def test_each_layout_is_parsed() -> None:
    """Pipe tables (backticked or not), scraped text tables and run-together rows all parse."""
    layouts = {
        "pipe": "events | request\n---|---\naddress | x\nsend_id|y\n",
        "backticks": (
            "| `events` | `request` |\n| --- | --- |\n| `address` | x |\n| `send_id` | y |\n"
        ),
        "scraped": "events | request |\n---|\naddress | x |\nsend_id | y |\n",
        "run-together": "eventsrequest\naddress此聯系人\nsend_id該條\n",
    }
    example = '推送示例\n{\n"events":"request",\n"address":"1"\n"send_id":"2",\n"app":xxxxx\n}\n'
    for name, table in layouts.items():
        sections = docs2schema.parse_doc(table + example)
        assert [(s.event, s.table) for s in sections] == [
            ("request", ["events", "address", "send_id"])], name
        assert sections[0].examples[0].fields == {
            "events": "request", "address": "1", "send_id": "2", "app": 11111}, name
        assert sections[0].examples[0].integer_like == {"app"}


def test_repair_keeps_valid_json_values() -> None:
    """Repairing an example keeps quoted strings (leading spaces too) and numbers as written."""
    example = docs2schema.repair_example(
        ['{', '"report":" UNDELIV",', '"timestamp":1415014855', '"content":"a, b: c"', '}'], 1)
    assert example.fields == {"report": " UNDELIV", "timestamp": 1415014855, "content": "a, b: c"}


def test_unclosed_example_is_an_error() -> None:
    """An example whose braces never close is reported, not silently dropped."""
    with pytest.raises(DocParseError, match="never closed"):
        docs2schema.parse_doc("events | mo\naddress | x\n{\n\"events\":\"mo\",\n")


def test_schema_files_are_valid_draft_2020_12(docs_dir: Path) -> None:
    """Each committed schema declares draft 2020-12 and passes the metaschema."""
    for path in (ROOT / "schemas").glob("*/*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_build_removes_stale_generated_files(docs_dir: Path, tmp_path: Path) -> None:
    """A schema for an event the docs no longer describe is removed on rebuild."""
    (tmp_path / "sms").mkdir()
    stale = tmp_path / "sms" / "gone.json"
    stale.write_text("{}", encoding="utf-8")
    docs2schema.build(docs_dir, tmp_path)
    assert not stale.exists()
    assert (tmp_path / "sms" / "delivered.json").exists()
