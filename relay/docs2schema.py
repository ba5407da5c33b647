"""Turn SUBMAIL's SUBHOOK docs into one JSON Schema per product and event.

The docs come in several layouts, all read by one line classifier:

- markdown pipe tables, with or without backticks and outer pipes (``| `app` | ... |``,
  ``send_id|...``);
- text tables scraped from the web (``address | ... |`` followed by a lone ``---|``);
- rows whose cells ran together when scraped (``eventsrequest``, ``address此聯...``);
- example pushes in braces, some of them not valid JSON (missing commas, bare ``xxxxx``).

A table starts at its ``events`` row and runs while rows follow; the example that comes
after a table belongs to that table's event (one doc labels a ``template_reject`` example
``template_accept``: the section wins). Rules of SPEC section 3: a field is required when
every example of the event carries it, except a field that some example of the product
leaves out although its own table lists it, which is optional for every event of that
product. Types are loose (SPEC 10): SUBMAIL has changed fields' types between versions of
its docs, so every descriptive field takes a string or a number; a field any example gives
as a number or bare placeholder takes a string or an integer (a JSON float there is refused
before the schema, pushes.refuse_float_integers). ``events`` (an enum of the event and its
aliases), ``token`` and ``signature`` (strings) keep fixed types. Schemas stay open to
fields they do not know.

Headings are not read: the ``events`` row of a table names its event (mail.md heads the
``unsubscribe`` table "unsubscribed", shorturl.md the ``visit`` table "vist"). Each doc's
product is the start of its file name, and a doc of a product relay/products.py does not
know is an error, not a doc left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.constants import JSON_SCHEMA_DIALECT, SCHEMA_ID_BASE
from relay.errors import DocParseError
from relay.products import EVENT_ALIASES, PRODUCTS, canonical_event

DOC_SUFFIXES = (".md", ".txt")

#: A field an example gives as a number: SUBMAIL sends it as a number in JSON, as a string
#: in a form, and has sent some as formatted text in other versions of its docs.
INTEGER_LIKE: dict[str, Any] = {"type": ["integer", "string"]}
#: Every other descriptive field.
SCALAR: dict[str, Any] = {"type": ["number", "string"]}
#: ``token`` and ``signature``: the signature check reads them as text.
STRING: dict[str, Any] = {"type": "string"}
FIXED_STRINGS = ("token", "signature")
#: SPEC 3: ``tag`` exists only when the sender set one, though every example of a product
#: may show one (shorturl.md's all do).
NEVER_REQUIRED = ("tag",)

#: shorturl.md has ``province_Cn`` beside ``province_en``.
_FIELD = re.compile(r"^[a-z][A-Za-z0-9_]*$")
_RUN_TOGETHER = re.compile(r"^([a-z][a-z_]*)([^a-z_].*)$")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-*:?\s*)*\|?$")
_EXAMPLE_LINE = re.compile(r'^\s*"(?P<key>[^"]+)"\s*:\s*(?P<value>.*?)\s*,?\s*$')
_NUMBER = re.compile(r"^-?[0-9]+$")
_BARE = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass
class Example:
    """One example push, repaired into a dict, with the fields it gave as numbers."""

    fields: dict[str, Any]
    integer_like: set[str]
    line: int


@dataclass
class Section:
    """One event as one doc describes it: its table and the examples under it."""

    event: str
    table: list[str]
    line: int
    examples: list[Example] = field(default_factory=list)


def product_of(path: Path) -> str:
    """``internationalsms-zh-hant.txt`` describes the product ``internationalsms``."""
    return re.split(r"[-.]", path.name, maxsplit=1)[0]


def _table_row(line: str) -> tuple[str, str] | None:
    """(field, description) when the line is a table row in any of the layouts."""
    text = line.strip()
    if "|" in text:
        cells = [c.strip().strip("`").strip() for c in text.strip("|").split("|")]
        if cells and _FIELD.match(cells[0]):
            return cells[0], (cells[1] if len(cells) > 1 else "")
        return None
    if text.startswith("events") and len(text) > len("events"):
        return "events", text[len("events") :]
    match = _RUN_TOGETHER.match(text)
    if match:
        return match.group(1), match.group(2)
    return None


def _example_blocks(lines: list[str], start: int) -> tuple[list[str], int]:
    """The lines of the brace block opening at ``start`` and the index after it."""
    depth = 0
    block: list[str] = []
    for index in range(start, len(lines)):
        block.append(lines[index])
        depth += lines[index].count("{") - lines[index].count("}")
        if depth <= 0:
            return block, index + 1
    raise DocParseError(f"example opened on line {start + 1} is never closed")


def _repair_value(raw: str) -> tuple[Any, bool]:
    """A value as written in an example and whether it was a number or bare placeholder."""
    if raw.startswith('"'):
        return json.loads(raw), False
    if _NUMBER.match(raw):
        return int(raw), True
    if raw in ("true", "false", "null"):
        return json.loads(raw), False
    if _BARE.match(raw):
        # A bare placeholder such as ``xxxxx`` stands for a number (the app ID): keep its
        # width, make it digits, so the repaired example is what SUBMAIL would really send.
        return int("1" * len(raw)) if set(raw) == {"x"} else raw, True
    raise DocParseError(f"cannot read example value {raw!r}")


def repair_example(block: list[str], line: int) -> Example:
    """Read an example push, repairing missing commas and unquoted placeholders."""
    fields: dict[str, Any] = {}
    integer_like: set[str] = set()
    for offset, text in enumerate(block):
        stripped = text.strip()
        if stripped in ("{", "}", ""):
            continue
        match = _EXAMPLE_LINE.match(text)
        if not match:
            raise DocParseError(f"line {line + offset}: cannot read example line {stripped!r}")
        value, numeric = _repair_value(match.group("value"))
        if isinstance(value, int) and not isinstance(value, bool):
            numeric = True
        fields[match.group("key")] = value
        if numeric:
            integer_like.add(match.group("key"))
    return Example(fields=fields, integer_like=integer_like, line=line)


def parse_doc(text: str) -> list[Section]:
    """Every event section of one doc, in the order the doc gives them."""
    lines = text.splitlines()
    sections: list[Section] = []
    in_table = False
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("{"):
            block, after = _example_blocks(lines, index)
            if not sections:
                raise DocParseError(f"line {index + 1}: example before any events table")
            sections[-1].examples.append(repair_example(block, index + 1))
            index, in_table = after, False
            continue
        row = None if _SEPARATOR.match(stripped) else _table_row(stripped)
        if row and row[0] == "events":
            event = canonical_event(row[1].strip().strip("`").strip())
            sections.append(Section(event=event, table=["events"], line=index + 1))
            in_table = True
        elif row and in_table:
            if row[0] not in sections[-1].table:
                sections[-1].table.append(row[0])
        elif not _SEPARATOR.match(stripped):
            in_table = False
        index += 1
    return sections


@dataclass
class _EventFacts:
    fields: list[str] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add_fields(self, names: Iterable[str]) -> None:
        self.fields.extend(n for n in names if n not in self.fields)


Parsed = dict[Path, list[Section]]


def _collect(parsed: Parsed) -> dict[str, dict[str, _EventFacts]]:
    products: dict[str, dict[str, _EventFacts]] = {}
    for path in sorted(parsed, key=lambda p: p.name):
        sections = parsed[path]
        if not sections:
            raise DocParseError(f"{path.name}: no events table found")
        events = products.setdefault(product_of(path), {})
        for section in sections:
            if not section.examples:
                raise DocParseError(f"{path.name}:{section.line}: {section.event} has no example")
            facts = events.setdefault(section.event, _EventFacts())
            facts.add_fields(section.table)
            for example in section.examples:
                facts.add_fields(example.fields)
            facts.examples.extend(section.examples)
            facts.sources.append(path.name)
    return products


def _optional_everywhere(parsed: Parsed) -> dict[str, set[str]]:
    """Per product: fields some doc's table lists but an example under it leaves out."""
    optional: dict[str, set[str]] = {}
    for path, sections in parsed.items():
        found = optional.setdefault(product_of(path), set())
        for section in sections:
            for example in section.examples:
                found.update(f for f in section.table if f not in example.fields)
    return optional


def event_schema(
    product: str, event: str, facts: _EventFacts, optional: set[str], numeric: set[str]
) -> dict[str, Any]:
    """The JSON Schema of one event from everything the docs say about it."""
    properties: dict[str, Any] = {}
    for name in facts.fields:
        if name == "events":
            names = [event, *sorted(k for k, v in EVENT_ALIASES.items() if v == event)]
            properties[name] = {"enum": names}
        elif name in FIXED_STRINGS:
            properties[name] = dict(STRING)
        else:
            properties[name] = dict(INTEGER_LIKE if name in numeric else SCALAR)
    required = [
        name
        for name in facts.fields
        if name not in optional and name not in NEVER_REQUIRED
        and all(name in e.fields for e in facts.examples)
    ]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{SCHEMA_ID_BASE}{product}/{event}.json",
        "title": f"SUBHOOK {product} {event}",
        "description": (
            "Generated by `relay schemas build` from "
            + ", ".join(sorted(set(facts.sources)))
            + "; do not edit by hand."
        ),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


def build_schemas(docs: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """Schemas keyed by (product, event) for a set of doc files."""
    parsed = {path: parse_doc(path.read_text(encoding="utf-8")) for path in docs}
    products = _collect(parsed)
    optional = _optional_everywhere(parsed)
    # A field is one thing across SUBMAIL's docs: numeric in any example, numeric everywhere
    # (one doc quotes ``timestamp`` in its template examples, the others do not).
    numeric = {
        name
        for events in products.values()
        for facts in events.values()
        for example in facts.examples
        for name in example.integer_like
    }
    return {
        (product, event): event_schema(product, event, facts, optional[product], numeric)
        for product, events in sorted(products.items())
        for event, facts in sorted(events.items())
    }


def doc_files(docs_dir: Path) -> list[Path]:
    """Every doc in ``docs_dir``; one of a product relay/products.py lacks is an error that
    says so (a schema the relay could not route or mask would be worse than none)."""
    files = sorted(p for p in docs_dir.iterdir() if p.suffix in DOC_SUFFIXES and p.is_file())
    if not files:
        raise DocParseError(f"no SUBMAIL docs (*.md, *.txt) in {docs_dir}")
    unknown = sorted(p.name for p in files if product_of(p) not in PRODUCTS)
    if unknown:
        raise DocParseError(
            f"{', '.join(unknown)}: no such product in relay/products.py (known: "
            f"{', '.join(PRODUCTS)}); add the product there, then build again")
    return files


def examples(docs_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(product, event, repaired fields) of every example push in the docs, in doc order.

    ``events`` is left as the doc wrote it (one doc mislabels an example).
    """
    found: list[tuple[str, str, dict[str, Any]]] = []
    for path in doc_files(docs_dir):
        for section in parse_doc(path.read_text(encoding="utf-8")):
            found.extend((product_of(path), section.event, dict(example.fields))
                         for example in section.examples)
    return found


def render(schema: dict[str, Any]) -> str:
    """The bytes a schema file holds: stable across runs so a diff means a real change."""
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"


def iter_outputs(docs_dir: Path) -> Iterator[tuple[Path, str]]:
    """(relative path, content) of every schema the docs produce."""
    for (product, event), schema in build_schemas(doc_files(docs_dir)).items():
        yield Path(product) / f"{event}.json", render(schema)


def build(docs_dir: Path, out_dir: Path) -> list[Path]:
    """Write the schemas under ``out_dir``, removing stale generated files; return them."""
    outputs = dict(iter_outputs(docs_dir))
    for product in {p.parts[0] for p in outputs}:
        folder = out_dir / product
        if folder.is_dir():
            for stale in folder.glob("*.json"):
                if stale.relative_to(out_dir) not in outputs:
                    stale.unlink()
    written = []
    for relative, content in sorted(outputs.items()):
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        written.append(target)
    return written
