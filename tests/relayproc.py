"""Real relay processes and real services for the process-level tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEYS, fresh_postgres_db, signed


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


StartRelay = Callable[..., Awaitable[Relay]]


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


def subhooks_yaml(keys: Mapping[str, str] | None = None) -> str:
    """The ``subhooks:`` entries of a config: one per product at /subhook/<product>, with
    ``keys`` (default: the tests' KEYS)."""
    return "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                     for p, k in (keys or KEYS).items())


def write_relay_config(path: Path, port: int, routes: str, db: Path) -> None:
    subhooks = subhooks_yaml()
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


# -- waiting on conditions, not on the clock ---------------------------------------------
import sqlite3  # noqa: E402


async def wait_until_async(check: Callable[[], Awaitable[bool]], within: float,
                           what: str) -> None:
    """wait_until for a check that has to await (a store, an HTTP endpoint)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def wait_until_blocking(check: Callable[[], bool], within: float, what: str) -> None:
    """wait_until for synchronous tests, which have no event loop to yield to."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def delivery_states(db: Path) -> dict[str, int]:
    """How many deliveries a relay's SQLite file holds in each state (pending, delivered,
    dead), read from the file while the relay runs. A claimed delivery stays pending until
    its outcome is recorded, after the service answered, so no pending row means nothing
    is in flight and nothing more will be sent."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    finally:
        conn.close()
    return {str(state): int(count) for state, count in rows}


@contextlib.asynccontextmanager
async def serving_on(store_kind: str, tmp_path: Path, routes_and_more: str,
                     ) -> AsyncIterator[tuple[Relay, Path]]:
    """`relay serve` on a fresh store of ``store_kind`` (an SQLite file, or a new
    PostgreSQL database) with ``routes_and_more`` after its SUBHOOKs; its config file.
    Stopped at the end."""
    port = free_port()
    config = tmp_path / "relay.yaml"

    async def start(store: str) -> Relay:
        config.write_text(f"listen: 127.0.0.1:{port}\nstore: {store}\nsubhooks:\n"
                          f"{subhooks_yaml()}\n{routes_and_more}", encoding="utf-8")
        relay = Relay(config, port, tmp_path)
        await relay.start()
        return relay

    async with contextlib.AsyncExitStack() as stack:
        store = f"sqlite:///{tmp_path / 'relay.db'}" if store_kind == "sqlite" \
            else await stack.enter_async_context(fresh_postgres_db())
        relay = await start(store)
        try:
            yield relay, config
        finally:
            relay.stop()
