"""Logging: one handler on stderr, text or JSON lines, input escaped, bursts summarised.

Text lines are ``time level logger message``; JSON lines (python-json-logger) carry
``time``, ``level``, ``logger``, ``message`` and the context a call passes as ``extra``
(``destination``, ``webhook_id``, ``subhook``, ``status`` ...). A value that came from a push
or a service can hold line breaks: every message is escaped so that one call is one line.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

#: C0 and C1 controls, DEL and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _chain(error: traceback.TracebackException) -> Iterator[traceback.TracebackException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        todo.extend(e for e in (one.__cause__, one.__context__) if e is not None)
        todo.extend(getattr(one, "exceptions", None) or ())


def format_exception(info: Any) -> str:
    """A traceback whose exception texts are escaped (SPEC 18): the frames are the relay's
    own lines, the texts can carry a client's bytes (a charset, a header's value)."""
    error = traceback.TracebackException(*info[:3])
    for one in _chain(error):
        # the exception's text as the traceback prints it (no public way to set it)
        one._str = escape(str(one._str))  # type: ignore[attr-defined]
        if one.__notes__:
            one.__notes__ = [escape(str(note)) for note in one.__notes__]
    return "".join(error.format()).rstrip("\n")


class _EscapingText(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return format_exception(ei)


class _Json(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data.get("level", "")).lower()
        return log_data


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return _Json("{asctime}{levelname}{name}{message}", style="{", datefmt=TIME_FORMAT,
                     rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return _EscapingText(TEXT_FORMAT, datefmt=TIME_FORMAT)


def configure(level: str, fmt: str) -> None:
    """Send the relay's logs (and aiohttp's) to stderr at ``level`` in ``fmt``; called again
    on reload, it replaces the handler rather than adding one."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "relay_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.relay_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())


@dataclass
class Throttle:
    """At most one line per key every ``every`` seconds; the calls in between are counted
    and the count goes with the next line that is let through."""

    every: float = 10.0
    _last: dict[Any, float] = field(default_factory=dict)
    _held: dict[Any, int] = field(default_factory=dict)

    def let(self, key: Any, now: float) -> int | None:
        """None when this call is to stay quiet; otherwise the calls it speaks for
        (itself and the ones held back since the last line)."""
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0) + 1
