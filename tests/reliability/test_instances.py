"""Several `relay serve` instances on one PostgreSQL store, as behind a load balancer,
and the instance heartbeats that void the leases of one that died.

Skipped, with the reason, without a PostgreSQL server (RELAY_TEST_POSTGRES_URL; .ci/run
installs and starts one).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import signed
from relayproc import Relay, free_port, subhooks_yaml, wait_until

from relay.constants import DEFAULT_HEARTBEAT_S, DEFAULT_INSTANCE_DEAD_AFTER_S
from relay.store import NewEvent, deliveries
from relay.store.postgres import PostgresStore

pytestmark = pytest.mark.timeout(240)

ADMIN = "instances-admin-token"


class Watcher:
    """A service that notices a delivery arriving while the same one is still in flight,
    fails a share of requests, and refuses events as 'picky' until told otherwise."""

    def __init__(self) -> None:
        self.in_flight: set[tuple[str, str]] = set()
        self.overlaps: list[tuple[str, str]] = []
        self.accepted: dict[str, set[str]] = {"steady": set(), "picky": set()}
        self.requests = 0
        self.picky_refuses = True
        self.server: TestServer | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            self.requests += 1
            name = request.match_info["name"]
            key = (name, request.headers["webhook-id"])
            if key in self.in_flight:
                self.overlaps.append(key)
            self.in_flight.add(key)
            try:
                body = await request.json()
                await asyncio.sleep(random.uniform(0, 0.02))
                if name == "picky" and self.picky_refuses:
                    return web.Response(status=400)
                if random.random() < 0.3:
                    return web.Response(status=503)
                self.accepted[name].add(body["send_id"])
                return web.Response(text="ok")
            finally:
                self.in_flight.discard(key)

        app = web.Application()
        app.router.add_post("/{name}", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/"))


def config_for(port: int, store: str, base: str) -> str:
    subhooks = subhooks_yaml()
    return (f"listen: 127.0.0.1:{port}\nstore: {store}\nsubhooks:\n{subhooks}\n"
            f"admin: {{token: {ADMIN}}}\nlease_margin: 2s\n"
            "routes:\n  - name: all\n    destinations:\n"
            f"      - {{name: steady, url: '{base}steady', timeout: 1s}}\n"
            f"      - {{name: picky, url: '{base}picky', timeout: 1s}}\n"
            "retry: {max_attempts: 50, initial_delay: 20ms, max_delay: 200ms, max_age: 1h}\n")


async def test_three_instances_one_killed_lose_nothing_and_never_overlap(
    tmp_path: Path, postgres_url: str
) -> None:
    """Pushes spread over three instances; one is SIGKILLed midway. Every acknowledged
    event reaches the steady service; no delivery is ever in flight twice at once; the
    picky service's dead letters are listed by one instance and replayed through another."""
    watcher = Watcher()
    base = await watcher.start()
    relays: list[Relay] = []
    for n in range(3):
        folder = tmp_path / f"i{n}"
        folder.mkdir()
        port = free_port()
        config = folder / "relay.yaml"
        config.write_text(config_for(port, postgres_url, base), encoding="utf-8")
        relays.append(Relay(config, port, folder))
    await asyncio.gather(*(r.start() for r in relays))
    acked: set[str] = set()
    per_instance = [0, 0, 0]
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def push(index: int) -> None:
                target = index % 3
                send_id = f"m-{index}"
                fields = signed("sms", {"events": "delivered", "address": "13800000000",
                                        "app": 1, "send_id": send_id,
                                        "timestamp": int(time.time())})
                try:
                    async with session.post(relays[target].url + "/subhook/sms",
                                            data=fields) as response:
                        if response.status == 200:
                            acked.add(send_id)
                            per_instance[target] += 1
                except (TimeoutError, aiohttp.ClientError):
                    pass

            for batch in range(30):
                await asyncio.gather(*(push(batch * 20 + i) for i in range(20)))
                if batch == 12:
                    assert relays[1].signal(signal.SIGKILL) == -signal.SIGKILL
            assert per_instance[1] > 0 and per_instance[0] > 0 and per_instance[2] > 0
            await wait_until(lambda: acked <= watcher.accepted["steady"], 60,
                             "acknowledged events missing at the steady service")
            assert watcher.overlaps == []

            # Dead letters, made on every instance, listed by one and replayed by another.
            headers = {"Authorization": f"Bearer {ADMIN}"}

            async def dead_count() -> int:
                async with session.get(relays[0].url + "/admin/dead",
                                       headers=headers) as response:
                    return len((await response.json())["dead_letters"])

            deadline = time.monotonic() + 60
            while await dead_count() < len(acked):
                assert time.monotonic() < deadline, "picky deliveries did not all die"
                await asyncio.sleep(0.2)
            watcher.picky_refuses = False
            async with session.post(relays[2].url + "/admin/dead/replay", json={"all": True},
                                    headers=headers) as response:
                assert (await response.json())["replayed"] == len(acked)
            await wait_until(lambda: acked <= watcher.accepted["picky"], 60,
                             "replayed dead letters not delivered")
            assert watcher.overlaps == []
    finally:
        for relay in relays:
            relay.stop()
        assert watcher.server is not None
        await watcher.server.close()
    print(f"\ninstances: 3 on PostgreSQL, one SIGKILLed after 260 pushes; {len(acked)} "
          f"acknowledged ({per_instance} per instance), {watcher.requests} requests at the "
          f"services, no overlapping delivery, {len(acked)} dead letters replayed through "
          f"another instance, {time.monotonic() - started:.1f} s")


# -- heartbeats: a dead instance's leases are void after dead_after, a live one's never ----


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Stores to open on one database (each one an instance); closed after the test."""
    made: list[PostgresStore] = []
    yield made
    for store in made:
        await store.close()


async def instance(made: list[PostgresStore], url: str, *,
                   heartbeat_interval: float = DEFAULT_HEARTBEAT_S,
                   dead_after: float = DEFAULT_INSTANCE_DEAD_AFTER_S) -> PostgresStore:
    store = PostgresStore(url, heartbeat_interval=heartbeat_interval, dead_after=dead_after)
    made.append(store)
    await store.open()
    return store


async def one_pending(store: PostgresStore) -> None:
    now = time.time()
    assert await store.ingest(NewEvent("msg_1", "identity-1", "token-1", "sms", "delivered",
                                       None, "{}", b"", "text/plain", now,
                                       (("a", now + 3600),))) is not None


async def test_a_live_instance_keeps_its_leases_past_dead_after(
    stores: list[PostgresStore], postgres_url: str
) -> None:
    """An instance that keeps beating keeps its lease, however long past dead_after: the
    other instance, claiming all along, never gets the row while the lease holds."""
    dead_after = 2.0
    holder = await instance(stores, postgres_url, heartbeat_interval=0.2,
                            dead_after=dead_after)
    other = await instance(stores, postgres_url, heartbeat_interval=0.2,
                           dead_after=dead_after)
    await one_pending(holder)
    assert len(await holder.claim("a", 10, "holder", time.time() + 3600, time.time())) == 1
    # A lease kept can only be shown over time: twice dead_after, trying all along.
    deadline = time.monotonic() + 2 * dead_after
    claims = 0
    while time.monotonic() < deadline:
        assert await other.claim("a", 10, "other", time.time() + 60, time.time()) == []
        assert await deliveries.pending_destinations(other, time.time()) == []
        claims += 1
        await asyncio.sleep(0.05)
    assert claims > 10


async def test_leases_of_an_instance_that_stopped_heartbeating_are_claimed_again(
    stores: list[PostgresStore], postgres_url: str
) -> None:
    """An instance that stops beating (here: beats only when it claims, as one killed
    right after its claim would) loses its lease dead_after later, never sooner, although
    the lease runs for an hour."""
    dead_after = 1.0
    silent = await instance(stores, postgres_url, heartbeat_interval=3600.0)
    other = await instance(stores, postgres_url, dead_after=dead_after)
    await one_pending(silent)
    started = time.monotonic()
    (held,) = await silent.claim("a", 10, "silent", time.time() + 3600, time.time())
    while not (taken := await other.claim("a", 10, "other", time.time() + 60, time.time())):
        assert time.monotonic() - started < dead_after + 10, "dead instance's lease held"
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    assert [d.id for d in taken] == [held.id]
    assert elapsed >= dead_after
    print(f"\nlease of an instance silent for dead_after={dead_after} s claimed again "
          f"{elapsed:.2f} s after its claim")


async def test_closing_a_store_frees_its_leases_at_once(
    stores: list[PostgresStore], postgres_url: str
) -> None:
    """A store that closes removes its heartbeats: what it still leases (its release
    failed, say) is free at once for the others, not after dead_after."""
    leaving = await instance(stores, postgres_url)
    other = await instance(stores, postgres_url)
    await one_pending(leaving)
    (held,) = await leaving.claim("a", 10, "leaving", time.time() + 3600, time.time())
    assert await other.claim("a", 10, "other", time.time() + 60, time.time()) == []
    await leaving.close()
    (taken,) = await other.claim("a", 10, "other", time.time() + 60, time.time())
    assert taken.id == held.id


# -- the same through `relay serve` processes, one SIGKILLed mid-delivery -----------------


class Holder:
    """A service that holds every request open until released, noting when each came."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), webhook-id)
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.arrivals.append((time.monotonic(), request.headers["webhook-id"]))
            await self.release.wait()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hold", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hold"))


async def delivery_row(url: str) -> tuple[str, str | None]:
    """(state, lease_owner) of the test's one delivery."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT state, lease_owner FROM deliveries")
    finally:
        await conn.close()
    assert row is not None
    return row["state"], row["lease_owner"]


def owner_pid(owner: str | None) -> int:
    """The pid in a worker's lease owner (``host:pid:app``)."""
    assert owner is not None
    return int(owner.rsplit(":", 2)[1])


#: How soon after the SIGKILL the delivery must be sent again: dead_after, plus slack for
#: a loaded machine; timeout + lease_margin (90 s here) is what leases alone would take.
REDELIVERED_WITHIN_S = 25.0


async def test_delivery_of_a_sigkilled_instance_is_sent_again_within_dead_after(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two instances; the service holds the one delivery open (timeout 60 s, so the lease
    runs 90 s); the instance sending it is SIGKILLed. The other sends it again within
    dead_after (15 s) and some slack, and it is recorded delivered."""
    holder = Holder()
    url = await holder.start()
    relays: list[Relay] = []
    for n in range(2):
        folder = tmp_path / f"i{n}"
        folder.mkdir()
        port = free_port()
        config = folder / "relay.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{port}\nstore: {postgres_url}\nsubhooks:\n{subhooks_yaml()}\n"
            "routes:\n  - name: all\n    destinations:\n"
            f"      - {{name: held, url: '{url}', timeout: 60s}}\n", encoding="utf-8")
        relays.append(Relay(config, port, folder))
    try:
        await asyncio.gather(*(r.start() for r in relays))
        fields = signed("sms", {"events": "delivered", "address": "13800000000", "app": 1,
                                "send_id": "held-1", "timestamp": int(time.time())})
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                session.post(relays[0].url + "/subhook/sms", data=fields) as response:
            assert response.status == 200
        await wait_until(lambda: len(holder.arrivals) == 1, 30, "delivery never sent")
        # The lease was committed before the request went out: its owner names the sender.
        state, owner = await delivery_row(postgres_url)
        assert state == "pending"
        by_pid = {r.proc.pid: r for r in relays if r.proc is not None}
        sender = by_pid[owner_pid(owner)]
        survivor = next(r for r in relays if r is not sender)
        assert sender.signal(signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.monotonic()
        assert len(holder.arrivals) == 1  # nothing sent twice while the sender lived
        await wait_until(lambda: len(holder.arrivals) >= 2, 90,
                         "the killed instance's delivery was never sent again")
        again = holder.arrivals[1][0] - killed_at
        assert holder.arrivals[1][1] == holder.arrivals[0][1]
        assert again < REDELIVERED_WITHIN_S, (
            f"sent again {again:.1f} s after the SIGKILL; dead_after is "
            f"{DEFAULT_INSTANCE_DEAD_AFTER_S} s")
        state, owner = await delivery_row(postgres_url)
        assert survivor.proc is not None and owner_pid(owner) == survivor.proc.pid
        holder.release.set()
        deadline = time.monotonic() + 30
        while (await delivery_row(postgres_url))[0] != "delivered":
            assert time.monotonic() < deadline, "the second attempt was not recorded"
            await asyncio.sleep(0.1)
        assert len(holder.arrivals) == 2
    finally:
        holder.release.set()
        for relay in relays:
            relay.stop()
        assert holder.server is not None
        await holder.server.close()
    print(f"\nSIGKILL mid-delivery (timeout 60 s, lease 90 s): sent again by the other "
          f"instance {again:.1f} s after the kill (dead_after "
          f"{DEFAULT_INSTANCE_DEAD_AFTER_S:.0f} s)")
