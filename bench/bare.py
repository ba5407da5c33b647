"""The ceiling: an aiohttp server that reads each push and answers 200, doing nothing else.

    python bench/bare.py PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "accepted"})


def main(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    loop = None
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main(int(sys.argv[1]))
