"""The edge under abuse, second round (SPEC 18, issue 26): what one client address may hold
of a real `relay serve` process, and what the HTTP layer writes to the log.

The abusive client is 127.0.0.1, SUBMAIL is 127.0.0.2 (another peer address on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import signed
from relayproc import Relay, free_port, subhooks_yaml, wait_until

pytestmark = pytest.mark.timeout(240)

ABUSER, SUBMAIL = "127.0.0.1", "127.0.0.2"
TOKEN = "operator-token-0123456789abcdef"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def push_fields(send_id: str) -> dict[str, object]:
    return signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                          "send_id": send_id, "timestamp": int(time.time())})


@contextlib.asynccontextmanager
async def relay_with(tmp_path: Path, extra: str, *, listen: str = "127.0.0.1",
                     admin: str | None = None,
                     subhooks: str | None = None) -> AsyncIterator[Relay]:
    """A `relay serve` on a fresh port (``extra`` appended to its config), killed after."""
    port = free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"listen: {listen}:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        + (f"admin_listen: {admin}:{port}\n" if admin else "")
        + f"subhooks:\n{subhooks or subhooks_yaml()}\nroutes: []\n"
        f"admin: {{tokens: [{{name: ops, token: {TOKEN}, role: operator}}]}}\n{extra}",
        encoding="utf-8")
    relay = Relay(config, port, tmp_path)
    try:
        await relay.start()
        yield relay
    finally:
        relay.stop()


def session_from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True),
        timeout=aiohttp.ClientTimeout(total=10))


async def connect(port: int, source: str = ABUSER,
                  host: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def closed_by_relay(reader: asyncio.StreamReader, within: float = 5) -> bytes:
    """Everything the relay sent before it closed the connection."""
    return await asyncio.wait_for(reader.read(), within)


async def test_one_address_cannot_hold_every_connection(tmp_path: Path) -> None:
    """At limits.max_connections_per_address, the address's next connections are closed at
    once while another address is still served; the admin listener has its own cap."""
    async with relay_with(tmp_path, "limits: {max_connections_per_address: 8, "
                          "max_connections: 12, max_admin_connections: 4}\n",
                          admin="127.0.0.3") as relay:
        held = [await connect(relay.port) for _ in range(8)]
        over_reader, over = await connect(relay.port)
        assert await closed_by_relay(over_reader) == b""
        async with session_from(SUBMAIL) as session:
            async with session.post(f"{relay.url}/subhook/sms",
                                    data=push_fields("other")) as response:
                assert response.status == 200
            # the edge full (8 + 4 from other addresses, the next one refused): operators
            # still reach the admin listener
            others = [await connect(relay.port, source=f"127.0.1.{n}") for n in range(4)]
            full_reader, full = await connect(relay.port, source="127.0.1.9")
            assert await closed_by_relay(full_reader) == b""
            full.close()
            async with session.get(f"http://127.0.0.3:{relay.port}/metrics") as response:
                assert response.status == 200
        for _, writer in [*held, *others, (over_reader, over)]:
            writer.close()


async def test_an_address_refused_by_allow_ips_is_not_kept_connected(tmp_path: Path) -> None:
    """A keep-alive request answered 403 by allow_ips is answered Connection: close and the
    relay closes the connection."""
    subhooks = ("  - {path: /subhook/sms, product: sms, keys: [sms-key-0123], "
                f"allow_ips: [{SUBMAIL}/32]}}")
    async with relay_with(tmp_path, "", subhooks=subhooks) as relay:
        reader, writer = await connect(relay.port)
        writer.write(b"GET /subhook/sms?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await closed_by_relay(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 403"), answer
        assert b"Connection: close" in answer


async def test_unfinished_headers_count_per_address_and_have_a_deadline(
        tmp_path: Path) -> None:
    """Unfinished header blocks of one address past a quarter of limits.max_buffered get
    503 (connection closed), another address's push is still answered; a header block not
    finished within limits.read_timeout gets 408."""
    async with relay_with(tmp_path, "limits: {max_buffered: 256KiB, read_timeout: 3s}\n"
                          ) as relay:
        line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        answers = []
        for _ in range(20):  # 20 x 2 lines x 8 KB: 320 KB asked, 64 KiB allowed
            reader, writer = await connect(relay.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + line * 2)
            await writer.drain()
            answers.append((reader, writer))
        refused = [await closed_by_relay(r) for r, _ in answers[4:]]
        assert all(a.startswith(b"HTTP/1.1 503") for a in refused), refused[:2]
        async with session_from(SUBMAIL) as session, session.post(
                f"{relay.url}/subhook/sms", data=push_fields("other")) as response:
            assert response.status == 200
        started = time.monotonic()
        timed_out = await closed_by_relay(answers[0][0], within=10)
        assert timed_out.startswith(b"HTTP/1.1 408"), timed_out
        assert time.monotonic() - started < 5
        assert b"Server: subhook-relay\r\n" in timed_out
        for _, writer in answers:
            writer.close()


async def test_every_post_has_a_read_deadline(tmp_path: Path) -> None:
    """A console sign-in or admin POST whose body trickles is answered 408 after
    limits.read_timeout, as a push is."""
    async with relay_with(tmp_path, "limits: {read_timeout: 2s}\n") as relay:
        for path in ("/console/signin", "/admin/dead/replay"):
            reader, writer = await connect(relay.port)
            writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                         "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         "Content-Length: 100\r\n\r\ntoken=".encode())
            started = time.monotonic()
            answer = await closed_by_relay(reader, within=10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408"), (path, answer)
            assert time.monotonic() - started < 5


MALFORMED = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b" + b"c" * 8000 + b"\r\n\r\n",
    b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\nHost: x\n\n",
    b"G\x85T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
    b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2"
    b"\r\n\r\nab",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nel: \xc2\x85 2026-12-05 ERROR fake\x00\r\n\r\n",
]


def send_raw(port: int, request: bytes) -> bytes:
    import socket  # noqa: PLC0415 - a blocking client, run in threads

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)  # each is answered 400 and closed by the relay
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_malformed_requests_do_not_flood_the_log(tmp_path: Path) -> None:
    """2,000 malformed requests (NUL in a header, smuggling framings, bad chunks, a
    header holding NEL) write a few dozen log lines at most, no traceback, no NEL; each
    answer's Server header names no version."""
    async with relay_with(tmp_path, "") as relay:
        before = relay.log.read_bytes()
        loop = asyncio.get_running_loop()
        answers: list[bytes] = []
        for start in range(0, 2000, 50):
            answers += await asyncio.gather(*(
                loop.run_in_executor(None, send_raw, relay.port,
                                     MALFORMED[n % len(MALFORMED)])
                for n in range(start, start + 50)))
        log = relay.log.read_bytes()[len(before):].decode("utf-8", "replace")
    assert all(a.split(b" ", 2)[1].startswith(b"4") for a in answers), {a[:40] for a in answers}
    assert all(b"Server: subhook-relay\r\n" in a for a in answers), answers[0]
    lines = log.splitlines()
    assert len(lines) <= 40, "\n".join(lines[:60])
    assert "Traceback" not in log
    assert not any(c in log for c in "\x85\u2028\u2029\r"), log
    assert not any(line.startswith("2026-12-05 ERROR fake") for line in lines)


async def test_the_listener_is_the_socket_not_the_port(tmp_path: Path) -> None:
    """listen 127.0.0.2:P beside admin_listen 127.0.0.1:P: the edge address serves pushes
    and no /metrics, /console or /admin; the admin address serves those."""
    async with relay_with(tmp_path, "", listen=SUBMAIL, admin="127.0.0.1") as relay:
        edge = f"http://{SUBMAIL}:{relay.port}"
        async with session_from(SUBMAIL) as session:
            for path in ("/metrics", "/console/signin", "/admin/events"):
                async with session.get(edge + path,
                                       headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 404, path
                async with session.get(relay.url + path,
                                       headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 200, path
            async with session.post(edge + "/subhook/sms", data=push_fields("e")) as r:
                assert r.status == 200
            async with session.post(relay.url + "/subhook/sms", data=push_fields("a")) as r:
                assert r.status == 404


async def test_console_and_admin_headers(tmp_path: Path) -> None:
    """Console pages and admin answers carry the CSP, anti-framing, nosniff, referrer and
    no-store headers; no answer names a version; HEAD is answered where Allow lists it."""
    async with relay_with(tmp_path, "") as relay, session_from(SUBMAIL) as session:
        for path in ("/console/signin", "/admin/events", "/console/events"):
            async with session.get(relay.url + path, allow_redirects=False,
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert r.headers["X-Frame-Options"] == "DENY"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "same-origin"
                assert r.headers["Cache-Control"] == "no-store"
                assert r.headers["Server"] == "subhook-relay"
        async with session.head(relay.url + "/healthz") as r:
            assert r.status == 200 and r.headers["Server"] == "subhook-relay"
        async with session.put(relay.url + "/healthz") as r:
            assert r.status == 405 and "HEAD" in r.headers["Allow"]
        async with session.post(relay.url + "/subhook/sms", data=push_fields("s")) as r:
            assert r.headers["Server"] == "subhook-relay"


async def hold(port: int, stop: asyncio.Event, kind: str, opened: list[int]) -> None:
    """One of the abuser's connections, reopened whenever the relay closes it: ``keepalive``
    asks GET /healthz every 10 s; ``trickle`` sends a header block a line a second;
    ``body`` announces 8 MiB - 1 byte, sends all but the last byte and waits."""
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await connect(port)
            opened[0] += 1
            if kind == "body":
                writer.write(b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/x-www-form-urlencoded\r\nContent-Length: "
                             + str(8 * 1024 * 1024 - 1).encode() + b"\r\n\r\n"
                             + b"a" * (8 * 1024 * 1024 - 2))
            elif kind == "trickle":
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set() and not reader.at_eof():
                if kind == "keepalive":
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                elif kind == "trickle":
                    writer.write(b"X-Slow: " + b"s" * 4000 + b"\r\n")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 10.0 if kind == "keepalive" else 1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(65536), 0.01)
        except (ConnectionError, OSError):
            pass
        finally:
            if writer is not None:
                writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)  # paces the reconnect; decides nothing


async def test_one_client_holding_everything_does_not_starve_submail(tmp_path: Path) -> None:
    """One address holding 1,000 connections (keep-alive and trickling) and 8 unfinished
    8 MiB bodies: 50 signed pushes from another address are each answered 200 within 2 s;
    the relay's memory comes back after the load (at most 32 MB more than before)."""
    async with relay_with(tmp_path, "") as relay:
        assert relay.proc is not None
        pid = relay.proc.pid
        before = rss_mb(pid)
        stop, opened = asyncio.Event(), [0]
        kinds = ["body"] * 8 + ["keepalive"] * 500 + ["trickle"] * 500
        crowd = [asyncio.create_task(hold(relay.port, stop, kind, opened)) for kind in kinds]
        peak, slowest = before, 0.0
        try:
            await wait_until(lambda: opened[0] >= 1008, 60, "the crowd never connected")
            async with session_from(SUBMAIL) as session:
                for n in range(50):
                    started = time.monotonic()
                    async with session.post(f"{relay.url}/subhook/sms",
                                            data=push_fields(f"real-{n}")) as response:
                        assert response.status == 200, await response.text()
                    slowest = max(slowest, time.monotonic() - started)
                    peak = max(peak, rss_mb(pid))
                    # spreads the pushes over the crowd's reconnects and deadlines
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
        finally:
            stop.set()
            await asyncio.gather(*crowd, return_exceptions=True)
        # At most 32 MB more than before: half of the 64 MB the relay held before the load
        # when this bound was set (docs/security.md). It was 1.5 x before, which moved with
        # whatever the relay loads at start (pyreqwest's runtime was about 7 MB of it) while
        # what this load leaves behind (about 27 to 29 MB, all of it in the server: no
        # delivery is made) did not.
        await wait_until(lambda: rss_mb(pid) <= before + 32, 70,
                         f"RSS {rss_mb(pid):.0f} MB stayed over {before:.0f} + 32 MB")
        after = rss_mb(pid)
    print(f"one client, 1,008 connections: slowest push {slowest:.3f}s; RSS before "
          f"{before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
    assert slowest < 2.0, f"slowest push took {slowest:.2f}s"
