"""CPU per event end to end, beside the bare aiohttp server's CPU per request in the same
round: ``bench/drain.py --end-to-end`` (its docstring says what is counted), and
``bench/run --scaling`` with one or two relay instances on PostgreSQL, whose server's own
CPU is counted apart (``server_cpu``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from drain import HERE, delivered, free_ports, thread_cpu
from pushes import KEYS, Push, generate

#: a fresh store for each round: an SQLite file in the round's folder when None
StoreMaker = Callable[[Path], str]


async def _push_all(bases: list[str], pushes: list[Push], rate: float) -> dict[int, int]:
    """Every push sent, push i due at start + i/rate (open loop) to ``bases[i % len]``, as
    a round-robin load balancer would; the statuses answered."""
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(base: str, push: Push) -> None:
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
            tasks.append(asyncio.create_task(one(bases[index % len(bases)], push)))
        await asyncio.gather(*tasks)
    return statuses


def push_all(bases: list[str], pushes: list[Push], rate: float) -> dict[int, int]:
    try:
        import uvloop
        return uvloop.run(_push_all(bases, pushes, rate))
    except ImportError:
        return asyncio.run(_push_all(bases, pushes, rate))


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
        statuses = push_all([f"http://127.0.0.1:{port}"], pushes, rate)
        after = sum(thread_cpu(bare.pid).values())
    finally:
        bare.terminate()
        bare.wait()
    assert statuses.get(200) == len(pushes), statuses
    return (after - before) * 1e6 / len(pushes)


def relay_round(pushes: list[Push], rate: float, tree: Path, profile: Path | None,
                store: StoreMaker | None = None, instances: int = 1,
                server: int | None = None) -> dict[str, Any]:
    """The relay's CPU per event for ``pushes`` at ``rate``, from the first push until
    both deliveries of each accepted push have arrived at the sinks: all threads of all
    ``instances`` relay processes, each with its own listener on one store (``store``'s,
    or an SQLite file), the pushes taking turns over them. With ``server`` (the
    PostgreSQL postmaster's pid), that server's CPU per event too, apart."""
    work = Path(tempfile.mkdtemp())
    *ports, sink_a, sink_b = free_ports(instances + 2)
    url = store(work) if store is not None else f"sqlite:///{work / 'relay.db'}"
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_a), str(sink_b)],
                            stdout=subprocess.PIPE)
    assert sink.stdout is not None
    sink.stdout.readline()  # "ready"
    relays: list[subprocess.Popen[bytes]] = []
    spy = None
    try:
        for port in ports:
            config, log = work / f"relay-{port}.yaml", work / f"relay-{port}.log"
            config.write_text(
                f"listen: 127.0.0.1:{port}\nstore: {url}\nsubhooks:\n{subhooks}\n"
                "routes:\n  - name: all\n    destinations:\n"
                f"      - {{name: a, url: 'http://127.0.0.1:{sink_a}/hook'}}\n"
                f"      - {{name: b, url: 'http://127.0.0.1:{sink_b}/hook'}}\n"
                "limits: {max_connections_per_address: 1024}\n", encoding="utf-8")
            relays.append(subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--config", str(config)], cwd=tree,
                stdout=subprocess.DEVNULL, stderr=open(log, "wb")))  # noqa: SIM115
        for port, relay in zip(ports, relays, strict=True):
            wait_listening(f"http://127.0.0.1:{port}/healthz", relay,
                           work / f"relay-{port}.log")
        time.sleep(0.5)  # past the start's one-off work
        started = time.monotonic()
        before, server_before = _relays_cpu(relays), _server_cpu(server)
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "--gil", "-p", str(relays[0].pid), "-d", "8", "-f", "raw",
                                    "-o", str(profile), "-r", "200"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        statuses = push_all([f"http://127.0.0.1:{port}" for port in ports], pushes, rate)
        accepted = statuses.get(200, 0)
        wanted, deadline = 2 * accepted, time.monotonic() + 120
        while (done := delivered(sink_a)) < wanted and time.monotonic() < deadline:
            time.sleep(0.01)
        took, after = time.monotonic() - started, _relays_cpu(relays)
        server_after = _server_cpu(server)
        rss = max(_peak_rss_mb(relay.pid) for relay in relays)
        if spy is not None:
            spy.wait()
    finally:
        for relay in relays:
            relay.terminate()
        for relay in relays:
            relay.wait()
        sink.terminate()
        sink.wait()
    per_thread = {name: (after[name] - before.get(name, 0.0)) * 1e6 / max(accepted, 1)
                  for name in after}
    server_us = (None if server_before is None or server_after is None
                 else (server_after - server_before) * 1e6 / max(accepted, 1))
    return {"cpu_us": sum(per_thread.values()), "threads": per_thread, "took_s": took,
            "delivered": done, "wanted": wanted, "ok": accepted, "statuses": statuses,
            "peak_rss_mb": rss, "instances": instances, "server_cpu_us": server_us}


def _relays_cpu(relays: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds of every thread of every relay process, summed by thread name."""
    seconds: dict[str, float] = {}
    for relay in relays:
        for name, used in thread_cpu(relay.pid).items():
            seconds[name] = seconds.get(name, 0.0) + used
    return seconds


def _server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds of a PostgreSQL server so far: the postmaster's own and its reaped
    children's (utime, stime, cutime, cstime), and every live child's (its backends,
    checkpointer, WAL writer, autovacuum...); None when its /proc cannot be read. A child
    that ends between two readings moves from the live sum to the postmaster's reaped
    figures when it is reaped, so the difference of two readings counts it once."""
    if postmaster is None:
        return None
    total = 0.0
    try:
        total += sum(_stat(Path(f"/proc/{postmaster}/stat"))[11:15])
    except (OSError, ValueError):
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry / "stat")
        except (OSError, ValueError):  # ended meanwhile
            continue
        if fields[1] == postmaster:
            total += sum(fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> list[int]:
    """The numeric fields of a /proc stat line after the command name (which may hold
    spaces), from its 4th field (ppid) on: index 1 is the ppid, 11 to 14 utime, stime,
    cutime and cstime in clock ticks."""
    fields = path.read_text().rsplit(")", 1)[1].split()
    return [0, *(int(f) for f in fields[1:15])]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(events: int, rate: float, rounds: int, tree: Path,
            profile: Path | None = None, echo: bool = True, store: StoreMaker | None = None,
            instances: int = 1, server: int | None = None) -> dict[str, Any]:
    """``rounds`` rounds, each the bare server then the relay with its own pushes; the
    medians, each round's figures, and whether every push was answered and delivered.
    ``store``, ``instances`` and ``server`` as in ``relay_round``."""
    relay_us, bare_us, server_us, runs, ok = [], [], [], [], True
    for index in range(rounds):
        pushes = generate(events, seed=int(time.time()) * 100 + index)
        bare = bare_round(pushes, rate)
        run = relay_round(pushes, rate, tree, profile if index == 0 else None, store,
                          instances, server)
        run["bare_cpu_us"] = bare
        runs.append(run)
        relay_us.append(run["cpu_us"])
        bare_us.append(bare)
        if run["server_cpu_us"] is not None:
            server_us.append(run["server_cpu_us"])
        ok = ok and run["delivered"] >= run["wanted"] and run["ok"] == events
        threads = ", ".join(f"{name} {us:.1f}" for name, us in sorted(run["threads"].items())
                            if us >= 0.5)
        if echo:
            on_server = ("" if run["server_cpu_us"] is None
                         else f"; PostgreSQL server {run['server_cpu_us']:.1f} CPU us/event")
            print(f"round {index + 1}: relay {run['cpu_us']:.1f} CPU us/event ({threads})"
                  f"{on_server}; bare {bare:.1f} CPU us/request; {run['ok']}/{events} "
                  f"answered 200, {run['delivered']}/{run['wanted']} delivered in "
                  f"{run['took_s']:.1f} s; peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
    return {"events": events, "rate": rate, "instances": instances,
            "cpu_us": statistics.median(relay_us),
            "bare_cpu_us": statistics.median(bare_us), "runs_cpu_us": relay_us,
            "runs_bare_cpu_us": bare_us,
            "server_cpu_us": statistics.median(server_us) if server_us else None,
            "runs_server_cpu_us": server_us, "runs": runs, "all_delivered": ok,
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
