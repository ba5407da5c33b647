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

from relay import operations
from relay.ingest import Ingest, problem
from relay.metrics import Metrics
from relay.runtime import Runtime
from relay.store import Store, StoreUnavailable, open_store
from relay.worker import Worker

log = logging.getLogger("relay.app")

RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
WORKER = web.AppKey("worker", Worker)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def admin(handler: Handler) -> Handler:
    """Only with ``Authorization: Bearer <admin.token>``; 404 when no token is configured."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.Response:
        token = request.app[RUNTIME].settings.admin_token
        if not token:
            return problem(404, "not_found",
                           ["admin endpoints are off (no admin.token configured)"])
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.encode()):
            return problem(401, "unauthorized", ["a valid bearer token is required"])
        return await handler(request)

    return guarded


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        return problem(503, "store_unavailable", [str(exc)])
    return web.json_response({"status": "ready", "config_generation":
                              request.app[RUNTIME].generation})


async def metrics(request: web.Request) -> web.Response:
    pending, dead = await request.app[STORE].counts()
    body = request.app[METRICS].render(pending, dead)
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
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        return ids
    raise web.HTTPBadRequest(
        text=json.dumps({"status": "error", "error": "bad_request",
                         "problems": ['body must be {"ids": [1, 2]} or {"all": true}']}),
        content_type="application/json")


@admin
async def admin_dead_replay(request: web.Request) -> web.Response:
    count = await operations.replay_dead(request.app[STORE], request.app[RUNTIME].settings,
                                         await _replay_ids(request))
    request.app[WORKER].wake()
    return web.json_response({"replayed": count})


@admin
async def admin_quarantine_replay(request: web.Request) -> web.Response:
    result = await operations.replay_quarantine(request.app[STORE], request.app[RUNTIME],
                                                await _replay_ids(request))
    request.app[WORKER].wake()
    return web.json_response(result)


def create_app(runtime: Runtime, store: Store | None = None) -> web.Application:
    """The relay as an aiohttp app; the store opens and the worker starts on startup."""
    settings = runtime.settings
    app = web.Application(client_max_size=settings.limits.max_body_size)
    app[RUNTIME] = runtime
    app[STORE] = store or open_store(settings.store)
    app[METRICS] = Metrics()
    worker = Worker(app[STORE], lambda: runtime.settings,
                    owner=f"{socket.gethostname()}:{os.getpid()}:{id(app)}",
                    metrics=app[METRICS])
    app[WORKER] = worker
    ingest = Ingest(runtime, app[STORE], app[METRICS], worker.wake)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/dead", admin_dead)
    app.router.add_post("/admin/dead/replay", admin_dead_replay)
    app.router.add_get("/admin/quarantine", admin_quarantine)
    app.router.add_post("/admin/quarantine/replay", admin_quarantine_replay)
    app.router.add_route("*", "/{tail:.*}", ingest.handle)
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    store, worker, runtime = app[STORE], app[WORKER], app[RUNTIME]
    await store.open()
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


async def _retention(store: Store, runtime: Runtime) -> None:
    """Prune delivered events and old tokens every ``retention.interval``.

    Tokens are kept for the replay window (an older push is refused by its timestamp
    anyway); delivered events for ``retention.delivered`` but never less than the window,
    which identity dedupe needs. Dead letters and pending deliveries are never pruned.
    """
    while True:
        settings = runtime.settings
        await asyncio.sleep(settings.retention_interval)
        now = time.time()
        keep = max(settings.retention_delivered, settings.replay_past)
        try:
            events, tokens = await store.prune(now - keep, now - settings.replay_past)
        except StoreUnavailable as exc:
            log.warning("retention: store unavailable, trying again later: %s", exc)
            continue
        if events or tokens:
            log.info("retention: pruned %d delivered events and %d tokens", events, tokens)
