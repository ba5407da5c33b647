"""CPU per event end to end, beside the bare aiohttp server's CPU per request in the same
round: ``bench/drain.py --end-to-end`` (its docstring says what is counted).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from drain import HERE, delivered, free_ports, thread_cpu
from pushes import KEYS, Push, generate


async def _push_all(base: str, pushes: list[Push], rate: float) -> dict[int, int]:
    """Every push sent, push i due at start + i/rate (open loop); the statuses answered."""
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(push: Push) -> None:
            try:
                async with session.post(base + push.path, data=push.body,
                                        headers={"Content-Type": push.content_type}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except (aiohttp.ClientError, OSError):
                statuses[0] = statuses.get(0, 0) + 1

        tasks = []
        start = time.monotonic()
        for index, push in enumerate(pushes):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(push)))
        await asyncio.gather(*tasks)
    return statuses


def push_all(base: str, pushes: list[Push], rate: float) -> dict[int, int]:
    try:
        import uvloop
        return uvloop.run(_push_all(base, pushes, rate))
    except ImportError:
        return asyncio.run(_push_all(base, pushes, rate))


def wait_listening(url: str, process: subprocess.Popen[bytes], log: Path | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server did not start: {log.read_text() if log else ''}")


def bare_round(pushes: list[Push], rate: float) -> float:
    """The bare server's CPU microseconds per request for ``pushes`` at ``rate``."""
    (port,) = free_ports(1)
    bare = subprocess.Popen([sys.executable, str(HERE / "bare.py"), str(port)])
    try:
        wait_listening(f"http://127.0.0.1:{port}/", bare, None)
        before = sum(thread_cpu(bare.pid).values())
        statuses = push_all(f"http://127.0.0.1:{port}", pushes, rate)
        after = sum(thread_cpu(bare.pid).values())
    finally:
        bare.terminate()
        bare.wait()
    assert statuses.get(200) == len(pushes), statuses
    return (after - before) * 1e6 / len(pushes)


def relay_round(pushes: list[Push], rate: float, tree: Path,
                profile: Path | None) -> dict[str, Any]:
    """The relay's CPU per event for ``pushes`` at ``rate``, from the first push until
    both deliveries of each have arrived at the sinks."""
    work = Path(tempfile.mkdtemp())
    port, sink_a, sink_b = free_ports(3)
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    config = work / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{work / 'relay.db'}\n"
        f"subhooks:\n{subhooks}\n"
        "routes:\n  - name: all\n    destinations:\n"
        f"      - {{name: a, url: 'http://127.0.0.1:{sink_a}/hook'}}\n"
        f"      - {{name: b, url: 'http://127.0.0.1:{sink_b}/hook'}}\n"
        "limits: {max_connections_per_address: 1024}\n", encoding="utf-8")
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_a), str(sink_b)],
                            stdout=subprocess.PIPE)
    assert sink.stdout is not None
    sink.stdout.readline()  # "ready"
    log = work / "relay.log"
    relay = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--config", str(config)],
                             cwd=tree, stdout=subprocess.DEVNULL,
                             stderr=open(log, "wb"))  # noqa: SIM115
    spy = None
    try:
        wait_listening(f"http://127.0.0.1:{port}/healthz", relay, log)
        time.sleep(0.5)  # past the start's one-off work
        wanted = 2 * len(pushes)
        started, before = time.monotonic(), thread_cpu(relay.pid)
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "--gil", "-p", str(relay.pid), "-d", "8", "-f", "raw",
                                    "-o", str(profile), "-r", "200"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        statuses = push_all(f"http://127.0.0.1:{port}", pushes, rate)
        deadline = time.monotonic() + 120
        while (done := delivered(sink_a)) < wanted and time.monotonic() < deadline:
            time.sleep(0.01)
        took, after = time.monotonic() - started, thread_cpu(relay.pid)
        rss = _peak_rss_mb(relay.pid)
        if spy is not None:
            spy.wait()
    finally:
        relay.terminate()
        relay.wait()
        sink.terminate()
        sink.wait()
    per_thread = {name: (after[name] - before.get(name, 0.0)) * 1e6 / len(pushes)
                  for name in after}
    return {"cpu_us": sum(per_thread.values()), "threads": per_thread, "took_s": took,
            "delivered": done, "wanted": wanted, "ok": statuses.get(200, 0),
            "statuses": statuses, "peak_rss_mb": rss}


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(events: int, rate: float, rounds: int, tree: Path,
            profile: Path | None = None, echo: bool = True) -> dict[str, Any]:
    """``rounds`` rounds, each the bare server then the relay with its own pushes; the
    medians, each round's figures, and whether every push was answered and delivered."""
    relay_us, bare_us, runs, ok = [], [], [], True
    for index in range(rounds):
        pushes = generate(events, seed=int(time.time()) * 100 + index)
        bare = bare_round(pushes, rate)
        run = relay_round(pushes, rate, tree, profile if index == 0 else None)
        run["bare_cpu_us"] = bare
        runs.append(run)
        relay_us.append(run["cpu_us"])
        bare_us.append(bare)
        ok = ok and run["delivered"] >= run["wanted"] and run["ok"] == events
        threads = ", ".join(f"{name} {us:.1f}" for name, us in sorted(run["threads"].items())
                            if us >= 0.5)
        if echo:
            print(f"round {index + 1}: relay {run['cpu_us']:.1f} CPU us/event ({threads}); "
                  f"bare {bare:.1f} CPU us/request; {run['ok']}/{events} answered 200, "
                  f"{run['delivered']}/{run['wanted']} delivered in {run['took_s']:.1f} s; "
                  f"peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
    return {"events": events, "rate": rate, "cpu_us": statistics.median(relay_us),
            "bare_cpu_us": statistics.median(bare_us), "runs_cpu_us": relay_us,
            "runs_bare_cpu_us": bare_us, "runs": runs, "all_delivered": ok,
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def end_to_end(events: int, rate: float, rounds: int, tree: Path,
               profile: Path | None) -> int:
    result = measure(events, rate, rounds, tree, profile)
    relay_median, bare_median = result["cpu_us"], result["bare_cpu_us"]
    print(f"CPU per event end to end (fan-out 2, SQLite, {rate:g} events/s): "
          f"{relay_median:.1f} us (runs "
          f"{' / '.join(f'{u:.0f}' for u in result['runs_cpu_us'])}); "
          f"bare aiohttp {bare_median:.1f} us/request (runs "
          f"{' / '.join(f'{u:.0f}' for u in result['runs_bare_cpu_us'])}); "
          f"ratio {relay_median / bare_median:.1f} x bare")
    return 0 if result["all_delivered"] else 1
