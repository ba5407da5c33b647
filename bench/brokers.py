"""bench/drain.py --destination URL: make what a broker URL publishes into (a JetStream
stream, a bound durable queue; a Redis stream needs nothing) and count what the relay's
store has delivered."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from relay.senders.urls import is_broker, parse_broker


async def _prepare(url: str) -> None:
    target = parse_broker(url)
    if target.scheme == "nats":
        import nats

        nc = await nats.connect(target.server)
        js = nc.jetstream()
        await js.add_stream(name="BENCH", subjects=[target.name])
        await js.purge_stream("BENCH")
        await nc.close()
    elif target.scheme == "amqp":
        import aio_pika

        connection = await aio_pika.connect(target.server)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(target.name, "direct", durable=True)
            queue = await channel.declare_queue("bench", durable=True)
            await queue.bind(exchange, target.routing_key)
            await queue.purge()


def prepare(url: str) -> None:
    if is_broker(url):
        asyncio.run(_prepare(url))


def delivered_in_store(db: Path) -> int:
    """Deliveries the relay has recorded as delivered (read beside it, WAL)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'").fetchone()
        return int(count)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
