"""``create_app(runtime)``: the aiohttp application and the lifetimes of its parts."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from relay.ingest import Ingest, problem
from relay.metrics import Metrics
from relay.replay import replay_quarantine
from relay.runtime import Runtime
from relay.store import Store, StoreUnavailable, open_store
from relay.worker import Worker

log = logging.getLogger("relay.app")

RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
WORKER = web.AppKey("worker", Worker)


def _admin_allowed(request: web.Request) -> web.Response | None:
    token = request.app[RUNTIME].settings.admin_token
    if not token:
        return problem(404, "not_found", ["admin endpoints are off (no admin.token configured)"])
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(given, token.encode()):
        return problem(401, "unauthorized", ["a valid bearer token is required"])
    return None


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
    store = request.app[STORE]
    body = request.app[METRICS].render(await store.queue_depth(), len(await store.dead_letters()))
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def admin_dead(request: web.Request) -> web.Response:
    refused = _admin_allowed(request)
    if refused:
        return refused
    store = request.app[STORE]
    rows = await store.dead_letters()
    for row in rows:
        row["attempts"] = await store.attempts(row["id"])
    return web.json_response({"dead_letters": rows})


async def admin_dead_replay(request: web.Request) -> web.Response:
    refused = _admin_allowed(request)
    if refused:
        return refused
    ids = await _replay_ids(request)
    if isinstance(ids, web.Response):
        return ids
    count = await request.app[STORE].replay_dead(
        ids, time.time(), request.app[RUNTIME].settings.retry.max_age)
    request.app[WORKER].wake()
    return web.json_response({"replayed": count})


async def _replay_ids(request: web.Request) -> list[int] | web.Response | None:
    try:
        payload: Any = await request.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("all") is True:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("ids"), list) and all(
            isinstance(i, int) for i in payload["ids"]):
        return list(payload["ids"])
    return problem(400, "bad_request", ['body must be {"ids": [1, 2]} or {"all": true}'])


async def admin_quarantine(request: web.Request) -> web.Response:
    refused = _admin_allowed(request)
    if refused:
        return refused
    rows = await request.app[STORE].quarantined()
    for row in rows:
        row.pop("body", None)
    return web.json_response({"quarantine": rows})


async def admin_quarantine_replay(request: web.Request) -> web.Response:
    refused = _admin_allowed(request)
    if refused:
        return refused
    ids = await _replay_ids(request)
    if isinstance(ids, web.Response):
        return ids
    result = await replay_quarantine(request.app[STORE], request.app[RUNTIME], ids)
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
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, runtime.reload)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        watch_task.cancel()
        await worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await watch_task
        await store.close()
