from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import Client, Sink, relay_config, signed
from relayproc import wait_until

from relay.web.state import RUNTIME


def route(url: str, name: str = "s") -> str:
    return f'  - {{name: all, destinations: [{{name: {name}, url: "{url}"}}]}}'


async def wait_generation(client: Client, generation: int, within: float = 5.0) -> None:
    assert client.app is not None
    runtime = client.app[RUNTIME]
    await wait_until(lambda: runtime.current.generation >= generation, within,
                     "config was not reloaded")


def rewrite(path: Path, text: str) -> None:
    """Write the file so that the watcher sees a new modification time, even where the
    filesystem's clock is too coarse to tell two quick writes apart."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


async def test_file_change_reloads_and_invalid_edit_is_refused(
    make_relay: Callable[..., Awaitable[Client]],
    make_sink: Callable[..., Awaitable[Sink]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
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
    rewrite(config, relay_config(route(b.url, "b"), store=str(tmp_path / "relay.db")))
    await wait_generation(client, 2)
    await accept("two")
    await b.wait_for(1)
    caplog.set_level(logging.ERROR, logger="relay.runtime")
    rewrite(config, "routes: [this is: not valid\n")
    # The watcher has read the broken file once it logs the refusal; then the generation
    # tells whether the refused config was applied anyway.
    await wait_until(lambda: "config reload refused" in caplog.text, 5,
                     "the broken edit was never read")
    assert client.app is not None
    assert client.app[RUNTIME].current.generation == 2
    await accept("three")
    await b.wait_for(2)
    assert len(a.received) == 1
