"""The SUBHOOK endpoint: read → verify → replay window → validate → dedupe → persist → 200.

Checks run in the order of SPEC section 4; each refusal has a JSON body naming the problem.
200 is sent only after the event and its deliveries are committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from relay import pushes
from relay.capacity import Budget
from relay.compact import compact_json
from relay.config import Settings, Subhook
from relay.constants import RETRY_AFTER_OVERLOADED, RETRY_AFTER_STORE
from relay.errors import EventInvalid, NotAllowed, Overloaded, PushRejected
from relay.ingest.admission import check_address, check_signature, check_window
from relay.ingest.events import build_event
from relay.ingest.identity import identity as event_identity
from relay.logs import Throttle
from relay.metrics import Metrics
from relay.products import PRODUCTS
from relay.runtime import Runtime
from relay.schemas import EventSchemas
from relay.store import QuarantinedPush, Store, StoreUnavailable
from relay.web.problems import not_allowed, problem
from relay.web.reading import read_body

log = logging.getLogger("relay.ingest")

PUSH_METHODS = ("GET", "POST")


#: The answer's header, set as it is: aiohttp parses a content_type argument per response.
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def accepted(webhook_id: str, destinations: list[str]) -> web.Response:
    """The answer to a push stored: what ``web.json_response`` makes of it, byte for byte,
    at a third of its cost (the webhook-id is ``msg_`` and hex: nothing to escape)."""
    body = (f'{{"status": "accepted", "webhook_id": "{webhook_id}", '
            f'"destinations": {json.dumps(destinations)}}}')
    return web.Response(body=body.encode(), headers=_JSON_HEADERS)


@dataclass
class Ingest:
    runtime: Runtime
    store: Store
    metrics: Metrics
    on_accepted: Callable[[], None]  # wakes the delivery worker
    in_progress: int = 0
    budget: Budget = field(default_factory=Budget)
    refusals: Throttle = field(default_factory=Throttle)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        # One snapshot per request: a reload between two awaits cannot mix configs.
        current = self.runtime.current
        settings, schemas = current.settings, current.schemas
        subhook = settings.subhook_for(request.path)
        if subhook is None:
            return problem(404, "not_found", [f"no such path: {request.path}"])
        if request.method not in PUSH_METHODS:
            return not_allowed("a SUBHOOK", request.method, ", ".join(PUSH_METHODS))
        product, event, outcome = subhook.product, "", "error"
        try:
            response, event, outcome = await self._receive(request, settings, schemas, subhook)
        except PushRejected as exc:
            outcome = exc.code
            response = problem(exc.status, exc.code, exc.problems)
            if exc.status == HTTPStatus.SERVICE_UNAVAILABLE:
                response.headers["Retry-After"] = RETRY_AFTER_OVERLOADED
            else:
                self._log_refusal(subhook.path, exc)
            if isinstance(exc, NotAllowed) or not request.content.is_eof():
                # An address refused is not kept connected (SPEC 18): its connections
                # would hold the capacity of the addresses that are allowed; nor is a
                # body left unread (too large, too slow, over the buffer) read on.
                response.force_close()
        except StoreUnavailable as exc:
            count = self.refusals.let(("store", 503), time.monotonic())
            if count is not None:
                log.error("store unavailable, answering 503 (%d push(es) in the last 10s): %s",
                          count, exc, extra={"subhook": request.path, "status": 503,
                                             "count": count})
            outcome = "store_unavailable"
            response = problem(503, "store_unavailable", ["the event could not be stored; "
                                                          "retry later"])
            response.headers["Retry-After"] = RETRY_AFTER_STORE
        except Exception:
            # A bug must not cost SUBMAIL's receipt: 500 makes it re-push later.
            log.exception("unexpected error handling a push to %s", request.path)
            outcome = "internal_error"
            response = problem(500, "internal_error", ["unexpected error; see the relay log"])
        self.metrics.received(product, event, outcome, time.monotonic() - started)
        return response

    async def _receive(self, request: web.Request, settings: Settings, schemas: EventSchemas,
                       subhook: Subhook) -> tuple[web.Response, str, str]:
        """Read and verify without a slot (a slow or forged push holds only its connection
        and the bytes it sent, within ``limits.max_buffered``); then validate and store
        holding one of ``limits.max_in_progress`` slots, which only signed pushes reach."""
        if subhook.allow_ips:
            check_address(request.remote, request.headers.getall("X-Forwarded-For", ()),
                          subhook, settings)
        limits = settings.limits
        body = b"" if request.method == "GET" else await read_body(
            request, limits.max_body_size, limits.read_timeout, self.budget,
            limits.max_buffered)
        content_type = request.headers.get("Content-Type", "")
        # The query exactly as sent, decoded once by the form reader (yarl's query_string
        # is already percent-decoded: reading it again altered "100%2541" into "100A").
        query = request.raw_path.partition("?")[2]
        fields = pushes.read_push(request.method, content_type, body, query, limits.max_fields)
        check_signature(fields, subhook.keys)
        now = time.time()
        check_window(fields, settings, now)
        pushes.refuse_float_integers(fields, schemas.integer_fields(subhook.product))
        if request.method == "GET":
            body, content_type = query.encode(), pushes.FORM
        if self.in_progress >= limits.max_in_progress:
            # Shed rather than queue: SUBMAIL re-pushes later, where queueing without limit
            # would cost memory and every push's latency.
            raise Overloaded([f"{self.in_progress} pushes are being stored "
                              "(limits.max_in_progress); retry later"])
        self.in_progress += 1
        try:
            return await self._store(settings, schemas, subhook, fields, body, content_type,
                                     now)
        finally:
            self.in_progress -= 1

    async def _store(self, settings: Settings, schemas: EventSchemas, subhook: Subhook,
                     fields: dict[str, Any], body: bytes, content_type: str,
                     now: float) -> tuple[web.Response, str, str]:
        try:
            event = schemas.validate(subhook.product, fields)
        except EventInvalid as exc:
            if not await self._quarantine(subhook, fields, body, content_type, exc, now):
                return web.json_response({"status": "duplicate"}), "", "duplicate"
            raise
        record, destinations = build_event(settings, subhook.product, event, fields, body,
                                           content_type, now)
        event_id = await self.store.ingest(record)
        if event_id is None:
            return web.json_response({"status": "duplicate"}), event, "duplicate"
        self.on_accepted()
        if log.isEnabledFor(logging.DEBUG):  # one line per push costs ~15% of ingest at load
            product = PRODUCTS[subhook.product]
            contact = product.masked(fields) if settings.mask_contacts \
                else product.contact_value(fields)
            log.debug("accepted %s %s id=%s contact=%s -> %s", subhook.product, event,
                      record.webhook_id, contact or "-",
                      ",".join(d.name for d in destinations) or "(no route)")
        return accepted(record.webhook_id, [d.name for d in destinations]), event, "accepted"

    def _log_refusal(self, path: str, exc: PushRejected) -> None:
        """One warning per SUBHOOK path and status every 10 s, with the count it speaks for:
        a reset key or a broken sender shows in the log without flooding it."""
        count = self.refusals.let((path, exc.status), time.monotonic())
        if count is None:
            return
        more = f" ({count} refusals of this kind in the last 10s)" if count > 1 else ""
        log.warning("refused push to %s: %d %s: %s%s", path, exc.status, exc.code,
                    exc.problems[0] if exc.problems else "-", more,
                    extra={"subhook": path, "status": exc.status, "error": exc.code,
                           "count": count})

    async def _quarantine(self, subhook: Subhook, fields: dict[str, Any], body: bytes,
                          content_type: str, exc: EventInvalid, now: float) -> bool:
        """Keep a signed push the schemas refuse; False when it re-pushes an accepted event
        (answered 200 duplicate: SPEC section 4 puts dedupe before the schema)."""
        identity = event_identity(subhook.product, fields)
        if await self.store.seen(str(fields["token"]), identity):
            return False
        qid = await self.store.quarantine(QuarantinedPush(
            identity, subhook.path, subhook.product,
            compact_json(fields), body, content_type,
            json.dumps(exc.problems, ensure_ascii=False), now, str(fields["token"])))
        # The 422 itself is logged (rate-limited) as a refusal; this line adds the id.
        log.debug("quarantined push %d for %s: %s", qid, subhook.path, "; ".join(exc.problems))
        return True
