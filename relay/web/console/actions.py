"""What the console does, not only shows: sign-in and sign-out, replay and discard.

Every action is a POST with the session's CSRF token (403 without it); replay and discard
need the operator role (403 for a viewer). Sign-in is limited per client address
(auth.SignInLimit): more attempts are answered 429.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp_jinja2
from aiohttp import web

from relay.ingest.admission import forwarded_client
from relay.ops import dead, destinations, quarantine
from relay.ops import events as lookup
from relay.ops.filters import EVERY, ListFilter, config_filter
from relay.store import sessions
from relay.web import auth
from relay.web.console.views import error_page, session_of
from relay.web.forms import Unreadable, parse_url, read_form
from relay.web.state import RUNTIME, SIGN_IN_LIMIT, SIGNED_OUT, STORE, WORKER

log = logging.getLogger("relay.console")

Action = Callable[[web.Request, auth.Session, dict[str, Any]], Awaitable[str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _back_to(target: str | None, default: str = "/console/") -> str:
    """A redirect target inside the console only (never another host)."""
    if not target:
        return default
    parsed = parse_url(target)
    if parsed is None or parsed.scheme or parsed.netloc or \
            not parsed.path.startswith("/console/"):
        return default
    return target


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if not request.app[RUNTIME].current.settings.admin_tokens:
        raise web.HTTPNotFound(text="the console is off: no admin.tokens configured")
    return aiohttp_jinja2.render_template("console/signin.html", request, {
        "title": "Sign in", "next": _back_to(request.query.get("next")), "problem": None,
        "request": request})


async def sign_in(request: web.Request) -> web.StreamResponse:
    settings = request.app[RUNTIME].current.settings
    if not settings.admin_tokens:
        raise web.HTTPNotFound(text="the console is off: no admin.tokens configured")
    address = forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", ()),
                               settings.trusted_proxies) or "-"
    wait = request.app[SIGN_IN_LIMIT].allow(address)
    if wait is not None:
        log.warning("console sign-in refused for %s: too many attempts", address)
        return error_page(request, web.HTTPTooManyRequests(
            text="Too many sign-in attempts from this address; try again later.",
            headers={"Retry-After": str(int(wait) + 1)}))
    try:
        form = await read_form(request)
    except Unreadable as exc:
        return error_page(request, web.HTTPBadRequest(text=str(exc)))
    given = str(form.get("token", "")).encode("utf-8", "surrogateescape")
    entry = auth.match_token(settings.admin_tokens, given)
    target = _back_to(str(form.get("next", "")))
    if entry is None:
        log.warning("console sign-in with a wrong token from %s", address)
        response = aiohttp_jinja2.render_template("console/signin.html", request, {
            "title": "Sign in", "next": target, "problem": "That token is not valid.",
            "request": request},
            status=401)
        return response
    _, cookie = auth.open_session(entry, settings.admin_tokens)
    log.info("console sign-in: %s (%s) from %s", entry.name, entry.role, address)
    response = web.HTTPSeeOther(target)
    response.set_cookie(auth.COOKIE, cookie, max_age=auth.SESSION_TTL_S, path="/console/",
                        httponly=True, samesite="Strict",
                        secure=request.secure or settings.tls_cert is not None)
    raise response


def action(*, operator: bool) -> Callable[[Action], Handler]:
    """A POST that needs a session and its CSRF token (and, if ``operator``, that role);
    it redirects to where the action says, with the session's flash in the query."""

    def wrap(fn: Action) -> Handler:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await checked(request)
            except web.HTTPException as error:
                return error_page(request, error)

        async def checked(request: web.Request) -> web.StreamResponse:
            session = await session_of(request)
            if session is None:
                raise web.HTTPUnauthorized(text="sign in first")
            try:
                form = dict(await read_form(request))
            except Unreadable as exc:
                raise web.HTTPBadRequest(text=str(exc)) from None
            tokens = request.app[RUNTIME].current.settings.admin_tokens
            if not auth.csrf_ok(session, tokens, str(form.get("csrf", "")) or None):
                raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the page")
            if operator and not session.may_act:
                raise web.HTTPForbidden(text=f"{session.name} is a viewer: replay and "
                                             "discard need an operator token")
            raise web.HTTPSeeOther(await fn(request, session, form))

        return handler

    return wrap


@action(operator=False)
async def sign_out(request: web.Request, session: auth.Session,
                   form: dict[str, Any]) -> str:
    signed_out = request.app[SIGNED_OUT]
    now = time.time()
    for nonce in [n for n, expires in signed_out.items() if expires <= now]:
        del signed_out[nonce]  # expired anyway
    signed_out[session.nonce] = session.expires
    await sessions.sign_out(request.app[STORE], session.nonce, session.expires, now)
    log.info("console sign-out: %s", session.name)
    response = web.HTTPSeeOther("/console/signin")
    response.del_cookie(auth.COOKIE, path="/console/")
    raise response


def _ids(request: web.Request, form: dict[str, Any]) -> list[int] | None:
    """The ids a list's form names (checkboxes ``id-<n>``, or one ``id``); None for every
    one in the list (``all=1``)."""
    if form.get("all") == "1":
        return None
    chosen = [str(v) for k, v in form.items() if k.startswith("id-") or k == "id"]
    ids = sorted({int(v) for v in chosen if v.isdigit()})
    if not ids:
        raise web.HTTPBadRequest(text="choose at least one, or all")
    return ids


def _filter(request: web.Request, ids: list[int] | None) -> ListFilter:
    """The list's filter, carried in the query of the form's action: a bulk action on
    "all" takes the rows it shows (ids chosen by hand are taken as they are)."""
    if ids is not None:
        return EVERY
    try:
        return config_filter(dict(request.query), request.app[RUNTIME].current)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


def _back(page: str, which: ListFilter, done: str) -> str:
    """The list again, filtered as it was, saying what was done."""
    return f"{page}?{urlencode({**which.query(), 'done': done})}"


@action(operator=True)
async def replay_event(request: web.Request, session: auth.Session,
                       form: dict[str, Any]) -> str:
    key = lookup.event_key(request.match_info["key"])
    if not isinstance(key, int):
        raise web.HTTPNotFound(text="no such event")
    result = await lookup.replay_events(request.app[STORE], request.app[RUNTIME].current.settings,
                                        [key])
    if result["missing"]:
        raise web.HTTPNotFound(text="no such event")
    log.info("console: %s replayed event %s", session.name, key)
    return f"/console/events/{key}?done=replayed"


@action(operator=True)
async def destination_act(request: web.Request, session: auth.Session,
                          form: dict[str, Any]) -> str:
    """Pause (with the form's reason), resume or retry now (SPEC 17)."""
    verb = request.match_info["verb"]
    if verb not in ("pause", "resume", "retry"):
        raise web.HTTPNotFound(text=f"no such action: {verb}")
    name = request.match_info["name"]
    settings, store, now = request.app[RUNTIME].current.settings, request.app[STORE], time.time()
    reason = str(form.get("reason", "")).strip()[:500] or None
    try:
        if verb == "pause":
            await destinations.pause(store, settings, name, session.name, reason, now)
            done = "paused"
        elif verb == "resume":
            due = await destinations.resume(store, settings, name, now)
            done = "resumed" if due is not None else "was+not+paused"
        else:
            done = f"{await destinations.retry(store, settings, name)}+due+now"
    except destinations.UnknownDestination as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    log.info("console: %s: %s %s", session.name, verb, name)
    await request.app[WORKER].refresh_controls(now)
    request.app[WORKER].wake()
    return f"/console/destinations?done={quote_plus(name)}+{done}"


def _chosen(request: web.Request, form: dict[str, Any]) -> tuple[list[int] | None, ListFilter]:
    """The ids a bulk action takes (None: all), and the list filter "all" means."""
    ids = _ids(request, form)
    return ids, _filter(request, ids)


def _done(session: auth.Session, page: str, which: ListFilter, verb: str, count: int,
          noun: str, more: str = "") -> str:
    """Logged, and the list again saying so."""
    log.info("console: %s %s %d %s", session.name, verb, count, noun)
    return _back(page, which, f"{verb} {count}{more}")


@action(operator=True)
async def dead_replay(request: web.Request, session: auth.Session,
                      form: dict[str, Any]) -> str:
    ids, which = _chosen(request, form)
    settings = request.app[RUNTIME].current.settings
    result = await dead.replay_dead(request.app[STORE], settings, ids, which)
    return _done(session, "/console/dead", which, "replayed", result["replayed"],
                 "dead letter(s)")


@action(operator=True)
async def dead_discard(request: web.Request, session: auth.Session,
                       form: dict[str, Any]) -> str:
    ids, which = _chosen(request, form)
    result = await dead.discard_dead(request.app[STORE], ids, which)
    return _done(session, "/console/dead", which, "discarded", len(result["discarded"]),
                 "dead letter(s)")


@action(operator=True)
async def quarantine_replay(request: web.Request, session: auth.Session,
                            form: dict[str, Any]) -> str:
    ids, which = _chosen(request, form)
    result = await quarantine.replay_quarantine(request.app[STORE],
                                                request.app[RUNTIME].current, ids, which)
    still = len(result["still_invalid"])
    invalid = f", {still} still invalid (the schemas refuse them as before)" if still else ""
    return _done(session, "/console/quarantine", which, "replayed", len(result["replayed"]),
                 "quarantined push(es)", invalid)


@action(operator=True)
async def quarantine_discard(request: web.Request, session: auth.Session,
                             form: dict[str, Any]) -> str:
    ids, which = _chosen(request, form)
    result = await quarantine.discard_quarantine(request.app[STORE], ids, which)
    return _done(session, "/console/quarantine", which, "discarded",
                 len(result["discarded"]), "quarantined push(es)")
