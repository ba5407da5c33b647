"""The admin API behind a bearer token: dead letters and quarantine (listed, replayed,
discarded) and events looked up (SPEC 12). Handlers stay thin: they call the same
operations as the CLI; every refusal is a problem body (problems.py)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay.config import Role
from relay.ingest.admission import forwarded_client
from relay.messages.lifecycle import STATES
from relay.ops import dead, quarantine, shown
from relay.ops import events as lookup
from relay.ops.filters import NAMES as FILTER_NAMES
from relay.ops.filters import ListFilter, config_filter
from relay.store import messages
from relay.store.lookup import EventFilter
from relay.web import admin_destinations
from relay.web.auth import match_token
from relay.web.forms import Unreadable, read_json
from relay.web.problems import problem
from relay.web.state import ADMIN_ENTRY, GUARD, RUNTIME, STORE, WORKER

log = logging.getLogger("relay.admin")

Handler = Callable[[web.Request], Awaitable[web.Response]]


def bearer(header: str) -> bytes | None:
    """The credentials of ``Authorization: Bearer <token>`` (the scheme's case does not
    matter, RFC 9110); None without that scheme. Bytes as received, so a header that is
    not ASCII is compared (and refused), never a 500."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode("utf-8", "surrogateescape")


def _limited(wait: float) -> web.Response:
    response = problem(429, "too_many_requests", [
        "too many wrong bearer tokens from this address; retry later"])
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


def admin(handler: Handler) -> Handler:
    """Only with ``Authorization: Bearer <token>`` of ``admin.token`` or ``admin.tokens``
    (compared in constant time with every one); a POST (replay, discard) needs an operator's
    token: a viewer's is 403. 404 when no token is configured. A client address (read as
    ``allow_ips`` reads it) that sent ``SIGN_IN_ATTEMPTS`` wrong tokens within the window is
    answered 429 with Retry-After, whatever it sends, until the window has passed."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.Response:
        settings = request.app[RUNTIME].current.settings
        tokens = settings.admin_tokens
        if not tokens:
            return problem(404, "not_found",
                           ["admin endpoints are off (no admin.token configured)"])
        guard = request.app[GUARD]
        address = forwarded_client(request.remote, request.headers.getall(
            "X-Forwarded-For", ()), settings.trusted_proxies) or "-"
        wait = guard.limit.wait(address)
        if wait is not None:
            guard.note("limited", address)
            return _limited(wait)
        given = bearer(request.headers.get("Authorization", ""))
        entry = None if given is None else match_token(tokens, given)
        if entry is None:
            if "Authorization" in request.headers:  # a guess, not a client without one
                guard.limit.count(address)
                guard.note("wrong_token", address)
            return problem(401, "unauthorized", ["a valid bearer token is required"])
        if request.method == "POST" and entry.role is not Role.OPERATOR:
            return problem(403, "forbidden", [
                f"{entry.name} is a viewer: replay and discard need an operator token"])
        request[ADMIN_ENTRY] = entry
        return await handler(request)

    return guarded


def _list_filter(request: web.Request, ids: list[int] | None = None) -> ListFilter:
    """The query's filters of a dead-letter or quarantine list (SPEC 21); a 400 naming the
    first bad one, or filters beside ids (a filter chooses with ``{"all": true}``)."""
    running = request.app[RUNTIME].current
    unknown = sorted(set(request.query) - set(FILTER_NAMES))
    try:
        if unknown:
            raise ValueError(f"{unknown[0]}: not a filter (use {', '.join(FILTER_NAMES)})")
        which = config_filter(dict(request.query), running)
    except ValueError as exc:
        raise _bad_request([str(exc)]) from None
    if ids is not None and which.active:
        raise _bad_request(['filters choose with {"all": true}; give ids or filters'])
    return which


@admin
async def admin_dead(request: web.Request) -> web.Response:
    return web.json_response({"dead_letters": await dead.dead_letters(
        request.app[STORE], _list_filter(request))})


@admin
async def admin_quarantine(request: web.Request) -> web.Response:
    return web.json_response({"quarantine": await quarantine.quarantined(
        request.app[STORE], _list_filter(request))})


def _bad_request(problems: list[str]) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"status": "error", "error": "bad_request", "problems": problems}),
        content_type="application/json")


async def _ids_or_all(request: web.Request) -> list[int] | None:
    """``{"ids": [..]}`` or ``{"all": true}`` (None); raises a 400 otherwise, also for a
    body that holds both: which one was meant cannot be told, and a discard is final."""
    shape = 'body must be {"ids": [1, 2]} (ids are positive integers) or {"all": true}'
    try:
        payload: Any = await read_json(request)
    except Unreadable as exc:
        raise _bad_request([str(exc), shape]) from None
    keys = set(payload) if isinstance(payload, dict) else set()
    if keys == {"all"} and payload["all"] is True:
        return None
    ids = payload["ids"] if keys == {"ids"} else None
    if isinstance(ids, list) and ids and all(shown.valid_id(i) for i in ids):
        return ids
    raise _bad_request([shape])


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
    ids = await _ids_or_all(request)
    result = await dead.replay_dead(request.app[STORE], request.app[RUNTIME].current.settings, ids,
                                    _list_filter(request, ids))
    request.app[WORKER].wake()
    return _answer(result, "dead letter")


@admin
async def admin_quarantine_replay(request: web.Request) -> web.Response:
    ids = await _ids_or_all(request)
    result = await quarantine.replay_quarantine(request.app[STORE], request.app[RUNTIME].current,
                                                ids, _list_filter(request, ids))
    request.app[WORKER].wake()
    return _answer(result, "quarantined push")


@admin
async def admin_dead_discard(request: web.Request) -> web.Response:
    ids = await _ids_or_all(request)
    return _answer(await dead.discard_dead(request.app[STORE], ids, _list_filter(request, ids)),
                   "dead letter")


@admin
async def admin_quarantine_discard(request: web.Request) -> web.Response:
    ids = await _ids_or_all(request)
    return _answer(await quarantine.discard_quarantine(request.app[STORE], ids,
                                                       _list_filter(request, ids)),
                   "quarantined push")


# -- events looked up (SPEC 12) -----------------------------------------------------------

#: The query parameters of ``GET /admin/events``: the options of ``relay events list``.
FILTERS = ("send_id", "contact", "product", "event", "state", "since", "until")
PARAMETERS = (*FILTERS, "limit", "cursor")

#: Longest limit and cursor read as numbers (a cursor is a positive BIGINT).
_MAX_DIGITS = 19


def _digits(name: str, text: str, meaning: str) -> str:
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        raise ValueError(f"{name}: {text!r} is not {meaning}")
    return text


def _page_query(request: web.Request, now: float) -> tuple[EventFilter, int, str | None]:
    """The filter, limit and cursor of the request's query; ValueError naming the first bad
    parameter (one not listed, one given twice, or a value the CLI would refuse as well)."""
    query = request.rel_url.query
    for name in query:
        if name not in PARAMETERS:
            raise ValueError(f"{name}: not a parameter (use {', '.join(PARAMETERS)})")
        if len(query.getall(name)) > 1:
            raise ValueError(f"{name}: given more than once")
        if "\x00" in query[name]:  # PostgreSQL refuses NUL in text, as an error of the store
            raise ValueError(f"{name}: holds a NUL character")
    for name in ("since", "until"):
        try:
            one: dict[str, Any] = {name: query.get(name)}
            lookup.event_filter(now=now, **one)
        except ValueError as exc:  # a bad time is named by its value, not its parameter
            named = str(exc).startswith(f"{name}:")
            raise ValueError(str(exc) if named else f"{name}: {exc}") from None
    options: dict[str, Any] = {name: query.get(name) for name in FILTERS}
    options["known_events"] = request.app[RUNTIME].current.schemas.event_names()
    which = lookup.event_filter(now=now, **options)
    limit = int(_digits("limit", query.get("limit", str(lookup.DEFAULT_LIMIT)),
                        "a whole number of events"))
    cursor = query.get("cursor")
    if cursor is not None:
        _digits("cursor", cursor, "a cursor this relay gave")
    return which, limit, cursor


def _shown(value: Any) -> web.Response:
    return web.json_response(value, dumps=shown.dumps)


def _no_event(key: str) -> web.Response:
    return problem(404, "not_found", [f"no event with id or webhook-id {key}"])


async def _event(request: web.Request) -> dict[str, Any] | None:
    """The event the path's key names (id or webhook-id), as shown; None for none."""
    text = request.match_info["key"]
    if "\x00" in text:  # PostgreSQL refuses NUL in text, as an error of the store
        return None
    try:
        key = lookup.event_key(text)
    except ValueError:  # digits int() does not read, such as "²"
        return None
    return None if key is None else await lookup.show_event(request.app[STORE], key)


@admin
async def admin_events(request: web.Request) -> web.Response:
    try:
        which, limit, cursor = _page_query(request, time.time())
        page = await lookup.list_events(request.app[STORE], which, limit, cursor)
    except ValueError as exc:
        return problem(400, "bad_request", [str(exc)])
    return _shown(page)


@admin
async def admin_event(request: web.Request) -> web.Response:
    found = await _event(request)
    return _no_event(request.match_info["key"]) if found is None else _shown(found)


@admin
async def admin_event_replay(request: web.Request) -> web.Response:
    """Delivers the event again to each destination whose delivery is delivered or dead."""
    found = await _event(request)
    if found is None:
        return _no_event(request.match_info["key"])
    result = await lookup.replay_events(request.app[STORE], request.app[RUNTIME].current.settings,
                                        [found["id"]])
    if result["missing"]:  # pruned by retention since it was read
        return _no_event(request.match_info["key"])
    request.app[WORKER].wake()
    return _shown(result)


#: (method, path, handler) of every admin endpoint.
@admin
async def admin_messages(request: web.Request) -> web.Response:
    """The message records of a send_id (one per product that used it); 404 for none."""
    send_id = request.match_info["send_id"]
    found = [shown.message(r, STATES)
             for r in await messages.of_send_id(request.app[STORE], send_id)]
    if not found:
        return problem(404, "not_found", [f"no message with send_id {send_id}"])
    return web.json_response({"messages": found})


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/admin/dead", admin_dead),
    ("POST", "/admin/dead/replay", admin_dead_replay),
    ("POST", "/admin/dead/discard", admin_dead_discard),
    ("GET", "/admin/quarantine", admin_quarantine),
    ("POST", "/admin/quarantine/replay", admin_quarantine_replay),
    ("POST", "/admin/quarantine/discard", admin_quarantine_discard),
    ("GET", "/admin/events", admin_events),
    ("GET", "/admin/events/{key}", admin_event),
    ("POST", "/admin/events/{key}/replay", admin_event_replay),
    ("GET", "/admin/messages/{send_id}", admin_messages),
    *admin_destinations.routes(admin),
)
