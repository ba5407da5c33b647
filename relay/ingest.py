"""The SUBHOOK endpoint: read → verify → replay window → validate → dedupe → persist → 200.

Checks run in the order of SPEC section 4; each refusal has a JSON body naming the problem.
200 is sent only after the event and its deliveries are committed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relay import pushes
from relay.config import Destination, Settings, Subhook
from relay.errors import (
    EventInvalid,
    PayloadTooLarge,
    PushRejected,
    ReplayRefused,
    SignatureInvalid,
)
from relay.metrics import Metrics
from relay.routing import EventKey, destinations_for
from relay.runtime import Runtime
from relay.signature import verify
from relay.store import NewEvent, QuarantinedPush, Store, StoreUnavailable

log = logging.getLogger("relay.ingest")


def problem(status: int, code: str, problems: list[str]) -> web.Response:
    return web.json_response({"status": "error", "error": code, "problems": problems},
                             status=status)


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge([f"body of {request.content_length} bytes is over {limit}"])
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge([f"body is over {limit} bytes"])
        chunks.append(chunk)
    return b"".join(chunks)


def check_signature(fields: dict[str, Any], keys: tuple[str, ...]) -> None:
    token, signature = fields.get("token"), fields.get("signature")
    if not isinstance(token, str) or not token:
        raise SignatureInvalid(["token: required (a signed push carries token and signature)"])
    if not isinstance(signature, str) or not signature:
        raise SignatureInvalid(["signature: required"])
    if not verify(token, signature, keys):
        raise SignatureInvalid(["signature: does not match md5(token + key) for any key"])


def check_window(fields: dict[str, Any], settings: Settings, now: float) -> None:
    """Refuse a timestamp outside the window; a malformed one is left to the schema."""
    raw = fields.get("timestamp")
    if isinstance(raw, bool):
        return
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        stamp = int(raw)
        if stamp < now - settings.replay_past:
            raise ReplayRefused([f"timestamp: {stamp} is older than the replay window "
                                 f"({settings.replay_past:g}s)"])
        if stamp > now + settings.replay_future:
            raise ReplayRefused([f"timestamp: {stamp} is in the future beyond "
                                 f"{settings.replay_future:g}s"])


def build_event(settings: Settings, product: str, event: str, fields: dict[str, Any],
                body: bytes, content_type: str, now: float) -> tuple[NewEvent, list[Destination]]:
    """The stored form of a valid push and the destinations its routes name."""
    identity = pushes.identity(product, fields)
    tag = fields.get("tag")
    key = EventKey.of(product, event, tag if isinstance(tag, str) else None)
    destinations = destinations_for(key, settings.routes)
    record = NewEvent(
        webhook_id=pushes.webhook_id(identity), identity=identity,
        token=str(fields["token"]), product=product, event=event, tag=key.tag,
        fields=json.dumps(fields, ensure_ascii=False, separators=(",", ":")), body=body,
        content_type=content_type or pushes.FORM, received_at=now,
        destinations=tuple((d.name, now + d.retry.max_age) for d in destinations),
    )
    return record, destinations


@dataclass
class Ingest:
    runtime: Runtime
    store: Store
    metrics: Metrics
    on_accepted: Any  # Callable[[], None]: wakes the delivery worker

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        settings = self.runtime.settings
        subhook = settings.subhook_for(request.path)
        if subhook is None:
            return problem(404, "not_found", [f"no SUBHOOK is configured at {request.path}"])
        product, event, outcome = subhook.product, "", "error"
        try:
            response, event, outcome = await self._receive(request, settings, subhook)
        except PushRejected as exc:
            outcome = exc.code
            response = problem(exc.status, exc.code, exc.problems)
        except StoreUnavailable as exc:
            log.error("store unavailable: %s", exc)
            outcome = "store_unavailable"
            response = problem(503, "store_unavailable", ["the event could not be stored; "
                                                          "retry later"])
        self.metrics.received(product, event, outcome, time.monotonic() - started)
        return response

    async def _receive(self, request: web.Request, settings: Settings,
                       subhook: Subhook) -> tuple[web.Response, str, str]:
        if request.method not in ("POST", "GET"):
            raise PushRejected([f"method {request.method} is not accepted; use POST"])
        body = b"" if request.method == "GET" else await read_body(
            request, settings.limits.max_body_size)
        content_type = request.headers.get("Content-Type", "")
        fields = pushes.read_push(request.method, content_type, body, request.query_string,
                                  settings.limits.max_fields)
        check_signature(fields, subhook.keys)
        now = time.time()
        check_window(fields, settings, now)
        identity = pushes.identity(subhook.product, fields)
        raw_fields = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        if request.method == "GET":
            body, content_type = request.query_string.encode(), pushes.FORM
        try:
            event = self.runtime.schemas.validate(subhook.product, fields)
        except EventInvalid as exc:
            if await self.store.seen(str(fields["token"]), identity):
                return web.json_response({"status": "duplicate"}), "", "duplicate"
            qid = await self.store.quarantine(QuarantinedPush(
                identity, subhook.path, subhook.product, raw_fields, body, content_type,
                json.dumps(exc.problems, ensure_ascii=False), now))
            log.warning("quarantined push %d for %s: %s", qid, subhook.path,
                        "; ".join(exc.problems))
            raise
        record, destinations = build_event(settings, subhook.product, event, fields, body,
                                           content_type, now)
        event_id = await self.store.ingest(record)
        if event_id is None:
            return web.json_response({"status": "duplicate"}), event, "duplicate"
        self.on_accepted()
        address = fields.get("address")
        log.info("accepted %s %s id=%s address=%s -> %s", subhook.product, event,
                 record.webhook_id,
                 pushes.mask_phone(str(address)) if settings.mask_phone_numbers and address
                 else address, ",".join(d.name for d in destinations) or "(no route)")
        return web.json_response({"status": "accepted", "webhook_id": record.webhook_id,
                                  "destinations": [d.name for d in destinations]}), event, \
            "accepted"
