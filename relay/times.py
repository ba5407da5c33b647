"""Times as the relay shows them: ISO 8601 in UTC for JSON (``2026-11-24T08:00:00.123Z``),
local to the second for people, what ``--since``/``--until`` accept, and the one reading
of SUBMAIL's ``timestamp`` (SPEC 18) that the replay window, the message records and the
console share."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from relay.config.yamltools import parse_duration

#: Significant digits past which a ``timestamp`` is out of range (10**15 s is ~31 million
#: years away): longer ones are never turned into numbers.
MAX_TIMESTAMP_DIGITS = 15
#: The last second a datetime (and so ``iso``) can show: 9999-12-31T23:59:59Z.
LAST_SHOWABLE = 253402300799.0


class TimestampOutOfRange(ValueError):
    """A ``timestamp`` of digits, too many of them to be a time."""


def read_timestamp(value: Any) -> int:
    """SUBMAIL's ``timestamp`` in UNIX seconds, read one way everywhere: ASCII digits, as a
    string or a JSON integer, surrounding ASCII spaces ignored. Anything else (a sign, a
    fraction, a date, other Unicode digits such as ``"٣"`` or ``"²"``, empty, null) raises
    ValueError naming ``timestamp``; over MAX_TIMESTAMP_DIGITS digits, TimestampOutOfRange."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"timestamp: {_shown(value)} is not UNIX seconds in ASCII digits")
    if isinstance(value, int) and value >= 10 ** MAX_TIMESTAMP_DIGITS:
        raise TimestampOutOfRange("timestamp: the number is out of range")
    text = str(value) if isinstance(value, int) else value.strip(" ")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"timestamp: {_shown(value)} is not UNIX seconds in ASCII digits")
    if len(text.lstrip("0")) > MAX_TIMESTAMP_DIGITS:
        raise TimestampOutOfRange(f"timestamp: {text[:20]}... is out of range")
    return int(text)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def showable(at: Any) -> float | None:
    """``at`` as UNIX seconds a page can show (a finite number from 1970 to year 9999);
    None for anything else a store may hold (NaN, infinity, 1e400, text)."""
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    return float(at) if math.isfinite(at) and 0 <= at <= LAST_SHOWABLE else None


def iso(at: float | None) -> str | None:
    """``at`` (UNIX seconds) in ISO 8601, UTC, to the millisecond; None for None or a value
    no date can show (``showable``)."""
    at = showable(at)
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def local(text: str | None) -> str:
    """An ``iso()`` time in the machine's time zone, to the second, for people."""
    if text is None:
        return "-"
    try:
        return datetime.fromisoformat(text).astimezone().isoformat(timespec="seconds")
    except (ValueError, OverflowError):  # a time no zone can shift (year 1 or 9999)
        return text


def parse_time(text: str, now: float) -> float:
    """``2026-11-24T08:00``, ``2026-11-24`` (local time unless a zone is given) or a
    duration back from now (``15m``, ``2h``, ``3d``)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 2026-11-24T08:00, 2026-11-24 or a "
                         "duration back from now such as 15m or 2h)") from None
