"""docs/configuration.md names every key of schemas/config.schema.json (SPEC 21): a key
added to the config without a line in its reference fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.fast


def keys(schema: dict[str, Any], node: dict[str, Any], path: str) -> set[str]:
    """Every key path of ``node``: ``limits.max_buffered``, ``routes[].match.tag``."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    found: set[str] = set()
    for choice in node.get("anyOf", []):
        found |= keys(schema, choice, path)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        found |= keys(schema, node["items"], path + "[]")
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        found.add(here)
        found |= keys(schema, child, here)
    return found


def documented() -> set[str]:
    """The key column of the reference's tables, as written (``…destinations[].url``)."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {m[1].lstrip("…") for m in re.finditer(r"^\| `([^`]+)` \|", text, re.MULTILINE)}
    return {f"routes[].{row}" if row.startswith("destinations[]") else row for row in rows}


#: Rows of lists whose entries' keys have rows of their own.
LISTS = {"routes", "subhooks", "alerts"}


def covered(key: str, row: str) -> bool:
    """Whether reference row ``row`` documents ``key``: the same path (a destination's
    ``…destinations[].url`` is ``routes[].destinations[].url``); a key inside a mapping its
    row describes whole (``routes[].match.tag`` by ``routes[].match``); a mapping whose
    keys have rows (``limits`` by ``limits.max_fields``)."""
    if row in LISTS:  # a list whose entries' keys each have their row
        return key == row or row.startswith(key + ".")
    return (key == row or key.startswith((row + ".", row + "[]"))
            or row.startswith((key + ".", key + "[]")))


def test_every_config_key_is_documented() -> None:
    """Each key path of the config schema has its row in docs/configuration.md."""
    schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text(encoding="utf-8"))
    rows = documented()
    missing = sorted(k for k in keys(schema, schema, "")
                     if not any(covered(k, row) for row in rows))
    assert missing == []


def test_the_check_sees_a_missing_row() -> None:
    """A key no row covers is reported (the check is not vacuous)."""
    assert not any(covered("limits.no_such_key", row) for row in documented())
