"""What operators see of a stored row, decided once for the CLI, the admin API and the
console alike: SUBMAIL's token and signature left out, every contact field masked, the one
contact of a row chosen by its product's contact fields (products.Product.contact_value),
times ISO 8601 in UTC (``2026-11-24T08:00:00.123Z``; people's output turns them local).
Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from relay.constants import SIGNING_FIELDS
from relay.messages.stats import outcome_latency
from relay.products import PRODUCTS, masked_fields
from relay.store.base import DeliveryState
from relay.times import iso

#: Ids are SQL BIGINTs: anything else names no row (and must not reach the driver).
MAX_ID = 2**63 - 1


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def row_id(text: str) -> int | None:
    """A row id in text: ASCII digits (not ``²``), at most a BIGINT; None otherwise."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if valid_id(value) else None


def fields(product: str, stored: str) -> dict[str, Any]:
    """An event's fields: an object, without SUBMAIL's token and signature (a
    credential), every contact field masked."""
    return masked_fields(product, {k: v for k, v in json.loads(stored).items()
                                   if k not in SIGNING_FIELDS})


def contact(product: str, stored: str) -> str | None:
    """The row's one contact, masked: the first contact field of its product it has."""
    known = PRODUCTS.get(product)
    return known.masked(json.loads(stored)) if known is not None else None


def attempt(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"attempt": row["attempt"], "replay": row["replay"],
            "started_at": iso(row["started_at"]), "duration_ms": round(row["duration_ms"], 1),
            "status": row["http_status"], "error": row["error"], "outcome": row["outcome"],
            "answer": row["answer"]}


def delivery(row: Mapping[str, Any]) -> dict[str, Any]:
    shown = {"id": row["id"], "destination": row["destination"], "state": row["state"],
             "attempts": row["attempt"], "replays": row["replays"],
             "last_error": row["last_error"], "updated_at": iso(row["updated_at"])}
    if row["state"] == DeliveryState.PENDING:
        shown["next_attempt_at"] = iso(row["next_attempt_at"])
    if "attempts" in row and isinstance(row["attempts"], list):
        shown["attempts"] = [attempt(a) for a in row["attempts"]]
    return shown


def event(row: Mapping[str, Any]) -> dict[str, Any]:
    """One event, with its deliveries (and their attempts when read)."""
    return {"id": row["id"], "webhook_id": row["webhook_id"], "product": row["product"],
            "event": row["event"], "tag": row["tag"], "send_id": row["send_id"],
            "contact": contact(row["product"], row["fields"]),
            "received_at": iso(row["received_at"]), "fields": fields(row["product"], row["fields"]),
            "deliveries": [delivery(d) for d in row["deliveries"]]}


def dead_letter(row: Mapping[str, Any], attempts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A dead letter with every attempt (status, duration, error, answer)."""
    return {**row, "contact": contact(row["product"], row["fields"]),
            "fields": fields(row["product"], row["fields"]),
            "updated_at": iso(row["updated_at"]),
            "attempts": [{**a, "started_at": iso(a["started_at"])} for a in attempts]}


def held(row: Mapping[str, Any]) -> dict[str, Any]:
    """A quarantined push with its problems, without the raw body."""
    return {**{k: v for k, v in row.items() if k != "body"},
            "fields": fields(row["product"], row["fields"]),
            "received_at": iso(row["received_at"])}


def message(row: Mapping[str, Any], states: Iterable[str]) -> dict[str, Any]:
    """A message: each of ``states`` it reached with SUBMAIL's time."""
    return {"product": row["product"], "send_id": row["send_id"], "state": row["state"],
            "contact": row["contact"], "tag": row["tag"],
            "reached": {s: iso(row[f"{s}_at"]) for s in states if row[f"{s}_at"] is not None},
            "report": row["report"], "reason": row["reason"], "operator": row["operator"],
            "location": row["location"], "updated_at": iso(row["updated_at"]),
            "latency": None if (got := outcome_latency(row)) is None else {
                "to": got[0], "seconds": got[1]}}


def dumps(value: Any) -> str:
    """JSON for ``--json`` and the admin API: nested objects, never JSON in a string."""
    return json.dumps(value, ensure_ascii=False, indent=2)
