"""What each ``relay`` command does; prints for people, returns the exit code."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from relay import docs2schema, serving, templates
from relay.config import placeholders
from relay.errors import ConfigError, DocParseError, SchemaLoadError
from relay.logs import configure
from relay.products import canonical_event
from relay.redact import redact_text, redact_url
from relay.routing import EventKey, destinations_for, explain
from relay.runtime import RunningConfig, unrouted
from relay.sample import parse_field, sample_fields, send_push
from relay.schemas import EventSchemas
from relay.store import Store, StoreUnavailable, open_store
from relay.web.app import create_app


def _load(path: Path) -> RunningConfig | None:
    """The config and its schemas, checked once; None after printing every problem."""
    try:
        running = RunningConfig.load(path)
        open_store(running.settings.store)
    except StoreUnavailable as exc:
        print(f"invalid config:\n  - {path}: store: {exc}", file=sys.stderr)
        return None
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    except SchemaLoadError as exc:
        print(f"invalid config:\n  - {path}: schemas_dir: {exc}", file=sys.stderr)
        return None
    return running


def _describe_match(values: tuple[str | None, ...] | None) -> str:
    if values is None:
        return "*"
    return "|".join("null" if v is None else v for v in values)


def check(path: Path) -> int:
    """Exit 0 and summarise a valid config; exit 1 listing every problem."""
    running = _load(path)
    if running is None:
        return 1
    settings = running.settings
    print(f"{path}: ok")
    admin = ("" if settings.admin_listen is None
             else f", admin on {settings.admin_listen[0]}:{settings.admin_listen[1]}")
    print(f"  listen {settings.listen_host}:{settings.listen_port}{admin}, "
          f"store {redact_url(settings.store)}")
    for subhook in settings.subhooks:
        print(f"  subhook {subhook.path} ({subhook.product}, {len(subhook.keys)} key(s))")
    for route in settings.routes:
        m = route.match
        print(
            f"  route {route.name}: product={_describe_match(m.product)} "
            f"event={_describe_match(m.event)} tag={_describe_match(m.tag)}"
            + ("" if m.fields is None else f" fields=[{m.fields.describe()}]") + " -> "
            + ", ".join(f"{d.name} ({redact_url(d.url)})" for d in route.destinations)
        )
    print(f"  {len(settings.routes)} route(s), {len(settings.destinations())} destination(s)")
    for subhook_path, event in unrouted(settings, running.schemas):
        print(f"  note: {subhook_path} event {event} (untagged) matches no route: "
              "stored, forwarded nowhere")
    return 0


def route(path: Path, product: str, event: str, tag: str | None,
          field_items: list[str] | None = None) -> int:
    """Explain, route by route, where an event would go and the body each service gets."""
    try:
        extra = templates.parse_fields(field_items or ())
    except ValueError as exc:
        print(f"route: --{exc}", file=sys.stderr)
        return 2
    running = _load(path)
    if running is None:
        return 1
    settings = running.settings
    key = EventKey.of(product, event, tag)
    known = running.schemas.events(key.product)
    if not known:
        products = sorted({p for p, _ in running.schemas})
        print(f"route: unknown product {product!r} (known: {', '.join(products)})",
              file=sys.stderr)
        return 2
    if key.event not in known:
        print(f"route: {product} has no event {event!r} (known: {', '.join(known)})",
              file=sys.stderr)
        return 2
    fields = {"events": event, **({"tag": tag} if tag else {}), **extra}
    print(f"event product={key.product} event={key.event} tag={key.tag or '(none)'}"
          + "".join(f" {k}={v!r}" for k, v in extra.items()))
    for verdict in explain(key, settings.routes, fields):
        mark = "MATCH" if verdict.matched else "no match"
        print(f"  route {verdict.route}: {mark}")
        for reason in verdict.reasons:
            print(f"    {reason}")
    reached = destinations_for(key, settings.routes, fields)
    for d in reached:  # before the summary line, which stays last
        print(f"body for {d.name}: {templates.preview(d, key.product, key.event, fields)}")
    if reached:
        print("destinations: " + ", ".join(f"{d.name} ({redact_url(d.url)})"
                                           for d in reached))
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


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, made before anything else starts, so a taken port ends the
    command before the store is touched."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def serve(path: Path) -> int:
    """Run the gateway until SIGTERM or SIGINT."""
    running = _load(path)
    if running is None:
        return 1
    settings = running.settings
    refused = placeholders.refusal(settings)
    if refused:
        print("serve: refusing to start: " + "\n  - ".join(refused), file=sys.stderr)
        return 1
    configure(settings.log_level, settings.log_format)
    addresses = [(settings.listen_host, settings.listen_port)]
    if settings.admin_listen is not None:
        addresses.append(settings.admin_listen)
    sockets: list[socket.socket] = []
    try:
        for host, port in addresses:
            sockets.append(_bind(host, port))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        print(f"serve: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    context = None
    if settings.tls_cert and settings.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    limits = settings.limits
    try:
        serving.run(create_app(running), sockets[0], sockets[1] if len(sockets) > 1 else None,
                    _event_loop(), ssl_context=context, shutdown_timeout=15.0,
                    handler_cancellation=False, keepalive_timeout=limits.idle_timeout,
                    max_line_size=limits.max_header_size,
                    max_field_size=limits.max_header_size)
    except StoreUnavailable as exc:
        print(f"serve: store unavailable: {redact_text(str(exc), settings.store)}",
              file=sys.stderr)
        return 1
    return 0


def health(path: Path) -> int:
    """Exit 0 when the relay serving this config answers /healthz with 200 (HEALTHCHECK)."""
    running = _load(path)
    if running is None:
        return 1
    settings = running.settings
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        settings.listen_host, settings.listen_host)
    scheme = "https" if settings.tls_cert else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{settings.listen_port}/healthz"

    async def probe() -> int:
        # The certificate is the relay's own: whether it is trusted is not this check's
        # question, whether the process answers is.
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            return response.status

    try:
        status = asyncio.run(probe())
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        print(f"health: {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"health: {url}: {status}")
    return 0 if status == 200 else 1


def _key_for(url: str, config: Path) -> str | None:
    """The current key of the SUBHOOK whose path is the URL's path; None after saying why."""
    running = _load(config)
    if running is None:
        return None
    path = yarl.URL(url).path
    subhook = running.settings.subhook_for(path)
    if subhook is None:
        paths = ", ".join(s.path for s in running.settings.subhooks)
        print(f"push: {config} has no SUBHOOK at {path} (it has: {paths})", file=sys.stderr)
        return None
    return subhook.keys[0]


def push(url: str, product: str, event: str, key: str | None, config: Path | None,
         tag: str | None, content_type: str, overrides: list[str]) -> int:
    """Send one signed sample push; exit 0 when the relay answers 200."""
    if key is None:
        assert config is not None  # the parser requires one of the two
        key = _key_for(url, config)
        if key is None:
            return 1
    try:
        # an alias (``unsubscribed``) is sent as spelled: the relay must take it as SUBMAIL's
        extra = {"events": event, **dict(parse_field(item) for item in overrides)}
        fields = sample_fields(product, canonical_event(event), key, tag, EventSchemas.load(),
                               extra)
    except ValueError as exc:
        print(f"push: {exc}", file=sys.stderr)
        return 2
    try:
        status, body = asyncio.run(send_push(url, fields, content_type))
    except (OSError, aiohttp.ClientError) as exc:
        print(f"push: cannot reach {redact_url(url)}: {redact_text(str(exc), url)}",
              file=sys.stderr)
        return 1
    print(f"{status} {body}")
    return 0 if status == 200 else 1


def with_store(path: Path, action: Callable[[RunningConfig, Store], Awaitable[int]]) -> int:
    running = _load(path)
    if running is None:
        return 1
    settings = running.settings

    async def run() -> int:
        store = open_store(settings.store, attach=True)
        await store.open()
        try:
            return await action(running, store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        print(f"store unavailable: {redact_text(str(exc), settings.store)}", file=sys.stderr)
        return 1


def show_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str],
          noun: str) -> int:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            print(line(row))
        print(f"{len(rows)} {noun}")
    return 0


def report_missing(ids: list[int], noun: str) -> int:
    """1 after naming the ids that matched nothing, else 0."""
    if not ids:
        return 0
    print(f"no {noun} with id {', '.join(map(str, ids))}", file=sys.stderr)
    return 1


def sink(listen: str, secret: str | None) -> int:
    """Run the receiving service of the quick start (relay/sink.py)."""
    from relay.sink import run_sink  # noqa: PLC0415 (only this command needs it)

    return run_sink(listen, secret)
