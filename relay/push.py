"""``relay push``: a correctly signed sample push, to test a deployment end to end."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp

from relay.schemas import EventSchemas
from relay.signature import sign

CONTENT_TYPES = ("form", "json", "multipart")

_SAMPLES: dict[str, Any] = {
    "address": "13800000000",
    "app": "10001",
    "content": "relay push sample",
    "report": "DELIVRD",
    "reason": "relay push sample",
    "template_id": "SAMPLE1",
}


def sample_fields(product: str, event: str, key: str, tag: str | None,
                  schemas: EventSchemas) -> dict[str, Any]:
    """Every field the event's schema lists, with plausible values, signed with ``key``."""
    validator = schemas.validators.get((product, event))
    if validator is None:
        known = ", ".join(schemas.events(product)) or "none"
        raise ValueError(f"no schema for {product} {event} (known: {known})")
    schema = validator.schema
    names = list(schema.get("properties", {})) if isinstance(schema, dict) else []
    token = secrets.token_hex(16)
    fields: dict[str, Any] = {}
    for name in names:
        if name == "events":
            fields[name] = event
        elif name == "send_id":
            fields[name] = secrets.token_hex(16)
        elif name == "timestamp":
            fields[name] = str(int(time.time()))
        elif name in ("token", "signature", "tag"):
            continue
        else:
            fields[name] = _SAMPLES.get(name, f"sample-{name}")
    if tag:
        fields["tag"] = tag
    fields["token"] = token
    fields["signature"] = sign(token, key)
    return fields


async def send_push(url: str, fields: dict[str, Any], content_type: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        if content_type == "json":
            request = session.post(url, data=json.dumps(fields).encode(),
                                   headers={"Content-Type": "application/json"})
        elif content_type == "multipart":
            form = aiohttp.FormData(default_to_multipart=True)
            for name, value in fields.items():
                form.add_field(name, str(value))
            request = session.post(url, data=form)
        else:
            request = session.post(url, data={k: str(v) for k, v in fields.items()})
        async with request as response:
            return response.status, await response.text()
