"""An event's identity: what makes two pushes one event, whatever their token. Pure.

SUBMAIL does not say whether a re-push carries the old token or a new one, so an event is
also known by a hash of its fields other than ``token`` and ``signature`` (SPEC 2);
``webhook-id`` is derived from it, so services can de-duplicate too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from relay.constants import SIGNING_FIELDS


def identity(product: str, fields: Mapping[str, Any]) -> str:
    """Hash of the event without its token and signature: one event, however re-pushed.

    Values are compared as strings, so a JSON push (``app: 1``) and a form push
    (``app=1``) of the same event are the same event.
    """
    canonical = sorted((k, str(v)) for k, v in fields.items() if k not in SIGNING_FIELDS)
    digest = hashlib.sha256(json.dumps([product, canonical], ensure_ascii=False).encode())
    return digest.hexdigest()


def webhook_id(event_identity: str) -> str:
    return "msg_" + event_identity[:32]
