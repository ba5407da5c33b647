"""`relay destinations` from a shell, beside a running relay on each store (SPEC 17)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import MakeSink, Sink, signed
from relayproc import Relay, serving_on, wait_until


@pytest.fixture
async def relay_on(tmp_path: Path, store_kind: str,
                   make_sink: MakeSink) -> AsyncIterator[tuple[Relay, Sink, Path]]:
    """A `relay serve` on each store with one destination, `svc`, a sink; its config."""
    sink = await make_sink()
    url = f"http://user:pw-secret-1@{sink.url.removeprefix('http://')}"
    async with serving_on(store_kind, tmp_path, (
            f"routes:\n  - {{name: all, destinations: [{{name: svc, url: '{url}'}}]}}\n"
            )) as (relay, config):
        yield relay, sink, config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", "destinations", *args,
                           "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


async def push(relay: Relay, n: int) -> None:
    fields = signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                            "send_id": f"c{n}", "timestamp": int(time.time())})
    async with aiohttp.ClientSession() as session, \
            session.post(relay.url + "/subhook/sms", json=fields) as response:
        assert response.status == 200, await response.text()


async def test_a_cli_pause_is_obeyed_by_the_running_relay_within_3_s(
        relay_on: tuple[Relay, Sink, Path]) -> None:
    """`pause` from another process: within 3 s the relay logs it and makes no attempt;
    new events are still accepted and listed as pending; `resume` delivers them; the list
    masks the URL's password; an unknown name exits 1 naming it."""
    relay, sink, config = relay_on
    result = cli(config, "pause", "svc", "--reason", "deploy 42")
    assert result.returncode == 0, result.stderr
    started = time.monotonic()
    await wait_until(lambda: "destination svc paused by" in relay.log.read_text(),
                     within=3, what="the relay did not log the pause within 3 s")
    assert time.monotonic() - started <= 3
    for n in range(2):
        await push(relay, n)
    listed = json.loads(cli(config, "list", "--json").stdout)
    (row,) = listed
    assert (row["state"], row["pending"], row["paused"]["reason"]) == ("paused", 2, "deploy 42")
    assert "pw-secret-1" not in json.dumps(listed) and ":***@" in row["url"]
    text = cli(config, "list").stdout
    assert "paused (by" in text and "pw-secret-1" not in text
    assert sink.received == []
    # a pending delivery shows when it is tried next (events show, text and JSON)
    shown = subprocess.run([sys.executable, "-m", "relay", "events", "show", "1",
                            "--config", str(config)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert "to svc: pending" in shown.stdout and "next attempt " in shown.stdout, shown
    result = cli(config, "resume", "svc")
    assert result.returncode == 0 and "resumed svc" in result.stdout, result
    await sink.wait_for(2, within=10)
    await wait_until(lambda: "destination svc resumed" in relay.log.read_text(), within=3,
                     what="resume logged")
    for verb in ("pause", "resume", "retry"):
        result = cli(config, verb, "nope")
        assert result.returncode == 1 and "'nope'" in result.stderr, (verb, result)
    result = cli(config, "retry", "svc")
    assert result.returncode == 0 and "due now" in result.stdout
