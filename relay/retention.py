"""The retention job: what the store forgets, and when."""

from __future__ import annotations

import asyncio
import logging
import time

from relay.runtime import Runtime
from relay.store import Store, StoreUnavailable, deliveries, messages

log = logging.getLogger("relay.retention")


async def run(store: Store, runtime: Runtime) -> None:
    """Prune delivered events and old tokens every ``retention.interval``.

    Tokens are kept ``retention.tokens`` (SUBMAIL signs no timestamp, so a captured token
    is a credential as long as it is forgotten); delivered events for
    ``retention.delivered`` but never less than the replay window, which identity dedupe
    needs. Dead letters and pending deliveries are never pruned.
    """
    while True:
        settings = runtime.current.settings
        await asyncio.sleep(settings.retention_interval)
        now = time.time()
        keep = max(settings.retention_delivered, settings.replay_past)
        try:
            events, tokens = await deliveries.prune(store, now - keep,
                                                    now - settings.retention_tokens)
            await messages.prune(store, now - keep)  # a message goes with its events
        except StoreUnavailable as exc:
            log.warning("retention: store unavailable, trying again later: %s", exc)
            continue
        if events or tokens:
            log.info("retention: pruned %d delivered events and %d tokens", events, tokens)
