"""What each ``relay`` command does; prints for people, returns the exit code."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from relay import docs2schema, operations
from relay.app import create_app
from relay.config import load_config
from relay.constants import canonical_event
from relay.errors import ConfigError, DocParseError, SchemaLoadError
from relay.push import sample_fields, send_push
from relay.routing import EventKey, destinations_for, explain
from relay.runtime import Runtime
from relay.schemas import EventSchemas
from relay.store import Store, StoreUnavailable, open_store


def _load(path: Path) -> Runtime | None:
    """The config and its schemas, checked once; None after printing every problem."""
    try:
        settings = load_config(path)
        runtime = Runtime(settings, EventSchemas.load(settings.schemas_dir))
        open_store(settings.store)
    except StoreUnavailable as exc:
        print(f"invalid config:\n  - {path}: store: {exc}", file=sys.stderr)
        return None
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    except SchemaLoadError as exc:
        print(f"invalid config:\n  - {path}: schemas_dir: {exc}", file=sys.stderr)
        return None
    return runtime


def _describe_match(values: tuple[str | None, ...] | None) -> str:
    if values is None:
        return "*"
    return "|".join("null" if v is None else v for v in values)


def check(path: Path) -> int:
    """Exit 0 and summarise a valid config; exit 1 listing every problem."""
    runtime = _load(path)
    if runtime is None:
        return 1
    settings = runtime.settings
    print(f"{path}: ok")
    print(f"  listen {settings.listen_host}:{settings.listen_port}, store {settings.store}")
    for subhook in settings.subhooks:
        print(f"  subhook {subhook.path} ({subhook.product}, {len(subhook.keys)} key(s))")
    for route in settings.routes:
        m = route.match
        print(
            f"  route {route.name}: product={_describe_match(m.product)} "
            f"event={_describe_match(m.event)} tag={_describe_match(m.tag)} -> "
            + ", ".join(f"{d.name} ({d.url})" for d in route.destinations)
        )
    print(f"  {len(settings.routes)} route(s), {len(settings.destinations())} destination(s)")
    return 0


def route(path: Path, product: str, event: str, tag: str | None) -> int:
    """Explain, route by route, where an event would go."""
    runtime = _load(path)
    if runtime is None:
        return 1
    settings = runtime.settings
    key = EventKey.of(product, event, tag)
    print(f"event product={key.product} event={key.event} tag={key.tag or '(none)'}")
    for verdict in explain(key, settings.routes):
        mark = "MATCH" if verdict.matched else "no match"
        print(f"  route {verdict.route}: {mark}")
        for reason in verdict.reasons:
            print(f"    {reason}")
    reached = destinations_for(key, settings.routes)
    if reached:
        print("destinations: " + ", ".join(f"{d.name} ({d.url})" for d in reached))
    else:
        print("destinations: none (the event would be stored and reach no service)")
    return 0


def schemas_build(docs: Path, out: Path) -> int:
    """Regenerate the event schemas from SUBMAIL's docs."""
    try:
        written = docs2schema.build(docs, out)
    except (DocParseError, OSError) as exc:
        print(f"schemas build failed: {exc}", file=sys.stderr)
        return 1
    products = sorted({p.parent.name for p in written})
    print(f"wrote {len(written)} schemas for {', '.join(products)} under {out}")
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (every platform but Windows): the same aiohttp server
    answers more requests per core on it (docs/performance.md)."""
    try:
        import uvloop  # noqa: PLC0415 (optional)
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(path: Path) -> int:
    """Run the gateway until SIGTERM or SIGINT."""
    runtime = _load(path)
    if runtime is None:
        return 1
    settings = runtime.settings
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    context = None
    if settings.tls_cert and settings.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    web.run_app(create_app(runtime), host=settings.listen_host, port=settings.listen_port,
                ssl_context=context, shutdown_timeout=15.0, print=None, loop=_event_loop(),
                handler_cancellation=False, access_log=None,
                max_line_size=settings.limits.max_header_size,
                max_field_size=settings.limits.max_header_size)
    return 0


def push(url: str, product: str, event: str, key: str, tag: str | None,
         content_type: str) -> int:
    """Send one signed sample push; exit 0 when the relay answers 200."""
    try:
        fields = sample_fields(product, canonical_event(event), key, tag, EventSchemas.load())
    except ValueError as exc:
        print(f"push: {exc}", file=sys.stderr)
        return 2
    try:
        status, body = asyncio.run(send_push(url, fields, content_type))
    except (OSError, aiohttp.ClientError) as exc:
        print(f"push: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{status} {body}")
    return 0 if status == 200 else 1


def _with_store(path: Path, action: Callable[[Runtime, Store], Awaitable[int]]) -> int:
    runtime = _load(path)
    if runtime is None:
        return 1
    settings = runtime.settings

    async def run() -> int:
        store = open_store(settings.store)
        await store.open()
        try:
            return await action(runtime, store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        print(f"store unavailable: {exc}", file=sys.stderr)
        return 1


def _show(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str],
          noun: str) -> int:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            print(line(row))
        print(f"{len(rows)} {noun}")
    return 0


def dead_list(path: Path, as_json: bool) -> int:
    def line(row: dict[str, Any]) -> str:
        return (f"{row['id']}\t{row['destination']}\t{row['product']}/{row['event']}\t"
                f"{row['webhook_id']}\tattempts={row['attempt']}\t{row['last_error']}")

    async def action(runtime: Runtime, store: Store) -> int:
        return _show(await operations.dead_letters(store), as_json, line, "dead letter(s)")

    return _with_store(path, action)


def dead_replay(path: Path, ids: list[int] | None) -> int:
    async def action(runtime: Runtime, store: Store) -> int:
        count = await operations.replay_dead(store, runtime.settings, ids)
        print(f"replayed {count} dead letter(s); the running relay picks them up")
        return 0

    return _with_store(path, action)


def quarantine_list(path: Path, as_json: bool) -> int:
    def line(row: dict[str, Any]) -> str:
        return f"{row['id']}\t{row['subhook_path']}\t{row['product']}\t" + "; ".join(
            row["problems"])

    async def action(runtime: Runtime, store: Store) -> int:
        return _show(await operations.quarantined(store), as_json, line, "quarantined push(es)")

    return _with_store(path, action)


def quarantine_replay(path: Path, ids: list[int] | None) -> int:
    async def action(runtime: Runtime, store: Store) -> int:
        result = await operations.replay_quarantine(store, runtime, ids)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0 if not result["still_invalid"] else 1

    return _with_store(path, action)
