"""`relay serve` as a real process: reload, the example config, CLI commands, TLS.

Crash and shutdown safety are in tests/reliability/."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from conftest import ROOT, signed
from relayproc import (
    MakeFlaky,
    Relay,
    StartRelay,
    free_port,
    one_route,
    push_many,
    wait_until,
    write_relay_config,
)

from relay.store import AttemptRecord, NewEvent, QuarantinedPush
from relay.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(240)


def rewrite_unseen(path: Path, write: Callable[[Path], object]) -> None:
    """Rewrite the config so that only a SIGHUP makes the relay read it: the new file takes
    the old one's modification time and replaces it in one rename, so the file watcher
    (which reloads on a new mtime, within a second) sees no change. Otherwise the watcher
    reloads the same edit a second time whenever it looks before the next edit, and the
    generation counts both."""
    stat = path.stat()
    new = path.with_name(path.name + ".new")
    write(new)
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(new, path)


async def test_sighup_reload_and_refused_edit(
    tmp_path: Path, start_relay: StartRelay, make_flaky: MakeFlaky
) -> None:
    """SIGHUP reloads the file; a broken file is refused and the process keeps serving."""
    sink, url = await make_flaky(0.0)
    relay = await start_relay("  []")
    rewrite_unseen(relay.config, lambda new: write_relay_config(
        new, relay.port, one_route(url), tmp_path / "relay.db"))
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGHUP)
    acked: set[str] = set()

    async def generation() -> int:
        async with aiohttp.ClientSession() as session, \
                session.get(relay.url + "/readyz") as response:
            return int((await response.json())["config_generation"])

    deadline = time.monotonic() + 10
    while await generation() < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await push_many(relay.url, 0, 5, acked)
    await wait_until(lambda: sink.accepted == acked == {f"evt-{i}" for i in range(5)}, 10,
                     "not routed after reload")
    rewrite_unseen(relay.config,
                   lambda new: new.write_text("subhooks: {broken", encoding="utf-8"))
    relay.proc.send_signal(signal.SIGHUP)
    # The SIGHUP is handled once the refusal is logged (or the process is gone).
    await wait_until(lambda: "config reload refused" in relay.log.read_text()
                     or relay.proc is None or relay.proc.poll() is not None, 10,
                     "the broken config was never read")
    assert relay.proc.poll() is None
    assert await generation() == 2
    await push_many(relay.url, 100, 3, acked)
    assert len(acked) == 8
    # the YAML problem is one line naming the file and its line, not "<unicode string>"
    refused = [line for line in relay.log.read_text().splitlines()
               if "config reload refused: " in line]
    assert refused and f"{relay.config}:1: not valid YAML" in refused[0], refused
    assert "unicode string" not in refused[0] and "\\n" not in refused[0]


async def test_example_config_serves_and_relay_push_gets_200(tmp_path: Path) -> None:
    """`relay serve --config config.example.yaml` runs as shipped; `relay push` gets a 200."""
    port = free_port()
    relay = Relay(ROOT / "config.example.yaml", port, tmp_path,
                  env={"RELAY_LISTEN": f"127.0.0.1:{port}"})
    try:
        await relay.start()
        await exercise_example(relay, tmp_path)
    finally:
        relay.stop()


async def exercise_example(relay: Relay, tmp_path: Path) -> None:
    for content_type in ("form", "json", "multipart"):
        result = subprocess.run(
            [sys.executable, "-m", "relay", "push", relay.url + "/subhook/sms", "--product",
             "sms", "--event", "delivered", "--key", "example-sms-subhook-key", "--tag",
             "order-1", "--content-type", content_type],
            capture_output=True, text=True, check=False, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        status, body = result.stdout.split(" ", 1)
        assert status == "200"
        assert json.loads(body)["status"] == "accepted"
    wrong = subprocess.run(
        [sys.executable, "-m", "relay", "push", relay.url + "/subhook/sms", "--product", "sms",
         "--event", "delivered", "--key", "not-the-key"],
        capture_output=True, text=True, check=False, timeout=30)
    assert wrong.returncode == 1
    assert wrong.stdout.startswith("401 ")
    assert (tmp_path / "relay.db").exists()
    # One line per accepted push is logged at debug level only (masking: test_hostile.py).
    assert "13800000000" not in relay.log.read_text()
    assert relay.signal(signal.SIGTERM) == 0


async def test_cli_dead_and_quarantine_commands(tmp_path: Path) -> None:
    """`relay dead list/replay` and `relay quarantine list/replay` work on the store file."""
    config = tmp_path / "relay.yaml"
    write_relay_config(config, free_port(), "  []", tmp_path / "relay.db")
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    now = time.time()
    event_id = await store.ingest(NewEvent("msg_1", "i1", "t1", "sms", "mo", None,
                                           '{"events":"mo"}', b"", "text/plain", now,
                                           (("svc", now + 3600),)))
    assert event_id is not None
    (claimed,) = await store.claim("svc", 1, "w", now + 60, now + 1)
    await store.record([AttemptRecord(claimed.id, 1, now, 12.5, 410, "HTTP 410", "dead")])
    valid = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "hi",
                           "timestamp": int(now)})
    await store.quarantine(QuarantinedPush("q1", "/subhook/sms", "sms", json.dumps(valid),
                                           b"", "application/json", '["events: x"]', now))
    await store.close()

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args, "--config", str(config)],
                              capture_output=True, text=True, check=False, cwd=tmp_path)

    listed = relay("dead", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (dead,) = json.loads(listed.stdout)
    assert (dead["destination"], dead["attempt"]) == ("svc", 1)
    assert dead["attempts"][0]["http_status"] == 410
    assert dead["attempts"][0]["duration_ms"] == 12.5
    assert "1 dead letter(s)" in relay("dead", "list").stdout
    assert relay("dead", "replay", str(dead["id"])).stdout.startswith("replayed 1 dead letter")
    assert json.loads(relay("dead", "list", "--json").stdout) == []
    assert "1 quarantined push(es)" in relay("quarantine", "list").stdout
    replayed = relay("quarantine", "replay", "--all")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["replayed"][0]["note"] == "replayed"
    assert "0 quarantined push(es)" in relay("quarantine", "list").stdout


async def test_tls_serves_https(tmp_path: Path) -> None:
    """`tls: {cert, key}` serves HTTPS with that certificate; plain HTTP is not answered."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_relay_config(config, port, "  []", tmp_path / "relay.db")
    with config.open("a", encoding="utf-8") as handle:
        handle.write("tls: {cert: server.pem, key: server.pem}\n")
    relay = Relay(config, port, tmp_path)
    relay.scheme = "https"
    relay.ssl_context = ssl.create_default_context()
    authority.configure_trust(relay.ssl_context)
    try:
        await relay.start()
        fields = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "x",
                                "timestamp": int(time.time())})
        connector = aiohttp.TCPConnector(ssl=relay.ssl_context)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.post(relay.url + "/subhook/sms", data=fields) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{port}/healthz") as plain:
                await plain.read()
    finally:
        relay.stop()
