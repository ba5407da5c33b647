from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import Client, Sink, relay_config, signed

from relay.app import RUNTIME


def route(url: str, name: str = "s") -> str:
    return f'  - {{name: all, destinations: [{{name: {name}, url: "{url}"}}]}}'


async def wait_generation(client: Client, generation: int, within: float = 5.0) -> None:
    assert client.app is not None
    deadline = time.monotonic() + within
    while client.app[RUNTIME].generation < generation:
        assert time.monotonic() < deadline, "config was not reloaded"
        await asyncio.sleep(0.05)


async def test_file_change_reloads_and_invalid_edit_is_refused(
    make_relay: Callable[..., Awaitable[Client]],
    make_sink: Callable[..., Awaitable[Sink]],
    tmp_path: Path,
) -> None:
    """A changed file takes effect; a broken edit is refused and the old config keeps serving."""
    a, b = await make_sink(), await make_sink()
    client = await make_relay(route(a.url, "a"))
    config = tmp_path / "relay.yaml"

    async def accept(send_id: str) -> None:
        fields = signed("sms", {"events": "delivered", "address": "1", "app": 1,
                                "send_id": send_id, "timestamp": int(time.time())})
        assert (await client.post("/subhook/sms", data=fields)).status == 200

    await accept("one")
    await a.wait_for(1)
    await asyncio.sleep(0.05)  # mtime granularity
    config.write_text(relay_config(route(b.url, "b"), store=str(tmp_path / "relay.db")),
                      encoding="utf-8")
    await wait_generation(client, 2)
    await accept("two")
    await b.wait_for(1)
    config.write_text("routes: [this is: not valid\n", encoding="utf-8")
    await asyncio.sleep(2.5)
    assert client.app is not None
    assert client.app[RUNTIME].generation == 2
    await accept("three")
    await b.wait_for(2)
    assert len(a.received) == 1
