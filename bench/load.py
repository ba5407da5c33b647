"""Open-loop load at a fixed rate, in its own process.

    python bench/load.py BASE_URL RATE SECONDS OUT.json

Push i is due at start + i/RATE whatever happened to earlier ones (no coordinated
omission): its latency runs from when it was due to when its answer arrived. Writes
``{"sent", "ok", "statuses", "errors", "p50_ms", "p99_ms", "send_times": {send_id: t}}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pushes import generate


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def run(base: str, rate: float, seconds: float) -> dict[str, object]:
    count = int(rate * seconds)
    pushes = generate(count, seed=int(time.time()))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    send_times: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, due: float) -> None:
            push = pushes[index]
            send_times[push.send_id] = time.time()
            try:
                async with session.post(base + push.path, data=push.body,
                                        headers={"Content-Type": push.content_type}) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except (aiohttp.ClientError, OSError) as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append((time.monotonic() - due) * 1000)

        tasks = set()
        start = time.monotonic() + 0.05
        for index in range(count):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sending_took = time.monotonic() - start
        if tasks:
            await asyncio.wait(tasks, timeout=60)
    return {"sent": count, "ok": statuses.get(200, 0), "statuses": dict(statuses),
            "errors": dict(errors), "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "sending_took_s": sending_took,
            "send_times": send_times}


def main() -> None:
    base, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    try:
        import uvloop
        result = uvloop.run(run(base, rate, seconds))
    except ImportError:
        result = asyncio.run(run(base, rate, seconds))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
