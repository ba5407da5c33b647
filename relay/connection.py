"""One client connection under the caps of SPEC 18, and the HTTP layer's own errors.

aiohttp's ``RequestHandler`` reads requests off a connection; ``Connection`` is that
handler with what one client may hold bounded:

- the connections of its listener and of its peer address (``Listener``), refused at
  accept beyond ``limits.max_connections`` (``max_admin_connections`` on the admin
  listener) or ``limits.max_connections_per_address``;
- the bytes of an unfinished header block, counted in ``limits.max_buffered`` with the
  bodies being read (a quarter of it per peer address: 503 and closed beyond), and read
  within ``limits.read_timeout`` (408 and closed after);
- errors of the HTTP layer (a request no parser reads, a broken body): one throttled line
  per kind, no traceback, since they are the client's fault; an exception out of the
  relay's own code keeps its traceback, throttled as well. Their answers name no version.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from relay.capacity import Budget, Connections
from relay.config import Limits
from relay.logs import Throttle
from relay.web.headers import SERVER

log = logging.getLogger("relay.http")

#: aiohttp's handler logs through this one only where relay code does not: silenced.
_QUIET = logging.Logger("relay.http.aiohttp")
_QUIET.disabled = True

#: Characters of a client error's text written to the log (it quotes the bytes sent).
TEXT_SHOWN = 160

#: Errors that a client's bytes cause in the HTTP layer (never the relay's fault).
CLIENT_FAULTS = (HttpProcessingError, RequestPayloadError, ConnectionError)


@dataclass
class Listener:
    """What the connections of one listening socket share."""

    #: ``edge`` or ``admin`` (relay.web.listeners): which paths the listener serves
    name: str
    budget: Budget
    limits: Callable[[], Limits]
    throttle: Throttle = field(default_factory=Throttle)
    connections: Connections = field(default_factory=Connections)

    def cap(self, limits: Limits) -> tuple[int, str]:
        if self.name == "admin":
            return limits.max_admin_connections, "limits.max_admin_connections"
        return limits.max_connections, "limits.max_connections"

    def say(self, level: int, kind: object, text: str, *args: Any, exc: BaseException | None = None,
            **extra: Any) -> None:
        """One line per ``kind`` every 10 s, with the count of the calls it speaks for."""
        count = self.throttle.let(kind, time.monotonic())
        if count is None:
            return
        log.log(level, text + " (%d in the last 10s)", *args, count, exc_info=exc,
                extra={"listener": self.name, "count": count, **extra})


def _answer(status: int, reason: str, error: str, problem: str) -> bytes:
    """A whole HTTP answer that closes the connection, for a request no handler reads."""
    body = json.dumps({"status": "error", "error": error, "problems": [problem]}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nServer: {SERVER}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n").encode() + body


class Connection(RequestHandler):
    """aiohttp's request handler for one connection, within the caps of its listener."""

    def __init__(self, manager: web.Server, *, listener: Listener, **kwargs: Any) -> None:
        kwargs.pop("logger", None)
        super().__init__(manager, logger=_QUIET, **kwargs)
        #: read by relay.web.listeners: which listener accepted this connection
        self.listener = listener.name
        self._shared = listener
        self._address = "-"
        self._counted = False
        self._head = 0  # bytes of an unfinished header block, counted in the budget
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the payload of the last request read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) else "-"
        limits = self._shared.limits()
        cap, key = self._shared.cap(limits)
        refused = self._shared.connections.open(self._address, cap,
                                                limits.max_connections_per_address)
        if refused is None:
            self._counted = True
            super().connection_made(transport)
            return
        transport.close()
        if refused == "listener":
            self._shared.say(logging.WARNING, "cap", "connection refused: %d connections "
                             "open (%s)", cap, key)
        else:
            self._shared.say(logging.WARNING, "cap-address", "connection refused: %s holds "
                             "%d connections (limits.max_connections_per_address)",
                             self._address, limits.max_connections_per_address)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return  # refused at accept: aiohttp never knew it
        self._counted = False
        self._release_head()
        self._shared.connections.close(self._address)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = len(self._messages)
        super().data_received(data)
        if len(self._messages) > before:  # a header block is complete
            self._body = self._messages[-1][1]
            if self._head:
                self._release_head()
        elif (data and not (self._force_close or self._close or self._upgraded)
              and (self._body is None or self._body.is_eof())):
            self._hold_head(len(data))

    def _hold_head(self, size: int) -> None:
        """``size`` more bytes of a header block the parser holds until it is complete."""
        limits = self._shared.limits()
        if not self._shared.budget.take(self._address, size, limits.max_buffered):
            self._shared.say(logging.WARNING, "buffered", "request refused: 503 from %s: "
                             "unfinished headers and bodies are over limits.max_buffered "
                             "(or this address's quarter of it)", self._address)
            self._refuse(_answer(503, "Service Unavailable", "overloaded",
                                 "unfinished requests hold too many bytes; retry later"))
            return
        self._head += size
        if self._head_deadline is None:
            self._head_deadline = self._loop.call_later(limits.read_timeout,
                                                        self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        timeout = self._shared.limits().read_timeout
        self._shared.say(logging.WARNING, "read_timeout", "request refused: 408 from %s: "
                         "headers not received within %gs (limits.read_timeout)",
                         self._address, timeout)
        self._refuse(_answer(408, "Request Timeout", "read_timeout",
                             f"headers not received within {timeout:g}s"))

    def _release_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        self._shared.budget.give(self._address, self._head)
        self._head = 0

    def _refuse(self, answer: bytes) -> None:
        """Answer (unless a response is being written) and close: the parser's bytes go."""
        self._release_head()
        if self.transport is not None and not self._request_in_progress:
            self.transport.write(answer)
        self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to a request it could not read or a handler that raised: its
        line through the throttle, its ``Server`` without a version."""
        self._report(exc, status)
        self._reported = exc
        try:
            response = super().handle_error(request, status, exc, message)
        finally:
            self._reported = None
        response.headers["Server"] = SERVER
        return response

    _reported: BaseException | None = None

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, BaseException) and exc is self._reported:
            return  # handle_error reported it
        self._report(exc if isinstance(exc, BaseException) else None, 500)

    def _report(self, exc: BaseException | None, status: int) -> None:
        kind = type(exc).__name__ if exc is not None else "error"
        if isinstance(exc, CLIENT_FAULTS):
            text = str(getattr(exc, "message", None) or exc)
            if len(text) > TEXT_SHOWN:
                text = text[:TEXT_SHOWN] + "..."
            self._shared.say(logging.WARNING, ("client", kind), "bad request from %s: %d "
                             "%s: %s", self._address, status, kind, text, status=status)
        else:
            self._shared.say(logging.ERROR, ("fault", kind), "error handling a request "
                             "from %s: %d %s", self._address, status, kind, exc=exc,
                             status=status)
