from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from relay import docs2schema
from relay.errors import DocParseError
from relay.products import PRODUCTS, canonical_event

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
EXPECTED_EVENTS["mail"] = {"request", "delivered", "dropped", "bounced", "opened", "clicked",
                           "subscribe", "change_subscribe", "unsubscribe", "marked_as_spam",
                           "report_as_spam", "rejected", "receivers"}
EXPECTED_EVENTS["voice"] = {"request", "delivered", "dropped", "sending", "signal"}
EXPECTED_EVENTS["shorturl"] = {"create", "update", "delete", "create_group", "update_group",
                               "delete_group", "visit", "shorturl_accept", "shorturl_reject"}

#: An ``events`` row in any of the docs' table layouts: ``| `events` | `request` |``,
#: ``events | request``, ``events | request |``, ``eventsrequest``. Read here without
#: relay.docs2schema, so a doc the generator skipped or misread is still found.
_EVENTS_ROW = re.compile(r"^\|?\s*`?events`?\s*\|?\s*`?\s*([a-z][a-z_]*)\s*`?\s*\|?\s*$")


def events_in_docs(docs_dir: Path) -> list[tuple[str, str]]:
    """(product, event) of every events table in every doc, by file name and table row."""
    found = set()
    for path in sorted(docs_dir.iterdir()):
        if path.suffix not in (".md", ".txt"):
            continue
        product = re.split(r"[-.]", path.name, maxsplit=1)[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _EVENTS_ROW.match(line.strip())
            if match:
                found.add((product, canonical_event(match[1])))
    return sorted(found)


_DOCS = Path(__file__).resolve().parent.parent.parent / "shared" / "subhook-docs"


@pytest.mark.parametrize(("product", "event"), events_in_docs(_DOCS) if _DOCS.is_dir() else [])
def test_doc_coverage_every_product_and_event_has_a_committed_schema(
        product: str, event: str) -> None:
    """Each (product, event) the docs describe has a committed schema and the relay serves
    the product (the test ids list them all)."""
    assert product in PRODUCTS, f"{product}: not in relay/products.py"
    assert (ROOT / "schemas" / product / f"{event}.json").is_file(), \
        f"no schema for {product} {event}: run `relay schemas build`"


def test_doc_coverage_found_every_product(docs_dir: Path) -> None:
    """The coverage scan above sees all six products and every event this file expects, so
    it cannot pass by reading nothing."""
    assert docs_dir.resolve() == _DOCS.resolve()
    found: dict[str, set[str]] = {}
    for product, event in events_in_docs(docs_dir):
        found.setdefault(product, set()).add(event)
    assert found == EXPECTED_EVENTS


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


def test_the_new_docs_quirks(docs_dir: Path) -> None:
    """mail.md, voice.md and shorturl.md as SUBMAIL publishes them (SPEC 10)."""
    schemas = docs2schema.build_schemas(docs2schema.doc_files(docs_dir))
    # headings that differ from the table: the table's spelling is the event, the other an alias
    assert schemas[("mail", "unsubscribe")]["properties"]["events"] == {
        "enum": ["unsubscribe", "unsubscribed"]}
    assert schemas[("shorturl", "visit")]["properties"]["events"] == {"enum": ["visit", "vist"]}
    # `delivered ` (a trailing space in its cell) and voice's "delievered" heading
    assert schemas[("voice", "delivered")]["required"] == [
        "events", "address", "app", "send_id", "hold", "answer_time", "hangup_time",
        "timestamp", "token", "signature"]
    # receivers: no app, send_id or tag; the raw message in `content`
    assert schemas[("mail", "receivers")]["required"] == [
        "events", "mail_to", "mail_from", "subject", "content", "timestamp", "token",
        "signature"]
    # `province_Cn` (a capital), `brower` in the table and `browser` in the example
    visit = schemas[("shorturl", "visit")]
    assert {"province_Cn", "brower", "browser"} <= set(visit["properties"])
    assert "brower" not in visit["required"] and "browser" in visit["required"]
    # loose scalars, fixed token and signature; geo fields with a non-numeric example
    opened = schemas[("mail", "opened")]["properties"]
    assert opened["longitude"] == docs2schema.SCALAR
    assert opened["token"] == opened["signature"] == docs2schema.STRING
    # `tag` is never required, though every shorturl example has one
    assert all("tag" not in schemas[("shorturl", e)]["required"]
               for e in EXPECTED_EVENTS["shorturl"])
    # a trailing comma (update_group), quoted app and timestamp
    (update_group,) = [f for p, e, f in docs2schema.examples(docs_dir)
                       if (p, e) == ("shorturl", "update_group")]
    assert update_group["token"] == "74ce84d1464xxxx976e2ba4ffe9f7"
    assert (update_group["app"], update_group["timestamp"]) == ("xxxx", "1563389055")


def test_a_doc_of_an_unknown_product_is_an_error(tmp_path: Path, docs_dir: Path) -> None:
    """A doc the relay has no product for stops the build, naming it, rather than being
    skipped: its events would have no schema."""
    (tmp_path / "sms.md").write_text((docs_dir / "sms.md").read_text(encoding="utf-8"),
                                     encoding="utf-8")
    (tmp_path / "fax.md").write_text("events | sent\n{\n\"events\":\"sent\"\n}\n",
                                     encoding="utf-8")
    with pytest.raises(DocParseError, match=r"fax\.md: no such product in relay/products\.py"):
        docs2schema.doc_files(tmp_path)


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
