"""The console's pages (SPEC 13), each a view over the queries the CLI and admin API use.

Every page needs a session; without one it redirects to the sign-in page (a fragment
request, from htmx, gets 401 instead). Templates autoescape; contacts are masked by the
functions the data comes from (relay/ops/shown.py).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from relay import templates
from relay.messages.lifecycle import STATES
from relay.messages.stats import hourly, stats
from relay.ops import dead as dead_ops
from relay.ops import destinations as destination_ops
from relay.ops import events as lookup
from relay.ops import quarantine as held_ops
from relay.ops.filters import EVERY, ListFilter, config_filter
from relay.ops.filters import NAMES as FILTER_NAMES
from relay.ops.shown import message as shown_message
from relay.routing import EventKey, destinations_for, explain
from relay.store import deliveries, sessions
from relay.store import messages as message_records
from relay.store.base import DeliveryState
from relay.web import auth
from relay.web.forms import parse_url
from relay.web.state import METRICS, RUNTIME, SIGNED_OUT, STORE, TRAFFIC, WORKER
from relay.web.traffic import Totals, destination_figures

Page = Callable[[web.Request, auth.Session], Awaitable[dict[str, Any]]]
DAY = 86400.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def session_of(request: web.Request) -> auth.Session | None:
    """The request's console session, unless it was signed out: by this relay (remembered
    here) or by any relay on the store, before or after a restart (SPEC 18)."""
    session = auth.read_session(request.cookies.get(auth.COOKIE),
                                request.app[RUNTIME].current.settings.admin_tokens)
    if session is None or session.nonce in request.app[SIGNED_OUT]:
        return None
    if await sessions.is_signed_out(request.app[STORE], session.nonce):
        request.app[SIGNED_OUT][session.nonce] = session.expires
        return None
    return session


def _within_console(url: str | None) -> str:
    """The path (and query) of ``url`` when it is a console page, else the overview: a
    link back never leads off the console (nor to a ``javascript:`` URL)."""
    parsed = parse_url(url)
    if parsed is None or not parsed.path.startswith("/console/"):
        return "/console/"
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def error_page(request: web.Request, error: web.HTTPException) -> web.StreamResponse:
    """A refusal (400, 403, 404, 429 ...) as a console page saying why, with a way back;
    an htmx request gets the bare text."""
    if request.headers.get("HX-Request") or error.status < 400:
        raise error
    response = aiohttp_jinja2.render_template("console/error.html", request, {
        "title": error.reason, "message": error.text or error.reason, "request": request,
        "back": _within_console(request.headers.get("Referer"))}, status=error.status)
    for name in ("Retry-After",):
        if name in error.headers:
            response.headers[name] = error.headers[name]
    return response


def page(template: str) -> Callable[[Page], Handler]:
    """A page rendered from ``template`` for a signed-in user; the context has the session,
    its CSRF token and the page's own values."""

    def wrap(view: Page) -> Handler:
        @functools.wraps(view)
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await session_of(request)
            if session is None:
                if request.headers.get("HX-Request"):
                    raise web.HTTPUnauthorized(text="signed out")
                raise web.HTTPSeeOther("/console/signin?" + urlencode(
                    {"next": request.path_qs}))
            try:
                context = await view(request, session)
            except web.HTTPException as error:
                return error_page(request, error)
            context.update(session=session, csrf=auth.csrf_token(
                session, request.app[RUNTIME].current.settings.admin_tokens), path=request.path,
                request=request)
            response = aiohttp_jinja2.render_template(template, request, context)
            response.headers["Cache-Control"] = "no-store"
            return response

        return handler

    return wrap


async def not_found(request: web.Request) -> web.StreamResponse:
    """Any path under /console/ that is no page: the console's 404 page, with a way back."""
    return error_page(request, web.HTTPNotFound(
        text=f"There is no console page at {request.path}."))


@page("console/overview.html")
async def overview(request: web.Request, session: auth.Session) -> dict[str, Any]:
    gauges = await deliveries.gauges(request.app[STORE])
    totals = Totals.read(request.app[METRICS])
    rates = request.app[TRAFFIC].rates()
    now = time.time()
    queues = [{"destination": name, "pending": count, "oldest_s": max(0.0, now - oldest)}
              for name, (count, oldest) in sorted(gauges.backlog.items())]
    return {"title": "Overview", "gauges": gauges, "totals": totals, "queues": queues,
            "rates": json.dumps(rates)}


@page("console/events.html")
async def events(request: web.Request, session: auth.Session) -> dict[str, Any]:
    query = request.query
    options: dict[str, Any] = {k: query.get(k) or None for k in (
        "send_id", "contact", "product", "event", "state", "since", "until")}
    problem: str | None = None
    listing: dict[str, Any] = {"events": [], "next_cursor": None}
    try:
        which = lookup.event_filter(
            **options, known_events=request.app[RUNTIME].current.schemas.event_names())
        listing = await lookup.list_events(request.app[STORE], which, 50,
                                           query.get("cursor") or None)
    except ValueError as exc:
        problem = str(exc)
    more = None
    if listing["next_cursor"]:
        more = "?" + urlencode({**{k: v for k, v in options.items() if v},
                                "cursor": listing["next_cursor"]})
    return {"title": "Events", "options": options, "problem": problem,
            "events": listing["events"], "more": more,
            "states": [s.value for s in DeliveryState],
            "products": sorted({p for p, _ in request.app[RUNTIME].current.schemas})}


@page("console/event.html")
async def event(request: web.Request, session: auth.Session) -> dict[str, Any]:
    key = lookup.event_key(request.match_info["key"])
    found = None if key is None else await lookup.show_event(request.app[STORE], key)
    if found is None:
        raise web.HTTPNotFound(text="no such event")
    timeline: list[dict[str, Any]] = []
    if found["send_id"]:
        same = await lookup.list_events(request.app[STORE],
                                        lookup.event_filter(send_id=found["send_id"]), 100)
        timeline = sorted(same["events"], key=lambda e: (str(e["fields"].get("timestamp")),
                                                         e["id"]))
    return {"title": f"Event {found['id']}", "event": found, "timeline": timeline,
            "fields": json.dumps(found["fields"], ensure_ascii=False, indent=2)}


@page("console/dead.html")
async def dead(request: web.Request, session: auth.Session) -> dict[str, Any]:
    which, problem = _list_filter(request)
    rows = [] if problem else await dead_ops.dead_letters(request.app[STORE], which)
    return {"title": "Dead letters", "rows": rows, **_filter_context(request, which, problem)}


@page("console/quarantine.html")
async def quarantine(request: web.Request, session: auth.Session) -> dict[str, Any]:
    which, problem = _list_filter(request)
    rows = [] if problem else await held_ops.quarantined(request.app[STORE], which)
    return {"title": "Quarantine", "rows": rows, **_filter_context(request, which, problem)}


def _list_filter(request: web.Request) -> tuple[ListFilter, str | None]:
    try:
        return config_filter(dict(request.query), request.app[RUNTIME].current), None
    except ValueError as exc:
        return EVERY, str(exc)


def _filter_context(request: web.Request, which: ListFilter,
                    problem: str | None) -> dict[str, Any]:
    """What a filtered list's page shows besides its rows: the filter form's values and
    choices, the query a bulk action carries, a problem with the filter."""
    running = request.app[RUNTIME].current
    return {"filters": {n: request.query.get(n, "") for n in FILTER_NAMES},
            "filtered": which.active, "filter_query": urlencode(which.query()),
            "problem": problem, "done": request.query.get("done"),
            "products": sorted({p for p, _ in running.schemas}),
            "destination_names": sorted(running.settings.destinations())}


@page("console/destinations.html")
async def destinations(request: web.Request, session: auth.Session) -> dict[str, Any]:
    settings = request.app[RUNTIME].current.settings
    listed = await destination_ops.listing(request.app[STORE], settings, time.time(),
                                           request.app[WORKER].health)
    figures = destination_figures(request.app[METRICS], [row["name"] for row in listed])
    rows = [{**row, "figures": figures[row["name"]]} for row in listed]
    return {"title": "Destinations", "rows": rows, "done": request.query.get("done")}


@page("console/messages.html")
async def messages_page(request: web.Request, session: auth.Session) -> dict[str, Any]:
    """The last 24 h of messages: per product the delivered share, latency, drops by class
    and by carrier, and hourly delivered share and median latency as charts."""
    now = time.time()
    rows = await message_records.since(request.app[STORE], now - DAY)
    return {"title": "Messages", "figures": stats(rows),
            "series": json.dumps(hourly(rows, now - DAY, now))}


@page("console/message.html")
async def message(request: web.Request, session: auth.Session) -> dict[str, Any]:
    """One message (a send_id): per product its state, latency and states reached, and
    every event of it, newest first."""
    send_id = request.match_info["send_id"]
    found = await message_records.of_send_id(request.app[STORE], send_id)
    records = [shown_message(r, STATES) for r in found]
    listed = await lookup.list_events(request.app[STORE],
                                      lookup.event_filter(send_id=send_id), 100)
    if not records and not listed["events"]:
        raise web.HTTPNotFound(text=f"No message with send_id {send_id}.")
    return {"title": f"Message {send_id}", "send_id": send_id, "records": records,
            "events": listed["events"]}


@page("console/routes.html")
async def routes(request: web.Request, session: auth.Session) -> dict[str, Any]:
    running = request.app[RUNTIME].current
    query = request.query
    verdicts, reached, problem, bodies = None, None, None, None
    if query.get("product") and query.get("event"):
        key = EventKey.of(query["product"], query["event"], query.get("tag") or None)
        try:
            extra = templates.parse_fields(
                line for line in query.get("fields", "").splitlines() if line.strip())
        except ValueError as exc:
            extra, problem = {}, str(exc)
        fields = {"events": query["event"], **({"tag": key.tag} if key.tag else {}), **extra}
        if key.event not in running.schemas.events(key.product):
            problem = f"{key.product} has no event {key.event!r}"
        elif problem is None:
            verdicts = explain(key, running.settings.routes, fields)
            reached = destinations_for(key, running.settings.routes, fields)
            bodies = {d.name: templates.preview(d, key.product, key.event, fields)
                      for d in reached}
    products = sorted({p for p, _ in running.schemas})
    return {"title": "Routes", "routes": running.settings.routes, "query": dict(query),
            "verdicts": verdicts, "reached": reached, "problem": problem,
            "products": products, "bodies": bodies}
