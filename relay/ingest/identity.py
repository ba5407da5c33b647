"""An event's identity: what makes two pushes one event, whatever their token. Pure.

SUBMAIL does not say whether a re-push carries the old token or a new one, so an event is
also known by a hash of its fields other than ``token`` and ``signature`` (SPEC 2);
``webhook-id`` is derived from it, so services can de-duplicate too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from relay.constants import SIGNING_FIELDS


def identity(product: str, fields: Mapping[str, Any]) -> str:
    """Hash of the event without its token and signature: one event, however re-pushed.

    Values are compared as strings, so a JSON push (``app: 1``) and a form push
    (``app=1``) of the same event are the same event.

    The hashed text is ``json.dumps([product, sorted((name, str(value)), ...)],
    ensure_ascii=False)``, which stores keep and webhook-ids derive from, so it never
    changes; it is written here with json's own string encoder, at two thirds of the cost.
    """
    pairs = ", ".join(f"[{encode_basestring(k)}, {encode_basestring(v)}]" for k, v in
                      sorted((k, str(v)) for k, v in fields.items() if k not in SIGNING_FIELDS))
    text = f"[{encode_basestring(product)}, [{pairs}]]"
    return hashlib.sha256(text.encode()).hexdigest()


def webhook_id(event_identity: str) -> str:
    return "msg_" + event_identity[:32]
