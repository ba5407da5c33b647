"""A destination's ``body:`` template: the JSON a service gets instead of SUBMAIL's field
names (SPEC 19). Pure.

A template is a mapping (nested mappings and lists allowed). Its string values may hold
``{field}`` placeholders, and ``{{`` / ``}}`` for a literal brace:

- a value that is exactly one placeholder is the field's value with its JSON type (a
  number stays a number), or null when the event lacks the field;
- a placeholder inside other text is the value's text (``10001``, ``true``), or nothing
  when the event lacks the field;
- every other value (keys included) is a literal;
- ``{$product}``, ``{$event}`` (the canonical name), ``{$webhook_id}`` and ``{$drop_class}``
  (a ``dropped`` event's class, else null) come from the relay, not the push.

It is read and compiled once, when the config loads (a malformed placeholder is a config
problem, never a delivery's); an event's body is rendered once per destination and kept
for its retries while it is among the last few rendered.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.compact import compact_json
from relay.conditions import event_drop_class
from relay.constants import SIGNING_FIELDS
from relay.routing import Destination
from relay.values import text

#: The relay's own values, ``{$name}``.
SPECIAL = ("product", "event", "webhook_id", "drop_class")
_NAME = re.compile(r"\$?[A-Za-z0-9_][A-Za-z0-9_.-]*")

KeyPath = tuple[str | int, ...]
Render = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


class TemplateError(ValueError):
    """A template that cannot be compiled; ``problems`` are (key path, message)."""

    def __init__(self, problems: list[tuple[KeyPath, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def split(value: str) -> list[str | tuple[str]]:
    """The parts of a template string: literal texts and ``(name,)`` placeholders; raises
    ValueError naming a malformed one."""
    parts: list[str | tuple[str]] = []
    literal, index = "", 0
    while index < len(value):
        pair = value[index:index + 2]
        if pair in ("{{", "}}"):
            literal, index = literal + pair[0], index + 2
            continue
        char = value[index]
        if char == "}":
            raise ValueError(f"a lone '}}' at character {index + 1} (write '}}}}' for a "
                             "literal brace)")
        if char != "{":
            literal, index = literal + char, index + 1
            continue
        end = value.find("}", index + 1)
        name = value[index + 1:end] if end != -1 else ""
        if end == -1 or "{" in name:
            raise ValueError(f"'{{' at character {index + 1} is not closed (write '{{{{' for "
                             "a literal brace)")
        if not _NAME.fullmatch(name):
            raise ValueError(f"{{{name}}} is not a placeholder (a field name, or "
                             + ", ".join(f"${s}" for s in SPECIAL) + ")")
        if name.startswith("$") and name[1:] not in SPECIAL:
            raise ValueError(f"unknown {{{name}}} (known: "
                             + ", ".join(f"${s}" for s in SPECIAL) + ")")
        if literal:
            parts.append(literal)
        parts.append((name,))
        literal, index = "", end + 1
    if literal:
        parts.append(literal)
    return parts


def _lookup(name: str) -> Render:
    if name.startswith("$"):
        special = name[1:]
        return lambda fields, meta: meta.get(special)
    return lambda fields, meta: fields.get(name)


def _text_part(part: str | tuple[str]) -> Render:
    if isinstance(part, str):
        return lambda fields, meta: part
    get = _lookup(part[0])

    def render(fields: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
        value = get(fields, meta)
        return "" if value is None else text(value)

    return render


def _compile(raw: Any, path: KeyPath, names: list[tuple[KeyPath, str]],  # noqa: PLR0911
             problems: list[tuple[KeyPath, str]]) -> Render:
    if isinstance(raw, dict):
        items = [(str(k), _compile(v, (*path, str(k)), names, problems))
                 for k, v in raw.items()]
        return lambda fields, meta: {k: render(fields, meta) for k, render in items}
    if isinstance(raw, list):
        entries = [_compile(v, (*path, i), names, problems) for i, v in enumerate(raw)]
        return lambda fields, meta: [render(fields, meta) for render in entries]
    if not isinstance(raw, str):
        return lambda fields, meta: raw
    try:
        parts = split(raw)
    except ValueError as exc:
        problems.append((path, str(exc)))
        return lambda fields, meta: None
    names.extend((path, p[0]) for p in parts if isinstance(p, tuple))
    if len(parts) == 1 and isinstance(parts[0], tuple):
        return _lookup(parts[0][0])
    if all(isinstance(p, str) for p in parts):
        literal = "".join(p for p in parts if isinstance(p, str))
        return lambda fields, meta: literal
    renders = [_text_part(p) for p in parts]
    return lambda fields, meta: "".join(render(fields, meta) for render in renders)


@dataclass(frozen=True)
class BodyTemplate:
    """A compiled ``body:``. Compared by its source, so two loads of one config are equal."""

    #: the template as configured, as compact JSON
    source: str
    #: (key path in the template, field name) of every placeholder, ``$`` ones included
    placeholders: tuple[tuple[KeyPath, str], ...] = field(compare=False)
    _render: Render = field(compare=False, repr=False)
    #: whether ``{$drop_class}`` is used (classing a report is skipped otherwise)
    _classes: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def compile(cls, raw: Mapping[str, Any], include_signature: bool = False) -> BodyTemplate:
        """The template of a ``body:`` mapping; raises TemplateError naming every problem
        (``token`` and ``signature`` are SUBMAIL's credential: only with include_signature,
        SPEC 16)."""
        names: list[tuple[KeyPath, str]] = []
        problems: list[tuple[KeyPath, str]] = []
        render = _compile(dict(raw), (), names, problems)
        if not include_signature:
            problems.extend((path, f"{{{name}}} is SUBMAIL's credential, never forwarded "
                                   "(set include_signature: true to send it)")
                            for path, name in names if name in SIGNING_FIELDS)
        if problems:
            raise TemplateError(problems)
        return cls(compact_json(raw), tuple(names), render,
                   any(name == "$drop_class" for _, name in names))

    def fields(self) -> list[tuple[KeyPath, str]]:
        """(key path, name) of every placeholder naming an event field."""
        return [(path, name) for path, name in self.placeholders if not name.startswith("$")]

    def render(self, fields: Mapping[str, Any], product: str, event: str,
               webhook_id: str) -> Any:
        """The body for one event, as a JSON value (``event`` its canonical name)."""
        meta = {"product": product, "event": event, "webhook_id": webhook_id,
                "drop_class": None}
        if self._classes:
            found = event_drop_class(event, fields)
            meta["drop_class"] = None if found is None else str(found)
        return self._render(fields, meta)

    def encode(self, fields: str, product: str, event: str, webhook_id: str) -> bytes:
        """The body sent for an event whose stored fields JSON is ``fields``: rendered once
        per (event, destination), kept for retries while among the last few rendered."""
        if len(fields) > CACHED_FIELDS_MAX:
            return _encode(self, fields, product, event, webhook_id)
        return _encode_cached(self, fields, product, event, webhook_id)


#: Longest fields JSON (characters) whose rendered body is remembered.
CACHED_FIELDS_MAX = 4096


def _encode(template: BodyTemplate, fields: str, product: str, event: str,
            webhook_id: str) -> bytes:
    rendered = template.render(json.loads(fields), product, event, webhook_id)
    return compact_json(rendered).encode("utf-8")


_encode_cached = functools.lru_cache(maxsize=256)(_encode)


def from_config(destination: Mapping[str, Any]) -> tuple[BodyTemplate | None,
                                                         list[tuple[KeyPath, str]]]:
    """A destination's ``body`` compiled (None without one), or the problems with it, each
    with its key path below the destination."""
    raw = destination.get("body")
    if raw is None:
        return None, []
    if destination.get("format") == "original":
        return None, [(("format",), "original passes SUBMAIL's body through, which body: "
                                    "replaces: choose one")]
    try:
        return BodyTemplate.compile(raw, destination.get("include_signature", False)), []
    except TemplateError as exc:
        return None, [(("body", *path), message) for path, message in exc.problems]


#: The webhook-id a preview shows (a real one is assigned when the event is accepted).
EXAMPLE_WEBHOOK_ID = "msg_0123456789abcdef0123456789abcdef"


def preview(destination: Destination, product: str, event: str,
            fields: Mapping[str, Any]) -> str:
    """The body ``destination`` would be sent for an event of these fields, as text
    (``relay route``, the console's routes page)."""
    if isinstance(destination.body, BodyTemplate):
        return compact_json(destination.body.render(fields, product, event,
                                                    EXAMPLE_WEBHOOK_ID))
    if destination.format == "original":
        return "(SUBMAIL's body as received, with its content type)"
    return compact_json({k: v for k, v in fields.items()
                         if destination.include_signature or k not in SIGNING_FIELDS})


def parse_fields(items: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (``--field``, the console's form) as an event's fields, text as
    a form push carries them; raises ValueError naming a malformed one."""
    fields = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"field {item!r}: expected NAME=VALUE")
        fields[name.strip()] = value
    return fields
