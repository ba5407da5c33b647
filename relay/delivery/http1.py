"""HTTP/1.1 on the event loop: one ``asyncio.Protocol`` per connection, the request written
as bytes, the answer read by httptools' C parser, idle connections kept per (scheme, host,
port). No thread is handed anything: a delivery's request, answer and outcome all happen on
the loop's thread (docs/performance.md, "An HTTP/1.1 client on the loop").

    HttpError            what went wrong, named in the attempt's error
     ├── ConnectError    refused, DNS, TLS: no connection
     └── ReadError       the connection ended or the answer was not HTTP

What an exchange keeps of an answer: its status, ``Retry-After`` and at most
``ANSWER_READ_LIMIT`` bytes of its body. An answer longer than that costs its connection,
which is dropped unread rather than drained; one that stops coming keeps its status when the
timeout ends it. A connection reused from the pool that ends before any byte of the answer
(the peer closed it while idle) is replaced once by a new one; nothing was answered, so
nothing is sent twice that the service saw through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import ssl
from dataclasses import dataclass
from typing import cast

import httptools

from relay.constants import ANSWER_READ_LIMIT
from relay.delivery.urls import Target

#: Most bytes of status line and headers an answer may send before its body.
HEAD_LIMIT = 65536
#: An idle connection older than this is closed rather than reused (hyper's default).
IDLE_S = 90.0
#: How often idle connections are looked over for ones past ``IDLE_S``.
SWEEP_S = 10.0


class HttpError(Exception):
    """A request that got no usable answer (retryable)."""


class ConnectError(HttpError):
    """No connection: refused, DNS, TLS."""


class ReadError(HttpError):
    """The connection ended, or what came back was not HTTP."""


class _Stale(ReadError):
    """A reused connection ended before any byte of the answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes


def os_error_text(exc: OSError) -> str:
    """``Connection refused (os error 111)``, as the client before this one wrote it."""
    number = exc.errno
    if number is None:  # asyncio's "Multiple exceptions: ..." (each address tried failed)
        numbers = {int(n) for n in re.findall(r"\[Errno (\d+)\]", str(exc))}
        number = numbers.pop() if len(numbers) == 1 else None
    if number and number > 0:
        return f"{os.strerror(number)} (os error {number})"
    return str(exc) or type(exc).__name__


#: A character that a header name (lower-cased) may not hold, and one a value may not.
_NOT_IN_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9a-z]")
_NOT_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def request_bytes(target: Target, headers: dict[str, str], body: bytes,
                  user_agent: str) -> bytes:
    """A POST of ``body`` to ``target`` as it goes on the wire, header names lower-case
    (ValueError for a name or value HTTP cannot carry)."""
    fields = {"host": target.authority, "user-agent": user_agent, "accept": "*/*"}
    if target.authorization is not None:
        fields["authorization"] = target.authorization
    for name, value in headers.items():
        fields[name.lower()] = value
    fields["content-length"] = str(len(body))
    if _NOT_IN_VALUE.search("".join(fields.values())):
        raise ValueError("Invalid header value")
    if _NOT_IN_NAME.search("".join(fields)) or "" in fields:
        raise ValueError("invalid header name")
    head = "".join([f"POST {target.path} HTTP/1.1\r\n",
                    *[f"{name}: {value}\r\n" for name, value in fields.items()], "\r\n"])
    return head.encode("utf-8") + body


class Connection(asyncio.Protocol):
    """One connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = asyncio.get_running_loop().create_future()
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.retry_after: str | None = None
        self.body = bytearray()
        self.received = 0
        self.framed = False
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.too_long = False
        self.informational = False
        self.error: HttpError | None = None
        self.timed_out = False

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.complete:  # nothing asked: not an answer of ours
            self.drop()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ReadError(f"invalid HTTP answer: {exc}"))
            return
        if not self.headers_done and self.received > HEAD_LIMIT:
            self._fail(ReadError("answer headers too long"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.framed:  # the body ran to the close
            self.complete = True
            self.waiter.set_result(None)
        elif isinstance(exc, OSError):
            self._fail(ReadError(os_error_text(exc)))
        else:
            self._fail(ReadError("connection closed before message completed"))

    # -- httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.informational, self.framed, self.retry_after = True, False, None
            return
        self.status, self.headers_done = status, True
        # asked now: once the message is complete the parser has forgotten it
        self.keep_alive = self.parser.should_keep_alive()
        if status in (204, 304):
            self.framed = True

    def on_body(self, body: bytes) -> None:
        room = ANSWER_READ_LIMIT - len(self.body)
        self.body += body[:room]
        if len(body) > room:  # longer than kept: the connection goes, even if all came
            self.too_long = True
        if len(body) >= room and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)  # read as far as kept: not waited on further

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- the exchange --------------------------------------------------------------------
    def _fail(self, error: HttpError) -> None:
        self.error = error
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.drop()

    def _timed_out(self) -> None:
        self.timed_out = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.drop()

    def drop(self) -> None:
        """Close at once, unread."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, data: bytes, deadline: float, reused: bool) -> Answer:
        """Send one request and read its answer (raises TimeoutError, HttpError)."""
        assert self.transport is not None
        if self.closed or self.transport.is_closing():  # the peer's close not yet seen
            raise _Stale("closed") if reused else ReadError("connection closed")
        loop = asyncio.get_running_loop()
        self._reset()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_at(deadline, self._timed_out)
        try:
            self.transport.write(data)
            await waiter
        except BaseException:
            self.drop()
            raise
        finally:
            timer.cancel()
            self.waiter = None
        if not self.headers_done:
            if self.timed_out:
                raise TimeoutError
            if reused and self.received == 0:
                raise _Stale(str(self.error))
            raise self.error or ReadError("connection closed before message completed")
        if self.error is not None and len(self.body) < ANSWER_READ_LIMIT:
            raise self.error  # the body broke off before what is kept of it
        if not self.complete or self.too_long or self.closed or not self.keep_alive:
            self.drop()
        return Answer(self.status, self.retry_after, bytes(self.body))


class Pool:
    """Idle connections per (scheme, host, port); a connection is used by one request at
    a time, so ``max_in_flight`` bounds a destination's connections."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.tls = tls
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._open: set[Connection] = set()
        self._next_sweep = 0.0

    async def request(self, target: Target, data: bytes, seconds: float) -> Answer:
        """One request within ``seconds`` (connecting, sending and the answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        connection = self._take(target.key, loop.time())
        answer = None
        if connection is not None:
            with contextlib.suppress(_Stale):
                answer = await connection.exchange(data, deadline, reused=True)
        if answer is None or connection is None:
            connection = await self._connect(target, deadline)
            answer = await connection.exchange(data, deadline, reused=False)
        if not connection.closed:
            self._give_back(target.key, connection, loop.time())
        return answer

    def _take(self, key: tuple[str, str, int], now: float) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < IDLE_S and not connection.closed \
                    and connection.transport is not None \
                    and not connection.transport.is_closing():
                return connection
            connection.drop()
        return None

    def _give_back(self, key: tuple[str, str, int], connection: Connection,
                   now: float) -> None:
        connection.idle_since = now
        self._idle.setdefault(key, []).append(connection)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            for idle in self._idle.values():
                for old in [c for c in idle if c.closed or now - c.idle_since >= IDLE_S]:
                    idle.remove(old)
                    old.drop()

    async def _connect(self, target: Target, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(
                    Connection, target.host, target.port,
                    ssl=self.tls if tls else None, server_hostname=target.host if tls else None)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(f"invalid peer certificate: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS error: {exc.reason or exc}") from exc
        except socket.gaierror as exc:
            raise ConnectError("dns error: failed to lookup address information: "
                               f"{exc.strerror}") from exc
        except OSError as exc:
            raise ConnectError(os_error_text(exc)) from exc
        self._open.add(connection)
        connection.lost.add_done_callback(lambda _: self._open.discard(connection))
        return connection

    async def close(self) -> None:
        """Close every connection, idle or not, and wait until they are."""
        self._idle.clear()
        waits = [c.lost for c in self._open]
        for connection in list(self._open):
            connection.drop()
        if waits:
            await asyncio.wait(waits, timeout=5)
