"""NATS JetStream destinations (``nats://[user:pass@]host:port/SUBJECT``).

A JetStream publish is a request answered by the stream that stored the message: the
acknowledgement (stream, sequence, duplicate) is the attempt's answer. ``Nats-Msg-Id`` is
the webhook-id, so a publish sent again after a lost acknowledgement is dropped by the
stream's duplicate window (two minutes by default) rather than stored twice.

The client reconnects by itself, for ever, a second apart. While it is disconnected a
publish fails at once (``pending_size=0``: nothing is buffered to go out later behind the
relay's back, after the attempt was recorded as failed).
"""

from __future__ import annotations

import json
import logging

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from relay.redact import redact_text, redact_url
from relay.senders.base import BrokerSender
from relay.store import ClaimedDelivery

log = logging.getLogger("relay.senders.nats")

#: The header JetStream de-duplicates on.
H_MSG_ID = "Nats-Msg-Id"
RECONNECT_WAIT_S = 1


class NatsSender(BrokerSender):
    errors = (nats.errors.Error, OSError)
    waits_for = "the stream's acknowledgement"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._closing = False

    async def _stream(self, wait: float) -> JetStreamContext:
        async with self._lock:
            if self._nc is not None and self._nc.is_closed:
                self._nc = self._js = None
            if self._js is None:
                self._nc = await nats.connect(
                    self.target.server, connect_timeout=max(1, int(wait)),
                    allow_reconnect=True, max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S, pending_size=0,
                    error_cb=self._error, disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected, name="subhook-relay")
                self._js = self._nc.jetstream(timeout=wait)
            return self._js

    async def publish(self, body: bytes, headers: dict[str, str], delivery: ClaimedDelivery,
                      wait: float) -> bytes:
        js = await self._stream(wait)
        ack = await js.publish(self.target.name, body, timeout=wait,
                               headers={**headers, H_MSG_ID: delivery.webhook_id})
        return json.dumps({"stream": ack.stream, "seq": ack.seq,
                           "duplicate": bool(ack.duplicate)}).encode()

    async def close(self) -> None:
        self._closing = True
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except (nats.errors.Error, OSError) as exc:
                log.debug("closing %s: %s", redact_url(self.url), self.describe(exc))

    async def _error(self, exc: Exception) -> None:
        log.debug("nats %s: %s", redact_url(self.url), redact_text(str(exc), self.url))

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("nats %s: disconnected; reconnecting", redact_url(self.url))

    async def _reconnected(self) -> None:
        log.info("nats %s: reconnected", redact_url(self.url))
