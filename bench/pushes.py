"""Pre-generated, correctly signed pushes with unique tokens, in a realistic mix.

The mix follows what a SUBMAIL account sends: mostly SMS status reports, some
international SMS and MMS, a few inbound messages; mostly form posts, as SUBMAIL sends
them, some JSON and multipart.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from relay.sample import sample_fields
from relay.schemas import EventSchemas

KEYS = {"sms": "bench-sms-key", "internationalsms": "bench-intl-key", "mms": "bench-mms-key"}

#: (product, event, weight)
MIX: tuple[tuple[str, str, int], ...] = (
    ("sms", "request", 20), ("sms", "delivered", 40), ("sms", "sending", 10),
    ("sms", "dropped", 5), ("sms", "mo", 3),
    ("internationalsms", "delivered", 10), ("internationalsms", "dropped", 2),
    ("mms", "delivered", 8), ("mms", "dropped", 2),
)
#: (content type, weight)
CONTENT_TYPES: tuple[tuple[str, int], ...] = (("form", 70), ("json", 20), ("multipart", 10))


@dataclass(frozen=True)
class Push:
    path: str
    content_type: str
    body: bytes
    send_id: str


def encode(fields: dict[str, object], kind: str) -> tuple[str, bytes]:
    values = {k: str(v) for k, v in fields.items()}
    if kind == "json":
        return "application/json", json.dumps(fields, ensure_ascii=False).encode()
    if kind == "multipart":
        boundary = "relaybench" + secrets.token_hex(8)
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                 for k, v in values.items()]
        return (f"multipart/form-data; boundary={boundary}",
                ("".join(parts) + f"--{boundary}--\r\n").encode())
    return "application/x-www-form-urlencoded", urlencode(values).encode()


def generate(count: int, seed: int = 1) -> list[Push]:
    rng = random.Random(seed)
    schemas = EventSchemas.load()
    events = [(p, e) for p, e, _ in MIX]
    weights = [w for _, _, w in MIX]
    kinds = [k for k, _ in CONTENT_TYPES]
    kind_weights = [w for _, w in CONTENT_TYPES]
    out = []
    for _ in range(count):
        product, event = rng.choices(events, weights)[0]
        fields = sample_fields(product, event, KEYS[product], None, schemas)
        if "send_id" not in fields:  # an inbound message: unique by its content
            fields["content"] = f"reply {rng.getrandbits(64):016x}"
        content_type, body = encode(fields, rng.choices(kinds, kind_weights)[0])
        key = str(fields.get("send_id") or fields["token"])
        out.append(Push(f"/subhook/{product}", content_type, body, key))
    return out


def write_wrk_file(pushes: list[Push], path: str) -> None:
    """One record per push for bench/cycle.lua: path, content type and body, separated."""
    with open(path, "wb") as out:
        for push in pushes:
            out.write(push.path.encode() + b"\x01" + push.content_type.encode() + b"\x01"
                      + push.body + b"\x02")
