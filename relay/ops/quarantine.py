"""Quarantined pushes as operators see and handle them: listed, replayed against the
schemas of the time, discarded (the CLI, the admin API and the console alike)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from relay.errors import EventInvalid
from relay.ingest.events import build_event
from relay.ops import shown
from relay.ops.filters import EVERY, ListFilter
from relay.runtime import RunningConfig
from relay.store import Store
from relay.store import quarantine as held


async def quarantined(store: Store, which: ListFilter = EVERY) -> list[dict[str, Any]]:
    """Held pushes (of the filter) with their problems (without the raw body)."""
    if not which.active:
        return [shown.held(row) for row in await held.quarantined(store)]
    found = []
    async for row in held.every_held(store):
        if which.holds_held(row):
            found.append(shown.held(row))
            if len(found) == 1000:
                break
    return found


async def replay_quarantine(
    store: Store, running: RunningConfig, ids: list[int] | None, which: ListFilter = EVERY
) -> dict[str, Any]:
    """Re-validate held pushes against the current schemas; valid ones become events.
    Every held push is read (a page at a time), not only the first page."""
    wanted = None if ids is None else set(ids)
    replayed, still_invalid, found = [], [], set()
    async for row in held.every_held(store):
        if (wanted is not None and row["id"] not in wanted) or not which.holds_held(row):
            continue
        found.add(row["id"])
        fields = json.loads(row["fields"])
        try:
            event = running.schemas.validate(row["product"], fields)
        except EventInvalid as exc:
            still_invalid.append({"id": row["id"], "problems": exc.problems})
            continue
        record, _ = build_event(running.settings, row["product"], event, fields, row["body"],
                                row["content_type"], time.time())
        # Its token was remembered when it was quarantined; that is no reason to refuse it.
        record = replace(record, token_seen=True)
        event_id = await store.ingest(record)
        note = "replayed" if event_id is not None else "duplicate of an accepted event"
        await held.resolve(store, row["id"], event_id, note)
        replayed.append({"id": row["id"], "event_id": event_id, "note": note})
    missing = [] if wanted is None else sorted(wanted - found)
    return {"replayed": replayed, "still_invalid": still_invalid, "missing": missing}


async def discard_quarantine(store: Store, ids: Sequence[int] | None,
                             which: ListFilter = EVERY) -> dict[str, Any]:
    """Held pushes off the list (all those of the filter when ``ids`` is None)."""
    if ids is None and which.active:
        chosen = [row["id"] async for row in held.every_held(store) if which.holds_held(row)]
        discarded = await held.discard(store, chosen) if chosen else []
    else:
        discarded = await held.discard(store, None if ids is None else
                                       [i for i in ids if shown.valid_id(i)])
    return {"discarded": discarded,
            "missing": [] if ids is None else sorted(set(ids) - set(discarded))}
