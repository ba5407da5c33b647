"""A destination's bad day, measured on a real relay (issue "A destination's bad day"):
one destination is down (its port closed) while events arrive, then comes back. Prints, as
JSON, the attempts made while it was down, the dead letters, and the time from its first
200 to the last held delivery arriving.

    python bench/outage.py [--relay PATH] [--down S] [--events N] [--rate R]

``--relay`` is the ``relay`` command to run (an older revision's venv, to compare). The
config sets no retry or breaker key: the run measures that relay's defaults. Events are
pushed at ``--rate`` per
second (0: all at once) until ``--events`` are in, the destination stays down at least
``--down`` seconds from the first push, then a sink answering 200 opens on its port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from relay.ingest.signature import sign  # noqa: E402

KEY = "outage-bench-key-0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(port: int, sink_port: int, db: Path) -> str:
    return (f"listen: 127.0.0.1:{port}\nstore: sqlite:///{db}\n"
            f"subhooks:\n  - {{path: /subhook/sms, product: sms, keys: [{KEY}]}}\n"
            "routes:\n  - name: all\n    destinations:\n"
            f"      - {{name: svc, url: 'http://127.0.0.1:{sink_port}/hook'}}\n")


def counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state"))
        attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()
    return {"attempts": int(attempts), **{str(k): int(v) for k, v in states.items()}}


async def push_all(url: str, events: int, rate: float) -> None:
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        for n in range(events):
            if rate:
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            token = f"{n:032x}"
            fields = {"events": "delivered", "address": "13800138000", "app": "1",
                      "send_id": f"o{n}", "timestamp": str(int(time.time())),
                      "token": token, "signature": sign(token, KEY)}
            async with session.post(url, data=fields) as answer:
                assert answer.status == 200, await answer.text()


async def run(work: Path, port: int, sink_port: int, down: float, events: int,
              rate: float) -> dict[str, object]:
    db = work / "relay.db"
    arrivals: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    began = time.monotonic()
    await push_all(f"http://127.0.0.1:{port}/subhook/sms", events, rate)
    await asyncio.sleep(max(0.0, began + down - time.monotonic()))
    during = counts(db)

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()
    up = time.monotonic()
    deadline = up + 1200
    while time.monotonic() < deadline:
        now = counts(db)
        if now.get("pending", 0) == 0:
            break
        await asyncio.sleep(0.2)
    after = counts(db)
    await runner.cleanup()
    return {
        "events": events, "rate": rate, "down_s": round(up - began, 1),
        "attempts_while_down": during["attempts"],
        "dead_letters_while_down": during.get("dead", 0),
        "delivered": after.get("delivered", 0), "dead": after.get("dead", 0),
        "pending_left": after.get("pending", 0),
        "up_to_first_200_s": round(arrivals[0] - up, 2) if arrivals else None,
        "first_200_to_last_arrival_s": round(arrivals[-1] - arrivals[0], 2)
        if arrivals else None,
        "attempts_total": after["attempts"], "work": str(work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay", default=shutil.which("relay") or "relay")
    parser.add_argument("--down", type=float, default=600.0)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-outage-"))
    port, sink_port = free_port(), free_port()
    (work / "relay.yaml").write_text(config(port, sink_port, work / "relay.db"),
                                     encoding="utf-8")
    with (work / "relay.log").open("wb") as log:
        proc = subprocess.Popen([args.relay, "serve", "--config", str(work / "relay.yaml")],
                                cwd=work, stdout=log, stderr=subprocess.STDOUT)
        try:
            result = asyncio.run(run(work, port, sink_port, args.down, args.events, args.rate))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({"relay": args.relay, **result}, indent=2))


if __name__ == "__main__":
    main()
