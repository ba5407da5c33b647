"""`relay events`, `relay tail` and the discards from a shell, against a running relay."""

from __future__ import annotations

import asyncio
import json
import signal
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
    """A `relay serve` on each store, routing everything to a sink that answers 503 to
    its first request (with a body) and 200 after; its config file."""
    sink = await make_sink(script=[(503, {})])
    async with serving_on(store_kind, tmp_path, (
            f"routes:\n  - {{name: all, destinations: [{{name: svc, url: '{sink.url}'}}]}}\n"
            "retry: {max_attempts: 1}\n")) as (relay, config):
        yield relay, sink, config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args, "--config", str(config)],
                          capture_output=True, text=True, check=False, timeout=60)


async def push(relay: Relay, send_id: str, address: str = "13812345678") -> None:
    fields = signed("sms", {"events": "delivered", "address": address, "app": 1,
                            "send_id": send_id, "timestamp": int(time.time())})
    async with aiohttp.ClientSession() as session, \
            session.post(f"{relay.url}/subhook/sms", data=fields) as response:
        assert response.status == 200, await response.text()


async def test_events_list_show_replay_and_exit_codes(
        relay_on: tuple[Relay, Sink, Path]) -> None:
    """Find a push by send_id and full number (shown masked), see its failed attempt with
    the service's answer, replay it, see the new attempt; unknown ids exit 1, bad input 2."""
    relay, sink, config = relay_on
    await push(relay, "order-1")
    await push(relay, "order-2", address="13900000000")
    await wait_until(lambda: len(sink.received) == 2, 10, "both pushes should be sent once")

    found = cli(config, "events", "list", "--send-id", "order-1", "--json")
    assert found.returncode == 0, found.stderr
    (event,) = json.loads(found.stdout)["events"]
    by_contact = cli(config, "events", "list", "--contact", "+86 138 1234 5678")
    assert by_contact.returncode == 0, by_contact.stderr
    assert "138****5678" in by_contact.stdout and "13812345678" not in by_contact.stdout
    assert by_contact.stdout.splitlines()[-1] == "1 event(s)"
    assert event["received_at"].endswith("Z")
    dead = [e for e in json.loads(cli(config, "events", "list", "--state", "dead",
                                       "--json").stdout)["events"]]
    assert len(dead) == 1
    failed_id = dead[0]["id"]

    show = cli(config, "events", "show", str(failed_id), "--json")
    assert show.returncode == 0, show.stderr
    (delivery,) = json.loads(show.stdout)["deliveries"]
    assert [(a["status"], a["answer"]) for a in delivery["attempts"]] == [(503, "sink")]
    replayed = cli(config, "events", "replay", str(failed_id))
    assert replayed.returncode == 0, replayed.stderr
    await wait_until(lambda: len(sink.received) == 3, 10, "the replay should be sent")

    async def delivered() -> bool:
        shown = json.loads(cli(config, "events", "show", dead[0]["webhook_id"],
                               "--json").stdout)
        return bool(shown["deliveries"][0]["state"] == "delivered")

    deadline = time.monotonic() + 10
    while not await delivered():
        assert time.monotonic() < deadline, "the replayed delivery was never recorded"
        await asyncio.sleep(0.1)
    text = cli(config, "events", "show", str(failed_id))
    assert "-- replay 1 --" in text.stdout
    assert text.stdout.index("503") < text.stdout.index("-- replay 1 --") \
        < text.stdout.index(" 200 ")

    assert cli(config, "events", "list", "--send-id", "nope").returncode == 1
    assert cli(config, "events", "show", "999999").returncode == 1
    missing = cli(config, "events", "replay", "999999")
    assert missing.returncode == 1 and "no event with id 999999" in missing.stderr
    assert cli(config, "events", "replay", "--send-id", "nope").returncode == 1
    assert cli(config, "dead", "discard", "999999").returncode == 1
    assert cli(config, "quarantine", "discard", "999999").returncode == 1
    for bad in (("events", "show", "bogus"), ("events", "list", "--state", "lost"),
                ("events", "list", "--since", "yesterday"), ("events", "list", "--cursor", "x"),
                ("events", "list", "--product", "fax"), ("events", "list", "--event", "delivred")):
        result = cli(config, *bad)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        # one line naming what was wrong (argparse's own for a --product not in its choices)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("relay") and repr(bad[-1]) in last, result.stderr
    typo = cli(config, "events", "list", "--event", "delivred")
    assert "did you mean delivered?" in typo.stderr, typo.stderr


async def test_tail_shows_a_push_and_its_delivery_within_2_s(
        relay_on: tuple[Relay, Sink, Path]) -> None:
    """`relay tail` from another process: the accepted push and its delivery outcome are
    printed within 2 s of the push's 200; SIGINT ends it with 0."""
    relay, sink, config = relay_on
    sink.script.clear()
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "tail", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert tail.stdout is not None
    try:
        first = await asyncio.wait_for(tail.stdout.readline(), 20)
        assert first.startswith(b"following"), first
        await push(relay, "tailed-1")
        pushed_at = time.monotonic()
        lines: list[str] = []
        while not any(" delivered svc " in line for line in lines):
            left = 2.0 - (time.monotonic() - pushed_at)
            assert left > 0, f"tail showed within 2 s only: {lines}"
            lines.append((await asyncio.wait_for(tail.stdout.readline(), left)).decode())
        accepted = [line for line in lines if " accepted sms/delivered " in line]
        assert len(accepted) == 1 and "send_id=tailed-1" in accepted[0]
        assert "contact=138****5678" in accepted[0] and "13812345678" not in "".join(lines)
        tail.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(tail.wait(), 10) == 0
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()
