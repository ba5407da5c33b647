"""Dead letters as operators see and handle them: listed with every attempt, replayed,
discarded (the CLI, the admin API and the console alike)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from relay.config import Settings
from relay.ops import shown
from relay.ops.filters import EVERY, ListFilter
from relay.store import Store, deliveries

#: Most dead letters a filtered bulk action takes at once.
MAX_BULK = 100_000


async def _rows(store: Store, which: ListFilter, limit: int) -> list[dict[str, Any]]:
    return await deliveries.dead_letters(store, limit, destination=which.destination,
                                         product=which.product, event=which.event,
                                         since=which.since)


async def _chosen(store: Store, ids: Sequence[int] | None,
                  which: ListFilter) -> list[int] | None:
    """The ids a bulk action takes: those given, or (``ids`` None) every one of the list
    the filter shows (None: every one, no filter)."""
    if ids is not None or not which.active:
        return None if ids is None else [i for i in ids if shown.valid_id(i)]
    return [row["id"] for row in await _rows(store, which, MAX_BULK)]


async def dead_letters(store: Store, which: ListFilter = EVERY) -> list[dict[str, Any]]:
    """Every dead letter (of the filter) with every attempt (status, duration, error,
    answer); times ISO. Two queries whatever the number of rows."""
    rows = await _rows(store, which, 1000)
    attempts = await deliveries.attempts_of(store, [row["id"] for row in rows])
    return [shown.dead_letter(row, attempts[row["id"]]) for row in rows]


async def replay_dead(store: Store, settings: Settings, ids: list[int] | None,
                      which: ListFilter = EVERY) -> dict[str, Any]:
    """Queue dead letters again (all those of the filter when ``ids`` is None) with a fresh
    attempt budget; ``missing`` names the ids that are no dead letter."""
    wanted = await _chosen(store, ids, which)
    if wanted == [] and ids is None:
        return {"replayed": 0, "ids": [], "missing": []}
    replayed = await deliveries.replay_dead(store, wanted, time.time(), settings.retry.max_age)
    missing = [] if ids is None else sorted(set(ids) - set(replayed))
    return {"replayed": len(replayed), "ids": replayed, "missing": missing}


async def discard_dead(store: Store, ids: Sequence[int] | None,
                       which: ListFilter = EVERY) -> dict[str, Any]:
    """Dead letters off the list (all those of the filter when ``ids`` is None); kept for
    lookups until retention prunes their event."""
    wanted = await _chosen(store, ids, which)
    discarded = [] if wanted == [] and ids is None else \
        await deliveries.discard_dead(store, wanted, time.time())
    return {"discarded": discarded,
            "missing": [] if ids is None else sorted(set(ids) - set(discarded))}
