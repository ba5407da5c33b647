"""Values as SUBMAIL sends them, compared loosely (SPEC 19). Pure.

A form push carries text, a JSON push may carry numbers: ``10001`` and ``"10001"`` are one
value. Two values are equal when their texts are, or, when either is a number and both read
as numbers, when the numbers are (``"1.0"`` equals ``1``; two texts are never compared as
numbers: ``"010"`` is not ``"10"``). An ordering bound that reads as a number compares
numbers (and a value that is no number is neither above nor below it); any other bound
compares texts, so ISO dates order as dates.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from relay.compact import compact_json

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def text(value: Any) -> str:
    """A value as text: ``10001`` → ``"10001"``, ``1.0`` → ``"1"``, true → ``"true"``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return compact_json(value)


def number(value: Any) -> Decimal | None:
    """The exact number a value reads as (``"10001"``, ``1e3``, ``-2.5``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def loose_equal(value: Any, expected: Any) -> bool:
    """``value`` (the event's) equals ``expected`` (the config's), as SUBMAIL sends values."""
    if is_number(value) or is_number(expected):
        a, b = number(value), number(expected)
        if a is not None and b is not None:
            return a == b
    return text(value) == text(expected)


def compare(value: Any, bound: Any, greater: bool) -> bool:
    """``value >= bound`` (``greater``) or ``<=``: numbers when the bound reads as one."""
    limit = number(bound)
    if limit is not None:
        got = number(value)
        if got is None:
            return False
        return got >= limit if greater else got <= limit
    return text(value) >= text(bound) if greater else text(value) <= text(bound)
