"""Overload: far more pushes at once than the relay can take.

wrk (C, from Debian's packages; .ci/run and bench/run install it) keeps 600 connections
busy with pre-signed pushes for 8 s against a relay limited to 64 pushes in progress: the
offered rate is several times what the relay can accept (bench: about 5,000/s here). The
relay must shed the excess with 503 + Retry-After, keep its memory bounded, deliver every
push it acknowledged, and take pushes normally again as soon as the load stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import ROOT, MakeSink, signed
from relayproc import Relay, free_port, subhooks_yaml

pytestmark = pytest.mark.timeout(180)

sys.path.insert(0, str(ROOT / "bench"))
from pushes import KEYS as BENCH_KEYS  # noqa: E402
from pushes import generate, write_wrk_file  # noqa: E402


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) / 1024


@pytest.mark.skipif(shutil.which("wrk") is None,
                    reason="wrk is not installed (.ci/run and bench/run install it)")
async def test_overload_is_shed_with_503_memory_stays_bounded_and_relay_recovers(
    tmp_path: Path, make_sink: MakeSink
) -> None:
    sink = await make_sink()
    port = free_port()
    subhooks = subhooks_yaml(BENCH_KEYS)
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        # wrk's 600 connections come from one address, as a load balancer's would
        # (docs/security.md): the per-address cap (64 by default) is raised for it
        f"subhooks:\n{subhooks}\n"
        "limits: {max_in_progress: 64, max_connections_per_address: 1024}\n"
        f"routes:\n  - name: all\n    destinations: [{{name: s, url: '{sink.url}'}}]\n",
        encoding="utf-8")
    pushes = tmp_path / "pushes.bin"
    write_wrk_file(generate(60_000), str(pushes))
    relay = Relay(config, port, tmp_path)
    await relay.start()
    assert relay.proc is not None
    try:
        baseline = rss_mb(relay.proc.pid)
        wrk = await asyncio.create_subprocess_exec(
            "wrk", "-t1", "-c600", "-d8s", "--timeout", "10s", "-s",
            str(ROOT / "bench" / "cycle.lua"), relay.url, "--", str(pushes), "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        peak = baseline
        while wrk.returncode is None:
            peak = max(peak, rss_mb(relay.proc.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wrk.wait(), 0.2)
        out = (await wrk.stdout.read()).decode() if wrk.stdout else ""
        line = next(x for x in out.splitlines() if x.startswith("JSON "))
        result = json.loads(line[5:])
        # Recovers by itself: a push is taken at once, or, when the pushes wrk left in
        # progress are still being stored as it arrives, after the Retry-After the 503 gave
        # (as SUBMAIL would retry it), never later.
        fields = signed("sms", {"events": "delivered", "address": "13800000000", "app": 1,
                                "send_id": "after", "timestamp": int(time.time())},
                        key=BENCH_KEYS["sms"])
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(relay.url + "/subhook/sms", data=fields) as response:
                status, answer = response.status, await response.json()
                retry_after = float(response.headers.get("Retry-After", "0"))
            if status == 503:
                assert answer["error"] == "overloaded", answer
                await asyncio.sleep(retry_after)
                async with session.post(relay.url + "/subhook/sms", data=fields) as response:
                    status, answer = response.status, await response.json()
            assert status == 200, answer
            after_ms = (time.monotonic() - started) * 1000
            async with session.get(relay.url + "/metrics") as response:
                metrics = await response.text()
        shed = sum(float(m) for m in re.findall(
            r'relay_events_received_total\{[^}]*outcome="overloaded"[^}]*\} (\S+)', metrics))
        accepted = sum(float(m) for m in re.findall(
            r'relay_events_received_total\{[^}]*outcome="accepted"[^}]*\} (\S+)', metrics))
        assert result["errors"] == 0
        assert shed > 0, "nothing was shed"
        assert result["non2xx"] > 0  # shed pushes were answered 503 (the only non-2xx here)
        assert peak - baseline < 100, f"RSS grew from {baseline:.0f} to {peak:.0f} MB"
        # Every push the relay acknowledged reaches the service.
        with sqlite3.connect(tmp_path / "relay.db") as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert stored == accepted
        await sink.wait_for(int(accepted), within=90)
        assert relay.signal(signal.SIGTERM) == 0
        print(f"\noverload: {result['requests']} requests in 8 s "
              f"({result['requests'] / 8:.0f}/s offered), {accepted:.0f} accepted, {shed:.0f} "
              f"shed with 503, RSS {baseline:.0f} -> peak {peak:.0f} MB, next push answered "
              f"in {after_ms:.1f} ms, all accepted delivered")
    finally:
        relay.stop()
