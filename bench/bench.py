"""The benchmark: the relay beside a bare aiohttp server, same machine, same load.

    bash bench/run            # full run (about 12 minutes)
    bash bench/run --smoke    # a few seconds: proves the bench still works, measures nothing
    bash bench/run --only million [--rows N]   # phase 5 alone (a minute or two)
    bash bench/run --only sustained            # phase 4 alone (a minute per rate tried)
    bash bench/run --only cpu                  # phase 0 alone (about two minutes)
    bash bench/run --scaling [POSTGRES_URL]    # SQLite, one and two instances on PostgreSQL

Phase 0 is the figure that decides (issue "Performance, third round"): CPU per event end
to end, fan-out 2, at 2,000 events/s, beside the bare server's CPU per request in the same
rounds (bench/drain.py --end-to-end, bench/endtoend.py). ``--scaling`` takes saturation and
that figure for one relay on SQLite and one and two on PostgreSQL (about seven minutes);
on PostgreSQL it also counts the server's own CPU per event, apart, when its processes are
on this machine.

Phases 1 to 6, each on a fresh relay process with the SQLite store and one route fanning every
event out to two sink servers (bench/sink.py, their own process):

1. saturation: wrk cycling pre-built signed pushes, against the bare server then the relay;
2. ingest latency at fixed rates (bench/load.py, open loop, its own process);
3. end-to-end latency (push sent -> sink received) at 500/s;
4. the highest rate sustained end to end for the window without the backlog growing;
5. saturation again with a million delivered rows in the store, and before it lookups in
   that store as ``relay events list --send-id`` / ``--contact`` makes them;
6. the relay's peak RSS (VmHWM) over all phases.

Results are printed as a table and written to bench/results/<time>-<mode>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from console_pages import TOKEN as CONSOLE_TOKEN  # noqa: E402
from console_pages import time_pages  # noqa: E402
from endtoend import measure as cpu_per_event  # noqa: E402
from pushes import KEYS, generate, write_wrk_file  # noqa: E402

PY = sys.executable


@dataclass
class Mode:
    name: str
    saturation_s: int
    connections: int
    fixed_s: int
    fixed_rates: tuple[int, ...]
    e2e_rate: int
    sustain_s: int
    sustain_rates: tuple[int, ...]
    big_rows: int
    repeats: int
    #: lookups of each kind (send_id, contact) timed in the million-row store
    lookups: int = 20
    #: pushes of each round of CPU per event end to end (at 2,000 a second)
    cpu_events: int = 20_000


FULL = Mode("full", 10, 64, 20, (500, 1000), 500, 60, (500, 1000, 1250, 1500, 1750, 2000),
            1_000_000, 3)
SMOKE = Mode("smoke", 2, 16, 2, (100,), 100, 3, (100,), 2_000, 1, cpu_events=300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far, all its threads (utime + stime): its stat
    line's fields 14 and 15, counted after the command name, which may hold spaces."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Bench:
    mode: Mode
    work: Path
    sink_ports: tuple[int, int]
    results: dict[str, Any] = field(default_factory=dict)
    peak_rss: list[float] = field(default_factory=list)
    #: the relay process serving now (``relay()``), whose CPU time wrk runs measure
    relay_pid: int | None = None

    # -- processes --------------------------------------------------------------------------

    def config(self, db: Path | str, port: int, fan_out: bool = True) -> Path:
        """The relay's config file for ``db`` (an SQLite file, or any store URL)."""
        subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                             for p, k in KEYS.items())
        a, b = self.sink_ports
        config = self.work / f"relay-{port}.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{port}\n"
            f"store: {db if isinstance(db, str) else f'sqlite:///{db}'}\nsubhooks:\n{subhooks}\n"
            + ("routes:\n  - name: all\n    match: {event: '*'}\n    destinations:\n"
               f"      - {{name: a, url: 'http://127.0.0.1:{a}/hook'}}\n"
               f"      - {{name: b, url: 'http://127.0.0.1:{b}/hook'}}\n" if fan_out
               else "routes: []\n")
            + f"admin:\n  tokens:\n    - {{name: bench, token: {CONSOLE_TOKEN}, role: operator}}\n"
            # wrk is one address standing in for SUBMAIL's many (SPEC 18's cap is per address)
            + "limits: {max_connections_per_address: 1024}\n",
            encoding="utf-8")
        return config

    @contextlib.contextmanager
    def relay(self, db: Path | str, fan_out: bool = True) -> Iterator[str]:
        """A relay process on ``db`` (an SQLite file, or any store URL); yields its URL."""
        port = free_port()
        config = self.config(db, port, fan_out)
        log = self.work / f"relay-{port}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([PY, "-m", "relay", "serve", "--config", str(config)],
                                     stdout=out, stderr=subprocess.STDOUT)
        proc = Proc(popen, log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz")
            self.relay_pid = popen.pid
            yield base
            self.peak_rss.append(peak_rss_mb(popen.pid))
        finally:
            self.relay_pid = None
            proc.stop()

    def fresh_db(self) -> Path:
        db = self.work / f"relay-{time.monotonic_ns()}.db"
        return db

    def sink_counts(self) -> int:
        return sum(get_json(f"http://127.0.0.1:{self.sink_ports[0]}/stats").values())

    # -- load -------------------------------------------------------------------------------

    def wrk(self, base: str, pushes_files: list[Path], pid: int | None = None
            ) -> dict[str, Any]:
        """The median (by requests/s) of one wrk run per file of pushes (single runs vary
        by about 15 %); each file holds other tokens, so no run re-sends another's. With
        the server's ``pid`` (the relay's by default), also its CPU time per answered
        request, whose median is ``cpu_us``: noise from the rest of the machine moves it
        far less than requests per second."""
        pid = pid or self.relay_pid
        runs = sorted((self._wrk_once(base, f, pid) for f in pushes_files),
                      key=lambda r: float(r["rps"]))
        median = dict(runs[len(runs) // 2])
        median["runs_rps"] = [r["rps"] for r in runs]
        if pid is not None:
            median["runs_cpu_us"] = [r["cpu_us"] for r in runs]
            median["cpu_us"] = statistics.median(median["runs_cpu_us"])
        return median

    def _wrk_once(self, base: str, pushes_file: Path, pid: int | None) -> dict[str, Any]:
        before = cpu_seconds(pid) if pid is not None else 0.0
        out = subprocess.run(
            ["wrk", "-t1", f"-c{self.mode.connections}", f"-d{self.mode.saturation_s}s",
             "--timeout", "10s", "-s", str(HERE / "cycle.lua"), base, "--", str(pushes_file),
             "1"], capture_output=True, text=True, check=True)
        line = next(x for x in out.stdout.splitlines() if x.startswith("JSON "))
        result: dict[str, Any] = json.loads(line[5:])
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        if pid is not None:
            result["cpu_us"] = (cpu_seconds(pid) - before) / max(result["requests"], 1) * 1e6
        return result

    def load(self, base: str, rate: int, seconds: int) -> dict[str, Any]:
        out = self.work / f"load-{time.monotonic_ns()}.json"
        subprocess.run([PY, str(HERE / "load.py"), base, str(rate), str(seconds), str(out)],
                       check=True)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result

    # -- phases -----------------------------------------------------------------------------

    def saturation(self, pushes_file: list[Path], events: int) -> None:
        bare_port = free_port()
        popen = subprocess.Popen([PY, str(HERE / "bare.py"), str(bare_port)])
        try:
            wait_http(f"http://127.0.0.1:{bare_port}/healthz")
            bare = self.wrk(f"http://127.0.0.1:{bare_port}", pushes_file, popen.pid)
        finally:
            popen.terminate()
            popen.wait()
        db = self.fresh_db()
        with self.relay(db) as base:
            relay = self.wrk(base, pushes_file)
        stored = count_events(db)
        with self.relay(self.fresh_db(), fan_out=False) as base:
            alone = self.wrk(base, pushes_file)
        self.results["saturation"] = {
            "bare": bare, "relay": relay, "ratio": relay["rps"] / bare["rps"],
            "relay_no_routes": alone, "ratio_no_routes": alone["rps"] / bare["rps"],
            "relay_events_stored": stored, "pushes_prepared": events}

    def fixed(self) -> None:
        rows = {}
        for rate in self.mode.fixed_rates:
            with self.relay(self.fresh_db()) as base:
                result = self.load(base, rate, self.mode.fixed_s)
            result.pop("send_times")
            rows[str(rate)] = result
        self.results["ingest_latency"] = rows

    def end_to_end(self) -> None:
        rate = self.mode.e2e_rate
        with self.relay(self.fresh_db()) as base:
            before = self.sink_counts()
            result = self.load(base, rate, self.mode.fixed_s)
            wanted = before + 2 * result["ok"]
            deadline = time.monotonic() + 30
            while self.sink_counts() < wanted and time.monotonic() < deadline:
                time.sleep(0.2)
            arrivals = get_json(f"http://127.0.0.1:{self.sink_ports[0]}/arrivals")
        sent = result.pop("send_times")
        lat = [(seen[sid] - at) * 1000 for seen in arrivals.values()
               for sid, at in sent.items() if sid in seen]
        lat.sort()
        self.results["end_to_end"] = {
            "rate": rate, "deliveries_measured": len(lat), "deliveries_wanted": 2 * len(sent),
            "p50_ms": lat[len(lat) // 2] if lat else None,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None}

    def sustained(self) -> None:
        tried = []
        best = 0
        for rate in self.mode.sustain_rates:
            with self.relay(self.fresh_db()) as base:
                depth: list[tuple[float, int]] = []
                out = self.work / f"sustain-{rate}.json"
                load = subprocess.Popen([PY, str(HERE / "load.py"), base, str(rate),
                                         str(self.mode.sustain_s), str(out)])
                start = time.monotonic()
                while load.poll() is None:
                    time.sleep(1)
                    depth.append((time.monotonic() - start, queue_depth(base)))
                result = json.loads(out.read_text(encoding="utf-8"))
                drain_start = time.monotonic()
                while queue_depth(base) > 0 and time.monotonic() - drain_start < 60:
                    time.sleep(0.2)
                drained_s = time.monotonic() - drain_start
            half = [(t, d) for t, d in depth if t > self.mode.sustain_s / 2]
            growth = slope(half)
            ok_ratio = result["ok"] / result["sent"]
            on_time = result["sending_took_s"] <= self.mode.sustain_s * 1.02
            # Held: every push answered 200 on time, the backlog not growing over the second
            # half (by less than 1 % of the rate per second) and drained within 10 s after.
            held = (ok_ratio >= 0.999 and on_time and len(half) >= 2
                    and growth <= 0.01 * rate and drained_s <= 10)
            tried.append({"rate": rate, "ok_ratio": ok_ratio, "sending_took_s":
                          result["sending_took_s"], "p99_ingest_ms": result["p99_ms"],
                          "max_backlog_second_half": max(d for _, d in half) if half else None,
                          "backlog_growth_per_s": growth,
                          "backlog_samples": [d for _, d in depth], "drained_s": drained_s,
                          "held": held})
            if not held:
                break
            best = rate
        self.results["sustained"] = {"seconds": self.mode.sustain_s, "best_rate": best,
                                     "tried": tried}

    def million(self, pushes_file: list[Path]) -> None:
        db = self.fresh_db()
        took = populate(db, self.mode.big_rows)
        populated_mb = db.stat().st_size / 2**20
        # Before the relay's run, so the store holds exactly the populated events.
        lookups = self.lookups(db)
        with self.relay(db) as base:
            events = count_events(db)
            pages = time_pages(base, events // 2, send_id(events // 2), self.mode.lookups)
            big = self.wrk(base, pushes_file)
        # Without the saturation phase (--only million) there is no empty store to compare.
        empty = self.results.get("saturation", {}).get("relay", {}).get("rps")
        self.results["big_store"] = {"delivered_rows": self.mode.big_rows,
                                     "populate_s": took, "relay": big,
                                     "ratio_to_empty": big["rps"] / empty if empty else None,
                                     "populated_db_mb": populated_mb,
                                     "db_mb": db.stat().st_size / 2**20, "lookups": lookups,
                                     "console_pages": pages}
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)

    def lookups(self, db: Path) -> dict[str, Any]:
        """``relay events list --send-id`` and ``--contact`` on the populated store: the
        lookup as the CLI runs it once the store is open (timed in this process, the store
        opened once), then one whole CLI run of each."""
        events = count_events(db)
        wanted = random.Random(0).sample(range(1, events + 1), min(self.mode.lookups, events))
        timed = asyncio.run(time_lookups(db, wanted))
        config = self.config(db, free_port())
        cli = {}
        for option, value in (("send_id", send_id(wanted[0])), ("contact", phone(wanted[0]))):
            started = time.perf_counter()
            out = subprocess.run([PY, "-m", "relay", "events", "list", "--config", str(config),
                                  f"--{option.replace('_', '-')}", value, "--json"],
                                 capture_output=True, text=True, check=False)
            took = (time.perf_counter() - started) * 1000
            if out.returncode != 0:
                raise RuntimeError(f"relay events list --{option}: exit {out.returncode}: "
                                   f"{out.stderr.strip()}")
            check_found(json.loads(out.stdout), wanted[0], f"CLI --{option}")
            cli[option] = {"ms": took}
        return {"events_in_store": events, "lookups": len(wanted),
                **{option: {**timed[option], "cli": cli[option]} for option in timed}}


async def _fresh_postgres(server: str) -> str:
    import asyncpg

    name = f"relay_bench_{time.monotonic_ns()}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


def _postmaster(server: str) -> int | None:
    """The pid of the PostgreSQL server at ``server`` on this machine (the parent of the
    backend serving a connection to it, read while it lives), or None when that server's
    processes are not in this machine's /proc (a pid of another machine's backend names
    no process here, or one that is not PostgreSQL's)."""
    import asyncpg

    async def parent_of_backend() -> int | None:
        conn = await asyncpg.connect(server)
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            stat = await asyncio.to_thread(Path(f"/proc/{backend}/stat").read_text)
        except OSError:
            return None
        finally:
            await conn.close()
        name, _, rest = stat.partition(" (")[2].rpartition(")")
        return int(rest.split()[1]) if name.startswith("postgres") else None

    return asyncio.run(parent_of_backend())


def scaling(bench: Bench, postgres: str, pushes_files: list[Path]) -> None:
    """Saturation with fan-out 2: one relay on SQLite, then one and two on PostgreSQL (two
    instances each get their own wrk with half the connections and their own tokens); then
    for each, CPU per event end to end at 2,000 events/s beside the bare server (the pushes
    taking turns over the instances), with the PostgreSQL server's own CPU apart."""
    rows: dict[str, dict[str, Any]] = {}
    server = _postmaster(postgres)

    def fresh(_work: Path) -> str:
        return asyncio.run(_fresh_postgres(postgres))

    for label, store, count in (("sqlite x1", None, 1), ("postgresql x1", postgres, 1),
                                ("postgresql x2", postgres, 2)):
        print(f"{label}: saturation, then CPU per event end to end", flush=True)
        url = asyncio.run(_fresh_postgres(store)) if store else None
        with contextlib.ExitStack() as stack:
            bases = [stack.enter_context(bench.relay(url or bench.fresh_db()))
                     for _ in range(count)]
            totals = []
            for path in pushes_files:
                parts = split_file(path, count)
                runs = [subprocess.Popen(
                    ["wrk", "-t1", f"-c{bench.mode.connections // count}",
                     f"-d{bench.mode.saturation_s}s", "--timeout", "10s", "-s",
                     str(HERE / "cycle.lua"), base, "--", str(part), "1"],
                    stdout=subprocess.PIPE, text=True) for base, part in zip(bases, parts,
                                                                           strict=True)]
                rps = 0.0
                for run in runs:
                    out, _ = run.communicate()
                    line = next(x for x in out.splitlines() if x.startswith("JSON "))
                    result = json.loads(line[5:])
                    rps += result["requests"] / (result["duration_us"] / 1e6)
                totals.append(rps)
        totals.sort()
        cpu = cpu_per_event(bench.mode.cpu_events, 2000, bench.mode.repeats, HERE.parent,
                            store=fresh if store else None, instances=count,
                            server=server if store else None)
        bench.peak_rss.append(cpu["peak_rss_mb"])
        rows[label] = {"rps": totals[len(totals) // 2], "runs_rps": totals,
                       "cpu_per_event": cpu}
    bench.results["scaling"] = rows


def split_file(path: Path, parts: int) -> list[Path]:
    """``parts`` files of pushes (for wrk) taking turns over the records of ``path``."""
    if parts == 1:
        return [path]
    records = path.read_bytes().split(b"\x02")[:-1]
    out = []
    for n in range(parts):
        part = path.with_name(f"{path.stem}-part{n}.bin")
        part.write_bytes(b"".join(r + b"\x02" for r in records[n::parts]))
        out.append(part)
    return out


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (time, backlog) samples: deliveries per second of growth."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_d = sum(d for _, d in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (d - mean_d) for t, d in points) / spread if spread else 0.0


async def time_lookups(db: Path, wanted: list[int]) -> dict[str, dict[str, Any]]:
    """Each of ``wanted`` (event ids) looked up by its send_id and by its contact, through
    the store as ``relay events list`` opens it (commands.with_store); milliseconds."""
    from relay.ops import events as lookup
    from relay.store import open_store

    store = open_store(f"sqlite:///{db}", attach=True)
    await store.open()
    timings: dict[str, list[float]] = {"send_id": [], "contact": []}
    try:
        for event_id in wanted:
            for option, which in (("send_id", lookup.event_filter(send_id=send_id(event_id))),
                                  ("contact", lookup.event_filter(contact=phone(event_id)))):
                started = time.perf_counter()
                page = await lookup.list_events(store, which, 50)
                timings[option].append((time.perf_counter() - started) * 1000)
                check_found(page, event_id, f"--{option}")
    finally:
        await store.close()
    return {option: spread(ms) for option, ms in timings.items()}


def check_found(page: dict[str, Any], event_id: int, what: str) -> None:
    """A lookup of populated event ``event_id`` must return it and nothing else."""
    found = [(e["id"], e["send_id"]) for e in page["events"]]
    if found != [(event_id, send_id(event_id))]:
        raise RuntimeError(f"lookup {what} of event {event_id} returned {found}")


def spread(ms: list[float]) -> dict[str, Any]:
    """Median, p90 (nearest rank: the 18th of 20) and max of ``ms``, and every run."""
    ordered = sorted(ms)
    return {"median_ms": statistics.median(ordered),
            "p90_ms": ordered[math.ceil(len(ordered) * 0.9) - 1],
            "max_ms": ordered[-1], "first_ms": ms[0], "runs_ms": ms}


def count_events(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def queue_depth(base: str) -> int:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        text = response.read().decode()
    depths = re.findall(r"^relay_queue_depth\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(int(float(d)) for d in depths) if "relay_queue_depth" in text else -1


def send_id(event_id: int) -> str:
    """The send_id of the populated store's event ``event_id``."""
    return f"{event_id:032x}"


def phone(event_id: int) -> str:
    """The populated store's event ``event_id`` went to its own mobile number (the pushes
    wrk sends all carry 13800000000, which no populated event has)."""
    return f"138{event_id:08d}"


def populate(db: Path, delivered_rows: int) -> float:
    """Fill a store with ``delivered_rows`` delivered deliveries (two per event) and their
    attempts and tokens, in the relay's own layout and with its own statements. Event
    ``i`` (ids from 1) has ``send_id(i)`` and ``phone(i)`` for lookups."""
    from relay.ingest.signature import token_key
    from relay.products import PRODUCTS
    from relay.store import queries as q
    from relay.store.base import AttemptRecord, DeliveryState
    from relay.store.migrations import migrate_sqlite

    started = time.monotonic()
    body = generate(1)[0].body
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate_sqlite(conn)
    now = time.time() - 3600
    events = delivered_rows // 2
    delivered = DeliveryState.DELIVERED
    sms = PRODUCTS["sms"]

    def delivery_id(event_id: int, k: int) -> int:  # rowids as inserted: 1, 2, 3, ...
        return 2 * (event_id - 1) + k + 1

    conn.execute("BEGIN")
    for first in range(0, events, 50_000):
        ids = range(first + 1, min(events, first + 50_000) + 1)
        conn.executemany(q.REMEMBER_TOKEN.sqlite, (
            q.REMEMBER_TOKEN.bind(key=token_key(f"{i:032x}"), seen_at=now) for i in ids))
        conn.executemany(q.INSERT_EVENT.sqlite, (q.INSERT_EVENT.bind(
            webhook_id=f"msg_{i:032x}", identity=f"id{i:062x}", token=f"{i:032x}",
            product="sms", event="delivered", tag=None,
            fields=f'{{"events":"delivered","send_id":"{send_id(i)}","address":"{phone(i)}"}}',
            body=body, content_type="application/x-www-form-urlencoded", received_at=now,
            send_id=send_id(i), contact=sms.contact_of({"address": phone(i)})) for i in ids))
        conn.executemany(q.INSERT_DELIVERY.sqlite, (q.INSERT_DELIVERY.bind(
            event_id=i, destination="ab"[k], next_attempt_at=now, expires_at=now + 3600,
            updated_at=now) for i in ids for k in (0, 1)))
        # Delivered as the worker records it: the attempt, then the delivery settled.
        attempts = [AttemptRecord(delivery_id(i, k), 1, now, 1.0, 200, None, delivered)
                    for i in ids for k in (0, 1)]
        conn.executemany(q.RECORD_ATTEMPT.sqlite, map(q.RECORD_ATTEMPT.args, attempts))
        conn.executemany(q.SETTLE.sqlite, (q.SETTLE.args(a, updated_at=now) for a in attempts))
    conn.execute("COMMIT")
    conn.close()
    return time.monotonic() - started


def table(results: dict[str, Any]) -> str:
    """The results as the bench prints them; phases that did not run (--only) left out."""
    rows = _speed_rows(results)
    if "big_store" in results:
        rows += _big_store_rows(results["big_store"])
    rows.append(("relay peak RSS", f"{results['peak_rss_mb']:.0f} MB", "target <= 200 MB"))
    return _columns(rows)


def scaling_table(results: dict[str, Any]) -> str:
    """``bench/run --scaling``'s results: per store and instances, the saturation rate and
    CPU per event end to end, the PostgreSQL server's own apart."""
    rows = []
    for label, row in results["scaling"].items():
        spread = " / ".join(f"{rps:,.0f}" for rps in row["runs_rps"])
        rows.append((f"saturation, fan-out 2, {label}", f"{row['rps']:,.0f} req/s",
                     f"runs {spread}"))
        rows += _cpu_rows(row["cpu_per_event"], f", {label}")
    rows.append(("relay peak RSS", f"{results['peak_rss_mb']:.0f} MB", "target <= 200 MB"))
    return _columns(rows)


def _columns(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    second = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<{second}}  {c}" for a, b, c in rows)


def _runs(figures: list[float]) -> str:
    return " / ".join(f"{us:.0f}" for us in figures)


def _cpu_rows(cpu: dict[str, Any] | None, label: str = "") -> list[tuple[str, str, str]]:
    """CPU per event end to end (``endtoend.measure``'s result) beside the bare server's
    per request; where the PostgreSQL server was counted, its CPU per event apart and the
    sum."""
    if cpu is None:
        return []
    rows = [(f"CPU per event end to end ({cpu['rate']:,.0f}/s, fan-out 2){label}",
             f"{cpu['cpu_us']:.0f} us/event (runs {_runs(cpu['runs_cpu_us'])})",
             f"bare aiohttp {cpu['bare_cpu_us']:.0f} us/request (runs "
             f"{_runs(cpu['runs_bare_cpu_us'])}), {cpu['cpu_us'] / cpu['bare_cpu_us']:.1f} x "
             "bare" + ("" if label else " (target <= 350 us)")
             + ("" if cpu["all_delivered"] else "; NOT ALL DELIVERED"))]
    if cpu.get("server_cpu_us") is not None:
        rows.append((f"  PostgreSQL server's own CPU{label}",
                     f"{cpu['server_cpu_us']:.0f} us/event (runs "
                     f"{_runs(cpu['runs_server_cpu_us'])})",
                     f"relay + server {cpu['cpu_us'] + cpu['server_cpu_us']:.0f} us/event"))
    return rows


def _speed_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    cpu = _cpu_rows(results.get("cpu_per_event"))
    if "saturation" not in results:
        return cpu + _sustained_rows(results)
    sat = results["saturation"]
    rows = [*cpu,
            ("ingest at saturation, bare aiohttp", f"{sat['bare']['rps']:,.0f} req/s",
             _cpu(sat["bare"], "request")),
            ("ingest at saturation, relay (fan-out 2)", f"{sat['relay']['rps']:,.0f} req/s",
             f"ratio {sat['ratio']:.2f} x bare (target >= 0.25); "
             + _cpu(sat["relay"], "push")),
            ("ingest at saturation, relay (no routes)",
             f"{sat['relay_no_routes']['rps']:,.0f} req/s",
             f"ratio {sat['ratio_no_routes']:.2f} x bare (target >= 0.35); "
             + _cpu(sat["relay_no_routes"], "push"))]
    for rate, row in results["ingest_latency"].items():
        rows.append((f"ingest latency at {rate}/s", f"p50 {row['p50_ms']:.1f} ms, "
                     f"p99 {row['p99_ms']:.1f} ms", f"{row['ok']}/{row['sent']} answered 200"
                     + (" (target p99 <= 10 ms)" if rate == "1000" else "")))
    e2e = results["end_to_end"]
    rows.append((f"end to end at {e2e['rate']}/s, fan-out 2",
                 f"p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms",
                 f"{e2e['deliveries_measured']}/{e2e['deliveries_wanted']} deliveries"))
    return rows + _sustained_rows(results)


def _sustained_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    if "sustained" not in results:
        return []
    sus = results["sustained"]
    return [(f"sustained end to end ({sus['seconds']} s, fan-out 2)",
             f"{sus['best_rate']:,} events/s",
             "tried " + ", ".join(f"{t['rate']}{'' if t['held'] else ' (failed)'}"
                                  for t in sus["tried"]) + " (target >= 2,000)")]


def _cpu(run: dict[str, Any], unit: str) -> str:
    """The server's CPU time per answered request, from the median run's process."""
    if "cpu_us" not in run:
        return ""
    spread = " / ".join(f"{us:.0f}" for us in run["runs_cpu_us"])
    return f"{run['cpu_us']:.0f} CPU us/{unit} (runs {spread})"


def _big_store_rows(big: dict[str, Any]) -> list[tuple[str, str, str]]:
    ratio = big["ratio_to_empty"]
    rows = [(f"ingest with {big['delivered_rows']:,} delivered rows",
             f"{big['relay']['rps']:,.0f} req/s",
             f"{ratio:.0%} of empty store (target >= 90%)" if ratio is not None
             else "no empty store run to compare (--only million)")]
    found = big["lookups"]
    for option in ("send_id", "contact"):
        name = f"events list --{option.replace('_', '-')}"
        got = found[option]
        rows.append((f"{name}, {found['events_in_store']:,} events",
                     f"median {got['median_ms']:.2f} ms, p90 {got['p90_ms']:.2f} ms, "
                     f"max {got['max_ms']:.2f} ms",
                     f"{found['lookups']} lookups, store open (target median <= 50 ms)"))
    for option in ("send_id", "contact"):
        rows.append((f"events list --{option.replace('_', '-')}, CLI, including interpreter "
                     "start", f"{found[option]['cli']['ms']:,.0f} ms", "one run, wall clock"))
    for page, got in big.get("console_pages", {}).items():
        rows.append((f"console: {page}", f"median {got['median_ms']:.1f} ms, p90 "
                     f"{got['p90_ms']:.1f} ms, max {got['max_ms']:.1f} ms",
                     f"{got['bytes']:,} bytes (target <= 200 ms)"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--scaling", metavar="POSTGRES_URL",
                        help="only compare SQLite with one and two instances on PostgreSQL "
                             "(a server the bench may create databases on)")
    parser.add_argument("--only", choices=("million", "sustained", "cpu"),
                        help="only the million-row phase (ingest and lookups in a big store), "
                             "only the sustained end-to-end phase, or only CPU per event "
                             "end to end beside the bare server")
    parser.add_argument("--rows", type=int, metavar="N",
                        help="delivered rows in the million-row phase's store, two per event "
                             "(default 1,000,000; 2,000 with --smoke)")
    args = parser.parse_args()
    mode = SMOKE if args.smoke else FULL
    if args.rows is not None:
        mode = replace(mode, big_rows=args.rows)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed; run the bench through bench/run", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        sink_ports = (free_port(), free_port())
        sinks = subprocess.Popen([PY, str(HERE / "sink.py"), *map(str, sink_ports)],
                                 stdout=subprocess.PIPE)
        try:
            assert sinks.stdout is not None
            sinks.stdout.readline()
            bench = Bench(mode, work, sink_ports)
            # 12,000 pushes a second of a run: more than the relay takes, so no token repeats
            # (a push sent again is answered as a duplicate, which costs less)
            events = 12000 * mode.saturation_s
            pushes_file = [work / f"pushes-{i}.bin" for i in range(mode.repeats)]
            # the million-row phase sends other pushes than the phases before it
            first_seed = 100 if args.only == "million" else 0
            for seed, path in enumerate(pushes_file, start=first_seed):
                write_wrk_file(generate(events, seed=seed), str(path))
            started = time.monotonic()
            if args.scaling:
                scaling(bench, args.scaling, pushes_file)
                return finish(bench, mode, started, "scaling")
            if args.only == "sustained":
                bench.sustained()
                return finish(bench, mode, started, mode.name + "-sustained")
            if args.only in (None, "cpu"):
                # the figure that decides (issue "Performance, third round")
                bench.results["cpu_per_event"] = cpu_per_event(
                    mode.cpu_events, 2000, mode.repeats, HERE.parent, echo=False)
                bench.peak_rss.append(bench.results["cpu_per_event"]["peak_rss_mb"])
            if args.only == "cpu":
                return finish(bench, mode, started, mode.name + "-cpu")
            if args.only is None:
                bench.saturation(pushes_file, events)
                bench.fixed()
                bench.end_to_end()
                bench.sustained()
                for seed, path in enumerate(pushes_file, start=100):
                    write_wrk_file(generate(events, seed=seed), str(path))
            bench.million(pushes_file)
        finally:
            sinks.terminate()
            sinks.wait()
    return finish(bench, mode, started, mode.name + (f"-{args.only}" if args.only else ""))


def finish(bench: Bench, mode: Mode, started: float, kind: str) -> int:
    results = bench.results
    results["peak_rss_mb"] = max(bench.peak_rss)
    results["meta"] = {
        "mode": mode.name, "kind": kind, "took_s": time.monotonic() - started,
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "uvloop": _has("uvloop"), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if kind == "scaling":
        print(scaling_table(results))
    else:
        print(table(results))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{kind}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {out.relative_to(HERE.parent)}")
    return 0


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
