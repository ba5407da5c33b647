"""Several `relay serve` instances on one PostgreSQL store, as behind a load balancer.

Skipped, with the reason, without a PostgreSQL server (RELAY_TEST_POSTGRES_URL; .ci/run
installs and starts one).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import signed
from relayproc import Relay, free_port, subhooks_yaml, wait_until

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
