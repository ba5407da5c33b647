"""Dead letters as operators see and handle them: listed with every attempt, replayed,
discarded (the CLI, the admin API and the console alike)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from relay.config import Settings
from relay.ops import shown
from relay.store import Store, deliveries


async def dead_letters(store: Store) -> list[dict[str, Any]]:
    """Every dead letter with every attempt (status, duration, error, answer); times ISO.
    Two queries whatever the number of rows."""
    rows = await deliveries.dead_letters(store)
    attempts = await deliveries.attempts_of(store, [row["id"] for row in rows])
    return [shown.dead_letter(row, attempts[row["id"]]) for row in rows]


async def replay_dead(store: Store, settings: Settings,
                      ids: list[int] | None) -> dict[str, Any]:
    """Queue dead letters again (all when ``ids`` is None) with a fresh attempt budget;
    ``missing`` names the ids that are no dead letter."""
    wanted = None if ids is None else [i for i in ids if shown.valid_id(i)]
    replayed = await deliveries.replay_dead(store, wanted, time.time(), settings.retry.max_age)
    missing = [] if ids is None else sorted(set(ids) - set(replayed))
    return {"replayed": len(replayed), "ids": replayed, "missing": missing}


async def discard_dead(store: Store, ids: Sequence[int] | None) -> dict[str, Any]:
    """Dead letters off the list (all when ``ids`` is None); kept for lookups until
    retention prunes their event."""
    discarded = await deliveries.discard_dead(store, None if ids is None else
                                              [i for i in ids if shown.valid_id(i)],
                                              time.time())
    return {"discarded": discarded,
            "missing": [] if ids is None else sorted(set(ids) - set(discarded))}
