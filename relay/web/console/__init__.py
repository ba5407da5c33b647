"""The console (SPEC 13): server-rendered pages under /console/ (Jinja2 through
aiohttp-jinja2, autoescaped), refreshed by htmx, charts by uPlot, styled by Pico CSS; the
three are vendored files in relay/web/static/vendor (VENDORED.md), served from the package
with the console's own small script and stylesheet. No page answers without a session; the
static files hold no data.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from relay import times
from relay.web import auth
from relay.web.console import actions, views
from relay.web.state import METRICS, SIGN_IN_LIMIT, SIGNED_OUT, TRAFFIC
from relay.web.traffic import SAMPLE_S, Traffic

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC = Path(__file__).resolve().parent.parent / "static"

ROUTES = (
    ("GET", "/console/signin", actions.sign_in_page),
    ("POST", "/console/signin", actions.sign_in),
    ("POST", "/console/signout", actions.sign_out),
    ("GET", "/console/", views.overview),
    ("GET", "/console/events", views.events),
    ("GET", "/console/events/{key}", views.event),
    ("POST", "/console/events/{key}/replay", actions.replay_event),
    ("GET", "/console/dead", views.dead),
    ("POST", "/console/dead/replay", actions.dead_replay),
    ("POST", "/console/dead/discard", actions.dead_discard),
    ("GET", "/console/quarantine", views.quarantine),
    ("POST", "/console/quarantine/replay", actions.quarantine_replay),
    ("POST", "/console/quarantine/discard", actions.quarantine_discard),
    ("GET", "/console/destinations", views.destinations),
    ("POST", "/console/destinations/{name}/{verb}", actions.destination_act),
    ("GET", "/console/routes", views.routes),
    ("GET", "/console/messages", views.messages_page),
    ("GET", "/console/messages/{send_id}", views.message),
)


def _when(text: str | None) -> str:
    """An ISO time as a table shows it: local, ``2026-11-24 10:07:20`` (no zone)."""
    return times.local(text)[:19].replace("T", " ") if text else "-"


def _stamp(value: object) -> str:
    """SUBMAIL's ``timestamp`` for people: local time when it reads as UNIX seconds
    (times.read_timestamp), else as stored (autoescaped), whatever a store holds."""
    try:
        shown = times.iso(times.read_timestamp(value))
    except ValueError:
        shown = None
    return times.local(shown) if shown else ("-" if value is None else str(value)[:40])


def _ago(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``: how long ago, for people."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@functools.cache
def _static_url(path: str) -> str:
    """``/console/static/<path>?v=<hash>``: a new file is a new URL (caches stay right)."""
    digest = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
    return f"/console/static/{path}?v={digest}"


def setup(app: web.Application,
          add_route: Callable[[web.Application, str, str, Handler], None]) -> None:
    """Templates, pages, static files and the traffic sampler, on ``app``; each page's
    route added by ``add_route`` (HEAD beside GET, bodies read within the limits)."""
    environment = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("relay.web", "templates"), autoescape=True)
    environment.filters.update(local=times.local, ago=_ago, stamp=_stamp, when=_when)
    environment.globals["static"] = _static_url
    app[TRAFFIC] = Traffic()
    app[SIGNED_OUT] = {}
    app[SIGN_IN_LIMIT] = auth.SignInLimit()
    for method, path, handler in ROUTES:
        add_route(app, method, path, handler)
    app.router.add_get("/console", _to_console)
    app.router.add_static("/console/static/", STATIC)
    # Last: any other path under /console/ is the console's own 404 page, not JSON.
    app.router.add_route("*", "/console/{tail:.*}", views.not_found)


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")


async def sample_traffic(app: web.Application) -> None:
    """A sample of the counters every SAMPLE_S for the overview's chart (app.py runs it)."""
    while True:
        app[TRAFFIC].sample(app[METRICS])
        await asyncio.sleep(SAMPLE_S)
