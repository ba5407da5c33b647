"""What each ``relay`` command does; prints for people, returns the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from relay import docs2schema
from relay.config import Settings, load_config
from relay.errors import ConfigError, DocParseError, SchemaLoadError
from relay.routing import EventKey, destinations_for, explain
from relay.schemas import EventSchemas


def _load(path: Path) -> Settings | None:
    try:
        settings = load_config(path)
        EventSchemas.load(settings.schemas_dir)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    except SchemaLoadError as exc:
        print(f"invalid config:\n  - {path}: schemas_dir: {exc}", file=sys.stderr)
        return None
    return settings


def _describe_match(values: tuple[str | None, ...] | None) -> str:
    if values is None:
        return "*"
    return "|".join("null" if v is None else v for v in values)


def check(path: Path) -> int:
    """Exit 0 and summarise a valid config; exit 1 listing every problem."""
    settings = _load(path)
    if settings is None:
        return 1
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
    settings = _load(path)
    if settings is None:
        return 1
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
