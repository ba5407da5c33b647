"""Hostile neighbours on the edge port, against a real `relay serve` process: crowds of
trickling bodies and idle connections must not starve SUBMAIL's pushes or grow memory
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import signed
from relayproc import Relay, free_port, subhooks_yaml, wait_until

pytestmark = pytest.mark.timeout(180)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def relay_config(path: Path, port: int, limits: str) -> None:
    path.write_text(f"listen: 127.0.0.1:{port}\nstore: sqlite:///{path.parent / 'relay.db'}\n"
                    f"subhooks:\n{subhooks_yaml()}\nroutes: []\nlimits: {limits}\n",
                    encoding="utf-8")


def push_fields(send_id: str) -> dict[str, object]:
    return signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                          "send_id": send_id, "timestamp": int(time.time())})


async def trickler(port: int, stop: asyncio.Event, opened: list[int], source: str) -> None:
    """Announces a 1,000-byte body and sends one byte a second; reconnects when the relay
    hangs up (read deadline), until told to stop."""
    while not stop.is_set():
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port,
                                                      local_addr=(source, 0))
            opened[0] += 1
            writer.write(b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
            while not stop.is_set():
                writer.write(b"a")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        except (ConnectionError, OSError):
            await asyncio.sleep(0.1)  # paces the reconnect; decides nothing
        finally:
            if writer is not None:
                writer.close()


async def test_500_trickling_connections_do_not_starve_real_pushes(tmp_path: Path) -> None:
    """While 500 connections trickle bodies (reconnecting as the read deadline cuts them),
    50 signed pushes are each answered 200 within 2 s, and the relay stays under 300 MB.
    The crowd comes from ten addresses (50 each, under limits.max_connections_per_address),
    the pushes from another one."""
    port = free_port()
    config = tmp_path / "relay.yaml"
    relay_config(config, port, "{read_timeout: 3s}")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    assert relay.proc is not None
    stop, opened = asyncio.Event(), [0]
    tricklers = [asyncio.create_task(trickler(port, stop, opened, f"127.0.1.{n % 10}"))
                 for n in range(500)]
    peak = rss_mb(relay.proc.pid)
    slowest = 0.0
    try:
        await wait_until(lambda: opened[0] >= 500, 30, "the crowd never connected")
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            for n in range(50):
                started = time.monotonic()
                async with session.post(f"{relay.url}/subhook/sms",
                                        data=push_fields(f"real-{n}"),
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                    assert response.status == 200, await response.text()
                slowest = max(slowest, time.monotonic() - started)
                peak = max(peak, rss_mb(relay.proc.pid))
                await asyncio.sleep(0.1)  # spreads the pushes over the read deadlines
            # the read deadline answered the trickling bodies 408 meanwhile
            async with session.get(f"{relay.url}/metrics") as response:
                metrics = await response.text()
        timed_out = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith("relay_events_received_total")
                        and 'outcome="read_timeout"' in line)
        assert timed_out >= 500
    finally:
        stop.set()
        await asyncio.gather(*tricklers, return_exceptions=True)
        relay.stop()
    print(f"500 trickling: slowest real push {slowest:.3f}s, relay peak RSS {peak:.0f} MB, "
          f"{timed_out:.0f} bodies cut by the read deadline")
    assert slowest < 2.0, f"slowest push took {slowest:.2f}s"
    assert peak < 300, f"relay peaked at {peak:.0f} MB"


async def test_connection_cap_and_idle_timeout(tmp_path: Path) -> None:
    """Connections beyond limits.max_connections are closed at once; connections that send
    no request are closed after limits.idle_timeout, freeing room for real pushes."""
    port = free_port()
    config = tmp_path / "relay.yaml"
    relay_config(config, port, "{max_connections: 20, idle_timeout: 2s}")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    idle = []
    try:
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            idle.append((reader, writer))
        async with aiohttp.ClientSession() as session:
            refused_at = time.monotonic()
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"{relay.url}/subhook/sms", data=push_fields("over"),
                                        timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
            # the idle ones are cut by the relay (EOF) after the idle timeout
            for reader, _ in idle:
                assert await asyncio.wait_for(reader.read(), 10) == b""
            assert time.monotonic() - refused_at < 8
            async with session.post(f"{relay.url}/subhook/sms", data=push_fields("after"),
                                    timeout=aiohttp.ClientTimeout(total=5)) as response:
                assert response.status == 200
    finally:
        for _, writer in idle:
            writer.close()
        relay.stop()
