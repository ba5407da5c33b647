"""``create_app(runtime)``: the aiohttp application and the lifetimes of its parts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from relay import operations, version
from relay.config import Settings
from relay.ingest import Ingest, problem
from relay.metrics import Metrics
from relay.redact import redact_text, redact_url
from relay.runtime import Runtime
from relay.store import Store, StoreUnavailable, open_store
from relay.worker import Worker

log = logging.getLogger("relay.app")

RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
WORKER = web.AppKey("worker", Worker)


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


def _allow(*methods: str) -> Handler:
    """The answer of a known path to a method it does not take."""
    allowed = ", ".join(methods)

    async def not_allowed(request: web.Request) -> web.Response:
        response = problem(405, "method_not_allowed",
                           [f"{request.path} takes {allowed}, not {request.method}"])
        response.headers["Allow"] = allowed
        return response

    return not_allowed


def _is_private(path: str) -> bool:
    return path == "/metrics" or path.startswith(("/admin/", "/console"))


def _split_ports(admin_port: int) -> Any:
    """With ``admin_listen``: /metrics, /admin and /console only on the admin port, the
    SUBHOOK paths only on the edge port; /healthz and /readyz on both."""

    @web.middleware
    async def split(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ("/healthz", "/readyz"):
            transport = request.transport
            sockname = transport.get_extra_info("sockname") if transport else None
            on_admin = isinstance(sockname, tuple) and sockname[1] == admin_port
            if on_admin != _is_private(request.path):
                return problem(404, "not_found", [f"no such path: {request.path}"])
        return await handler(request)

    return split


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        # The store's own words may name files, hosts or users: they go to the log only.
        log.error("readyz: store unavailable: %s",
                  redact_text(str(exc), request.app[RUNTIME].settings.store))
        return problem(503, "store_unavailable", ["the store cannot be reached; see the log"])
    return web.json_response({"status": "ready", "config_generation":
                              request.app[RUNTIME].generation})


async def metrics(request: web.Request) -> web.Response:
    gauges = await request.app[STORE].gauges()
    worker = request.app[WORKER]
    up = {name: worker.health.up(name)
          for name in request.app[RUNTIME].settings.destinations()}
    body = request.app[METRICS].render(gauges, up, time.time())
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


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


def create_app(runtime: Runtime, store: Store | None = None) -> web.Application:
    """The relay as an aiohttp app; the store opens and the worker starts on startup."""
    settings = runtime.settings
    middlewares = [] if settings.admin_listen is None else [_split_ports(
        settings.admin_listen[1])]
    app = web.Application(client_max_size=settings.limits.max_body_size,
                          middlewares=middlewares)
    app[RUNTIME] = runtime
    app[STORE] = store or open_store(settings.store)
    app[METRICS] = Metrics()
    runtime.on_reload = app[METRICS].config_reloaded
    worker = Worker(app[STORE], lambda: runtime.settings,
                    owner=f"{socket.gethostname()}:{os.getpid()}:{id(app)}",
                    metrics=app[METRICS])
    app[WORKER] = worker
    ingest = Ingest(runtime, app[STORE], app[METRICS], worker.wake)
    for method, path, handler in (
        ("GET", "/healthz", healthz), ("GET", "/readyz", readyz), ("GET", "/metrics", metrics),
        ("GET", "/admin/dead", admin_dead), ("POST", "/admin/dead/replay", admin_dead_replay),
        ("GET", "/admin/quarantine", admin_quarantine),
        ("POST", "/admin/quarantine/replay", admin_quarantine_replay),
    ):
        app.router.add_route(method, path, handler)
        allowed = ("GET", "HEAD") if method == "GET" else (method,)
        app.router.add_route("*", path, _allow(*allowed))
    app.router.add_route("*", "/{tail:.*}", ingest.handle)
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    store, worker, runtime = app[STORE], app[WORKER], app[RUNTIME]
    await store.open()
    _log_start(runtime.settings)
    worker.start()
    watch_task = asyncio.create_task(runtime.watch(), name="relay-config-watch")
    prune_task = asyncio.create_task(_retention(store, runtime), name="relay-retention")
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, runtime.reload)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        watch_task.cancel()
        prune_task.cancel()
        await worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await watch_task
        with contextlib.suppress(asyncio.CancelledError):
            await prune_task
        await store.close()
        log.info("relay stopped")


def _log_start(settings: Settings) -> None:
    listen = f"{settings.listen_host}:{settings.listen_port}"
    admin = ("" if settings.admin_listen is None
             else f", admin on {settings.admin_listen[0]}:{settings.admin_listen[1]}")
    log.info("relay %s serving on %s%s%s; store %s; SUBHOOKs %s; %d route(s) to %d "
             "destination(s)", version(), "https://" if settings.tls_cert else "http://",
             listen, admin, redact_url(settings.store),
             ", ".join(f"{s.path} ({s.product})" for s in settings.subhooks),
             len(settings.routes), len(settings.destinations()),
             extra={"version": version(), "listen": listen, "store": redact_url(settings.store),
                    "subhooks": [s.path for s in settings.subhooks],
                    "routes": len(settings.routes)})


async def _retention(store: Store, runtime: Runtime) -> None:
    """Prune delivered events and old tokens every ``retention.interval``.

    Tokens are kept ``retention.tokens`` (SUBMAIL signs no timestamp, so a captured token
    is a credential as long as it is forgotten); delivered events for
    ``retention.delivered`` but never less than the replay window, which identity dedupe
    needs. Dead letters and pending deliveries are never pruned.
    """
    while True:
        settings = runtime.settings
        await asyncio.sleep(settings.retention_interval)
        now = time.time()
        keep = max(settings.retention_delivered, settings.replay_past)
        try:
            events, tokens = await store.prune(now - keep, now - settings.retention_tokens)
        except StoreUnavailable as exc:
            log.warning("retention: store unavailable, trying again later: %s", exc)
            continue
        if events or tokens:
            log.info("retention: pruned %d delivered events and %d tokens", events, tokens)
