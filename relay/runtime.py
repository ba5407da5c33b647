"""The running config: one frozen snapshot (settings, schemas, generation) swapped whole,
never half-applied.

Reloaded on SIGHUP and when the file changes; an edit that does not load is logged and
refused, and the config that was running keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from relay.config import Settings, load_config, placeholders
from relay.config.yamltools import KeyPath
from relay.errors import ConfigError, SchemaLoadError
from relay.logs import configure
from relay.products import EVENT_ALIASES, PRODUCTS
from relay.route_fields import field_problems
from relay.routing import EventKey, destinations_for, glob_match
from relay.schemas import EventSchemas

log = logging.getLogger("relay.runtime")

#: Keys read once at start (config key: Settings attributes): a reload that changes them
#: needs a restart to take effect.
START_ONLY = {"listen": ("listen_host", "listen_port"), "store": ("store",),
              "tls": ("tls_cert", "tls_key"), "admin_listen": ("admin_listen",),
              "limits.max_header_size": ("limits.max_header_size",)}


def _unknown(patterns: tuple[str | None, ...] | None, names: list[str]) -> list[str]:
    return [p for p in patterns or () if p is not None and not any(
        glob_match(p, n) for n in names)]


def vet(settings: Settings, schemas: EventSchemas) -> list[tuple[KeyPath, str]]:
    """Problems of a config that only the schemas show, by key path: a route matcher naming
    no product or event there is (after globbing; an alias spelling such as ``unkown``
    matches its event, though only the event's own names are listed as known), a SUBHOOK of
    a product with no schema, a field condition or body placeholder naming a field no event
    it applies to has."""
    known = sorted({p for p, _ in schemas} | set(PRODUCTS))
    problems: list[tuple[KeyPath, str]] = [
        (("subhooks", i, "product"), f"no event schemas for {s.product!r}")
        for i, s in enumerate(settings.subhooks) if not schemas.events(s.product)]
    for index, route in enumerate(settings.routes):
        where: KeyPath = ("routes", index, "match")
        for pattern in _unknown(route.match.product, known):
            problems.append(((*where, "product"), f"{pattern!r} matches no product "
                             f"(known: {', '.join(known)})"))
        products = [p for p in known if route.match.product is None
                    or any(glob_match(q, p) for q in route.match.product)]
        names = sorted({e for p in products for e in schemas.events(p)})
        spellings = sorted({*names, *(alias for alias, name in EVENT_ALIASES.items()
                                      if name in names)})
        for pattern in _unknown(route.match.event, spellings):
            problems.append(((*where, "event"), f"{pattern!r} matches no event of "
                             f"{', '.join(products)} (known: {', '.join(names)})"))
    return problems + field_problems(settings, schemas)


def unrouted(settings: Settings, schemas: EventSchemas) -> list[tuple[str, str]]:
    """(SUBHOOK path, event) of every event the configured SUBHOOKs can push that no route
    sends anywhere (a tag-free event; a tagged one may still be routed by its tag)."""
    return [(s.path, event) for s in settings.subhooks for event in schemas.events(s.product)
            if not destinations_for(EventKey.of(s.product, event, None), settings.routes)]


def _load(path: Path) -> tuple[Settings, EventSchemas]:
    """The config and its schemas, every problem of both found in one run (with lines)."""
    loaded: dict[str, EventSchemas] = {}

    def against_schemas(settings: Settings) -> list[tuple[KeyPath, str]]:
        loaded["schemas"] = EventSchemas.load(settings.schemas_dir)
        return vet(settings, loaded["schemas"])

    settings = load_config(path, vet=against_schemas)
    return settings, loaded["schemas"]


@dataclass(frozen=True)
class RunningConfig:
    """One load of the config: the settings and the schemas checked with them, and which
    load it is (1 at start, one more each applied reload). A handler or a worker step reads
    ``runtime.current`` once and decides with that, so no decision mixes two loads."""

    settings: Settings
    schemas: EventSchemas
    generation: int = 1

    @classmethod
    def load(cls, path: Path) -> RunningConfig:
        """The config and its schemas, checked together; raises ConfigError or
        SchemaLoadError naming every problem."""
        return cls(*_load(path))


def _ignore(result: str) -> None:
    """No reload hook."""


class Runtime:
    """The config a serving relay runs: ``current`` is swapped whole by a reload."""

    def __init__(self, current: RunningConfig,
                 on_reload: Callable[[str], None] = _ignore) -> None:
        self.current = current
        #: called with "applied" or "refused" after each reload (relay_config_reloads_total)
        self._on_reload = on_reload
        #: modification time of the file as last read (by a reload or when watching began)
        self.seen_mtime: float | None = None

    def _mtime(self) -> float | None:
        source = self.current.settings.source
        try:
            return source.stat().st_mtime_ns / 1e9 if source else None
        except OSError:
            return None

    def reload(self) -> bool:
        """Load the config file again; True when the new config is now serving."""
        old = self.current.settings
        if old.source is None:
            return False
        # Whatever happens, this version of the file has been read: the watcher must not
        # read it again (a SIGHUP and the watcher would otherwise both apply one edit).
        self.seen_mtime = self._mtime()
        try:
            settings, schemas = _load(old.source)
            refused = placeholders.refusal(settings, listening=old)
            if refused:
                raise ConfigError(refused)
        except (ConfigError, SchemaLoadError) as exc:
            self._on_reload("refused")
            # One line a problem, not the multi-line text a terminal shows (the log escapes
            # line breaks, which would make it one line of literal \n).
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            log.error("config reload refused, the running config stays: %d problem(s)",
                      len(problems))
            for problem in problems:
                log.error("config reload refused: %s", problem)
            return False
        self.current = RunningConfig(settings, schemas, self.current.generation + 1)
        self._on_reload("applied")
        if (old.log_level, old.log_format) != (settings.log_level, settings.log_format):
            configure(settings.log_level, settings.log_format)
        log.info("config reloaded (generation %d): %d routes", self.current.generation,
                 len(settings.routes))
        changed = [key for key, attributes in START_ONLY.items()
                   if any(attrgetter(a)(old) != attrgetter(a)(settings) for a in attributes)]
        if changed:
            log.warning("config reload: %s changed, which is read only at start: restart the "
                        "relay to apply it (the old value stays in use)", ", ".join(changed))
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the file's modification time changes (and the change was not
        read already, by a SIGHUP)."""
        if self.seen_mtime is None:
            self.seen_mtime = self._mtime()
        while True:
            await asyncio.sleep(interval)
            current = self._mtime()
            if current is not None and current != self.seen_mtime:
                try:
                    self.reload()
                except Exception:
                    log.exception("config reload failed unexpectedly; the running config stays")
