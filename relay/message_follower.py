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

from relay.messages import update_of
from relay.store import Store, StoreUnavailable, lookup, messages

log = logging.getLogger("relay.messages")

LOOKBACK = 200
BATCH = 500
POLL_S = 1.0


class MessageFollower:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.applied: set[int] = set()

    async def step(self) -> int:
        """Apply the events not applied yet; how many were read."""
        floor = max(0, await messages.cursor(self.store) - LOOKBACK)
        rows = [r for r in await lookup.events_after(self.store, floor, BATCH)
                if r["id"] not in self.applied]
        updates = [u for r in rows if (u := update_of(
            r["product"], r["event"], json.loads(r["fields"]), r["received_at"])) is not None]
        await messages.apply(self.store, updates)
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
                await asyncio.sleep(POLL_S)
