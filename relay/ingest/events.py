"""The stored form of an accepted push: its identity, webhook-id, routes and deliveries."""

from __future__ import annotations

from typing import Any

from relay import pushes
from relay.compact import compact_json
from relay.config import Settings
from relay.ingest.identity import identity as event_identity
from relay.ingest.identity import webhook_id
from relay.products import PRODUCTS
from relay.routing import Destination, EventKey, destinations_for
from relay.store import NewEvent


def build_event(settings: Settings, product: str, event: str, fields: dict[str, Any],
                body: bytes, content_type: str, now: float) -> tuple[NewEvent, list[Destination]]:
    """The stored form of a valid push and the destinations its routes name."""
    identity = event_identity(product, fields)
    tag, send_id = fields.get("tag"), fields.get("send_id")
    # types are loose (SPEC 10): a tag or send_id given as a number is its text
    key = EventKey.of(product, event, None if tag is None else str(tag))
    known = PRODUCTS.get(product)
    destinations = destinations_for(key, settings.routes, fields)
    record = NewEvent(
        webhook_id=webhook_id(identity), identity=identity,
        token=str(fields["token"]), product=product, event=event, tag=key.tag,
        fields=compact_json(fields), body=body,
        content_type=content_type or pushes.FORM, received_at=now,
        destinations=tuple((d.name, now + d.retry.max_age) for d in destinations),
        send_id=None if send_id is None else str(send_id),
        contact=known.contact_of(fields) if known is not None else None,
    )
    return record, destinations
