"""Redis Streams destinations (``redis://[:pass@]host:port/DB?stream=NAME[&maxlen=N]``).

Each delivery is ``XADD NAME [MAXLEN N] * webhook_id .. product .. event .. body ..``; the
entry id Redis gives back is the attempt's answer. Redis keeps no id to de-duplicate on,
so an XADD whose reply was lost (the server restarted mid-command) and that is sent again
is stored twice: consumers de-duplicate on ``webhook_id`` (docs/decisions.md).

The client's connection pool reconnects on the next command after a restart; its own
retries are off, so the relay's retry policy, breaker and attempts log see every failure.
"""

from __future__ import annotations

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.typing import EncodableT, FieldT

from relay.senders.base import BrokerSender
from relay.store import ClaimedDelivery


class RedisSender(BrokerSender):
    errors = (redis.exceptions.RedisError, OSError)
    waits_for = "Redis"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._client: redis.asyncio.Redis | None = None

    def _redis(self, wait: float) -> redis.asyncio.Redis:
        if self._client is None:
            self._client = redis.asyncio.Redis.from_url(
                self.target.server, socket_timeout=wait, socket_connect_timeout=wait,
                retry=Retry(NoBackoff(), 0), health_check_interval=30,
                client_name="subhook-relay")
        return self._client

    async def publish(self, body: bytes, headers: dict[str, str], delivery: ClaimedDelivery,
                      wait: float) -> bytes:
        fields: dict[FieldT, EncodableT] = {
            "webhook_id": delivery.webhook_id, "product": delivery.product,
            "event": delivery.event, "body": body}
        entry = await self._redis(wait).xadd(
            self.target.name, fields, maxlen=self.target.maxlen, approximate=False)
        return entry if isinstance(entry, bytes) else str(entry).encode()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
