"""The running config: settings and schemas swapped together, never half-applied.

Reloaded on SIGHUP and when the file changes; an edit that does not load is logged and
refused, and the config that was running keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from relay.config import Settings, load_config
from relay.errors import ConfigError, SchemaLoadError
from relay.schemas import EventSchemas

log = logging.getLogger("relay.runtime")


@dataclass
class Runtime:
    settings: Settings
    schemas: EventSchemas
    generation: int = 1

    @classmethod
    def load(cls, path: Path) -> Runtime:
        settings = load_config(path)
        return cls(settings, EventSchemas.load(settings.schemas_dir))

    def _mtime(self) -> float | None:
        source = self.settings.source
        try:
            return source.stat().st_mtime_ns / 1e9 if source else None
        except OSError:
            return None

    def reload(self) -> bool:
        """Load the config file again; True when the new config is now serving."""
        source = self.settings.source
        if source is None:
            return False
        try:
            settings = load_config(source)
            schemas = EventSchemas.load(settings.schemas_dir)
        except (ConfigError, SchemaLoadError) as exc:
            log.error("config reload refused, the running config stays: %s", exc)
            return False
        self.settings, self.schemas = settings, schemas
        self.generation += 1
        log.info("config reloaded (generation %d): %d routes", self.generation,
                 len(settings.routes))
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the file's modification time changes."""
        last = self._mtime()
        while True:
            await asyncio.sleep(interval)
            current = self._mtime()
            if current is not None and current != last:
                last = current
                try:
                    self.reload()
                except Exception:
                    log.exception("config reload failed unexpectedly; the running config stays")
