"""Faults: crash, destination outage, a store that cannot write, SIGTERM under load.

Each test drives real `relay serve` processes (or the app in-process where it needs to
reach the store's connection) against real aiohttp services on 127.0.0.1, and prints the
figures docs/reliability.md quotes (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import MakeRelay, MakeSink, signed, wait_settled
from relayproc import (
    MakeFlaky,
    Relay,
    StartRelay,
    free_port,
    one_route,
    push_many,
    wait_until,
    write_relay_config,
)

from relay.store.sqlite import SqliteStore
from relay.web.state import STORE

pytestmark = pytest.mark.timeout(240)


def _delivered(send_id: str) -> dict[str, Any]:
    return signed("sms", {"events": "delivered", "address": "13800000000", "app": 1,
                          "send_id": send_id, "timestamp": int(time.time())})


async def test_sigkill_at_random_moments_loses_nothing(
    start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGKILL at a random moment of each round while pushes arrive and deliveries both fail
    and succeed; after the last restart every 200'd send_id reaches both services."""
    flaky, flaky_url = await make_flaky(0.4)
    steady, steady_url = await make_flaky(0.0)
    acked: set[str] = set()
    rounds = 6
    started = time.monotonic()
    for round_ in range(rounds):
        relay = await start_relay(one_route(flaky_url, steady_url) if round_ == 0 else None)
        before = len(acked)
        pushing = asyncio.create_task(push_many(relay.url, round_ * 100_000, 20_000, acked))
        # The kill's random moment, not a wait for an outcome; the assertion below checks
        # that it landed while pushes were still being acknowledged.
        await asyncio.sleep(random.uniform(0.2, 1.0))
        assert relay.signal(signal.SIGKILL) == -signal.SIGKILL
        await pushing
        # the kill must land while pushes are still being acknowledged
        assert 0 < len(acked) - before < 20_000
    relay = await start_relay()
    assert len(acked) > 100, "too few pushes were acknowledged to test anything"
    await wait_until(lambda: acked <= steady.accepted and acked <= flaky.accepted, 90,
                     "acknowledged events missing after restart")
    assert relay.signal(signal.SIGTERM) == 0
    print(f"\nsigkill: {rounds} rounds, {len(acked)} acknowledged, {flaky.requests} attempts at"
          f" the flaky service, {time.monotonic() - started:.1f} s")


async def test_sigterm_under_load_loses_nothing_and_releases_leases(
    tmp_path: Path, start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGTERM while pushes arrive and a service fails a third of the time: exit 0, no row
    left leased, and the restart delivers every acknowledged event."""
    flaky, url = await make_flaky(0.33)
    relay = await start_relay(one_route(url))
    acked: set[str] = set()
    pushing = asyncio.create_task(push_many(relay.url, 0, 20_000, acked))
    await asyncio.sleep(1.0)  # the stop's moment, under load; checked below: mid-stream
    assert relay.signal(signal.SIGTERM) == 0
    await pushing
    assert 0 < len(acked) < 20_000
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        leased = conn.execute("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
        assert leased.fetchone()[0] == 0
    await start_relay()
    await wait_until(lambda: acked <= flaky.accepted, 60, "acknowledged events missing")
    print(f"\nsigterm: {len(acked)} acknowledged before the stop, all delivered after restart")


class Outage:
    """A service at a fixed port that is down (port closed), then answers 503, then hangs
    past the relay's timeout, then is back; records when each send_id arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "closed"
        self.accepted: dict[str, float] = {}
        self.server: TestServer | None = None

    async def open(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if self.mode == "503":
                return web.Response(status=503)
            if self.mode == "hang":
                await asyncio.sleep(2)  # holds the answer past the relay's 300 ms timeout
                return web.Response(status=503)
            self.accepted.setdefault(body["send_id"], time.monotonic())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()


async def test_destination_outage_backs_off_and_never_delays_others(
    tmp_path: Path, start_relay: StartRelay, make_sink: MakeSink
) -> None:
    """One service is down (closed port, then 503s, then timeouts) and then back: everything
    reaches it, its attempt log shows each failure and widening gaps, and the healthy service
    gets every event within a second all along."""
    outage = Outage()
    healthy = await make_sink()
    routes = (
        "  - name: all\n    destinations:\n"
        f"      - {{name: down, url: 'http://127.0.0.1:{outage.port}/hook', timeout: 300ms,"
        # no breaker: this is about backoff, and every failure kind must be attempted
        " retry: {max_attempts: 200, initial_delay: 40ms, max_delay: 600ms}, breaker: off}\n"
        f"      - {{name: up, url: '{healthy.url}'}}")
    relay = await start_relay(routes)
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def push_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                send_id = f"o-{len(sent)}"
                async with session.post(relay.url + "/subhook/sms",
                                        data=_delivered(send_id)) as response:
                    assert response.status == 200
                sent[send_id] = time.monotonic()
                await asyncio.sleep(0.1)  # paces the pushes, ten a second through each phase

        await push_for(1.5)            # port closed
        await outage.open()
        outage.mode = "503"
        await push_for(1.5)
        outage.mode = "hang"
        await push_for(1.5)
        outage.mode = "up"
        back = time.monotonic()
    assert outage.server is not None
    try:
        await wait_until(lambda: set(sent) <= set(outage.accepted), 30,
                         "not everything reached the service after the outage")
        await healthy.wait_for(len(sent))
    finally:
        await outage.server.close()
    # The healthy service never waited for the broken one.
    arrived = {r.json()["send_id"]: r.at for r in healthy.received}
    lag = max(arrived[s] - at for s, at in sent.items())
    assert lag < 1.0, f"the healthy service waited {lag:.2f}s"
    # Attempt log of the broken one: each failure kind recorded, gaps widening with attempts.
    assert relay.signal(signal.SIGTERM) == 0
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        rows = conn.execute(
            "SELECT d.id, a.started_at, a.error FROM attempts a JOIN deliveries d"
            " ON d.id = a.delivery_id WHERE d.destination = 'down' ORDER BY a.id").fetchall()
    errors = " ".join(str(e) for _, _, e in rows)
    assert "ConnectError: Connection refused" in errors and "HTTP 503" in errors \
        and "timeout" in errors
    times: dict[int, list[float]] = {}
    for delivery, started_at, _ in rows:
        times.setdefault(delivery, []).append(started_at)
    gaps = [[b - a for a, b in itertools.pairwise(t)] for t in times.values()]
    early = [g for one in gaps for g in one[:2]]
    late = [g for one in gaps for g in one[4:]]
    assert early and late
    mean_early, mean_late = sum(early) / len(early), sum(late) / len(late)
    assert mean_late > 2 * mean_early, (mean_early, mean_late)
    most = max(len(t) for t in times.values())
    # Retrying at the initial delay for the whole outage would take outage / 40 ms attempts.
    outage_s = back - min(sent.values())
    assert most < outage_s / 0.04 / 3, (most, outage_s)
    print(f"\noutage: {len(sent)} events, {len(rows)} failed-or-not attempts at the broken "
          f"service, at most {most} for one event; mean gap {mean_early * 1000:.0f} ms for "
          f"attempts 1-2, {mean_late * 1000:.0f} ms from attempt 5; healthy lag max "
          f"{lag * 1000:.0f} ms")


@pytest.mark.parametrize("fault", ["read_only", "page_limit"])
async def test_store_that_cannot_write_answers_503_then_recovers(
    make_relay: MakeRelay, make_sink: MakeSink, fault: str
) -> None:
    """SQLite refusing writes (read-only, or full: max_page_count reached, SQLite's own
    SQLITE_FULL path): pushes get 503 with Retry-After, and a push answered 200 is one that
    was stored; once the store can write again, the refused pushes re-sent are accepted and
    every event is delivered exactly once."""
    sink = await make_sink()
    client = await make_relay(f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}')
    assert client.app is not None
    store = client.app[STORE]
    assert isinstance(store, SqliteStore)

    def break_store(conn: sqlite3.Connection) -> None:
        if fault == "read_only":
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")

    def mend_store(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA query_only = OFF")
        conn.execute("PRAGMA max_page_count = 1073741823")

    assert (await client.post("/subhook/sms", data=_delivered("warm"))).status == 200
    await store._run(break_store)
    pushes = [_delivered(f"f-{i}") for i in range(60)]
    refused = []
    for fields in pushes:
        response = await client.post("/subhook/sms", data=fields)
        assert response.status in (200, 503)
        if response.status == 503:
            assert response.headers["Retry-After"]
            assert (await response.json())["error"] == "store_unavailable"
            refused.append(fields)
    # Read-only refuses everything; a full file may still fit a few rows in free space.
    assert len(refused) == 60 if fault == "read_only" else len(refused) >= 40
    await store._run(mend_store)
    for fields in refused:
        assert (await client.post("/subhook/sms", data=fields)).status == 200
    await sink.wait_for(61)
    # Every delivery delivered or dead in the store, none in flight: no copy can still come.
    await wait_settled(client)
    assert sorted(r.json()["send_id"] for r in sink.received) == \
        sorted(["warm"] + [str(f["send_id"]) for f in pushes])


async def test_full_disk_answers_503_then_recovers(tmp_path: Path, make_sink: MakeSink) -> None:
    """The store on a real 16 MiB filesystem filled up: pushes get 503, no push answered 200
    is lost, and once space is freed the relay takes pushes again without a restart."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {made.stderr.strip()}")
    sink = await make_sink()
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_relay_config(config, port, one_route(sink.url), mount / "relay.db")
    relay = Relay(config, port, tmp_path)
    try:
        await relay.start()
        filler = mount / "filler"
        with filler.open("wb") as out:  # leave about 200 KiB free
            free = shutil.disk_usage(mount).free
            out.write(b"\0" * max(0, free - 200 * 1024))
        acked: list[str] = []
        refused: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for i in range(400):
                fields = _delivered(f"d-{i}")
                async with session.post(relay.url + "/subhook/sms", data=fields) as response:
                    assert response.status in (200, 503), await response.text()
                    if response.status == 200:
                        acked.append(str(fields["send_id"]))
                    else:
                        refused.append(fields)
            assert len(refused) > 100, "the filesystem never filled up"
            filler.unlink()
            # SUBMAIL re-pushes what got 503; the relay takes it once the store can write.
            deadline = time.monotonic() + 10
            for fields in refused:
                while True:
                    async with session.post(relay.url + "/subhook/sms", data=fields) as response:
                        if response.status == 200:
                            break
                        assert response.status == 503
                    assert time.monotonic() < deadline, shutil.disk_usage(mount)
                    await asyncio.sleep(0.1)  # SUBMAIL's re-push pace; a loop with a deadline
        await sink.wait_for(400, within=30)
        assert sorted({r.json()["send_id"] for r in sink.received}) == \
            sorted(f"d-{i}" for i in range(400))
        assert relay.signal(signal.SIGTERM) == 0
        print(f"\ndisk full: {len(acked)} accepted before and while full, {len(refused)} "
              "refused with 503, all 400 delivered once space was freed")
    finally:
        relay.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)
