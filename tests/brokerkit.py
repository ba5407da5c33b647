"""What the broker tests share (tests/test_senders_*.py): real servers, read back.

The servers are the ones .ci/run starts (.ci/nats, .ci/rabbitmq, .ci/redis) and announces
in RELAY_TEST_NATS_URL, RELAY_TEST_AMQP_URL and RELAY_TEST_REDIS_URL. Without one, its tests
are skipped with the reason; where RELAY_TEST_REQUIRE_BROKERS=1 (.ci/run sets it) they fail
instead. A test that stops a broker mid-test starts a private one with the same script in
its own folder, so the shared server is never stopped under another test.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from conftest import (
    ROOT,
    Client,
    MakeRelay,
    MakeSink,
    eventually,
    signed,
    unavailable,
    wait_settled,
)
from standardwebhooks import Webhook

ENV = {"nats": "RELAY_TEST_NATS_URL", "amqp": "RELAY_TEST_AMQP_URL",
       "redis": "RELAY_TEST_REDIS_URL"}
SCRIPTS = {"nats": ".ci/nats", "amqp": ".ci/rabbitmq", "redis": ".ci/redis"}
SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
#: A destination that retries for ever, fast, with no breaker in the way.
PATIENT = ("timeout: 2s, breaker: off, "
           "retry: {max_attempts: null, initial_delay: 100ms, max_delay: 500ms}")
#: How long a broker is down in the outage tests (the issue's 20 s).
OUTAGE_S = 20.0


def server_url(kind: str) -> str:
    """The shared test server of ``kind``, or a skip (a failure where brokers are required)."""
    url = os.environ.get(ENV[kind])
    if url:
        return url
    reason = (f"no {kind} server: set {ENV[kind]} (`bash {SCRIPTS[kind]} start DIR` installs "
              "Debian's package, starts one and prints its URL; .ci/run does it)")
    unavailable(reason, "RELAY_TEST_REQUIRE_BROKERS")


class PrivateServer:
    """A server of its own for one test, stopped and started again by it."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind, self.folder, self.url = kind, folder, ""

    async def _script(self, action: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run, ["bash", str(ROOT / SCRIPTS[self.kind]), action, str(self.folder)],
            capture_output=True, text=True, check=False, timeout=180)
        assert done.returncode == 0, f"{self.kind} {action}: {done.stderr}"
        return done.stdout.strip()

    async def start(self) -> str:
        self.url = await self._script("start")
        return self.url

    async def stop(self) -> None:
        await self._script("stop")


@contextlib.asynccontextmanager
async def private_server(kind: str, tmp_path: Path) -> AsyncIterator[PrivateServer]:
    server_url(kind)  # the same skip (or failure) as the shared server's tests
    # Not under tmp_path: as root RabbitMQ runs as its own user, which must pass through
    # every folder above its own, and pytest's are private (0700).
    _ = tmp_path
    folder = Path(tempfile.mkdtemp(prefix=f"relay-test-{kind}-"))
    server = PrivateServer(kind, folder / "server")
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Arrived:
    """One message as a consumer of the broker reads it."""

    webhook_id: str
    body: bytes
    headers: dict[str, str]


class BrokerSide(abc.ABC):
    """The consumer's side of one broker in a test: where the relay publishes (a name of
    its own on the server) and what arrived there."""

    def __init__(self, server: str, name: str) -> None:
        self.server, self.name = server, name

    @property
    @abc.abstractmethod
    def destination_url(self) -> str: ...

    @abc.abstractmethod
    async def prepare(self) -> None:
        """Make what the destination publishes into (a stream, a bound queue)."""

    @abc.abstractmethod
    async def arrived(self) -> list[Arrived]:
        """Every message there, oldest first (read with a connection of its own)."""

    @abc.abstractmethod
    async def refuse(self) -> None:
        """Make the broker refuse the relay's messages (no stream, unroutable, wrong type)."""

    @abc.abstractmethod
    async def accept(self) -> None:
        """Undo ``refuse``."""


async def push(client: Client, send_id: str) -> str:
    fields = signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                            "send_id": send_id, "timestamp": int(time.time())})
    response = await client.post("/subhook/sms", json=fields)
    body = await response.json()
    assert response.status == 200, body
    return str(body["webhook_id"])


def destination(name: str, url: str, extra: str = "") -> str:
    return f'{{name: {name}, url: "{url}"{", " + extra if extra else ""}}}'


def routes(*destinations: str) -> str:
    return f"  - {{name: all, destinations: [{', '.join(destinations)}]}}"


async def arrived_ids(side: BrokerSide) -> list[str]:
    return [m.webhook_id for m in await side.arrived()]


def events_show(config: Path, webhook_id: str) -> str:
    """What ``relay events show`` prints of one event, run as a shell would."""
    done = subprocess.run([sys.executable, "-m", "relay", "events", "show",
                           "--config", str(config), webhook_id],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the three scenarios every broker passes ---------------------------------------------

async def arrives_once_with_the_http_body(side: BrokerSide, make_relay: MakeRelay,
                                          make_sink: MakeSink) -> None:
    """One event, routed to an HTTP sink and the broker: the broker holds it once, with
    the body the sink got and the webhook-id; where the broker has headers, they are
    SPEC 6's and the signature verifies."""
    await side.prepare()
    sink = await make_sink()
    client = await make_relay(routes(
        destination("http", sink.url, f"secret: {SECRET}"),
        destination("broker", side.destination_url, f"secret: {SECRET}")))
    webhook_id = await push(client, "s1")
    [posted] = await sink.wait_for(1)
    await wait_settled(client)
    [message] = await side.arrived()
    assert message.webhook_id == webhook_id
    assert message.body == posted.body
    if message.headers:
        assert message.headers["webhook-id"] == webhook_id
        assert message.headers["X-Subhook-Product"] == "sms"
        assert message.headers["X-Subhook-Event"] == "delivered"
        assert message.headers["X-Relay-Attempt"] == "1"
        Webhook(SECRET).verify(message.body, message.headers)


async def survives_an_outage(side: BrokerSide, server: PrivateServer, make_relay: MakeRelay,
                             config: Path) -> None:
    """Five events delivered; the broker stopped for 20 s while five more are accepted (and
    their attempts fail); started again: all ten arrive, each once."""
    await side.prepare()
    client = await make_relay(routes(destination("broker", side.destination_url, PATIENT)))
    before = [await push(client, f"b{i}") for i in range(5)]
    await wait_settled(client, within=30)
    assert sorted(await arrived_ids(side)) == sorted(before)
    await server.stop()
    down_since = time.monotonic()
    during = [await push(client, f"d{i}") for i in range(5)]

    async def failed_for_the_whole_outage() -> bool:
        shown = await asyncio.to_thread(events_show, config, during[-1])
        return "to broker: pending" in shown and " attempt 2 " in shown \
            and time.monotonic() - down_since >= OUTAGE_S

    await eventually(failed_for_the_whole_outage, OUTAGE_S + 30, "failed attempts while down",
                     every=0.1)
    await server.start()
    await wait_settled(client, within=60)
    ids = await arrived_ids(side)
    assert sorted(ids) == sorted(before + during), "lost or duplicated across the restart"
    assert len(ids) == 10


async def refusal_is_retryable(side: BrokerSide, make_relay: MakeRelay, config: Path,
                               refusal: str) -> None:
    """A broker that refuses the message: a retryable failure, pending with its error in
    `relay events show`; delivered once the broker accepts it again."""
    await side.prepare()
    await side.refuse()
    client = await make_relay(routes(destination("broker", side.destination_url, PATIENT)))
    webhook_id = await push(client, "r1")
    shown = ""

    async def refused() -> bool:
        nonlocal shown
        shown = await asyncio.to_thread(events_show, config, webhook_id)
        return "attempt 1 " in shown

    await eventually(refused, 20, "a failed attempt recorded", every=0.1)
    assert "to broker: pending" in shown, shown
    assert refusal in shown, shown
    assert "failed, will retry" in shown, shown
    await side.accept()
    await wait_settled(client, within=30)
    assert await arrived_ids(side) == [webhook_id]
    assert "to broker: delivered" in events_show(config, webhook_id)
