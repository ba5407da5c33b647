"""The admin API: dead letters and quarantine, listed and replayed, behind a bearer token.
Handlers stay thin: they call the same operations as the CLI."""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay import operations
from relay.web.problems import problem
from relay.web.state import RUNTIME, STORE, WORKER

Handler = Callable[[web.Request], Awaitable[web.Response]]


def bearer(header: str) -> bytes | None:
    """The credentials of ``Authorization: Bearer <token>`` (the scheme's case does not
    matter, RFC 9110); None without that scheme. Bytes as received, so a header that is
    not ASCII is compared (and refused), never a 500."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode("utf-8", "surrogateescape")


def admin(handler: Handler) -> Handler:
    """Only with ``Authorization: Bearer <admin.token>``; 404 when no token is configured."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.Response:
        token = request.app[RUNTIME].settings.admin_token
        if not token:
            return problem(404, "not_found",
                           ["admin endpoints are off (no admin.token configured)"])
        given = bearer(request.headers.get("Authorization", ""))
        if given is None or not hmac.compare_digest(given, token.encode()):
            return problem(401, "unauthorized", ["a valid bearer token is required"])
        return await handler(request)

    return guarded


@admin
async def admin_dead(request: web.Request) -> web.Response:
    return web.json_response({"dead_letters": await operations.dead_letters(request.app[STORE])})


@admin
async def admin_quarantine(request: web.Request) -> web.Response:
    return web.json_response({"quarantine": await operations.quarantined(request.app[STORE])})


async def _replay_ids(request: web.Request) -> list[int] | None:
    """``{"ids": [..]}`` or ``{"all": true}`` (None); raises a 400 otherwise."""
    try:
        payload: Any = await request.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("all") is True:
        return None
    ids = payload.get("ids") if isinstance(payload, dict) else None
    if isinstance(ids, list) and ids and all(operations.valid_id(i) for i in ids):
        return ids
    raise web.HTTPBadRequest(
        text=json.dumps({"status": "error", "error": "bad_request",
                         "problems": ['body must be {"ids": [1, 2]} (ids are positive '
                                      'integers) or {"all": true}']}),
        content_type="application/json")


def _answer(result: dict[str, Any], noun: str) -> web.Response:
    """200 with what was done; 404 naming the ids that matched nothing (the others are
    done all the same, as ``rm`` does with the files it finds)."""
    if not result["missing"]:
        return web.json_response(result)
    body = {"status": "error", "error": "not_found",
            "problems": [f"no {noun} with id {', '.join(map(str, result['missing']))}"],
            **result}
    return web.json_response(body, status=404)


@admin
async def admin_dead_replay(request: web.Request) -> web.Response:
    result = await operations.replay_dead(request.app[STORE], request.app[RUNTIME].settings,
                                          await _replay_ids(request))
    request.app[WORKER].wake()
    return _answer(result, "dead letter")


@admin
async def admin_quarantine_replay(request: web.Request) -> web.Response:
    result = await operations.replay_quarantine(request.app[STORE], request.app[RUNTIME],
                                                await _replay_ids(request))
    request.app[WORKER].wake()
    return _answer(result, "quarantined push")


#: (method, path, handler) of every admin endpoint.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/admin/dead", admin_dead),
    ("POST", "/admin/dead/replay", admin_dead_replay),
    ("GET", "/admin/quarantine", admin_quarantine),
    ("POST", "/admin/quarantine/replay", admin_quarantine_replay),
)
