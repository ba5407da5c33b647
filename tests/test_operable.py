"""What an operator meets on day one: one owner per store file, honest commands, clear logs.

Real `relay serve` processes on real SQLite files, real services on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEYS, MakeRelay, MakeSink, eventually, signed
from relayproc import Relay, free_port, subhooks_yaml, wait_until

from relay import version
from relay.web.state import RUNTIME

pytestmark = pytest.mark.timeout(120)


class HoldingService:
    """A service that holds each request open until ``release`` is set, and records the
    webhook-id and X-Relay-Attempt of every request that arrives."""

    def __init__(self) -> None:
        self.arrived: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.arrived.append((request.headers["webhook-id"],
                                 request.headers["X-Relay-Attempt"]))
            await self.release.wait()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/hook"))

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.close()


def config_text(port: int, db: Path, routes: str, extra: str = "") -> str:
    return (f"listen: 127.0.0.1:{port}\nstore: sqlite:///{db}\nsubhooks:\n{subhooks_yaml()}\n"
            f"routes:\n{routes}\n"
            "retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 100ms, max_age: 1h}\n"
            + extra)


def route_to(url: str, name: str = "svc", timeout: str = "60s") -> str:
    return f'  - {{name: all, destinations: [{{name: {name}, url: "{url}", timeout: {timeout}}}]}}'


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True,
                          text=True, check=False, cwd=cwd, timeout=60)


async def push(url: str, fields: dict[str, object], path: str = "/subhook/sms") -> int:
    async with aiohttp.ClientSession() as session, \
            session.post(url + path, data=fields) as response:
        return response.status


def delivered_push(send_id: str) -> dict[str, object]:
    return signed("sms", {"events": "delivered", "address": "13800138000", "app": 1,
                          "send_id": send_id, "timestamp": int(time.time())})


def leases(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        return [(str(s), o) for s, o in conn.execute(
            "SELECT state, lease_owner FROM deliveries ORDER BY id")]


async def test_second_serve_on_one_file_exits_naming_it_and_nothing_is_sent_twice(
        tmp_path: Path) -> None:
    """A second `relay serve` on a served SQLite file (other port) exits 1 naming the file
    and the holder's pid, before touching the first one's leases; the in-flight delivery is
    sent once. After SIGKILL of the owner, a new relay takes the file over at once."""
    service = HoldingService()
    url = await service.start()
    db = tmp_path / "relay.db"
    first_cfg, first_port = tmp_path / "first.yaml", free_port()
    first_cfg.write_text(config_text(first_port, db, route_to(url)), encoding="utf-8")
    first = Relay(first_cfg, first_port, tmp_path)
    try:
        await first.start()
        assert await push(first.url, delivered_push("once")) == 200
        await wait_until(lambda: len(service.arrived) == 1, 10, "delivery never arrived")
        assert leases(db)[0][1] is not None  # leased by the first relay, in flight

        second_cfg, second_port = tmp_path / "second.yaml", free_port()
        second_cfg.write_text(config_text(second_port, db, route_to(url)), encoding="utf-8")
        second = run("serve", "--config", str(second_cfg), cwd=tmp_path)
        assert second.returncode == 1
        assert str(db.resolve()) in second.stderr
        assert f"pid {first.proc.pid if first.proc else '?'}" in second.stderr
        assert "Traceback" not in second.stderr
        assert leases(db)[0][1] is not None  # the first relay's lease was left alone

        service.release.set()
        await wait_until(lambda: leases(db)[0][0] == "delivered", 10, "not delivered")
        assert len(service.arrived) == 1

        # SIGKILL: the OS drops the lock; a restart owns the file and serves.
        service.release.clear()
        assert await push(first.url, delivered_push("in-flight-at-kill")) == 200
        await wait_until(lambda: len(service.arrived) == 2, 10, "second delivery never came")
        first.signal(signal.SIGKILL)
        second_relay = Relay(second_cfg, second_port, tmp_path)
        await second_relay.start()
        try:
            service.release.set()
            await wait_until(lambda: all(s == "delivered" for s, _ in leases(db)), 15,
                             "the restarted relay did not deliver what was in flight")
            # at least once: the delivery in flight at the kill is sent again, as attempt 1
            assert [a for w, a in service.arrived[1:]] == ["1", "1"]
        finally:
            second_relay.stop()
    finally:
        first.stop()
        await service.close()


async def test_taken_port_fails_in_one_line_before_the_store_is_opened(tmp_path: Path) -> None:
    """`relay serve` on a port already taken exits 1 with one line naming the address; it
    never opens the store (so it voids no lease and creates no file)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "relay.yaml"
        db = tmp_path / "never.db"
        cfg.write_text(config_text(port, db, "  []"), encoding="utf-8")
        result = run("serve", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"serve: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not db.exists()


async def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    """`relay dead list` from a folder without the store exits 1 naming the missing file and
    creates nothing."""
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(config_text(free_port(), Path("relay.db"), "  []"), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (("dead", "list"), ("quarantine", "list"), ("dead", "replay", "1")):
        result = run(*args, "--config", str(cfg), cwd=elsewhere)
        assert result.returncode == 1, args
        assert str(elsewhere / "relay.db") in result.stderr
        assert "no such store file" in result.stderr
    assert list(elsewhere.iterdir()) == []


async def test_replay_of_ids_that_do_not_exist_says_so(tmp_path: Path) -> None:
    """`relay dead replay 999` exits 1 naming 999; the admin API answers 404 with the ids, and
    400 for an id no store could hold, after which pushes are still accepted (one bad write
    must not hang its neighbours)."""
    cfg = tmp_path / "relay.yaml"
    port = free_port()
    cfg.write_text(config_text(port, tmp_path / "relay.db", "  []", "admin: {token: adm}\n"),
                   encoding="utf-8")
    relay = Relay(cfg, port, tmp_path)
    await relay.start()
    try:
        result = run("dead", "replay", "999", "--config", str(cfg), cwd=tmp_path)
        assert result.returncode == 1
        assert "no dead letter with id 999" in result.stderr
        # one answer, not "replayed 0" beside "no dead letter", and the way to an event
        assert "replayed" not in result.stdout
        assert "relay events replay" in result.stderr
        result = run("quarantine", "replay", "998", "--config", str(cfg), cwd=tmp_path)
        assert result.returncode == 1
        assert "no quarantined push with id 998" in result.stderr
        headers = {"Authorization": "Bearer adm"}
        async with aiohttp.ClientSession() as session:
            async with session.post(relay.url + "/admin/dead/replay", json={"ids": [999]},
                                    headers=headers) as response:
                assert response.status == 404
                body = await response.json()
                assert body["missing"] == [999]
                assert "999" in body["problems"][0]
            pushes = [push(relay.url, delivered_push(f"n{i}")) for i in range(5)]
            big = session.post(relay.url + "/admin/dead/replay", json={"ids": [10**30]},
                               headers=headers)
            async with big as response:
                assert response.status == 400
            assert await asyncio.wait_for(asyncio.gather(*pushes), 10) == [200] * 5
    finally:
        relay.stop()


async def test_push_samples_are_distinct_and_config_signs_them(tmp_path: Path) -> None:
    """`relay push` of a template event twice sends two events (no send_id to tell them
    apart otherwise); `--config` signs with the SUBHOOK's key; `--field` sets a field."""
    cfg = tmp_path / "relay.yaml"
    port = free_port()
    cfg.write_text(config_text(port, tmp_path / "relay.db", "  []"), encoding="utf-8")
    relay = Relay(cfg, port, tmp_path)
    await relay.start()
    try:
        url = f"{relay.url}/subhook/sms"
        for _ in range(2):
            result = run("push", url, "--product", "sms", "--event", "template_accept",
                         "--key", KEYS["sms"], cwd=tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            assert '"status": "accepted"' in result.stdout
        result = run("push", url, "--product", "sms", "--event", "mo", "--config", str(cfg),
                     "--field", "content=hello relay", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        with sqlite3.connect(tmp_path / "relay.db") as conn:
            contents = [json.loads(f).get("content") for (f,) in conn.execute(
                "SELECT fields FROM events WHERE event = 'mo'")]
        assert contents == ["hello relay"]
        wrong = run("push", f"{relay.url}/subhook/nowhere", "--product", "sms", "--event",
                    "mo", "--config", str(cfg), cwd=tmp_path)
        assert wrong.returncode == 1
        assert "no SUBHOOK at /subhook/nowhere" in wrong.stderr
    finally:
        relay.stop()


def test_version(tmp_path: Path) -> None:
    """`relay --version` names the installed version."""
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"relay {version()}"
    assert version() != "unknown"


@pytest.mark.parametrize(("match", "problem"), [
    ("{event: delievered}", "routes[0].match.event: 'delievered' matches no event"),
    ("{product: smss}", "routes[0].match.product: 'smss' matches no product"),
    ("{product: mms, event: mo_x}", "'mo_x' matches no event of mms"),
])
def test_check_refuses_matchers_naming_nothing(tmp_path: Path, match: str, problem: str) -> None:
    """`relay check` refuses a product or event matcher that no schema has, after globbing."""
    cfg = tmp_path / "relay.yaml"
    routes = f'  - {{name: r, match: {match}, destinations: [{{name: d, url: "http://x/"}}]}}'
    cfg.write_text(config_text(free_port(), tmp_path / "r.db", routes), encoding="utf-8")
    result = run("check", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert problem in result.stderr


def test_check_accepts_globs_and_lists_unrouted_events(tmp_path: Path) -> None:
    """A glob that matches some event is fine; events no route takes are listed."""
    cfg = tmp_path / "relay.yaml"
    routes = ('  - {name: r, match: {product: "sms", event: ["*template_*", unkown]}, '
              'destinations: [{name: d, url: "http://x/"}]}')
    cfg.write_text(config_text(free_port(), tmp_path / "r.db", routes), encoding="utf-8")
    result = run("check", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "/subhook/sms event delivered (untagged) matches no route" in result.stdout
    assert "/subhook/sms event template_accept" not in result.stdout
    assert "/subhook/sms event unknown" not in result.stdout
    assert "/subhook/mms event mo (untagged) matches no route" in result.stdout


def test_route_refuses_unknown_product_and_event(tmp_path: Path) -> None:
    """`relay route --product fax` is an error, not a MATCH."""
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(config_text(free_port(), tmp_path / "r.db", route_to("http://x/")),
                   encoding="utf-8")
    fax = run("route", "--config", str(cfg), "--product", "fax", "--event", "mo", cwd=tmp_path)
    assert fax.returncode == 2
    assert "unknown product 'fax'" in fax.stderr
    assert "MATCH" not in fax.stdout
    typo = run("route", "--config", str(cfg), "--product", "sms", "--event", "delievered",
               cwd=tmp_path)
    assert typo.returncode == 2
    assert "sms has no event 'delievered'" in typo.stderr


async def test_admin_listen_splits_the_ports(tmp_path: Path) -> None:
    """With admin_listen, /metrics and /admin answer only there and SUBHOOK paths only on
    listen; /healthz answers on both; `relay health` follows the config."""
    cfg = tmp_path / "relay.yaml"
    port, admin_port = free_port(), free_port()
    cfg.write_text(config_text(port, tmp_path / "relay.db", "  []",
                               f"admin_listen: 127.0.0.1:{admin_port}\nadmin: {{token: a}}\n"),
                   encoding="utf-8")
    relay = Relay(cfg, port, tmp_path)
    await relay.start()
    edge, admin = relay.url, f"http://127.0.0.1:{admin_port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def status(url: str, method: str = "GET") -> int:
                async with session.request(method, url, headers={
                        "Authorization": "Bearer a"}) as response:
                    return response.status

            assert await status(edge + "/metrics") == 404
            assert await status(edge + "/admin/dead") == 404
            assert await status(admin + "/metrics") == 200
            assert await status(admin + "/admin/dead") == 200
            assert await status(edge + "/healthz") == 200
            assert await status(admin + "/healthz") == 200
            assert await push(edge, delivered_push("edge")) == 200
            assert await push(admin, delivered_push("admin")) == 404
        health = run("health", "--config", str(cfg), cwd=tmp_path)
        assert health.returncode == 0, health.stderr
        assert f"127.0.0.1:{port}/healthz: 200" in health.stdout
    finally:
        relay.stop()
    down = run("health", "--config", str(cfg), cwd=tmp_path)
    assert down.returncode == 1


async def test_log_lines_of_start_refusals_and_stop_in_json(tmp_path: Path) -> None:
    """With log.format json every stderr line is one JSON object; the start line names the
    version, listen, store and SUBHOOKs; refusals are rate-limited with a count; keys never
    appear; a clean stop is one line."""
    cfg = tmp_path / "relay.yaml"
    port = free_port()
    db = tmp_path / "relay.db"
    cfg.write_text(config_text(port, db, "  []", "log: {format: json}\n"), encoding="utf-8")
    relay = Relay(cfg, port, tmp_path)
    await relay.start()
    forged = {**delivered_push("x"), "signature": "0" * 32}
    for _ in range(5):
        assert await push(relay.url, forged) == 401
    assert relay.signal(signal.SIGTERM) == 0
    text = relay.log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    start = next(line for line in lines if line["message"].startswith("relay "))
    assert start["version"] == version()
    assert start["listen"] == f"127.0.0.1:{port}"
    assert start["store"] == f"sqlite:///{db}"
    assert "/subhook/sms" in start["subhooks"]
    refused = [line for line in lines if line["message"].startswith("refused push")]
    assert len(refused) == 1
    assert refused[0]["level"] == "warning"
    assert (refused[0]["subhook"], refused[0]["status"]) == ("/subhook/sms", 401)
    assert lines[-1]["message"] == "relay stopped"
    for key in KEYS.values():
        assert key not in text
    assert "13800138000" not in text


async def test_methods_and_unknown_paths(make_relay: MakeRelay) -> None:
    """A SUBHOOK path answers other methods 405 with Allow: GET, POST; a known path 405 with
    its own Allow; any other path 404 not_found."""
    client = await make_relay("  []", "admin: {token: t}\n")
    put = await client.put("/subhook/sms", data={"a": "1"})
    assert (put.status, put.headers["Allow"]) == (405, "GET, POST")
    assert (await put.json())["error"] == "method_not_allowed"
    health = await client.post("/healthz")
    assert (health.status, health.headers["Allow"]) == (405, "GET, HEAD")
    replay = await client.get("/admin/dead/replay")
    assert (replay.status, replay.headers["Allow"]) == (405, "POST")
    missing = await client.post("/admin/nothing")
    assert missing.status == 404
    assert await missing.json() == {"status": "error", "error": "not_found",
                                    "problems": ["no such path: /admin/nothing"]}


async def test_reload_warns_about_start_only_keys_and_counts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, make_relay: MakeRelay) -> None:
    """A reload that changes listen or store warns that it needs a restart; reloads are
    counted by result in /metrics."""
    client = await make_relay("  []")
    assert client.app is not None
    runtime = client.app[RUNTIME]
    source = runtime.current.settings.source
    assert source is not None
    text = source.read_text()
    source.write_text(text.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1")
                      .replace("store: sqlite:///", "store: sqlite:///moved-"))
    caplog.set_level(logging.INFO, logger="relay.runtime")
    assert runtime.reload()
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "listen, store changed, which is read only at start" in warning.getMessage()
    source.write_text("routes: [")
    assert not runtime.reload()
    metrics = await (await client.get("/metrics")).text()
    assert 'relay_config_reloads_total{result="applied"} 1.0' in metrics
    assert 'relay_config_reloads_total{result="refused"} 1.0' in metrics


async def test_queue_metrics_per_destination(make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """relay_queue_depth and relay_queue_oldest_seconds per destination; a failing one is
    down in relay_destination_up until it recovers."""
    # the retry is held 4 s, far longer than a scrape takes on a loaded machine
    sink = await make_sink(script=[503, "sleep:4"])
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: slow, url: "{sink.url}"}}]}}')
    assert (await client.post("/subhook/sms", data=delivered_push("m1"))).status == 200

    async def metrics() -> str:
        return await (await client.get("/metrics")).text()

    async def wait_for_line(line: str) -> str:
        async def shown() -> bool:
            return line in await metrics()

        await eventually(shown, 10, f"the line {line}")
        return await metrics()

    # the 503 makes it down; the delivery stays pending while the retry is held
    text = await wait_for_line('relay_destination_up{destination="slow"} 0.0')
    assert 'relay_queue_depth{destination="slow"} 1.0' in text
    oldest = float(text.split('relay_queue_oldest_seconds{destination="slow"} ')[1].split()[0])
    assert 0 <= oldest < 60
    text = await wait_for_line('relay_destination_up{destination="slow"} 1.0')
    assert 'relay_queue_depth{destination="slow"} 0.0' in text


async def test_quick_start_sink_serve_push(tmp_path: Path) -> None:
    """The README's quick start: `relay sink --secret` prints the pushed event with a masked
    contact and a verified signature; `relay events list` and `show` tell it was delivered,
    with the sink's answer."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sink_port, port = free_port(), free_port()
    cfg = tmp_path / "relay.yaml"
    routes = (f'  - {{name: all, destinations: [{{name: orders, url: '
              f'"http://127.0.0.1:{sink_port}/subhook", secret: "{secret}"}}]}}')
    cfg.write_text(config_text(port, tmp_path / "relay.db", routes), encoding="utf-8")
    sink = subprocess.Popen([sys.executable, "-m", "relay", "sink", "--listen",
                             f"127.0.0.1:{sink_port}", "--secret", secret],
                            stdout=subprocess.PIPE, text=True)
    relay = Relay(cfg, port, tmp_path)
    try:
        assert sink.stdout is not None
        assert "signatures checked" in sink.stdout.readline()
        await relay.start()
        result = run("push", f"{relay.url}/subhook/sms", "--config", str(cfg), "--product",
                     "sms", "--event", "delivered", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        line = await asyncio.wait_for(asyncio.to_thread(sink.stdout.readline), 15)
        assert " sms/delivered msg_" in line
        assert "attempt=1" in line and "signature=ok" in line
        assert "contact=138****0000" in line

        def listed() -> bool:  # the attempt is recorded just after the sink answered
            out = run("events", "list", "--config", str(cfg), cwd=tmp_path).stdout
            return "orders=delivered(1)" in out

        await wait_until(listed, 15, "`relay events list` should show the delivery")
        shown = run("events", "show", "--config", str(cfg), "1", cwd=tmp_path)
        assert shown.returncode == 0 and '"status": "ok"' in shown.stdout, shown.stdout
    finally:
        relay.stop()
        sink.terminate()
        sink.wait(timeout=10)
        if sink.stdout is not None:
            sink.stdout.close()
