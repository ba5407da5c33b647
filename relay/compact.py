"""The JSON text the relay stores and sends: compact, non-ASCII kept as it is."""

from __future__ import annotations

import json
from typing import Any

#: one encoder for every call: json.dumps with these options builds a new one each time,
#: a third of the cost of encoding a push's fields
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``."""
    return _ENCODER.encode(value)
