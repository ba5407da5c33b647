"""Sink servers for the benchmark: answer 200 at once, remember when each event arrived.

    python bench/sink.py PORT [PORT ...]

Each port is one destination. ``GET /stats`` on any port answers the delivery count of
every port; ``GET /arrivals`` answers ``{port: {send_id: first arrival (time.time())}}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web


def main(ports: list[int]) -> None:
    arrivals: dict[int, dict[str, float]] = {port: {} for port in ports}
    counts: dict[int, int] = dict.fromkeys(ports, 0)

    def app_for(port: int) -> web.Application:
        seen = arrivals[port]

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            at = time.time()
            counts[port] += 1
            fields = json.loads(body)
            send_id = fields.get("send_id") or fields.get("token")
            if isinstance(send_id, str):
                seen.setdefault(send_id, at)
            return web.Response(text="ok")

        async def stats(request: web.Request) -> web.Response:
            return web.json_response({str(p): c for p, c in counts.items()})

        async def dump(request: web.Request) -> web.Response:
            return web.json_response({str(p): a for p, a in arrivals.items()})

        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_get("/arrivals", dump)
        app.router.add_post("/{tail:.*}", hook)
        return app

    async def run() -> None:
        runners = []
        for port in ports:
            runner = web.AppRunner(app_for(port), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        print("ready", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop
        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main([int(p) for p in sys.argv[1:]])
