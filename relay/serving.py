"""Running the app on its listening sockets, with a cap on connections.

aiohttp's ``run_app`` takes no cap: every accepted connection gets a handler, so a crowd
of idle or trickling clients could hold memory and starve SUBMAIL's pushes. Here each
listening socket's protocol factory refuses (closes at once) a connection beyond
``limits.max_connections`` (counted over both listeners), and a connection that sends no
complete request within ``limits.idle_timeout`` is closed by aiohttp's keep-alive timer,
which it starts at connect. SIGINT and SIGTERM stop it gracefully, as ``run_app`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from relay.logs import Throttle

log = logging.getLogger("relay.serving")

#: How long a thread that wants the GIL waits before the one holding it must let go
#: (Python's default: 5 ms). The SQLite store's thread takes it twice per group commit,
#: while the event loop holds it for request handling; at 5 ms the wait was most of a
#: commit's time and capped the pushes answered per second (docs/performance.md).
GIL_SWITCH_INTERVAL_S = 0.0002


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _CappedSite(web.SockSite):
    def __init__(self, runner: web.AppRunner, sock: socket.socket, *, cap: int,
                 throttle: Throttle, **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self._cap = cap
        self._throttle = throttle

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None

        def factory() -> asyncio.Protocol:
            if len(server.connections) < self._cap:
                return server()
            count = self._throttle.let("cap", time.monotonic())
            if count is not None:
                log.warning("connection refused: %d connections open (limits.max_connections)"
                            " (%d refused in the last 10s)", self._cap, count,
                            extra={"count": count})
            return _Refused()

        self._server = await asyncio.get_running_loop().create_server(
            factory, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog)


async def _serve(app: web.Application, sockets: list[socket.socket],
                 ssl_context: ssl.SSLContext | None, max_connections: int,
                 shutdown_timeout: float, **handler: Any) -> None:
    runner = web.AppRunner(app, handle_signals=True, access_log=None, **handler)
    await runner.setup()
    try:
        throttle = Throttle()
        for sock in sockets:
            await _CappedSite(runner, sock, cap=max_connections, throttle=throttle,
                              ssl_context=ssl_context, shutdown_timeout=shutdown_timeout,
                              backlog=1024).start()
        await asyncio.Event().wait()  # until SIGINT/SIGTERM raise GracefulExit
    finally:
        await runner.cleanup()


def run(app: web.Application, sockets: list[socket.socket], loop: asyncio.AbstractEventLoop,
        *, ssl_context: ssl.SSLContext | None, max_connections: int, shutdown_timeout: float,
        **handler: Any) -> None:
    """Serve until SIGINT or SIGTERM; exceptions of start-up (the store) propagate."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    asyncio.set_event_loop(loop)
    task = loop.create_task(_serve(app, sockets, ssl_context, max_connections,
                                   shutdown_timeout, **handler))
    try:
        loop.run_until_complete(task)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():  # a signal: cancelling runs the graceful cleanup
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, GracefulExit, KeyboardInterrupt):
                loop.run_until_complete(task)
        rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for leftover in rest:
            leftover.cancel()
        if rest:
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
