from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from relay.ingest.signature import sign
from relay.runtime import RunningConfig
from relay.store import AttemptRecord, NewEvent, QuarantinedPush, Store, open_store
from relay.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared" / "subhook-docs"


def unavailable(reason: str, required: str) -> NoReturn:
    """A test whose server or browser is not here: skipped with ``reason``, or failed where
    the environment variable ``required`` is 1 (.ci/run sets it: there it must be here)."""
    if os.environ.get(required) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def docs_dir() -> Path:
    """SUBMAIL's docs beside the checkout; the generator's input."""
    if not DOCS.is_dir():
        pytest.fail(f"SUBMAIL docs not found at {DOCS}: ../shared must sit beside the checkout")
    return DOCS


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: write YAML text to a config file in a fresh folder and return its path."""

    def write(text: str, name: str = "relay.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# -- servers standing in for internal services, and a relay under test ----------------------





@dataclass
class Received:
    """One request a sink got."""

    path: str
    #: as HTTP reads them: names in any case (the relay sends them lower-case)
    headers: CIMultiDict[str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """A real HTTP server on 127.0.0.1 that records requests and answers as scripted."""

    server: TestServer
    received: list[Received] = field(default_factory=list)
    #: statuses to answer in turn (then 200); each may be (status, headers) or a delay "sleep:S"
    script: list[Any] = field(default_factory=list)
    delay: float = 0.0
    #: requests being answered now, and the most there have been at once
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"sink got {len(self.received)} requests, wanted {count}")
            await asyncio.sleep(0.01)
        return self.received


@pytest.fixture
async def make_sink() -> AsyncIterator[Callable[..., Awaitable[Sink]]]:
    """Factory of recording sinks; each is closed at the end of the test."""
    servers: list[TestServer] = []

    async def make(script: list[Any] | None = None, delay: float = 0.0) -> Sink:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # a mail `receivers` push
        sink: Sink

        async def handle(request: web.Request) -> web.StreamResponse:
            sink.in_flight += 1
            sink.most_in_flight = max(sink.most_in_flight, sink.in_flight)
            try:
                return await answer(request)
            finally:
                sink.in_flight -= 1

        async def answer(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            if sink.delay:
                await asyncio.sleep(sink.delay)
            step = sink.script.pop(0) if sink.script else 200
            if isinstance(step, str) and step.startswith("sleep:"):
                await asyncio.sleep(float(step.split(":")[1]))
                step = 200
            status, headers = step if isinstance(step, tuple) else (step, {})
            sink.received.append(Received(request.path, CIMultiDict(request.headers), body,
                                          time.monotonic()))
            return web.Response(status=status, headers=headers, text="sink")

        app.router.add_route("*", "/{tail:.*}", handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        sink = Sink(server, script=list(script or []), delay=delay)
        return sink

    yield make
    for server in servers:
        await server.close()


Client = TestClient[Any, Any]
MakeRelay = Callable[..., Awaitable[Client]]
MakeSink = Callable[..., Awaitable[Sink]]

#: A PostgreSQL server the tests may create databases on (.ci/run starts one and sets it).
POSTGRES_URL = os.environ.get("RELAY_TEST_POSTGRES_URL")
NO_POSTGRES = ("PostgreSQL not available: set RELAY_TEST_POSTGRES_URL to a server the tests "
               "may create databases on (.ci/run installs and starts one)")


@contextlib.asynccontextmanager
async def fresh_postgres_db() -> AsyncIterator[str]:
    """A new, empty database on the test server (skips without one); dropped after."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    name = "relay_test_" + secrets.token_hex(6)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_db() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store_url(store_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty store of each kind: one test, run once per implementation."""
    if store_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.db'}"
        return
    async with fresh_postgres_db() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, empty store of each kind, closed after the test (modules that need one
    kind or its own attributes define their own)."""
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


KEYS = {"sms": "sms-key-0123", "internationalsms": "intl-key-4567", "mms": "mms-key-89ab",
        "mail": "mail-key-cdef", "voice": "voice-key-0246", "shorturl": "short-key-1357"}


def signed(product: str, fields: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """A push with a fresh token, signed with the product's test key."""
    token = secrets.token_hex(16)
    out = {k: v for k, v in fields.items() if k not in ("token", "signature")}
    out["token"] = token
    out["signature"] = sign(token, key or KEYS[product])
    return out


def relay_config(routes: str, extra: str = "", store: str = "relay.db") -> str:
    subhooks = "\n".join(
        f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}, old-{k}]}}" for p, k in KEYS.items()
    )
    return (f"listen: 127.0.0.1:0\nstore: sqlite:///{store}\nsubhooks:\n{subhooks}\n"
            f"routes:\n{routes}\n"
            "retry: {max_attempts: 5, initial_delay: 10ms, max_delay: 50ms, max_age: 1h}\n"
            + extra)


@pytest.fixture
async def make_relay(
    tmp_path: Path, aiohttp_client: Any
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    """Factory: a relay app on a real SQLite file, driven through a real HTTP client; each
    relay made in one test has its own file (one relay serves one file)."""
    made = 0

    async def make(routes: str, extra: str = "") -> TestClient[Any, Any]:
        nonlocal made
        made += 1
        path = tmp_path / "relay.yaml"
        db = tmp_path / ("relay.db" if made == 1 else f"relay{made}.db")
        path.write_text(relay_config(routes, extra, store=str(db)), encoding="utf-8")
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(RunningConfig.load(path), message_poll=0.05))
        return client

    return make


# -- relay processes (tests/relayproc.py) ------------------------------------------------
# Imported here, below KEYS and signed, which relayproc takes from this module.
from relayproc import FlakySink, Relay, StartRelay, free_port, write_relay_config  # noqa: E402


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


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[StartRelay]:
    """Factory: `relay serve` on tmp_path/relay.yaml (rewritten when routes are given),
    always the same port and database, so a second call is a restart; killed at the end."""
    started: list[Relay] = []
    port = free_port()

    async def start(routes: str | None = None) -> Relay:
        config = tmp_path / "relay.yaml"
        if routes is not None:
            write_relay_config(config, port, routes, tmp_path / "relay.db")
        relay = Relay(config, port, tmp_path)
        started.append(relay)
        await relay.start()
        return relay

    yield start
    for relay in started:
        relay.stop()


# -- waiting on conditions, not on the clock ---------------------------------------------
from relay.store import deliveries  # noqa: E402
from relay.web.state import STORE, WORKER  # noqa: E402


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0,
                     what: str = "the condition", every: float = 0.02) -> None:
    """Wait until ``check()`` holds, asking every ``every`` seconds; fail after ``within``
    naming ``what`` (the one polling loop tests use, instead of writing their own)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not hold within {within} s"
        await asyncio.sleep(every)


async def wait_settled(client: Client, within: float = 10.0) -> tuple[int, int]:
    """Wait until the in-process relay's store holds no pending delivery (each one delivered
    or dead) and its worker has no attempt in flight: from then on it sends nothing more, so
    what a service received is final. Returns the store's (pending, dead) counts."""
    assert client.app is not None
    store, worker = client.app[STORE], client.app[WORKER]
    counts = (0, 0)

    async def settled() -> bool:
        nonlocal counts
        counts = await deliveries.counts(store)
        return counts[0] == 0 and sum(worker.in_flight.values()) == 0

    await eventually(settled, within, "every delivery delivered or dead, none in flight")
    return counts


# -- rows in a store, made through its own hot path (the ops tests) --------------------------

async def make_dead(store: Store, count: int, destination: str = "a", product: str = "sms",
                    event: str = "delivered", at: float | None = None) -> list[int]:
    """``count`` dead letters to ``destination``, each of its own event, one attempt each
    (a 400); their delivery ids."""
    now = time.time() if at is None else at
    for _ in range(count):
        n = secrets.token_hex(6)
        fields = json.dumps({"events": event, "address": "13812345678", "send_id": n})
        await store.ingest(NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", product, event,
                                    None, fields, b"", "text/plain", now,
                                    ((destination, now + 3600),)))
    claimed = await store.claim(destination, count, "test", now + 60, now + 1)
    await store.record([AttemptRecord(c.id, 1, now, 5.0, 400, "HTTP 400", "dead")
                        for c in claimed])
    return sorted(c.id for c in claimed)


async def make_held(store: Store, count: int, product: str = "sms",
                    fields: dict[str, Any] | None = None) -> list[int]:
    """``count`` pushes in quarantine (each its own identity); their ids."""
    given = json.dumps(fields if fields is not None else {"events": "delivered"})
    return [await store.quarantine(QuarantinedPush(
        f"held-{secrets.token_hex(6)}", f"/subhook/{product}", product, given, b"",
        "text/plain", '["x: missing"]', time.time())) for _ in range(count)]
