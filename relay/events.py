"""The stored form of an accepted push: its identity, webhook-id, routes and deliveries."""

from __future__ import annotations

import json
from typing import Any

from relay import pushes
from relay.config import Settings
from relay.identity import identity as event_identity
from relay.identity import webhook_id
from relay.routing import Destination, EventKey, destinations_for
from relay.store import NewEvent


def build_event(settings: Settings, product: str, event: str, fields: dict[str, Any],
                body: bytes, content_type: str, now: float) -> tuple[NewEvent, list[Destination]]:
    """The stored form of a valid push and the destinations its routes name."""
    identity = event_identity(product, fields)
    tag = fields.get("tag")
    key = EventKey.of(product, event, tag if isinstance(tag, str) else None)
    destinations = destinations_for(key, settings.routes)
    record = NewEvent(
        webhook_id=webhook_id(identity), identity=identity,
        token=str(fields["token"]), product=product, event=event, tag=key.tag,
        fields=json.dumps(fields, ensure_ascii=False, separators=(",", ":")), body=body,
        content_type=content_type or pushes.FORM, received_at=now,
        destinations=tuple((d.name, now + d.retry.max_age) for d in destinations),
    )
    return record, destinations
