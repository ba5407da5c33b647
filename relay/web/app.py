"""``create_app(config)``: the aiohttp application, its routes, and one lifetime per part
(store, worker, config watcher, retention job, SIGHUP), started in that order and stopped
in the reverse one."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from relay import retention, version
from relay.capacity import Budget
from relay.config import Settings
from relay.delivery.alerts import Alerter
from relay.delivery.worker import Worker
from relay.messages.follower import POLL_S, MessageFollower
from relay.metrics import Metrics
from relay.redact import redact_text, redact_url
from relay.runtime import RunningConfig, Runtime
from relay.store import Store, StoreUnavailable, deliveries, open_store
from relay.web import admin, auth, console, headers, listeners
from relay.web.problems import not_allowed, problem
from relay.web.reading import bounded
from relay.web.state import BUDGET, GUARD, MESSAGE_POLL, METRICS, RUNTIME, STORE, WORKER
from relay.web.subhook import Ingest

log = logging.getLogger("relay.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: New objects between two collections of the youngest generation (Python's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def _allow(*methods: str) -> Handler:
    """The answer of a known path to a method it does not take."""
    allowed = ", ".join(methods)

    async def answer(request: web.Request) -> web.Response:
        return not_allowed(request.path, request.method, allowed)

    return answer


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        # The store's own words may name files, hosts or users: they go to the log only.
        log.error("readyz: store unavailable: %s",
                  redact_text(str(exc), request.app[RUNTIME].current.settings.store))
        return problem(503, "store_unavailable", ["the store cannot be reached; see the log"])
    return web.json_response({"status": "ready", "config_generation":
                              request.app[RUNTIME].current.generation})


async def metrics(request: web.Request) -> web.Response:
    gauges = await deliveries.gauges(request.app[STORE])
    worker = request.app[WORKER]
    names = request.app[RUNTIME].current.settings.destinations()
    up = {name: worker.health.up(name) for name in names}
    states = {name: worker.health.state(name).value for name in names}
    body = request.app[METRICS].render(gauges, up, time.time(), states)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """A GET route answers HEAD too (its Allow says so); a route that takes a body reads
    it within the limits of every body (relay.web.reading)."""
    if method == "GET":
        app.router.add_get(path, handler)
    else:
        app.router.add_route(method, path, bounded(handler))


def create_app(config: RunningConfig, store: Store | None = None, *,
               message_poll: float = POLL_S) -> web.Application:
    """The relay serving ``config`` (reloaded as app[RUNTIME], each reload counted in its
    metrics); the store opens and the worker starts on startup. ``message_poll``: the
    message follower's wait once caught up."""
    settings = config.settings
    middlewares = [] if settings.admin_listen is None else [listeners.split(
        settings.admin_listen)]
    app = web.Application(client_max_size=settings.limits.max_body_size,
                          middlewares=middlewares)
    app[METRICS] = Metrics()
    app[RUNTIME] = runtime = Runtime(config, on_reload=app[METRICS].config_reloaded)
    app[STORE] = store or open_store(settings.store)
    app[BUDGET] = Budget()
    app[MESSAGE_POLL] = message_poll
    app.on_response_prepare.append(headers.on_prepare)
    worker = Worker(app[STORE], lambda: runtime.current.settings,
                    owner=f"{socket.gethostname()}:{os.getpid()}:{id(app)}",
                    metrics=app[METRICS], alerter=Alerter(lambda: runtime.current.settings.alerts))
    app[WORKER] = worker
    app[GUARD] = auth.Guard()
    ingest = Ingest(runtime, app[STORE], app[METRICS], worker.wake, budget=app[BUDGET])
    for method, path, handler in (
        ("GET", "/healthz", healthz), ("GET", "/readyz", readyz), ("GET", "/metrics", metrics),
        *admin.ROUTES,
    ):
        add_route(app, method, path, handler)
        allowed = ("GET", "HEAD") if method == "GET" else (method,)
        app.router.add_route("*", path, _allow(*allowed))
    console.setup(app, add_route)
    app.router.add_route("*", "/{tail:.*}", ingest.handle)
    app.cleanup_ctx.extend((_store, _alerts, _worker, _watcher, _retention, _messages, _traffic,
                            _sighup, _collector))
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    _log_start(app[RUNTIME].current.settings)
    try:
        yield
    finally:
        await app[STORE].close()
        log.info("relay stopped")


async def _worker(app: web.Application) -> AsyncIterator[None]:
    app[WORKER].start()
    try:
        yield
    finally:
        await app[WORKER].stop()


async def _task(coroutine: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _alerts(app: web.Application) -> AsyncIterator[None]:
    alerter = app[WORKER].alerter
    assert alerter is not None
    async for _ in _task(alerter.run(), "relay-alerts"):
        yield


async def _watcher(app: web.Application) -> AsyncIterator[None]:
    async for _ in _task(app[RUNTIME].watch(), "relay-config-watch"):
        yield


async def _traffic(app: web.Application) -> AsyncIterator[None]:
    async for _ in _task(console.sample_traffic(app), "relay-console-traffic"):
        yield


async def _messages(app: web.Application) -> AsyncIterator[None]:
    follower = MessageFollower(app[STORE], app[METRICS], app[MESSAGE_POLL])
    async for _ in _task(follower.run(), "relay-messages"):
        yield


async def _retention(app: web.Application) -> AsyncIterator[None]:
    async for _ in _task(retention.run(app[STORE], app[RUNTIME]), "relay-retention"):
        yield


async def _sighup(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, app[RUNTIME].reload)
    try:
        yield
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)


async def _collector(app: web.Application) -> AsyncIterator[None]:
    """Python's cyclic garbage collector, set for a long-running server once every part has
    started: what exists then (modules, compiled schemas, the config) is frozen out of its
    scans, and it runs after ``GC_YOUNG_THRESHOLD`` new objects instead of 700. Each push
    makes a few dozen objects that their references free at once; at 700, collections
    cost about 14 us per push with fan-out 2 and full ones held the loop 18 to 53 ms
    (docs/performance.md). Restored when the app stops."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


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
