"""``relay sink``: what it prints for forwarded events and what it answers."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from relay.sink import create_sink_app, run_sink, verify

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
SMS = {"events": "delivered", "address": "13800138000", "app": 1, "send_id": "s1"}


def forwarded(body: bytes, *, secret: str | None = SECRET, msg_id: str = "msg_abc",
              stamp: int | None = None, attempt: int = 1) -> dict[str, str]:
    """The headers the relay sends, signed by the standardwebhooks library (not our code)."""
    stamp = int(time.time()) if stamp is None else stamp
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "X-Subhook-Product": "sms", "X-Subhook-Event": "delivered",
               "X-Relay-Attempt": str(attempt), "Content-Type": "application/json"}
    if secret:
        when = datetime.fromtimestamp(stamp, tz=UTC)
        headers["webhook-signature"] = Webhook(secret).sign(msg_id, when, body.decode())
    return headers


async def sink(aiohttp_client: Any, secret: str | None = SECRET) -> tuple[Any, io.StringIO]:
    out = io.StringIO()
    return await aiohttp_client(create_sink_app(secret, out)), out


async def test_signed_request_prints_ok_and_gets_200(aiohttp_client: Any) -> None:
    """A correctly signed event is answered 200 and printed with signature=ok."""
    client, out = await sink(aiohttp_client)
    body = json.dumps(SMS).encode()
    response = await client.post("/subhook", data=body, headers=forwarded(body, attempt=2))
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    (line,) = out.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d sms/delivered msg_abc attempt=2 "
                        r"contact=138\*\*\*\*8000 signature=ok path=/subhook", line), line


async def test_tampered_body_gets_401_and_prints_invalid(aiohttp_client: Any) -> None:
    """A body changed after signing is answered 401 naming the problem, printed INVALID."""
    client, out = await sink(aiohttp_client)
    body = json.dumps(SMS).encode()
    tampered = body.replace(b"13800138000", b"13800138001")
    response = await client.post("/x", data=tampered, headers=forwarded(body))
    assert response.status == 401
    answer = await response.json()
    assert answer["error"] == "invalid_signature"
    assert "bad signature" in answer["problems"][0]
    (line,) = out.getvalue().splitlines()
    assert " signature=INVALID path=/x reason='bad signature" in line


@pytest.mark.parametrize(("change", "reason"), [
    ({"webhook-signature": None}, "missing header webhook-signature"),
    ({"webhook-timestamp": str(int(time.time()) - 301)}, "timestamp too old"),
    ({"webhook-timestamp": "soon"}, "webhook-timestamp is not a UNIX time"),
    ({"webhook-signature": "v2,abc"}, "no v1 signature"),
])
async def test_each_verification_failure_is_named(
    aiohttp_client: Any, change: dict[str, str | None], reason: str
) -> None:
    """Missing headers, stale or malformed timestamps and unknown versions each say why."""
    client, out = await sink(aiohttp_client)
    body = json.dumps(SMS).encode()
    headers = forwarded(body)
    for name, value in change.items():
        headers.pop(name)
        if value is not None:
            headers[name] = value
    response = await client.post("/", data=body, headers=headers)
    assert response.status == 401
    assert reason in (await response.json())["problems"][0]
    assert "signature=INVALID" in out.getvalue() and reason in out.getvalue()


def test_verify_matches_the_library_within_tolerance() -> None:
    """The sink accepts what standardwebhooks signs 4 minutes ago, refuses past 5 minutes."""
    body = b'{"a": 1}'
    now = time.time()
    recent = {k.lower(): v for k, v in forwarded(body, stamp=int(now) - 240).items()}
    assert verify(SECRET, recent, body, now) is None
    stale = {k.lower(): v for k, v in forwarded(body, stamp=int(now) - 400).items()}
    assert verify(SECRET, stale, body, now) == "timestamp too old (400 s, tolerance 300 s)"


async def test_without_secret_prints_no_verdict(aiohttp_client: Any) -> None:
    """With no secret every request gets 200 and the line carries no signature verdict."""
    client, out = await sink(aiohttp_client, secret=None)
    body = json.dumps(SMS).encode()
    response = await client.post("/hook", data=body, headers=forwarded(body, secret=None))
    assert response.status == 200
    (line,) = out.getvalue().splitlines()
    assert "signature" not in line
    assert line.endswith(" sms/delivered msg_abc attempt=1 contact=138****8000 path=/hook")


async def test_control_characters_in_values_stay_on_one_line(aiohttp_client: Any) -> None:
    """Line breaks and control characters from a body are escaped: one request, one line."""
    client, out = await sink(aiohttp_client, secret=None)
    hostile = {"events": "delivered\nFAKE sms/delivered msg_x",
               "address": "138\u2028\x1b0013\r8000"}
    headers = forwarded(b"", secret=None)
    del headers["X-Subhook-Event"]
    response = await client.post("/", data=json.dumps(hostile), headers=headers)
    assert response.status == 200
    (line,) = out.getvalue().splitlines()
    assert "'delivered\\nFAKE sms/delivered msg_x'" in line
    assert "contact='138\\u2028\\x1b****\\r8000'" in line


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-www-form-urlencoded", b"events=delivered&address=13800138000&app=1"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; "
     b'name="address"\r\n\r\n13800138000\r\n--zz--\r\n'),
])
async def test_original_format_bodies_are_read(
    aiohttp_client: Any, content_type: str, body: bytes
) -> None:
    """`format: original` form and multipart bodies verify and show the masked contact."""
    client, out = await sink(aiohttp_client)
    headers = {**forwarded(body), "Content-Type": content_type}
    response = await client.post("/", data=body, headers=headers)
    assert response.status == 200
    assert "contact=138****8000 signature=ok" in out.getvalue()


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data; boundary=€", b"--\xff\r\n"),
    ("application/json", b'{"address": NaN, "address": [1]'),
    ("application/octet-stream", bytes(range(256))),
    ("", b""),
])
async def test_any_body_is_answered_without_crashing(
    aiohttp_client: Any, content_type: str, body: bytes
) -> None:
    """Bodies that are no flat event still get 200 and one line with what the headers say."""
    client, out = await sink(aiohttp_client, secret=None)
    headers = {**forwarded(b"", secret=None), "Content-Type": content_type}
    response = await client.post("/", data=body, headers=headers)
    assert response.status == 200
    (line,) = out.getvalue().splitlines()
    assert "sms/delivered msg_abc attempt=1 contact=- path=/" in line


@pytest.mark.parametrize("secret", ["abc", "whsec_", "whsec_not base64!", "whsec_YWJ"])
def test_bad_secret_is_refused_with_2(secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret that is not whsec_ + base64 stops the sink at start with exit code 2."""
    with socket.socket() as taken:  # were the secret accepted, binding fails: no server runs
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert run_sink(f"127.0.0.1:{taken.getsockname()[1]}", secret) == 2
    err = capsys.readouterr().err
    assert err.startswith("relay sink: the secret") and err.count("\n") == 1
    with pytest.raises(ValueError, match="secret"):
        create_sink_app(secret, io.StringIO())


@pytest.mark.parametrize("listen", ["9001", ":9001", "127.0.0.1:", "127.0.0.1:70000", "h:x"])
def test_bad_listen_is_refused_with_2(listen: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An address that is not host:port is exit code 2 with one line saying the form."""
    assert run_sink(listen, None) == 2
    assert capsys.readouterr().err.startswith("relay sink: --listen must be host:port")


def test_taken_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already in use is exit code 1 and one stderr line naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_sink(f"127.0.0.1:{port}", None) == 1
    err = capsys.readouterr().err
    assert err == f"relay sink: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_runs_until_sigterm_and_exits_0() -> None:
    """`relay sink` announces its address and secret mode once bound, and SIGTERM exits 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with subprocess.Popen([sys.executable, "-m", "relay", "sink", "--listen",
                           f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == (f"relay sink listening on http://127.0.0.1:{port}, "
                         "signatures not checked\n")
        proc.terminate()
        assert proc.wait(timeout=10) == 0
