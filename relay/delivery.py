"""Send one delivery; the one place where aiohttp errors and statuses become outcomes.

    Outcome
     ├── Delivered   2xx
     ├── Retryable   connection error, timeout, 408, 425, 429, 5xx (may carry Retry-After)
     └── Permanent   any other status: retrying cannot help
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from relay.backoff import parse_retry_after
from relay.compact import compact_json
from relay.constants import (
    ANSWER_READ_LIMIT,
    H_ATTEMPT,
    H_EVENT,
    H_ID,
    H_PRODUCT,
    H_SIGNATURE,
    H_TIMESTAMP,
    RETRYABLE_STATUSES,
    SIGNING_FIELDS,
)
from relay.routing import Destination
from relay.store import ClaimedDelivery

__all__ = ["ANSWER_READ_LIMIT", "H_ATTEMPT", "H_EVENT", "H_ID", "H_PRODUCT", "H_SIGNATURE",
           "H_TIMESTAMP", "Kind", "Outcome", "classify", "send"]


class Kind(StrEnum):
    """What one attempt came to (the tree in the module docstring)."""

    #: the service answered 2xx
    DELIVERED = "delivered"
    #: worth trying again: connection error, timeout, 408, 425, 429, 5xx
    RETRYABLE = "retryable"
    #: any other status: retrying cannot help
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    kind: Kind
    status: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None
    #: the first bytes of the service's answer, as sent (never decompressed)
    answer: bytes = b""


def classify(status: int) -> Kind:
    """Pure: the outcome kind of an HTTP status."""
    if 200 <= status < 300:
        return Kind.DELIVERED
    if status in RETRYABLE_STATUSES or status >= 500:
        return Kind.RETRYABLE
    return Kind.PERMANENT


def standard_webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def unsigned_body(fields: str) -> bytes:
    """The event's JSON without SUBMAIL's token and signature, which would let any service
    that sees it push as SUBMAIL (SPEC 16)."""
    event = {k: v for k, v in json.loads(fields).items() if k not in SIGNING_FIELDS}
    return compact_json(event).encode("utf-8")


def build_request(
    delivery: ClaimedDelivery, destination: Destination, attempt: int, now: float
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one attempt (``attempt`` counts from 1)."""
    if destination.format == "original":
        body, content_type = delivery.body, delivery.content_type
    elif destination.include_signature:
        body, content_type = delivery.fields.encode("utf-8"), "application/json"
    else:
        body, content_type = unsigned_body(delivery.fields), "application/json"
    headers = dict(destination.headers)
    timestamp = int(now)
    headers.update({
        "Content-Type": content_type,
        H_ID: delivery.webhook_id,
        H_TIMESTAMP: str(timestamp),
        H_PRODUCT: delivery.product,
        H_EVENT: delivery.event,
        H_ATTEMPT: str(attempt),
    })
    if destination.secret:
        headers[H_SIGNATURE] = standard_webhook_signature(
            destination.secret, delivery.webhook_id, timestamp, body
        )
    return body, headers


async def read_answer(response: aiohttp.ClientResponse) -> bytes:
    """Up to ``ANSWER_READ_LIMIT`` bytes of the answer, as sent: a service (or whatever
    answers at its address) cannot make the relay hold or inflate more. An answer longer
    than that costs its connection, which is closed rather than drained."""
    answer = await response.content.read(ANSWER_READ_LIMIT)
    if not response.content.at_eof():
        response.close()
    return answer


#: Bodies larger than this are handed to aiohttp as a file (aiohttp's own threshold).
CHUNKED_BODY = 1024 * 1024


async def send(
    session: aiohttp.ClientSession,
    delivery: ClaimedDelivery,
    destination: Destination,
    attempt: int,
) -> Outcome:
    """POST one delivery and classify what happened. Never raises for network trouble."""
    body, headers = build_request(delivery, destination, attempt, time.time())
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=destination.timeout)

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    # aiohttp warns that a bytes body over 1 MiB "might lock the event loop" (a mail
    # ``receivers`` push carries a raw message); the same bytes as a file are sent in chunks.
    data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > CHUNKED_BODY else body
    try:
        async with session.post(destination.url, data=data, headers=headers,
                                timeout=timeout, allow_redirects=False) as response:
            answer = await read_answer(response)
            kind = classify(response.status)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            error = None if kind == Kind.DELIVERED else f"HTTP {response.status}"
            return Outcome(kind, response.status, error, elapsed(), retry_after, answer)
    except TimeoutError:
        return Outcome(Kind.RETRYABLE, None, f"timeout after {destination.timeout:g}s", elapsed())
    except aiohttp.ClientError as exc:
        return Outcome(Kind.RETRYABLE, None, f"{type(exc).__name__}: {exc}", elapsed())
    except asyncio.CancelledError:
        raise
    except OSError as exc:
        return Outcome(Kind.RETRYABLE, None, f"{type(exc).__name__}: {exc}", elapsed())
