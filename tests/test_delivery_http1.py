"""The HTTP/1.1 client on the loop against real servers on 127.0.0.1: connections kept and
given up, answers read up to the limit, a close racing a request, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import eventually

from relay.constants import ANSWER_READ_LIMIT
from relay.delivery.client import Client, new_client, send
from relay.delivery.http1 import os_error_text
from relay.routing import Destination
from relay.store import ClaimedDelivery

PEERS = web.AppKey("peers", list[object])
CLAIMED = ClaimedDelivery(1, 1, "d", 0, time.time() + 600, "msg_1", "sms", "mo",
                          '{"events":"mo"}', b"", "application/json")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def start(handler: Handler, tls: ssl.SSLContext | None = None,
                keepalive_timeout: float = 75) -> TestServer:
    """An aiohttp server answering every POST with ``handler``, recording the peer (the
    client's address and port: one per connection) of each request."""
    async def recorded(request: web.Request) -> web.StreamResponse:
        request.app[PEERS].append(request.transport and
                                  request.transport.get_extra_info("peername"))
        return await handler(request)

    app = web.Application()
    app[PEERS] = []
    app.router.add_post("/{name}", recorded)
    server = TestServer(app, host="127.0.0.1", scheme="https" if tls else "http")
    await server.start_server(ssl=tls, keepalive_timeout=keepalive_timeout)
    return server


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    started: list[TestServer] = []

    async def make(handler: Handler, tls: ssl.SSLContext | None = None,
                   keepalive_timeout: float = 75) -> TestServer:
        started.append(await start(handler, tls, keepalive_timeout))
        return started[-1]

    yield make
    for server in started:
        await server.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with new_client() as made:
        yield made


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="taken")


def to(server: TestServer, path: str = "/hook", timeout: float = 5) -> Destination:
    return Destination("d", str(server.make_url(path)), timeout=timeout)


def connections(server: TestServer) -> int:
    peers: list[object] = server.app[PEERS]
    return len(set(peers))


async def test_sequential_deliveries_share_one_connection(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """Ten deliveries one after the other to one service travel on one connection."""
    server = await servers(ok)
    for _ in range(10):
        outcome = await send(client, CLAIMED, to(server), 1)
        assert (outcome.kind, outcome.answer) == ("delivered", b"taken"), outcome
    assert len(server.app[PEERS]) == 10 and connections(server) == 1


async def test_a_connection_the_service_closed_while_idle_is_not_a_failure(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """The service closes the kept connection between two deliveries (its keep-alive
    timeout): the next delivery goes on a new connection, delivered."""
    server = await servers(ok, keepalive_timeout=0.1)
    assert (await send(client, CLAIMED, to(server), 1)).kind == "delivered"

    async def noticed() -> bool:
        return not client.pool._open

    await eventually(noticed, 5, "the client seeing its idle connection closed")
    assert (await send(client, CLAIMED, to(server), 1)).kind == "delivered"
    assert connections(server) == 2


async def test_a_close_racing_the_request_on_a_kept_connection_is_tried_once_more(
        client: Client) -> None:
    """A kept connection that ends before any byte of the answer (the service closed it as
    the request went out) is replaced once by a new one; on a new connection the same is
    an error, not tried again."""
    requests: list[int] = []  # the connection (counted from 1) of each request
    accepted: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        connection = len(accepted)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(len(b'{"events":"mo"}'))
                requests.append(connection)
                if len(requests) == 2:  # the second request: closed unanswered
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    destination = Destination("d", f"http://127.0.0.1:{port}/", timeout=5)
    try:
        for _ in range(2):
            outcome = await send(client, CLAIMED, destination, 1)
            assert (outcome.kind, outcome.answer) == ("delivered", b"ok"), outcome
        assert requests == [1, 1, 2]
        async with new_client() as fresh:
            # the new client's first request is the second the server sees
            requests[:], accepted[:] = [0], []
            failed = await send(fresh, CLAIMED, destination, 1)
        assert (failed.kind, failed.status) == ("retryable", None)
        assert failed.error == "ReadError: connection closed before message completed", failed
        assert requests == [0, 1]
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_longer_than_the_limit_costs_its_connection(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """The first ``ANSWER_READ_LIMIT`` bytes are kept, the rest is not read: the connection
    is dropped and the next delivery opens another. An answer of exactly the limit keeps
    its connection."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        size = ANSWER_READ_LIMIT if request.path == "/exact" else 4 * ANSWER_READ_LIMIT
        return web.Response(body=b"x" * size)

    server = await servers(answer)
    long = await send(client, CLAIMED, to(server, "/long"), 1)
    assert (long.kind, long.answer) == ("delivered", b"x" * ANSWER_READ_LIMIT), long.error
    for _ in range(2):
        exact = await send(client, CLAIMED, to(server, "/exact"), 1)
        assert exact.answer == b"x" * ANSWER_READ_LIMIT
    assert connections(server) == 2


async def test_a_chunked_answer_is_read_and_keeps_its_connection(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """An answer in chunks is read whole (within the limit) and its connection kept."""
    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=202)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"first ", b"second ", b"third"):
            await response.write(part)
        await response.write_eof()
        return response

    server = await servers(chunked)
    for _ in range(3):
        outcome = await send(client, CLAIMED, to(server), 1)
        assert (outcome.kind, outcome.status, outcome.answer) == (
            "delivered", 202, b"first second third"), outcome
    assert connections(server) == 1


async def test_https_keeps_its_connection(
        servers: Callable[..., Awaitable[TestServer]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over TLS (a private authority the platform is told to trust) deliveries are made and
    share one connection."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = await servers(ok, context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    async with new_client() as client:
        for _ in range(3):
            outcome = await send(client, CLAIMED, to(server), 1)
            assert (outcome.kind, outcome.answer) == ("delivered", b"taken"), outcome
    assert connections(server) == 1


async def test_a_service_that_never_answers_times_out(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """No status within the timeout: retryable, after the timeout and not much longer; the
    connection is not kept."""
    never = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    server = await servers(silent)
    outcome = await asyncio.wait_for(send(client, CLAIMED, to(server, timeout=0.3), 1), 10)
    assert (outcome.kind, outcome.status, outcome.error) == (
        "retryable", None, "timeout after 0.3s"), outcome
    assert 250 <= outcome.duration_ms < 3000, outcome
    assert not client.pool._idle.get(("http", "127.0.0.1", server.port or 0))
    never.set()


async def test_a_200_whose_chunks_stop_is_delivered(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """The status decides: a chunked 200 that stops after its first chunk is delivered when
    the timeout ends the read, with what came."""
    never = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"first part")
        await never.wait()
        return response

    server = await servers(stalls)
    outcome = await asyncio.wait_for(send(client, CLAIMED, to(server, timeout=0.3), 1), 10)
    assert (outcome.kind, outcome.status, outcome.answer) == ("delivered", 200, b"first part")
    assert 250 <= outcome.duration_ms < 3000, outcome
    never.set()


async def test_what_an_answer_says_is_read(
        servers: Callable[..., Awaitable[TestServer]], client: Client) -> None:
    """Retry-After is read; a 3xx is the answer (not followed), permanent; ``Connection:
    close`` costs the connection, not the delivery."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/busy":
            return web.Response(status=503, headers={"Retry-After": "7"})
        if request.path == "/moved":
            raise web.HTTPFound("/hook")
        return web.Response(text="bye", headers={"Connection": "close"})

    server = await servers(answer)
    busy = await send(client, CLAIMED, to(server, "/busy"), 1)
    assert (busy.kind, busy.status, busy.error, busy.retry_after) == (
        "retryable", 503, "HTTP 503", 7.0), busy
    moved = await send(client, CLAIMED, to(server, "/moved"), 1)
    assert (moved.kind, moved.status) == ("permanent", 302), moved
    for _ in range(2):
        closing = await send(client, CLAIMED, to(server, "/close"), 1)
        assert (closing.kind, closing.answer) == ("delivered", b"bye"), closing
    assert len(server.app[PEERS]) == 4 and connections(server) == 2  # the last on its own


@pytest.mark.fast
def test_an_os_error_is_named_by_its_cause() -> None:
    """An OS error reads as its cause and number, also when every address of a name failed
    alike (asyncio's "Multiple exceptions")."""
    assert os_error_text(ConnectionRefusedError(111, "Connect call failed")) == \
        "Connection refused (os error 111)"
    both = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
                   "[Errno 111] Connect call failed ('127.0.0.1', 9)")
    assert os_error_text(both) == "Connection refused (os error 111)"
    mixed = OSError("Multiple exceptions: [Errno 111] refused, [Errno 101] unreachable")
    assert os_error_text(mixed) == str(mixed)
