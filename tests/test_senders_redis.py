"""Redis Streams destinations against a real redis-server (.ci/redis; tests/brokerkit.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import redis.asyncio
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


class RedisSide(BrokerSide):
    """A stream of its own; refused by making its key a string (WRONGTYPE)."""

    @property
    def destination_url(self) -> str:
        return f"{self.server}?stream={self.name}&maxlen=1000"

    async def prepare(self) -> None:
        client = redis.asyncio.Redis.from_url(self.server)
        async with client:
            await client.delete(self.name)

    async def refuse(self) -> None:
        client = redis.asyncio.Redis.from_url(self.server)
        async with client:
            await client.set(self.name, "not a stream")

    async def accept(self) -> None:
        await self.prepare()

    async def arrived(self) -> list[Arrived]:
        client = redis.asyncio.Redis.from_url(self.server)
        try:
            entries = await client.xrange(self.name)
        finally:
            await client.aclose()
        found = []
        for _, fields in entries or ():
            assert fields is not None
            got = {bytes(k): bytes(v) for k, v in fields.items()}  # type: ignore[arg-type]
            assert set(got) == {b"webhook_id", b"product", b"event", b"body"}
            assert (got[b"product"], got[b"event"]) == (b"sms", b"delivered")
            found.append(Arrived(got[b"webhook_id"].decode(), got[b"body"], {}))
        return found


def side(server: str) -> RedisSide:
    return RedisSide(server, "relay-" + secrets.token_hex(4))


async def test_an_event_arrives_once_with_the_http_body(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """The stream holds one entry: webhook_id, product, event and HTTP's body."""
    await arrives_once_with_the_http_body(side(server_url("redis")), make_relay, make_sink)


@pytest.mark.timeout(180)
async def test_a_restart_loses_and_duplicates_nothing(make_relay: MakeRelay,
                                                      tmp_path: Path) -> None:
    """redis-server down 20 s mid-test: every event is in the stream once after it."""
    async with private_server("redis", tmp_path) as server:
        await survives_an_outage(side(server.url), server, make_relay, tmp_path / "relay.yaml")


async def test_a_key_of_another_type_is_a_retryable_failure(make_relay: MakeRelay,
                                                           tmp_path: Path) -> None:
    """The stream's key holds a string: WRONGTYPE, pending, shown by `relay events show`."""
    await refusal_is_retryable(side(server_url("redis")), make_relay, tmp_path / "relay.yaml",
                               "WRONGTYPE")
