"""The background step that keeps message records (SPEC 14) up to date from stored events:
every second, the events after the cursor are folded into their messages
(relay/store/messages.py), off the ingest path (docs/decisions.md says why).

It looks back ``LOOKBACK`` ids below the cursor and skips those it applied already: on
PostgreSQL an event may commit after one with a higher id. Applying one twice is harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from relay.messages.lifecycle import STATES, update_of
from relay.metrics import Metrics
from relay.store import Store, StoreUnavailable, lookup, messages

log = logging.getLogger("relay.messages")

LOOKBACK = 200
BATCH = 500
POLL_S = 1.0


class MessageFollower:
    def __init__(self, store: Store, metrics: Metrics | None = None,
                 poll: float = POLL_S) -> None:
        self.store = store
        self.metrics = metrics
        #: seconds between reads once it has caught up (tests make it short)
        self.poll = poll
        self.applied: set[int] = set()

    def _count(self, before: dict[tuple[str, str], dict[str, Any]],
               after: dict[tuple[str, str], dict[str, Any]]) -> None:
        """The metrics of SPEC 14, from what each record gained: a state reached for the
        first time, a drop class set, request and delivered both known."""
        assert self.metrics is not None
        for (product, _), now in after.items():
            old = before.get((product, now["send_id"]), {})
            for state in STATES:
                if now[f"{state}_at"] is not None and old.get(f"{state}_at") is None:
                    self.metrics.messages.labels(product, state).inc()
            if now["reason"] is not None and old.get("reason") is None:
                self.metrics.messages_dropped.labels(product, now["reason"]).inc()
            both = now["request_at"] is not None and now["delivered_at"] is not None
            if both and (old.get("request_at") is None or old.get("delivered_at") is None):
                self.metrics.message_delivery.labels(product).observe(
                    max(0.0, now["delivered_at"] - now["request_at"]))

    async def step(self) -> int:
        """Apply the events not applied yet; how many were read."""
        floor = max(0, await messages.cursor(self.store) - LOOKBACK)
        rows = [r for r in await lookup.events_after(self.store, floor, BATCH)
                if r["id"] not in self.applied]
        updates = [u for r in rows if (u := update_of(
            r["product"], r["event"], json.loads(r["fields"]), r["received_at"])) is not None]
        keys = sorted({(u.product, u.send_id) for u in updates})
        before = await messages.of_messages(self.store, keys) if self.metrics else {}
        await messages.apply(self.store, updates)
        if self.metrics is not None and keys:
            self._count(before, await messages.of_messages(self.store, keys))
        if rows:
            newest = max(r["id"] for r in rows)
            await messages.move_cursor(self.store, newest)
            self.applied.update(r["id"] for r in rows)
            self.applied = {i for i in self.applied if i > newest - LOOKBACK}
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                read = await self.step()
            except StoreUnavailable as exc:
                log.warning("messages: store unavailable, trying again: %s", exc)
                read = 0
            if read < BATCH:
                await asyncio.sleep(self.poll)
