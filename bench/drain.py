"""What a delivery costs, apart from ingest: a store holding EVENTS events with two pending
deliveries each (written with the relay's own statements), then a relay with two sink
servers (bench/sink.py) drains it. Prints the deliveries per second and the relay's CPU
time per delivery, in all and by thread name (from /proc; "loop" is the main thread, the
event loop's; "python" the store's thread, which Python 3.11 does not name): the delivery
side's counterpart of bench/saturate's CPU per push, which a busy machine disturbs far
less than rates.

    bench/.venv/bin/python bench/drain.py [--events N] [--tree DIR] [--profile FILE]
                                          [--destination URL]
    bench/.venv/bin/python bench/drain.py --end-to-end [--events N] [--rate R] [--rounds K]

``--end-to-end`` is the figure that decides (issue "Performance, third round"): N signed
pushes (bench/pushes.py's mix) sent at R a second (open loop) to a relay with an empty
store and one route fanning each event out to the two sinks, the relay's CPU (all threads,
from /proc) counted from before the first push until all 2N deliveries have arrived and
divided by N: ingest and deliveries together. In the same round the same N pushes go to
the bare aiohttp server (bench/bare.py), whose CPU per request is printed beside it. K
rounds, each with its own pushes, and their medians.

``--destination`` sends both deliveries of each event to that URL instead of the sinks: a
broker (nats://, amqp://, redis://; bench/brokers.py makes its stream or queue), counted in
the relay's store rather than at a sink.

``--tree`` runs the relay from that source tree (a git worktree of an older revision);
``--profile`` samples the thread holding the GIL with py-spy over 5 s of the drain.
Run bench/run once first (it makes bench/.venv).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from brokers import delivered_in_store, prepare  # noqa: E402
from pushes import KEYS, generate  # noqa: E402

from relay.ingest.signature import token_key  # noqa: E402
from relay.store import queries as q  # noqa: E402
from relay.store.migrations import migrate_sqlite  # noqa: E402


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def fill(db: Path, events: int) -> None:
    """``events`` SMS events, each with a pending delivery to ``a`` and one to ``b``."""
    body = generate(1)[0].body
    now = time.time()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate_sqlite(conn)
    ids = range(1, events + 1)
    conn.execute("BEGIN")
    conn.executemany(q.REMEMBER_TOKEN.sqlite, (
        q.REMEMBER_TOKEN.bind(key=token_key(f"{i:032x}"), seen_at=now) for i in ids))
    conn.executemany(q.INSERT_EVENT.sqlite, (q.INSERT_EVENT.bind(
        webhook_id=f"msg_{i:032x}", identity=f"id{i:062x}", token=f"{i:032x}", product="sms",
        event="delivered", tag=None,
        fields=(f'{{"events":"delivered","send_id":"s{i}","address":"1380013{i % 10000:04d}",'
                f'"token":"{i:032x}","signature":"{i:032x}"}}'),
        body=body, content_type="application/x-www-form-urlencoded", received_at=now,
        send_id=f"s{i}", contact=None) for i in ids))
    conn.executemany(q.INSERT_DELIVERY.sqlite, (q.INSERT_DELIVERY.bind(
        event_id=i, destination=name, next_attempt_at=now, expires_at=now + 3600,
        updated_at=now) for i in ids for name in ("a", "b")))
    conn.execute("COMMIT")
    conn.close()


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = "loop" if task.name == str(pid) else (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[name] = seconds.get(name, 0.0) + (int(stat[11]) + int(stat[12])) / tick
    return seconds


def delivered(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
            return sum(json.load(answer).values())
    except OSError:
        return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--destination", help="a broker URL both deliveries go to")
    parser.add_argument("--end-to-end", action="store_true",
                        help="push EVENTS events at RATE and count CPU per event until "
                             "every delivery has arrived, beside the bare server")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    if args.end_to_end:
        from endtoend import end_to_end
        return end_to_end(args.events, args.rate, args.rounds, args.tree, args.profile)
    work = Path(tempfile.mkdtemp())
    db = work / "relay.db"
    fill(db, args.events)
    port, sink_a, sink_b = free_ports(3)
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    config = work / "relay.yaml"
    urls = [f"http://127.0.0.1:{sink_a}/hook", f"http://127.0.0.1:{sink_b}/hook"]
    if args.destination:
        prepare(args.destination)
        urls = [args.destination] * 2
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{db}\nsubhooks:\n{subhooks}\n"
        "routes:\n  - name: all\n    destinations:\n"
        f"      - {{name: a, url: '{urls[0]}'}}\n"
        f"      - {{name: b, url: '{urls[1]}'}}\n", encoding="utf-8")

    def count() -> int:
        return delivered_in_store(db) if args.destination else delivered(sink_a)

    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_a), str(sink_b)],
                            stdout=subprocess.PIPE)
    assert sink.stdout is not None
    sink.stdout.readline()  # "ready"
    relay = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--config", str(config)],
                             cwd=args.tree, stdout=subprocess.DEVNULL,
                             stderr=open(work / "relay.log", "wb"))  # noqa: SIM115
    spy = None
    try:
        wanted, deadline = 2 * args.events, time.monotonic() + 600
        while (first := count()) == 0:  # measured from the first delivery on
            if relay.poll() is not None or time.monotonic() > deadline:
                print((work / "relay.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.02)
        started, cpu_before = time.monotonic(), thread_cpu(relay.pid)
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "--gil", "-p", str(relay.pid), "-d", "5", "-f", "raw",
                                    "-o", str(args.profile), "-r", "200"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while (done := count()) < wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        took, cpu_after = time.monotonic() - started, thread_cpu(relay.pid)
        made = done - first
        per_thread = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) * 1e6 / made
                      for name in cpu_after}
        print(f"Deliveries: {made} in {took:.1f} s, {made / took:.0f}/s")
        print(f"CPU/delivery: {sum(per_thread.values()):.1f} us ("
              + ", ".join(f"{name} {us:.1f}" for name, us in sorted(per_thread.items())
                          if us >= 0.5) + ")")
        if spy is not None:
            spy.wait()
            print(f"profile: {args.profile}")
        return 0 if done >= wanted else 1
    finally:
        relay.terminate()
        relay.wait()
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    sys.exit(main())
