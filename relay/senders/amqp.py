"""RabbitMQ destinations (``amqp://[user:pass@]host:port/[vhost]?exchange=E&routing_key=K``).

Each delivery is a persistent message (``message_id`` = webhook-id, the headers of SPEC 6 as
its headers) published ``mandatory`` on a channel in confirm mode: it counts only once the
broker confirms it, which for a durable queue is once it is on disk. A nack, a returned
(unroutable) message or a channel closed by the broker (an exchange that does not exist)
is a retryable failure.

The connection is aio-pika's robust one: it reconnects after a broker restart, a second
apart. A channel the broker closed is opened again on the next attempt.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from aio_pika import DeliveryMode, Message

from relay.redact import redact_url
from relay.senders.base import BrokerSender
from relay.store import ClaimedDelivery

log = logging.getLogger("relay.senders.amqp")

RECONNECT_WAIT_S = 1


class AmqpSender(BrokerSender):
    #: aio-pika says "Connection was not opened" (or "... closed") with a RuntimeError while
    #: its robust connection is away: the broker is down, not a bug of the relay
    errors = (aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError)
    waits_for = "the broker's confirm"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def _exchange_for(self, wait: float) -> aio_pika.abc.AbstractExchange:
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect_robust(
                    self.target.server, timeout=wait,
                    reconnect_interval=RECONNECT_WAIT_S,
                    client_properties={"connection_name": "subhook-relay"})
                self._channel = self._exchange = None
            if self._channel is None or self._channel.is_closed or self._exchange is None:
                self._channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True)
                self._exchange = (
                    await self._channel.get_exchange(self.target.name, ensure=False)
                    if self.target.name else self._channel.default_exchange)
            return self._exchange

    async def publish(self, body: bytes, headers: dict[str, str], delivery: ClaimedDelivery,
                      wait: float) -> bytes:
        exchange = await self._exchange_for(wait)
        message = Message(
            body, headers=dict(headers), content_type=headers.get("Content-Type"),
            message_id=delivery.webhook_id, delivery_mode=DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC), app_id="subhook-relay")
        try:
            await exchange.publish(message, self.target.routing_key, mandatory=True,
                                   timeout=wait)
        except aiormq.exceptions.ChannelClosed:
            self._channel = self._exchange = None
            raise
        return b"confirmed"

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except self.errors as exc:
                log.debug("closing %s: %s", redact_url(self.url), self.describe(exc))
