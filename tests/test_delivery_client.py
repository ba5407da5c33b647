"""The delivery client against real services on 127.0.0.1: TLS trust, header names on the
wire, an answer that stops coming, what an error says."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.delivery.client import new_client, send
from relay.routing import Destination
from relay.store import ClaimedDelivery

SEEN = web.AppKey("seen", list[list[bytes]])
CLAIMED = ClaimedDelivery(1, 1, "d", 0, time.time() + 600, "msg_1", "sms", "mo",
                          '{"events":"mo"}', b"", "application/json")


async def hooks(request: web.Request) -> web.StreamResponse:
    if request.path == "/stalls":
        response = web.StreamResponse(status=200, headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"first part")
        await asyncio.sleep(30)
        return response
    request.app[SEEN].append([name for name, _ in request.raw_headers])
    return web.Response(text="taken")


@pytest.fixture
async def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_server(authority: trustme.CA) -> AsyncIterator[TestServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    app = web.Application()
    app[SEEN] = []
    app.router.add_post("/{name}", hooks)
    server = TestServer(app, host="127.0.0.1", scheme="https")
    await server.start_server(ssl=context)
    yield server
    await server.close()


async def test_https_trusts_the_platform_certificates(
    https_server: TestServer, authority: trustme.CA, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service whose certificate comes from an authority the platform trusts
    (``SSL_CERT_FILE`` here) is delivered to; one from any other authority is refused and
    the attempt says why. Header names arrive lower-case."""
    destination = Destination("d", str(https_server.make_url("/hook")), timeout=5)
    untrusted = trustme.CA()
    untrusted.cert_pem.write_to_path(str(tmp_path / "other.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.pem"))
    async with new_client() as client:
        refused = await send(client, CLAIMED, destination, 1)
    assert refused.kind == "retryable" and refused.status is None
    assert refused.error is not None and "invalid peer certificate" in refused.error, refused

    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    async with new_client() as client:
        outcome = await send(client, CLAIMED, destination, 1)
    assert (outcome.kind, outcome.status, outcome.answer) == ("delivered", 200, b"taken")
    names = https_server.app[SEEN][-1]
    assert b"webhook-id" in names and b"x-relay-attempt" in names, names


async def test_an_answer_that_stops_coming_keeps_its_status(
    https_server: TestServer, authority: trustme.CA, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The status decides: a 200 whose body stops half way is delivered when the timeout
    ends the read, with the answer as far as it came; the attempt takes the timeout, no
    longer."""
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    destination = Destination("d", str(https_server.make_url("/stalls")), timeout=0.5)
    async with new_client() as client:
        outcome = await asyncio.wait_for(send(client, CLAIMED, destination, 1), 10)
    assert (outcome.kind, outcome.status, outcome.answer) == ("delivered", 200, b"first part"), \
        outcome
    assert 400 <= outcome.duration_ms < 3000, outcome


async def test_errors_name_what_went_wrong() -> None:
    """A closed port and a name that does not resolve: retryable, and the error names the
    cause (not only "connection error")."""
    async with new_client() as client:
        closed = await send(client, CLAIMED, Destination("d", "http://127.0.0.1:9/"), 1)
        unknown = await send(client, CLAIMED, Destination("d", "http://no-such.invalid/"), 1)
    assert closed.kind == unknown.kind == "retryable"
    assert closed.error == "ConnectError: Connection refused (os error 111)", closed
    assert unknown.error is not None and unknown.error.startswith("ConnectError: "), unknown
    assert "lookup" in unknown.error or "resolve" in unknown.error or "dns" in unknown.error


async def test_a_request_that_cannot_be_built_is_a_permanent_failure() -> None:
    """A destination the config would refuse (built here by hand, as one from an older
    config could be) fails its attempt, permanently and saying why: send never raises, so
    the delivery is recorded instead of staying leased and being tried for ever."""
    async with new_client() as client:
        bad_url = await send(client, CLAIMED, Destination("d", "http://a|b.com/"), 1)
        bad_header = await send(client, CLAIMED, Destination(
            "d", "http://127.0.0.1:9/", headers=(("X-Token", "a\nb"),)), 1)
    assert bad_url.kind == bad_header.kind == "permanent"
    assert bad_url.error == "request not built: invalid international domain name", bad_url
    assert bad_header.error == "request not built: invalid header value (value hidden)", \
        bad_header
