"""Send one delivery; the one place where client errors and statuses become outcomes.

The client is HTTP/1.1 on the event loop itself (relay/delivery/http1.py: a protocol per
connection, httptools' C parser, a keep-alive pool per host): no thread is handed a request
or an answer (docs/performance.md, docs/decisions.md).

    Outcome
     ├── Delivered   2xx
     ├── Retryable   connection error, timeout, 408, 425, 429, 5xx (may carry Retry-After)
     └── Permanent   any other status: retrying cannot help
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum

from relay import version
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
from relay.delivery import http1, urls
from relay.delivery.backoff import parse_retry_after
from relay.redact import redact_text
from relay.routing import Destination
from relay.store import ClaimedDelivery

__all__ = ["ANSWER_READ_LIMIT", "H_ATTEMPT", "H_EVENT", "H_ID", "H_PRODUCT", "H_SIGNATURE",
           "H_TIMESTAMP", "Client", "Kind", "Outcome", "classify", "new_client", "send"]


class Kind(StrEnum):
    """What one attempt came to (the tree in the module docstring): ``delivered`` (2xx),
    ``retryable`` (connection error, timeout, 408, 425, 429, 5xx: worth trying again) or
    ``permanent`` (any other status: retrying cannot help)."""

    DELIVERED = "delivered"
    RETRYABLE = "retryable"
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
    that sees it push as SUBMAIL (SPEC 16).

    Every destination of an event is sent the same body, so the last few are remembered
    (parsing and encoding again was an eighth of a delivery's time on the event loop);
    only small ones, so that what is kept stays under about 5 MiB."""
    if len(fields) > CACHED_FIELDS_MAX:
        return _unsigned_body(fields)
    return _unsigned_body_cached(fields)


#: Longest fields JSON (characters) whose unsigned body is remembered.
CACHED_FIELDS_MAX = 4096


def _unsigned_body(fields: str) -> bytes:
    event = {k: v for k, v in json.loads(fields).items() if k not in SIGNING_FIELDS}
    return compact_json(event).encode("utf-8")


_unsigned_body_cached = functools.lru_cache(maxsize=256)(_unsigned_body)


def build_request(
    delivery: ClaimedDelivery, destination: Destination, attempt: int, now: float
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one attempt (``attempt`` counts from 1)."""
    if destination.body is not None:  # ``body:`` (SPEC 19); signed below as sent
        body, content_type = destination.body.encode(
            delivery.fields, delivery.product, delivery.event, delivery.webhook_id
        ), "application/json"
    elif destination.format == "original":
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


class Client:
    """The worker's one client, shared by every destination (a pool per host).

    - Redirects are not followed: a 3xx is the service's answer (permanent).
    - Answers are never decompressed (none is asked for): a service's gzip answer is read
      as sent, so 1 MB of it cannot inflate into a gigabyte inside the relay.
    - No proxy from the environment: services are reached directly.
    - TLS trusts the platform's certificates (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are
      honoured, read when the client is made, as Python's ssl does); HTTP/1.1 only.
    - Header names go out lower-case (``webhook-id``, as Standard Webhooks writes them);
      HTTP reads them in any case.
    """

    def __init__(self) -> None:
        tls = ssl.create_default_context()
        tls.set_alpn_protocols(["http/1.1"])
        self.pool = http1.Pool(tls)
        self.user_agent = f"subhook-relay/{version()}"

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def new_client() -> Client:
    """The worker's one client (``Client``)."""
    return Client()


def unbuilt(exc: ValueError, destination: Destination) -> str:
    """Why a request could not be built, without a header's value (it may be a credential)
    or the URL's password."""
    reason = str(exc)
    if reason.startswith("Invalid header value"):
        return "invalid header value (value hidden)"
    return redact_text(reason, destination.url)


async def send(
    client: Client,
    delivery: ClaimedDelivery,
    destination: Destination,
    attempt: int,
) -> Outcome:
    """POST one delivery and classify what happened. Never raises for network trouble."""
    started = time.monotonic()

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    try:
        # binascii.Error (a secret that is not base64) is a ValueError too: the config
        # refuses such a secret, and a delivery that cannot be built is recorded as a
        # permanent failure with its reason, never left pending without an attempt.
        body, headers = build_request(delivery, destination, attempt, time.time())
        target = urls.target(destination.url)
        data = http1.request_bytes(target, headers, body, client.user_agent)
    except ValueError as exc:  # the config checks URLs and headers; this is the backstop
        return Outcome(Kind.PERMANENT, None, f"request not built: {unbuilt(exc, destination)}",
                       elapsed())
    try:
        # The timeout covers connecting, sending and the whole answer; an answer that stops
        # coming after its status keeps the status (relay/delivery/http1.py).
        answer = await client.pool.request(target, data, destination.timeout)
    except TimeoutError:
        return Outcome(Kind.RETRYABLE, None, f"timeout after {destination.timeout:g}s", elapsed())
    except asyncio.CancelledError:
        raise
    except (http1.HttpError, OSError) as exc:
        return Outcome(Kind.RETRYABLE, None, f"{type(exc).__name__}: {exc}", elapsed())
    kind = classify(answer.status)
    error = None if kind == Kind.DELIVERED else f"HTTP {answer.status}"
    retry_after = parse_retry_after(answer.retry_after, time.time())
    return Outcome(kind, answer.status, error, elapsed(), retry_after, answer.body)
