"""Which listener a request arrived on, and what each one serves (SPEC 11, 18).

With ``admin_listen`` set, /metrics, /admin and /console are served only on the admin
listener and the SUBHOOK paths only on the edge's; /healthz and /readyz on both. Which
listener is decided by the listening socket the connection was accepted on (the serving
layer tags each connection's protocol), never by a port number: ``listen: 127.0.0.2:P``
beside ``admin_listen: 127.0.0.1:P`` are two listeners on one port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay.web.problems import problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The tags the serving layer gives each connection's protocol (``listener`` attribute).
EDGE, ADMIN = "edge", "admin"
_ANY_HOST = ("", "0.0.0.0", "::")  # noqa: S104 - names of the wildcard address


def is_private(path: str) -> bool:
    return path == "/metrics" or path.startswith(("/admin/", "/console"))


def on_admin(request: web.Request, admin: tuple[str, int]) -> bool:
    """Whether ``request`` came through the admin listener: the tag of the socket that
    accepted it; without one (an app served by another runner, as in tests), the local
    address and port of the connection against ``admin_listen``, both."""
    listener = getattr(request.protocol, "listener", None)
    if listener is not None:
        return bool(listener == ADMIN)
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport else None
    if not isinstance(sockname, tuple):
        return False
    host, port = admin
    return bool(sockname[1] == port and (host in _ANY_HOST or sockname[0] == host))


def split(admin: tuple[str, int]) -> Any:
    """The middleware that serves each path on its listener only (404 elsewhere)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ("/healthz", "/readyz") and on_admin(
                request, admin) != is_private(request.path):
            return problem(404, "not_found", [f"no such path: {request.path}"])
        return await handler(request)

    return middleware
