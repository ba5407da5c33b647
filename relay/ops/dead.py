"""Dead letters and quarantine as operators see them (CLI and admin endpoints alike)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from relay.config import Settings
from relay.constants import SIGNING_FIELDS
from relay.errors import EventInvalid
from relay.ingest.events import build_event
from relay.products import PRODUCTS, masked_fields
from relay.runtime import Runtime
from relay.store import Store, deliveries
from relay.store import quarantine as held
from relay.times import iso


def contact_shown(product: str, stored: str) -> str | None:
    """The event's contact as every listing shows it: the first contact field it has
    (products.Product.contact_fields), masked."""
    known = PRODUCTS.get(product)
    return known.masked(json.loads(stored)) if known is not None else None


def shown_fields(product: str, stored: str) -> dict[str, Any]:
    """An event's fields as operators see them: an object, without SUBMAIL's token and
    signature (a credential), the contact masked."""
    return masked_fields(product, {k: v for k, v in json.loads(stored).items()
                                   if k not in SIGNING_FIELDS})


async def dead_letters(store: Store) -> list[dict[str, Any]]:
    """Every dead letter with every attempt (status, duration, error, answer); times ISO."""
    rows = await deliveries.dead_letters(store)
    attempts = await deliveries.attempts_of(store, [row["id"] for row in rows])
    for row in rows:
        row["contact"] = contact_shown(row["product"], row["fields"])
        row["fields"] = shown_fields(row["product"], row["fields"])
        row["updated_at"] = iso(row["updated_at"])
        row["attempts"] = [{**a, "started_at": iso(a["started_at"])}
                           for a in attempts[row["id"]]]
    return rows


#: Ids are SQL BIGINTs: anything else names no row (and must not reach the driver).
MAX_ID = 2**63 - 1


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


async def replay_dead(store: Store, settings: Settings,
                      ids: list[int] | None) -> dict[str, Any]:
    """Queue dead letters again (all when ``ids`` is None) with a fresh attempt budget;
    ``missing`` names the ids that are no dead letter."""
    wanted = None if ids is None else [i for i in ids if valid_id(i)]
    replayed = await deliveries.replay_dead(store, wanted, time.time(), settings.retry.max_age)
    missing = [] if ids is None else sorted(set(ids) - set(replayed))
    return {"replayed": len(replayed), "ids": replayed, "missing": missing}


async def quarantined(store: Store) -> list[dict[str, Any]]:
    """Held pushes with their problems (without the raw body)."""
    rows = await held.quarantined(store)
    for row in rows:
        row.pop("body", None)
        row["fields"] = shown_fields(row["product"], row["fields"])
        row["received_at"] = iso(row["received_at"])
    return rows


async def replay_quarantine(
    store: Store, runtime: Runtime, ids: list[int] | None
) -> dict[str, Any]:
    """Re-validate held pushes against the current schemas; valid ones become events."""
    wanted = None if ids is None else set(ids)
    replayed, still_invalid, found = [], [], set()
    async for row in held.every_held(store):
        if wanted is not None and row["id"] not in wanted:
            continue
        found.add(row["id"])
        fields = json.loads(row["fields"])
        try:
            event = runtime.schemas.validate(row["product"], fields)
        except EventInvalid as exc:
            still_invalid.append({"id": row["id"], "problems": exc.problems})
            continue
        record, _ = build_event(runtime.settings, row["product"], event, fields, row["body"],
                                row["content_type"], time.time())
        # Its token was remembered when it was quarantined; that is no reason to refuse it.
        record = replace(record, token_seen=True)
        event_id = await store.ingest(record)
        note = "replayed" if event_id is not None else "duplicate of an accepted event"
        await held.resolve(store, row["id"], event_id, note)
        replayed.append({"id": row["id"], "event_id": event_id, "note": note})
    missing = [] if wanted is None else sorted(wanted - found)
    return {"replayed": replayed, "still_invalid": still_invalid, "missing": missing}

