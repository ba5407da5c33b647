"""Field conditions of a route (``match.fields``, ``match.drop_class``; SPEC 19). Pure.

A condition is read once, when the config loads, into a small tree (for explanations and
for comparing two configs) and compiled into closures (for routing each event):

- a string is a glob (``*`` and ``?``, as the other matchers), a number or true/false is
  ``{equals: V}``, null is ``{exists: false}``, a list is "any of" its conditions;
- an object holds one operator: ``equals``, ``in``, ``prefix``, ``suffix``, ``glob``,
  ``exists``, ``gte``, ``lte`` or ``not``.

Values compare as SUBMAIL sends them, loosely (relay/values.py): ``"10001"`` equals
``10001``; ``gte``/``lte`` with a bound that reads as a number compare numbers.

A field is missing when the event lacks it or holds null or an empty text (SUBMAIL sends
``tag=`` for "no tag"; ``tag: null`` reads it so too). A missing field fails every
condition but ``{exists: false}`` and ``{not: ...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from relay.drop_reasons import DropClass, drop_class
from relay.routing import glob_match
from relay.values import compare, loose_equal, text

#: The operators of an object condition, in the order the docs list them.
OPERATORS = ("equals", "in", "prefix", "suffix", "glob", "exists", "gte", "lte", "not")
#: Operators whose argument must be text (YAML reads ``+1`` unquoted as the number 1).
TEXT_OPERATORS = frozenset({"prefix", "suffix", "glob"})
#: The one event whose report has a drop class (SPEC 14).
DROPPED = "dropped"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What a condition is given for a field the event lacks (or holds null or "" in).
MISSING: Any = _Missing()


def value_of(fields: Mapping[str, Any], name: str) -> Any:
    """The field's value as conditions see it: MISSING for absent, null or empty."""
    value = fields.get(name)
    return MISSING if value is None or value == "" else value


@dataclass(frozen=True)
class Condition:
    """One condition as read: ``op`` one of OPERATORS or ``any`` (a list); ``arg`` its
    value (a tuple for ``in``, a Condition for ``not``, Conditions for ``any``)."""

    op: str
    arg: Any

    def describe(self) -> str:
        if self.op == "any":
            return "any of [" + ", ".join(c.describe() for c in self.arg) + "]"
        if self.op == "not":
            return f"not ({self.arg.describe()})"
        if self.op == "in":
            return "in [" + ", ".join(_shown(v) for v in self.arg) + "]"
        return f"{self.op} {_shown(self.arg)}"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else text(value)


def holds(condition: Condition, value: Any) -> bool:
    """Whether ``condition`` holds for ``value`` (MISSING for a missing field); the
    reference the compiled closures agree with."""
    return compile_condition(condition)(value)


def compile_condition(condition: Condition) -> Callable[[Any], bool]:  # noqa: PLR0911 (one per operator)
    """A closure deciding ``condition`` for one value (MISSING for a missing field)."""
    op, arg = condition.op, condition.arg
    if op == "not":
        inner = compile_condition(arg)
        return lambda v: not inner(v)
    if op == "exists":
        return (lambda v: v is not MISSING) if arg else (lambda v: v is MISSING)
    if op == "any":
        parts = tuple(compile_condition(c) for c in arg)
        return lambda v: any(p(v) for p in parts)
    if op == "equals":
        return lambda v: v is not MISSING and loose_equal(v, arg)
    if op == "in":
        return lambda v: v is not MISSING and any(loose_equal(v, a) for a in arg)
    if op == "prefix":
        return lambda v: v is not MISSING and text(v).startswith(arg)
    if op == "suffix":
        return lambda v: v is not MISSING and text(v).endswith(arg)
    if op == "glob":
        return lambda v: v is not MISSING and glob_match(arg, text(v))
    if op in ("gte", "lte"):
        greater = op == "gte"
        return lambda v: v is not MISSING and compare(v, arg, greater)
    raise ValueError(f"unknown operator {op!r}")


Problem = tuple[tuple[str | int, ...], str]


def parse_condition(raw: Any, path: tuple[str | int, ...] = ()) -> tuple[  # noqa: PLR0911
        Condition | None, list[Problem]]:
    """The condition a config value means, or the problems with it (each with its key path
    below the field)."""
    if isinstance(raw, str):
        return Condition("glob", raw), []
    if raw is None:
        return Condition("exists", False), []
    if isinstance(raw, bool | int | float):
        return Condition("equals", raw), []
    if isinstance(raw, list):
        if not raw:
            return None, [(path, "an empty list matches nothing (list the values to accept)")]
        parsed = [parse_condition(item, (*path, i)) for i, item in enumerate(raw)]
        problems = [p for _, found in parsed for p in found]
        conditions = tuple(c for c, _ in parsed if c is not None)
        return (Condition("any", conditions) if not problems else None), problems
    if isinstance(raw, dict):
        return _parse_operator(raw, path)
    return None, [(path, f"not a condition: {raw!r}")]


def _parse_operator(raw: Mapping[str, Any], path: tuple[str | int, ...]) -> tuple[  # noqa: PLR0911
        Condition | None, list[Problem]]:
    unknown = [k for k in raw if k not in OPERATORS]
    if unknown:
        return None, [((*path, k), f"unknown operator {k!r} (known: {', '.join(OPERATORS)})")
                      for k in unknown]
    if len(raw) != 1:
        return None, [(path, f"one operator per condition, not {len(raw)} "
                              "(a list of conditions means any of them)")]
    ((op, arg),) = raw.items()
    where = (*path, op)
    if op == "not":
        inner, problems = parse_condition(arg, where)
        return (None if inner is None else Condition("not", inner)), problems
    if op in TEXT_OPERATORS and not isinstance(arg, str):
        return None, [(where, f"must be a text, quoted ({op}: \"+1\"): YAML reads an "
                              "unquoted +1 as the number 1")]
    if op == "exists" and not isinstance(arg, bool):
        return None, [(where, "must be true or false")]
    if op == "in":
        if not isinstance(arg, list) or not arg or not all(_scalar(a) for a in arg):
            return None, [(where, "must be a list of one or more texts or numbers")]
        return Condition("in", tuple(arg)), []
    if op in ("equals", "gte", "lte") and not _scalar(arg):
        return None, [(where, "must be a text or a number")]
    return Condition(op, arg), []


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)


class FieldCheck(NamedTuple):
    """Why one field condition holds for an event or not."""

    field: str
    held: bool
    reason: str


@dataclass(frozen=True)
class FieldMatch:
    """A route's ``fields`` and ``drop_class``, compiled; calling it decides an event.

    Compared by what was configured (``conditions``, ``drop_classes``), never by the
    closure, so two loads of one config are equal."""

    conditions: tuple[tuple[str, Condition], ...] = ()
    drop_classes: frozenset[DropClass] | None = None
    _test: Callable[[str, Mapping[str, Any]], bool] = field(
        default=lambda event, fields: True, compare=False, repr=False)

    @classmethod
    def build(cls, conditions: Sequence[tuple[str, Condition]],
              drop_classes: frozenset[DropClass] | None) -> FieldMatch:
        compiled = tuple((name, compile_condition(c)) for name, c in conditions)

        def test(event: str, fields: Mapping[str, Any]) -> bool:
            if drop_classes is not None and event_drop_class(event, fields) not in drop_classes:
                return False
            for name, check in compiled:
                value = fields.get(name)
                if not check(MISSING if value is None or value == "" else value):
                    return False
            return True

        return cls(tuple(conditions), drop_classes, test)

    def __call__(self, event: str, fields: Mapping[str, Any]) -> bool:
        """Whether every condition holds for the event (``event`` its canonical name)."""
        return self._test(event, fields)

    def explain(self, event: str, fields: Mapping[str, Any]) -> list[FieldCheck]:
        """Each condition's verdict on the event (``event`` its canonical name)."""
        checks = []
        if self.drop_classes is not None:
            got = event_drop_class(event, fields)
            wanted = ", ".join(sorted(self.drop_classes))
            held = got in self.drop_classes
            shown = f"a {event} event" if got is None else f"report class {got}"
            checks.append(FieldCheck("drop_class", held, f"drop_class: {shown} "
                                     f"{'is' if held else 'is not'} in [{wanted}]"))
        for name, condition in self.conditions:
            value = value_of(fields, name)
            held = holds(condition, value)
            shown = "missing" if value is MISSING else repr(value)
            verdict = "holds" if held else "does not hold"
            checks.append(FieldCheck(name, held, f"fields.{name}: {shown} {verdict} "
                                     f"{condition.describe()}"))
        return checks

    def describe(self) -> str:
        """``app: glob '10001'; drop_class: blacklist``: what the route asks of a field."""
        parts = [f"{name}: {condition.describe()}" for name, condition in self.conditions]
        if self.drop_classes is not None:
            parts.append("drop_class: " + ", ".join(sorted(self.drop_classes)))
        return "; ".join(parts)

    def names(self) -> list[str]:
        """The event fields the conditions read."""
        return [name for name, _ in self.conditions]


def event_drop_class(event: str, fields: Mapping[str, Any]) -> DropClass | None:
    """The class of a ``dropped`` event's report (mail's is in ``reason``), None for any
    other event: what ``drop_class`` matches and ``{$drop_class}`` gives."""
    if event != DROPPED:
        return None
    report = fields.get("report")
    if report is None or report == "":
        report = fields.get("reason")
    return drop_class(None if report is None else text(report))


def from_config(match: Mapping[str, Any]) -> tuple[FieldMatch | None, list[Problem]]:
    """A route's ``fields`` and ``drop_class`` compiled (None when it has neither), or the
    problems with them, each with its key path below ``match``."""
    raw_fields, raw_classes = match.get("fields") or {}, match.get("drop_class")
    if not raw_fields and raw_classes is None:
        return None, []
    conditions, problems = [], []
    for name, raw in raw_fields.items():
        condition, found = parse_condition(raw, ("fields", name))
        problems.extend(found)
        if condition is not None:
            conditions.append((str(name), condition))
    classes = None
    if raw_classes is not None:
        listed = raw_classes if isinstance(raw_classes, list) else [raw_classes]
        known = {c.value for c in DropClass}
        problems.extend((("drop_class",), f"unknown drop class {c!r} (known: "
                         f"{', '.join(known_class.value for known_class in DropClass)})")
                        for c in listed if c not in known)
        classes = frozenset(DropClass(c) for c in listed if c in known)
    if problems:
        return None, problems
    return FieldMatch.build(conditions, classes), []
