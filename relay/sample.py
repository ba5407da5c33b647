"""``relay push``: a correctly signed sample push, to test a deployment end to end."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp

from relay.ingest.signature import sign
from relay.products import PRODUCTS, SAMPLE_CONTACT, Contact, canonical_event
from relay.schemas import EventSchemas

CONTENT_TYPES = ("form", "json", "multipart")

_SAMPLES: dict[str, Any] = {
    "app": "10001",
    "content": "relay push sample",
    "report": "DELIVRD",
    "reason": "relay push sample",
    "template_id": "SAMPLE1",
}


#: What a sample ``dropped`` says: a failure code of SUBMAIL's receipt table (one of each
#: class of relay/drop_reasons.py in turn) and a carrier, so a demo's stats have both.
_DROPS = (("UNDELIV", "中国移动"), ("BLACK", "中国联通"), ("REJECTD", "中国电信"),
          ("MK:0001", "中国移动"), ("SIGFAIL", "中国联通"), ("BEYONDD", "中国电信"))

#: Where a sample without a send_id carries its random mark, first found first.
_MARKED = ("template_id", "content", "reason", "message_id", "item", "group")


def parse_field(item: str) -> tuple[str, str]:
    """``name=value`` of ``--field``."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--field {item!r}: expected NAME=VALUE")
    if name in ("token", "signature"):
        raise ValueError(f"--field {name}: the push is signed for you")
    return name, value


def sample_fields(product: str, event: str, key: str, tag: str | None,
                  schemas: EventSchemas, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Every field the event's schema lists, with plausible values (``extra`` overrides or
    adds), signed with ``key``. Two samples are always two events: one with no ``send_id``
    carries a random mark in a descriptive field, so its identity differs too."""
    validator = schemas.validators.get((product, event))
    if validator is None:
        known = ", ".join(schemas.events(product)) or "none"
        raise ValueError(f"no schema for {product} {event} (known: {known})")
    schema = validator.schema
    names = list(schema.get("properties", {})) if isinstance(schema, dict) else []
    token = secrets.token_hex(16)
    owner = PRODUCTS.get(product)
    fields: dict[str, Any] = {}
    for name in names:
        if owner is not None and owner.contact and name in owner.contact_fields:
            fields[name] = SAMPLE_CONTACT[owner.contact]
        elif name == "events":
            fields[name] = event
        elif name == "send_id":
            fields[name] = secrets.token_hex(16)
        elif name == "timestamp":
            fields[name] = str(int(time.time()))
        elif name in ("token", "signature", "tag"):
            continue
        elif name in schemas.integer_fields(product):
            fields[name] = _SAMPLES.get(name, "1")
        else:
            fields[name] = _SAMPLES.get(name, f"sample-{name}")
    _mark(fields)
    if canonical_event(event) == "dropped":
        _as_a_drop(product, fields)
    if tag:
        fields["tag"] = tag
    fields.update(extra or {})
    fields["token"] = token
    fields["signature"] = sign(token, key)
    return fields


def _mark(fields: dict[str, Any]) -> None:
    """A sample with no send_id gets a random mark in a descriptive field (a new identity)."""
    if "send_id" not in fields:
        marked = next((n for n in _MARKED if n in fields), None)
        if marked is not None:
            fields[marked] = f"{fields[marked]} #{secrets.token_hex(4)}"


def _as_a_drop(product: str, fields: dict[str, Any]) -> None:
    """A failure code in ``report`` (where the event has one) and, for a phone, a carrier."""
    report, carrier = secrets.choice(_DROPS)
    if "report" in fields:
        fields["report"] = report
    owner = PRODUCTS.get(product)
    if owner is not None and owner.contact is Contact.PHONE:
        fields["operator"] = carrier


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
