"""Times as the relay shows them: ISO 8601 in UTC for JSON (``2026-11-24T08:00:00.123Z``),
local to the second for people, and what ``--since``/``--until`` accept."""

from __future__ import annotations

from datetime import UTC, datetime

from relay.config.yamltools import parse_duration


def iso(at: float | None) -> str | None:
    """``at`` (UNIX seconds) in ISO 8601, UTC, to the millisecond."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def local(text: str | None) -> str:
    """An ``iso()`` time in the machine's time zone, to the second, for people."""
    if text is None:
        return "-"
    return datetime.fromisoformat(text).astimezone().isoformat(timespec="seconds")


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
