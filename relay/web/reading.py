"""Reading a request's body within its bounds (SPEC 16, 18): a size limit, a read deadline
(``limits.read_timeout``: 408) and the bytes held by bodies being read over every request
and per peer address (``limits.max_buffered``, a quarter of it per address: 503).

The SUBHOOK endpoint reads its bodies with ``read_body``; every other route that takes a
body (console sign-in and actions, the admin API) is wrapped by ``bounded``, which reads
the body the same way before the handler runs and hands it the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError

from relay.capacity import Budget
from relay.errors import BadPush, Overloaded, PayloadTooLarge, PushRejected, ReadTimedOut
from relay.web.problems import problem
from relay.web.state import BUDGET, RUNTIME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _over_budget(limit: int) -> Overloaded:
    return Overloaded([f"bodies being read hold over {limit} bytes, or this address a "
                       "quarter of it (limits.max_buffered); retry later"])


def peer(request: web.Request) -> str:
    """The TCP peer's address (never a header's)."""
    return request.remote or "-"


async def read_body(request: web.Request, limit: int, within: float, budget: Budget,
                    buffered: int) -> bytes:
    """The whole body, refused when over ``limit`` bytes or slower than ``within`` seconds,
    or 503 when the bodies being read would hold more than ``buffered`` bytes in all or a
    quarter of it for this peer address."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge([f"body of {request.content_length} bytes is over {limit}"])
    address = peer(request)
    if request.content.is_eof():
        # All of it came with the headers (most pushes): nothing to wait for, no timeout to
        # arm (which cost as much as the rest of reading).
        body = request.content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLarge([f"body is over {limit} bytes"])
        if not budget.fits(address, len(body), buffered):
            raise _over_budget(buffered)
        return body
    chunks, size = [], 0
    try:
        async with asyncio.timeout(within):
            async for chunk in request.content.iter_any():
                if size + len(chunk) > limit:
                    raise PayloadTooLarge([f"body is over {limit} bytes"])
                if not budget.take(address, len(chunk), buffered):
                    raise _over_budget(buffered)
                size += len(chunk)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise ReadTimedOut([f"body not received within {within:g}s"]) from exc
    except (RequestPayloadError, ConnectionError) as exc:
        # a broken chunked framing, a bad compression, a client gone: its fault, not ours
        raise BadPush([f"body could not be read: {exc}"]) from exc
    finally:
        budget.give(address, size)
    return b"".join(chunks)


def bounded(handler: Handler) -> Handler:
    """``handler`` with its body read first by ``read_body`` (limits of the config serving
    now); a body that breaks a bound is answered with its status, the handler not run."""

    async def read_first(request: web.Request) -> web.StreamResponse:
        if request.can_read_body:
            limits = request.app[RUNTIME].current.settings.limits
            try:
                body = await read_body(request, limits.max_body_size, limits.read_timeout,
                                       request.app[BUDGET], limits.max_buffered)
            except PushRejected as exc:
                response = problem(exc.status, exc.code, exc.problems)
                response.force_close()  # the rest of the body is not worth reading
                return response
            # The handler reads the body as it would have (text, form, multipart, JSON):
            # from a reader that already holds all of it.
            reader = StreamReader(request.protocol, len(body) + 1,
                                  loop=asyncio.get_running_loop())
            reader.feed_data(body)
            reader.feed_eof()
            request._payload = reader
        return await handler(request)

    read_first.__name__ = getattr(handler, "__name__", "handler")
    read_first.__doc__ = handler.__doc__
    return read_first
