"""RabbitMQ destinations against a real node (.ci/rabbitmq; tests/brokerkit.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import aio_pika
import pytest
from brokerkit import (
    Arrived,
    BrokerSide,
    arrives_once_with_the_http_body,
    private_server,
    refusal_is_retryable,
    server_url,
    survives_an_outage,
)
from conftest import MakeRelay, MakeSink


class AmqpSide(BrokerSide):
    """A durable direct exchange of its own and a durable queue bound to it by ``events``;
    the queue's messages are read back and put back (nothing acknowledged)."""

    @property
    def destination_url(self) -> str:
        return f"{self.server}?exchange={self.name}&routing_key=events"

    async def _declare(self, bind: bool | None) -> None:
        connection = await aio_pika.connect(self.server)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.name, aio_pika.ExchangeType.DIRECT,
                                                      durable=True)
            queue = await channel.declare_queue(self.name, durable=True)
            if bind is True:
                await queue.bind(exchange, "events")
            elif bind is False:
                await queue.unbind(exchange, "events")

    async def prepare(self) -> None:
        await self._declare(bind=True)

    async def refuse(self) -> None:
        await self._declare(bind=False)

    async def accept(self) -> None:
        await self._declare(bind=True)

    async def arrived(self) -> list[Arrived]:
        connection = await aio_pika.connect(self.server)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.name, durable=True)
            found, held = [], []
            while (message := await queue.get(fail=False)) is not None:
                held.append(message)
                assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                headers = {k: str(v) for k, v in message.headers.items()}
                found.append(Arrived(message.message_id or "", message.body, headers))
            for message in held:
                await message.nack(requeue=True)
            return found


def side(server: str) -> AmqpSide:
    return AmqpSide(server, "relay-" + secrets.token_hex(4))


async def test_an_event_arrives_once_with_the_http_body(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """The queue holds the event once: persistent, HTTP's body, message_id = webhook-id."""
    await arrives_once_with_the_http_body(side(server_url("amqp")), make_relay, make_sink)


@pytest.mark.timeout(240)
async def test_a_restart_loses_and_duplicates_nothing(make_relay: MakeRelay,
                                                      tmp_path: Path) -> None:
    """RabbitMQ down 20 s mid-test: every event is in the durable queue once after it."""
    async with private_server("amqp", tmp_path) as server:
        await survives_an_outage(side(server.url), server, make_relay, tmp_path / "relay.yaml")


async def test_an_unroutable_message_is_a_retryable_failure(make_relay: MakeRelay,
                                                           tmp_path: Path) -> None:
    """No queue bound to the routing key: the message comes back (mandatory), pending."""
    await refusal_is_retryable(side(server_url("amqp")), make_relay, tmp_path / "relay.yaml",
                               "NO_ROUTE")
