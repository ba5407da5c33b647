"""`relay serve` as a real process: crash safety, clean shutdown, the example config."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEYS, ROOT, signed

from relay.store import AttemptRecord, NewEvent, QuarantinedPush
from relay.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """A `relay serve` subprocess on a config file."""

    def __init__(self, config: Path, port: int, cwd: Path, env: dict[str, str] | None = None):
        self.config, self.port, self.cwd = config, port, cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / "relay.log"

    scheme = "http"
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--config", str(self.config)],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        connector = aiohttp.TCPConnector(ssl=self.ssl_context or True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "relay did not start"
                await asyncio.sleep(0.05)

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
async def make_flaky() -> AsyncIterator[Callable[[float], Awaitable[tuple[FlakySink, str]]]]:
    """Factory of FlakySinks (started, with their URL), closed after the test."""
    sinks: list[FlakySink] = []

    async def make(failure_rate: float) -> tuple[FlakySink, str]:
        sink = FlakySink(failure_rate)
        sinks.append(sink)
        return sink, await sink.start()

    yield make
    for sink in sinks:
        if sink.server is not None:
            await sink.server.close()


StartRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[StartRelay]:
    """Factory: `relay serve` on tmp_path/relay.yaml (rewritten when routes are given),
    always the same port and database, so a second call is a restart; killed at the end."""
    started: list[Relay] = []
    port = free_port()

    async def start(routes: str | None = None) -> Relay:
        config = tmp_path / "relay.yaml"
        if routes is not None:
            write_config(config, port, routes, tmp_path / "relay.db")
        relay = Relay(config, port, tmp_path)
        started.append(relay)
        await relay.start()
        return relay

    yield start
    for relay in started:
        relay.stop()


def one_route(*urls: str) -> str:
    dests = ", ".join(f'{{name: d{i}, url: "{url}"}}' for i, url in enumerate(urls))
    return f"  - {{name: all, destinations: [{dests}]}}"


class FlakySink:
    """Answers 503 to a share of requests, 200 to the rest; records what it accepted."""

    def __init__(self, failure_rate: float) -> None:
        self.failure_rate = failure_rate
        self.accepted: set[str] = set()
        self.requests = 0
        self.server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            self.requests += 1
            body = await request.json()
            if random.random() < self.failure_rate:
                return web.Response(status=503)
            self.accepted.add(body["send_id"])
            return web.Response(text="ok")

        app.router.add_post("/hook", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hook"))


MakeFlaky = Callable[[float], Awaitable[tuple[FlakySink, str]]]


def write_config(path: Path, port: int, routes: str, db: Path) -> None:
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    path.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{db}\nsubhooks:\n{subhooks}\n"
        f"routes:\n{routes}\n"
        "retry: {max_attempts: 50, initial_delay: 20ms, max_delay: 200ms, max_age: 1h}\n",
        encoding="utf-8")


async def push_many(url: str, start: int, count: int, acked: set[str],
                    concurrency: int = 8) -> None:
    """Push events; remember every send_id the relay answered 200."""
    queue = list(range(start, start + count))

    async def run(session: aiohttp.ClientSession) -> None:
        while queue:
            index = queue.pop(0)
            send_id = f"evt-{index}"
            fields = signed("sms", {"events": "delivered", "address": "13800000000",
                                    "app": 1, "send_id": send_id,
                                    "timestamp": int(time.time())})
            try:
                async with session.post(url + "/subhook/sms", data=fields) as response:
                    if response.status == 200:
                        acked.add(send_id)
            except (TimeoutError, aiohttp.ClientError):
                pass

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        await asyncio.gather(*(run(session) for _ in range(concurrency)))


async def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_sigkill_while_acknowledging_loses_nothing(
    start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGKILL mid-load, restart on the same file: every 200'd event reaches both services."""
    flaky, flaky_url = await make_flaky(0.4)
    steady, steady_url = await make_flaky(0.0)
    acked: set[str] = set()
    rounds = 3
    for round_ in range(rounds):
        relay = await start_relay(one_route(flaky_url, steady_url) if round_ == 0 else None)
        before = len(acked)
        pushing = asyncio.create_task(push_many(relay.url, round_ * 100_000, 20_000, acked))
        await asyncio.sleep(random.uniform(0.3, 0.8))
        assert relay.signal(signal.SIGKILL) == -signal.SIGKILL
        await pushing
        # the kill must land while pushes are still being acknowledged
        assert 0 < len(acked) - before < 20_000
    relay = await start_relay()
    assert len(acked) > 50, "too few pushes were acknowledged to test anything"
    await wait_until(lambda: acked <= steady.accepted and acked <= flaky.accepted, 60,
                     "acknowledged events missing after restart")
    assert relay.signal(signal.SIGTERM) == 0
    print(f"sigkill: {rounds} rounds, {len(acked)} acknowledged, "
          f"{flaky.requests} attempts at the flaky service")


async def test_sigterm_releases_leases_and_restart_delivers(
    tmp_path: Path, start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGTERM with deliveries failing: exit 0, nothing leased, a restart delivers the rest."""
    sink, url = await make_flaky(1.0)
    relay = await start_relay(one_route(url))
    acked: set[str] = set()
    await push_many(relay.url, 0, 30, acked)
    assert relay.signal(signal.SIGTERM) == 0
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        leased = conn.execute("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
        assert leased.fetchone()[0] == 0
        pending = conn.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'")
        assert pending.fetchone()[0] == 30
    sink.failure_rate = 0.0
    await start_relay()
    await wait_until(lambda: sink.accepted == acked, 30, "not delivered after restart")


async def test_sighup_reload_and_refused_edit(
    tmp_path: Path, start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGHUP reloads the file; a broken file is refused and the process keeps serving."""
    sink, url = await make_flaky(0.0)
    relay = await start_relay("  []")
    write_config(relay.config, relay.port, one_route(url), tmp_path / "relay.db")
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGHUP)
    acked: set[str] = set()

    async def generation() -> int:
        async with aiohttp.ClientSession() as session, \
                session.get(relay.url + "/readyz") as response:
            return int((await response.json())["config_generation"])

    deadline = time.monotonic() + 10
    while await generation() < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await push_many(relay.url, 0, 5, acked)
    await wait_until(lambda: sink.accepted == acked == {f"evt-{i}" for i in range(5)}, 10,
                     "not routed after reload")
    relay.config.write_text("subhooks: {broken", encoding="utf-8")
    relay.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert relay.proc.poll() is None
    assert await generation() == 2
    await push_many(relay.url, 100, 3, acked)
    assert len(acked) == 8
    assert "config reload refused" in relay.log.read_text()


async def test_example_config_serves_and_relay_push_gets_200(tmp_path: Path) -> None:
    """`relay serve --config config.example.yaml` runs as shipped; `relay push` gets a 200."""
    port = free_port()
    relay = Relay(ROOT / "config.example.yaml", port, tmp_path,
                  env={"RELAY_LISTEN": f"127.0.0.1:{port}"})
    try:
        await relay.start()
        await exercise_example(relay, tmp_path)
    finally:
        relay.stop()


async def exercise_example(relay: Relay, tmp_path: Path) -> None:
    for content_type in ("form", "json", "multipart"):
        result = subprocess.run(
            [sys.executable, "-m", "relay", "push", relay.url + "/subhook/sms", "--product",
             "sms", "--event", "delivered", "--key", "example-sms-subhook-key", "--tag",
             "order-1", "--content-type", content_type],
            capture_output=True, text=True, check=False, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        status, body = result.stdout.split(" ", 1)
        assert status == "200"
        assert json.loads(body)["status"] == "accepted"
    wrong = subprocess.run(
        [sys.executable, "-m", "relay", "push", relay.url + "/subhook/sms", "--product", "sms",
         "--event", "delivered", "--key", "not-the-key"],
        capture_output=True, text=True, check=False, timeout=30)
    assert wrong.returncode == 1
    assert wrong.stdout.startswith("401 ")
    assert (tmp_path / "relay.db").exists()
    log = relay.log.read_text()
    assert "13800000000" not in log and "138****0000" in log
    assert relay.signal(signal.SIGTERM) == 0


async def test_cli_dead_and_quarantine_commands(tmp_path: Path) -> None:
    """`relay dead list/replay` and `relay quarantine list/replay` work on the store file."""
    config = tmp_path / "relay.yaml"
    write_config(config, free_port(), "  []", tmp_path / "relay.db")
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    now = time.time()
    event_id = await store.ingest(NewEvent("msg_1", "i1", "t1", "sms", "mo", None,
                                           '{"events":"mo"}', b"", "text/plain", now,
                                           (("svc", now + 3600),)))
    assert event_id is not None
    (claimed,) = await store.claim("svc", 1, "w", now + 60, now + 1)
    await store.record([AttemptRecord(claimed.id, 1, now, 12.5, 410, "HTTP 410", "dead")])
    valid = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "hi",
                           "timestamp": int(now)})
    await store.quarantine(QuarantinedPush("q1", "/subhook/sms", "sms", json.dumps(valid),
                                           b"", "application/json", '["events: x"]', now))
    await store.close()

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args, "--config", str(config)],
                              capture_output=True, text=True, check=False, cwd=tmp_path)

    listed = relay("dead", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (dead,) = json.loads(listed.stdout)
    assert (dead["destination"], dead["attempt"]) == ("svc", 1)
    assert dead["attempts"][0]["http_status"] == 410
    assert dead["attempts"][0]["duration_ms"] == 12.5
    assert "1 dead letter(s)" in relay("dead", "list").stdout
    assert relay("dead", "replay", str(dead["id"])).stdout.startswith("replayed 1 dead letter")
    assert json.loads(relay("dead", "list", "--json").stdout) == []
    assert "1 quarantined push(es)" in relay("quarantine", "list").stdout
    replayed = relay("quarantine", "replay", "--all")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["replayed"][0]["note"] == "replayed"
    assert "0 quarantined push(es)" in relay("quarantine", "list").stdout


async def test_tls_serves_https(tmp_path: Path) -> None:
    """`tls: {cert, key}` serves HTTPS with that certificate; plain HTTP is not answered."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_config(config, port, "  []", tmp_path / "relay.db")
    with config.open("a", encoding="utf-8") as handle:
        handle.write("tls: {cert: server.pem, key: server.pem}\n")
    relay = Relay(config, port, tmp_path)
    relay.scheme = "https"
    relay.ssl_context = ssl.create_default_context()
    authority.configure_trust(relay.ssl_context)
    try:
        await relay.start()
        fields = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "x",
                                "timestamp": int(time.time())})
        connector = aiohttp.TCPConnector(ssl=relay.ssl_context)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.post(relay.url + "/subhook/sms", data=fields) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{port}/healthz") as plain:
                await plain.read()
    finally:
        relay.stop()
