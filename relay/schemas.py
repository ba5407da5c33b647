"""Event schemas: loaded once, compiled once, failures that name the field and the rule.

The bundled schemas are the ones `relay schemas build` generated from SUBMAIL's docs. An
operator's folder (``schemas_dir`` in the config) holds ``<product>/<event>.json`` files
that add events or replace bundled ones.

Each schema is checked twice over, for speed: ``fastjsonschema`` compiles it to Python
code that answers "valid or not" about ten times faster than ``jsonschema``, and
``jsonschema`` stays the reference: it alone decides what a failure says, and any schema
using a keyword outside the few the compiled path is known to agree on (``FAST_KEYWORDS``)
is checked by ``jsonschema`` only. The tests compare the two on generated pushes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

import relay
from relay.errors import EventInvalid, SchemaLoadError
from relay.products import canonical_event

#: How a failed ``type`` reads: ``tag: must be a string or a number``.
_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "an integer",
               "object": "an object", "array": "an array", "boolean": "true or false",
               "null": "null"}


def bundled_schema_dir() -> Path:
    """The schemas shipped in the package, or the source tree's when run from a checkout."""
    package = Path(relay.__file__).resolve().parent
    installed = package / "bundled_schemas"
    return installed if installed.is_dir() else package.parent / "schemas"


def _read_schemas(folder: Path, *, check: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
    """The schemas under ``folder``; each checked against the metaschema when ``check``
    (an operator's are; the bundled ones are checked by tests/test_docs2schema.py, and
    checking them costs every command about 200 ms)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*/*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            if check:
                jsonschema.Draft202012Validator.check_schema(schema)
        except (OSError, ValueError, jsonschema.SchemaError) as exc:
            raise SchemaLoadError(f"{path}: {exc}") from exc
        found[(path.parent.name, canonical_event(path.stem))] = schema
    return found


def ecma_pattern(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern as a Python one: ``$`` outside a character class
    means the end of the string (``\\Z``), where Python's ``$`` also matches before a final
    newline (so ``^[0-9]+$`` would take ``"12\\n"``)."""
    out, escaped, in_class = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "$" and not in_class:
            out.append("\\Z")
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_pattern(pattern))


def _pattern(validator: Any, pattern: str, instance: Any,
             schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


#: Draft 2020-12 with ECMA-262 ``$`` in ``pattern``, as the spec and fastjsonschema read it.
Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped upstream
    jsonschema.Draft202012Validator, {"pattern": _pattern})


#: Keywords on which fastjsonschema (draft 7) and jsonschema (2020-12) agree; a schema
#: using any other keyword is checked by jsonschema alone.
FAST_KEYWORDS = frozenset({
    "$schema", "$id", "title", "description", "type", "properties", "required", "enum",
    "const", "anyOf", "allOf", "oneOf", "not", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "additionalProperties",
})
#: Keywords whose value is a map of names to subschemas, not itself a schema.
_SCHEMA_MAPS = frozenset({"properties"})


def _fast_keywords_only(schema: Any) -> bool:
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or not set(schema) <= FAST_KEYWORDS:
        return False
    for key, value in schema.items():
        if key in _SCHEMA_MAPS:
            if not isinstance(value, Mapping) or \
                    not all(_fast_keywords_only(sub) for sub in value.values()):
                return False
        elif key in ("anyOf", "allOf", "oneOf"):
            if not all(_fast_keywords_only(sub) for sub in value):
                return False
        elif key in ("not", "additionalProperties") and not _fast_keywords_only(value):
            return False
    return True


def compile_fast(schema: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """A compiled yes/no check of ``schema``, or None where only jsonschema can be trusted."""
    if not _fast_keywords_only(schema):
        return None
    draft7 = {k: v for k, v in schema.items() if k != "$schema"}
    check: Callable[[Any], Any] = fastjsonschema.compile(draft7, detailed_exceptions=False)
    return check


def _describe(error: ValidationError) -> str:
    """``field: rule`` for one jsonschema failure."""
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{missing}: required"
    where = ".".join(str(p) for p in error.absolute_path) or "(push)"
    if error.validator == "type":
        wanted = error.validator_value
        names = [str(n) for n in (wanted if isinstance(wanted, list) else [wanted])]
        return f"{where}: must be " + " or ".join(
            _TYPE_NAMES.get(n, n) for n in sorted(names, key=_type_order))
    if error.validator == "enum":
        values = error.validator_value if isinstance(error.validator_value, list) else []
        allowed = " or ".join(repr(v) for v in values)
        return f"{where}: must be {allowed}"
    if error.validator == "pattern":
        return f"{where}: must match {error.validator_value!r}"
    # jsonschema's own messages quote the value, which may be a phone number or an email
    # address: a failure names the field and the rule, never what the push held.
    return f"{where}: must satisfy {error.validator} {json.dumps(error.validator_value)}"


def _type_order(name: str) -> int:
    """Strings first: ``must be a string or a number`` (SUBMAIL's fields are text first)."""
    return (0 if name == "string" else 1)


def _types(rule: Any) -> set[str]:
    """The JSON types a property's rule names directly or through ``anyOf`` branches."""
    if not isinstance(rule, Mapping):
        return set()
    named = rule.get("type")
    found = set(named) if isinstance(named, list) else {named} if isinstance(named, str) \
        else set()
    for branch in rule.get("anyOf", []):
        found |= _types(branch)
    return found


@dataclass(frozen=True)
class EventSchemas:
    """Compiled validators keyed by (product, event)."""

    validators: Mapping[tuple[str, str], jsonschema.protocols.Validator]
    #: compiled yes/no checks, for the schemas ``compile_fast`` accepts
    fast: Mapping[tuple[str, str], Callable[[Any], Any]] = field(default_factory=dict)
    #: per product, the fields some event types as an integer (computed once, at load)
    integers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, override_dir: Path | None = None) -> EventSchemas:
        schemas = _read_schemas(bundled_schema_dir(), check=False)
        if not schemas:
            raise SchemaLoadError(f"no event schemas found in {bundled_schema_dir()}")
        if override_dir is not None:
            if not override_dir.is_dir():
                raise SchemaLoadError(f"schemas_dir {override_dir} is not a folder")
            schemas.update(_read_schemas(override_dir))
        fast = {key: check for key, schema in schemas.items()
                if (check := compile_fast(schema)) is not None}
        integers: dict[str, set[str]] = {}
        for (product, _), schema in schemas.items():
            integers.setdefault(product, set()).update(
                name for name, rule in schema.get("properties", {}).items()
                if "integer" in _types(rule))
        return cls({key: Validator(schema) for key, schema in schemas.items()}, fast,
                   {p: frozenset(names) for p, names in integers.items()})

    def integer_fields(self, product: str) -> frozenset[str]:
        """Fields that some event of ``product`` types as an integer (or digits)."""
        return self.integers.get(product, frozenset())

    def events(self, product: str) -> list[str]:
        return sorted(e for p, e in self.validators if p == product)

    def event_names(self) -> set[str]:
        """Every event any product has (a filter on another is a typo)."""
        return {e for _, e in self.validators}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(sorted(self.validators))

    def problems(self, product: str, fields: Mapping[str, Any]) -> list[str]:
        """Every reason the push is not a valid event of ``product``; empty when it is."""
        raw_event = fields.get("events")
        if raw_event is None:
            return ["events: required"]
        if not isinstance(raw_event, str):
            return ["events: must be of type string"]
        validator = self.validators.get((product, canonical_event(raw_event)))
        if validator is None:
            known = ", ".join(self.events(product))
            return [f"events: unknown event {raw_event!r} for product {product} (known: {known})"]
        errors = sorted(validator.iter_errors(dict(fields)), key=lambda e: list(e.path))
        return [_describe(e) for e in errors]

    def validate(self, product: str, fields: Mapping[str, Any]) -> str:
        """The canonical event name of a valid push; raises EventInvalid otherwise."""
        raw_event = fields.get("events")
        if isinstance(raw_event, str):
            event = canonical_event(raw_event)
            check = self.fast.get((product, event))
            if check is not None:
                try:
                    check(fields)
                except fastjsonschema.JsonSchemaException:
                    pass  # the reference below says why
                else:
                    return event
        problems = self.problems(product, fields)
        if problems:
            raise EventInvalid(problems)
        return canonical_event(str(fields["events"]))
