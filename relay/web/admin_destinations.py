"""``/admin/destinations`` (SPEC 17): the destinations listed, paused, resumed and made due
now, through the same functions as ``relay destinations``; unknown names are 404."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay.ops import destinations
from relay.web.problems import problem
from relay.web.state import ADMIN_ENTRY, RUNTIME, STORE, WORKER

Handler = Callable[[web.Request], Awaitable[web.Response]]
#: Longest pause reason kept (it is shown in lists, logs and alerts).
MAX_REASON = 500


async def listing(request: web.Request) -> web.Response:
    rows = await destinations.listing(request.app[STORE], request.app[RUNTIME].current.settings,
                                      time.time(), request.app[WORKER].health)
    return web.json_response({"destinations": rows})


async def _reason(request: web.Request) -> str | None:
    """The optional ``{"reason": "..."}`` of a pause; ValueError naming the problem."""
    if not request.can_read_body:
        return None
    try:
        body: Any = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the body must be JSON: {\"reason\": \"...\"} or nothing") from exc
    if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str | None):
        raise ValueError("the body must be {\"reason\": \"...\"}")
    reason = body.get("reason")
    if reason is not None and len(reason) > MAX_REASON:
        raise ValueError(f"reason: at most {MAX_REASON} characters")
    return reason or None


def _by(request: web.Request) -> str:
    entry = request.get(ADMIN_ENTRY)
    return getattr(entry, "name", None) or "admin API"


async def act(request: web.Request, verb: str, by: str | None) -> web.Response:
    """Pause, resume or retry the destination named in the path; what the console's form
    and the admin API both do."""
    name = request.match_info["name"]
    store, settings, worker = request.app[STORE], request.app[RUNTIME].current.settings, \
        request.app[WORKER]
    now = time.time()
    try:
        if verb == "pause":
            reason = await _reason(request)
            await destinations.pause(store, settings, name, by or _by(request), reason, now)
            answer: dict[str, Any] = {"destination": name, "state": "paused", "reason": reason}
        elif verb == "resume":
            due = await destinations.resume(store, settings, name, now)
            answer = {"destination": name, "resumed": due is not None, "due_now": due or 0}
        else:
            answer = {"destination": name,
                      "due_now": await destinations.retry(store, settings, name)}
    except destinations.UnknownDestination as exc:
        return problem(404, "not_found", [str(exc)])
    except ValueError as exc:
        return problem(400, "bad_request", [str(exc)])
    # This relay obeys at once; the others within CONTROL_POLL_S.
    await worker.refresh_controls(now)
    worker.wake()
    return web.json_response(answer)


def routes(guard: Callable[[Handler], Handler]) -> tuple[tuple[str, str, Handler], ...]:
    def verb_handler(verb: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return await act(request, verb, None)

        handler.__name__ = f"admin_destination_{verb}"
        return guard(handler)

    return (("GET", "/admin/destinations", guard(listing)),
            *(("POST", f"/admin/destinations/{{name}}/{verb}", verb_handler(verb))
              for verb in ("pause", "resume", "retry")))
