"""Capacity for unauthenticated traffic: slow bodies hold no slot, bounded bytes, shedding.

In-process relays on real SQLite files, real sockets to them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from conftest import Client, MakeRelay, signed
from relayproc import wait_until

from relay.store import NewEvent
from relay.web.state import STORE
from relay.web.subhook import Ingest


def delivered(send_id: str) -> dict[str, Any]:
    return signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": send_id,
                          "timestamp": int(time.time())})


def ingest_of(client: Client) -> Ingest:
    """The app's push endpoint (the catch-all route's handler), to see what it holds."""
    assert client.app is not None
    for route in client.app.router.routes():
        owner = getattr(route.handler, "__self__", None)
        if isinstance(owner, Ingest):
            return owner
    raise AssertionError("no route is handled by an Ingest")


async def trickle(host: str, port: int | None, sent: bytes, length: int = 1000,
                  source: str = "127.0.0.1") -> asyncio.StreamWriter:
    """A connection from ``source`` that sent its headers and ``sent`` of a
    ``length``-byte body."""
    return (await open_trickle(host, port, sent, length, source))[1]


async def open_trickle(host: str, port: int | None, sent: bytes, length: int = 1000,
                       source: str = "127.0.0.1") -> tuple[asyncio.StreamReader,
                                                           asyncio.StreamWriter]:
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    writer.write(b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {length}\r\n\r\n".encode() + sent)
    await writer.drain()
    return reader, writer


async def test_slow_bodies_hold_no_slot(make_relay: MakeRelay) -> None:
    """With max_in_progress 1, twenty bodies trickling in do not keep a signed push from
    being stored and answered 200 at once."""
    client = await make_relay("  []", "limits: {max_in_progress: 1, read_timeout: 30s}\n")
    ingest = ingest_of(client)
    slow = [await trickle(client.host, client.port, b"{") for _ in range(20)]
    try:
        await wait_until(lambda: ingest.budget.held == 20, 5, "slow bodies not being read")
        started = time.monotonic()
        response = await client.post("/subhook/sms", data=delivered("real"))
        assert response.status == 200
        assert time.monotonic() - started < 2
        assert ingest.in_progress == 0
    finally:
        for writer in slow:
            writer.close()


async def test_verified_pushes_beyond_max_in_progress_are_shed(make_relay: MakeRelay) -> None:
    """With one signed push being stored and max_in_progress 1, the next signed push is
    answered 503 overloaded with Retry-After; once the first is stored, pushes are taken."""
    client = await make_relay("  []", "limits: {max_in_progress: 1}\n")
    assert client.app is not None
    store = client.app[STORE]
    gate = asyncio.Event()
    real_ingest: Callable[[NewEvent], Awaitable[int | None]] = store.ingest

    async def held_ingest(event: NewEvent) -> int | None:
        await gate.wait()  # holds the first push inside the store write
        return await real_ingest(event)

    store.ingest = held_ingest
    ingest = ingest_of(client)
    first = asyncio.create_task(client.post("/subhook/sms", data=delivered("first")))
    await wait_until(lambda: ingest.in_progress == 1, 5, "the first push is not being stored")
    shed = await client.post("/subhook/sms", data=delivered("shed"))
    assert shed.status == 503
    assert shed.headers["Retry-After"] == "1"
    answer = await shed.json()
    assert answer["error"] == "overloaded" and "max_in_progress" in answer["problems"][0]
    gate.set()
    assert (await first).status == 200
    assert (await client.post("/subhook/sms", data=delivered("shed"))).status == 200


async def test_bytes_of_unverified_bodies_are_bounded(make_relay: MakeRelay) -> None:
    """Over limits.max_buffered bytes held by bodies being read (four addresses each
    holding under its quarter), a push is answered 503 overloaded; once the held bodies are
    gone, pushes are taken again."""
    client = await make_relay("  []", "limits: {max_buffered: 2KiB, read_timeout: 30s}\n")
    ingest = ingest_of(client)
    body = json.dumps(delivered("x")).encode()
    holders = [await trickle(client.host, client.port, b" " * 500, length=4000,
                             source=f"127.0.0.{n}") for n in range(2, 6)]
    try:
        await wait_until(lambda: ingest.budget.held == 2000, 5, "bodies not being read")
        response = await client.post("/subhook/sms", data=body,
                                      headers={"Content-Type": "application/json"})
        assert response.status == 503
        assert (await response.json())["error"] == "overloaded"
    finally:
        for holder in holders:
            holder.close()
    await wait_until(lambda: ingest.budget.held == 0, 5, "held bytes never released")
    assert (await client.post("/subhook/sms", data=delivered("after"))).status == 200


async def test_one_address_holds_a_quarter_of_the_buffer(make_relay: MakeRelay) -> None:
    """An address holding a quarter of limits.max_buffered in bodies being read gets 503
    for its next push, while a push from another address is answered 200."""
    client = await make_relay("  []", "limits: {max_buffered: 4KiB, read_timeout: 30s}\n")
    ingest = ingest_of(client)
    holder = await trickle(client.host, client.port, b" " * 1000, length=4000,
                           source="127.0.0.2")
    try:
        await wait_until(lambda: ingest.budget.of("127.0.0.2") == 1000, 5,
                         "body not being read")
        reader, refused = await open_trickle(client.host, client.port, b" " * 100,
                                             length=200, source="127.0.0.2")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        refused.close()
        assert head.startswith(b"HTTP/1.1 503"), head
        assert (await client.post("/subhook/sms", data=delivered("other"))).status == 200
    finally:
        holder.close()
    await wait_until(lambda: ingest.budget.held == 0, 5, "held bytes never released")

