"""Running the app on its listening sockets, each with its caps (relay.connection).

aiohttp's ``run_app`` takes no cap: every accepted connection gets a handler, so a crowd
of idle or trickling clients could hold memory and starve SUBMAIL's pushes. Here each
listening socket's connections are ``relay.connection.Connection`` handlers: refused at
accept beyond the listener's cap (``limits.max_connections`` on the edge,
``limits.max_admin_connections`` on ``admin_listen``) or beyond
``limits.max_connections_per_address`` for one peer address; a header block is bounded in
bytes and time. A connection that sends no complete request within
``limits.idle_timeout`` is closed by aiohttp's keep-alive timer, which it starts at
connect. SIGINT and SIGTERM stop it gracefully, as ``run_app`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from relay.connection import Connection, Listener
from relay.web.listeners import ADMIN, EDGE
from relay.web.state import BUDGET, RUNTIME

#: How long a thread that wants the GIL waits before the one holding it must let go
#: (Python's default: 5 ms). The SQLite store's thread takes it twice per group commit,
#: while the event loop holds it for request handling; at 5 ms the wait was most of a
#: commit's time and capped the pushes answered per second (docs/performance.md).
GIL_SWITCH_INTERVAL_S = 0.0002

#: How long the body of a request answered without reading it (refused: too large, too
#: slow, over the buffer, not allowed) is still read and dropped before the connection
#: closes, so that the client reads the answer rather than a reset (aiohttp's default:
#: 10 s, during which a trickling client kept its connection).
LINGER_S = 1.0


class _Site(web.SockSite):
    """A listening socket whose connections are ``Connection`` handlers of ``listener``."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, *, listener: Listener,
                 **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self._listener = listener

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        listener = self._listener

        def factory() -> asyncio.Protocol:
            return Connection(server, listener=listener, loop=server._loop,
                              **server._kwargs)

        self._server = await asyncio.get_running_loop().create_server(
            factory, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog)


@contextlib.asynccontextmanager
async def serving(app: web.Application, edge: socket.socket, admin: socket.socket | None,
                  *, ssl_context: ssl.SSLContext | None = None, shutdown_timeout: float = 15.0,
                  **handler: Any) -> AsyncIterator[web.AppRunner]:
    """The app served on ``edge`` (and ``admin``) until the block ends; its start-up
    (the store) runs first and its cleanup after."""
    runner = web.AppRunner(app, access_log=None, lingering_time=LINGER_S, **handler)
    await runner.setup()
    try:
        for sock, name in ((edge, EDGE), (admin, ADMIN)):
            if sock is None:
                continue
            listener = Listener(name, app[BUDGET], lambda: app[RUNTIME].current.settings.limits)
            await _Site(runner, sock, listener=listener, ssl_context=ssl_context,
                        shutdown_timeout=shutdown_timeout, backlog=1024).start()
        yield runner
    finally:
        await runner.cleanup()


async def _serve(app: web.Application, edge: socket.socket, admin: socket.socket | None,
                 ssl_context: ssl.SSLContext | None, shutdown_timeout: float,
                 **handler: Any) -> None:
    async with serving(app, edge, admin, ssl_context=ssl_context,
                       shutdown_timeout=shutdown_timeout, handle_signals=True, **handler):
        await asyncio.Event().wait()  # until SIGINT/SIGTERM raise GracefulExit


def run(app: web.Application, edge: socket.socket, admin: socket.socket | None,
        loop: asyncio.AbstractEventLoop, *, ssl_context: ssl.SSLContext | None,
        shutdown_timeout: float, **handler: Any) -> None:
    """Serve until SIGINT or SIGTERM; exceptions of start-up (the store) propagate."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    asyncio.set_event_loop(loop)
    task = loop.create_task(_serve(app, edge, admin, ssl_context, shutdown_timeout,
                                   **handler))
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
