"""Hostile input: fuzzed pushes, replays, slow clients, secrets.

The fuzzing test drives a relay and a recording service running in a background thread
(their own event loop) with raw HTTP from http.client, so hypothesis, which is
synchronous, can send anything: any bytes, any content type, any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import http.client
import json
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEYS, signed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from relayproc import (
    Relay,
    delivery_states,
    free_port,
    subhooks_yaml,
    wait_until,
    wait_until_blocking,
)

from relay.delivery.client import ANSWER_READ_LIMIT, new_client, send
from relay.routing import Destination
from relay.runtime import RunningConfig
from relay.store import ClaimedDelivery
from relay.web.app import create_app
from relay.web.state import STORE

pytestmark = pytest.mark.timeout(300)

SECRET = "whsec_" + "c2VjcmV0LWRlc3RpbmF0aW9uLWtleS0wMTIzNDU2Nzg="
FUZZ_TOKEN = "fuzz-operator-token-0123456789"
ADMIN = "admin-token-never-logged-7f3a"


@dataclass
class Threaded:
    """A relay and a recording service on one event loop in a background thread."""

    port: int
    db: Path
    forwarded: list[dict[str, Any]] = field(default_factory=list)

    def settled(self) -> bool:
        """The store holds no pending delivery: every event it accepted has been forwarded
        (or given up on), and nothing more will reach the recording service."""
        return delivery_states(self.db).get("pending", 0) == 0

    def send(self, method: str, path: str, content_type: str | None,
             body: bytes) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {} if content_type is None else {"Content-Type": content_type}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Threaded]:
    tmp = tmp_path_factory.mktemp("hostile")
    loop = asyncio.new_event_loop()
    relay_port, sink_port = free_port(), free_port()
    state = Threaded(relay_port, tmp / "relay.db")
    subhooks = subhooks_yaml()
    config = tmp / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{relay_port}\nstore: sqlite:///{tmp / 'relay.db'}\n"
        f"subhooks:\n{subhooks}\nroutes:\n  - name: all\n    destinations:\n"
        # include_signature: what it forwards shows which key signed it
        f"      - {{name: s, url: 'http://127.0.0.1:{sink_port}/hook', "
        "include_signature: true}\n"
        "limits: {max_body_size: 256KiB, max_fields: 200, read_timeout: 2s}\n"
        # the console and admin API read forms and bodies only with a token configured;
        # fuzzed requests come through "a proxy" so that each may be its own address
        f"admin:\n  tokens:\n    - {{name: fuzz, token: {FUZZ_TOKEN}, role: operator}}\n"
        "trusted_proxies: [127.0.0.1/32]\n",
        encoding="utf-8")
    runners: list[web.AppRunner] = []

    async def record(request: web.Request) -> web.Response:
        state.forwarded.append(await request.json())
        return web.Response(text="ok")

    async def start() -> None:
        sink = web.Application()
        sink.router.add_post("/hook", record)
        for app, port in ((sink, sink_port), (create_app(RunningConfig.load(config)), relay_port)):
            runner = web.AppRunner(app, handler_cancellation=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield state
    for runner in reversed(runners):
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain",
                 "multipart/form-data; boundary=xyz", "multipart/form-data", "application/xml",
                 "application/json; charset=gbk", "", "*/*"]
names = st.text(string.ascii_letters + "_", min_size=1, max_size=10)
values = st.one_of(st.text(max_size=30), st.integers(), st.none(), st.booleans(),
                   st.text(max_size=3).map(lambda t: t * 20_000))


def _form(fields: dict[str, Any]) -> bytes:
    return "&".join(f"{quote(k)}={quote(str(v))}" for k, v in fields.items()).encode()


def _multipart(fields: dict[str, Any], truncate: int | None) -> bytes:
    body = "".join(f'--xyz\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in fields.items()).encode("utf-8", "surrogatepass") + b"--xyz--\r\n"
    return body if truncate is None else body[:truncate]


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, str | None, bytes]:  # noqa: PLR0911
    """(path, content type, body) of a push nobody should trust."""
    product = draw(st.sampled_from(sorted(KEYS)))
    path = f"/subhook/{product}"
    kind = draw(st.sampled_from(["bytes", "fields", "valid", "nested", "many", "duplicates"]))
    content_type: str | None = draw(st.one_of(st.sampled_from(CONTENT_TYPES), st.none()))
    if kind == "bytes":
        return path, content_type, draw(st.binary(max_size=2000))
    if kind == "nested":
        depth = draw(st.integers(1, 100_000))
        return path, "application/json", (b'{"a":' * depth + b"1" + b"}" * depth)[:200_000]
    if kind == "many":
        count = draw(st.integers(150, 5000))
        return path, "application/x-www-form-urlencoded", b"&".join(
            b"f%d=%d" % (i, i) for i in range(count))
    if kind == "duplicates":
        return path, draw(st.sampled_from(CONTENT_TYPES[:2])), draw(st.sampled_from(
            [b'{"token": "a", "token": "b"}', b"token=a&token=b", b'{"a": 1, "a": 1}']))
    fields = draw(st.dictionaries(names, values, max_size=12))
    if kind == "valid":  # a whole event, some unknown fields added: accepted when signed
        fields = {k: v for k, v in fields.items() if isinstance(v, str) and len(v) < 100}
        fields.update({"events": "delivered", "address": "13800000000", "app": "1",
                       "send_id": draw(st.uuids()).hex, "timestamp": str(int(time.time()))})
    how = draw(st.sampled_from(["unsigned", "wrong_key", "right_key_then_altered", "signed",
                                "signed"]))
    if how != "unsigned":
        key = KEYS[product] if how != "wrong_key" else "not-a-configured-key"
        fields = signed(product, fields, key=key)
        if how == "right_key_then_altered":
            fields["token"] = draw(st.text(string.hexdigits, min_size=1, max_size=40))
    encoding = draw(st.sampled_from(["form", "json", "multipart", "truncated"]))
    if encoding == "json":
        return path, "application/json", json.dumps(fields).encode("utf-8", "surrogatepass")
    if encoding == "form":
        return path, content_type or "application/x-www-form-urlencoded", \
            _form(fields).replace(b"%20", b"%FF" if draw(st.booleans()) else b"%20")
    cut = None if encoding == "multipart" else draw(st.integers(0, 400))
    return path, "multipart/form-data; boundary=xyz", _multipart(fields, cut)


def _signed_by_a_configured_key(event: dict[str, Any], product: str) -> bool:
    token, signature = str(event.get("token")), str(event.get("signature")).lower()
    return hashlib.md5((token + KEYS[product]).encode()).hexdigest() == signature


def test_fuzzed_pushes_never_crash_and_never_forward_unsigned(threaded: Threaded) -> None:
    """Random bodies, content types, invalid UTF-8, deep nesting, huge values, duplicate keys,
    thousands of fields, truncated multipart: never a 5xx but 503, always a JSON error body,
    and everything forwarded carries a signature made with a configured key."""
    statuses: dict[int, int] = {}

    @settings(max_examples=400, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(push=hostile(), method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    def one(push: tuple[str, str | None, bytes], method: str) -> None:
        path, content_type, body = push
        status, answer = threaded.send(method, path, content_type, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500 or status == 503, (status, answer)
        assert isinstance(answer, dict) and answer.get("status") in (
            "accepted", "duplicate", "error"), answer
        if status >= 400:
            assert answer["error"] and answer["problems"], answer

    one()
    assert threaded.send("GET", "/healthz", None, b"") == (200, {"status": "ok"})
    wait_until_blocking(threaded.settled, 30, "accepted pushes still pending delivery")
    for event in threaded.forwarded:
        assert any(_signed_by_a_configured_key(event, p) for p in KEYS), event
    print(f"\nfuzz: statuses {dict(sorted(statuses.items()))}, "
          f"{len(threaded.forwarded)} forwarded, all signed with a configured key")


def test_replayed_push_with_changed_fields_is_not_forwarded(threaded: Threaded) -> None:
    """A captured push (token and signature) replayed with other fields answers 200 as a
    duplicate (SPEC 3) and is never forwarded; a stale timestamp is refused with 401."""
    before = len(threaded.forwarded)
    now = int(time.time())
    original = signed("sms", {"events": "delivered", "address": "13800000000", "app": 1,
                              "send_id": "captured", "timestamp": now})
    status, answer = threaded.send("POST", "/subhook/sms", "application/x-www-form-urlencoded",
                                   _form(original))
    assert (status, answer["status"]) == (200, "accepted")
    for change in ({"send_id": "forged"}, {"address": "13900000000"}, {"events": "dropped"}):
        status, answer = threaded.send("POST", "/subhook/sms", "application/json",
                                       json.dumps({**original, **change}).encode())
        assert (status, answer) == (200, {"status": "duplicate"})
    stale = signed("sms", {**original, "send_id": "stale", "timestamp": now - 80 * 3600})
    status, answer = threaded.send("POST", "/subhook/sms", "application/json",
                                   json.dumps(stale).encode())
    assert (status, answer["error"]) == (401, "outside_replay_window")
    future = signed("sms", {**original, "send_id": "future", "timestamp": now + 3600})
    status, answer = threaded.send("POST", "/subhook/sms", "application/json",
                                   json.dumps(future).encode())
    assert (status, answer["error"]) == (401, "outside_replay_window")
    # The captured push was stored before its 200; once nothing is pending it has been
    # forwarded, and whatever else the store took (a forged replay would be there) too.
    wait_until_blocking(threaded.settled, 10, "the captured push is still pending delivery")
    sent = [e["send_id"] for e in threaded.forwarded[before:]]
    assert sent == ["captured"]


def test_limits_on_body_fields_and_headers(threaded: Threaded) -> None:
    """413 over the body limit, 400 over the field limit, 400 for an oversized header."""
    status, answer = threaded.send("POST", "/subhook/sms", "application/json", b" " * 300_000)
    assert (status, answer["error"]) == (413, "too_large")
    status, answer = threaded.send("POST", "/subhook/sms", "application/x-www-form-urlencoded",
                                   b"&".join(b"f%d=1" % i for i in range(201)))
    assert status == 400 and "more than 200 fields" in answer["problems"][0]
    conn = http.client.HTTPConnection("127.0.0.1", threaded.port, timeout=10)
    conn.request("POST", "/subhook/sms", body=b"", headers={"X-Big": "a" * 20_000})
    response = conn.getresponse()
    assert response.status in (400, 431)
    conn.close()


async def test_secrets_never_in_logs_errors_or_metrics(tmp_path: Path) -> None:
    """SUBHOOK keys, a destination secret and the admin token never appear in the log, in any
    answer or in /metrics, whatever fails; phone numbers in the log are masked."""
    port, dead_port = free_port(), free_port()
    keys = {p: f"{p}-key-NEVER-LOGGED" for p in KEYS}
    subhooks = subhooks_yaml(keys)
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        f"subhooks:\n{subhooks}\nadmin: {{token: {ADMIN}}}\nroutes:\n  - name: all\n"
        f"    destinations:\n      - {{name: gone, url: 'http://127.0.0.1:{dead_port}/h',"
        f" secret: '{SECRET}', retry: {{max_attempts: 2, initial_delay: 10ms}}}}\n"
        "log: {level: debug}\n", encoding="utf-8")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    answers: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def call(method: str, path: str, **kw: Any) -> None:
                async with session.request(method, relay.url + path, **kw) as response:
                    answers.append(await response.text())

            now = int(time.time())
            good = {"events": "delivered", "address": "13812345678", "app": 1,
                    "send_id": "s1", "timestamp": now}
            await call("POST", "/subhook/sms", data=signed("sms", good, key=keys["sms"]))
            await call("POST", "/subhook/sms", data=signed("sms", good, key="wrong"))
            await call("POST", "/subhook/sms", data={**good, "token": "t", "signature": "x"})
            await call("POST", "/subhook/sms", json=signed(
                "sms", {**good, "send_id": True}, key=keys["sms"]))
            await call("GET", "/admin/dead", headers={"Authorization": "Bearer wrong"})
            # two failed attempts, then a dead letter
            await wait_until(lambda: delivery_states(tmp_path / "relay.db").get("dead") == 1,
                             10, "the delivery to the closed port never became a dead letter")
            await call("GET", "/admin/dead", headers={"Authorization": f"Bearer {ADMIN}"})
            await call("GET", "/admin/quarantine", headers={"Authorization": f"Bearer {ADMIN}"})
            await call("GET", "/metrics")
            # a broken edit of the config is reported in the log, keys included in the file
            config.write_text(config.read_text(encoding="utf-8") + "bogus: [\n",
                              encoding="utf-8")
            assert relay.proc is not None
            logged = len(relay.log.read_bytes())
            relay.proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: any(word in relay.log.read_bytes()[logged:]
                                         for word in (b"refused", b"reload")), 10,
                             "the SIGHUP left no line in the log")
            await call("GET", "/healthz")
    finally:
        assert relay.signal(signal.SIGTERM) == 0
    log = relay.log.read_text(encoding="utf-8")
    assert "dead" in answers[-4] and "gone" in answers[-4]  # the dead letter is listed
    assert "refused" in log or "reload" in log, log[-2000:]
    everything = log + "\n".join(answers)
    for secret in [*keys.values(), SECRET, SECRET.removeprefix("whsec_"), ADMIN]:
        assert secret not in everything, f"{secret} leaked"
    assert "13812345678" not in log
    assert "138****5678" in log


# -- what an attacker of the edge port found (issue "Hostile input") ---------------------


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """One request written byte for byte (headers no client library would send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                     .encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    payload = data.partition(b"\r\n\r\n")[2]
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def test_a_token_is_refused_long_after_the_replay_window(tmp_path: Path) -> None:
    """With a 2 s replay window, a captured token and signature resent after the window with
    a fresh timestamp and other fields is a duplicate, never forwarded: tokens outlive the
    window. A 422 push's token cannot come back with repaired fields either."""
    config = tmp_path / "relay.yaml"
    port = free_port()
    config.write_text(f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
                      f"subhooks:\n{subhooks_yaml()}\nroutes: []\n"
                      "replay_window: {past: 2s}\n", encoding="utf-8")

    async def scenario() -> None:
        relay = Relay(config, port, tmp_path)
        await relay.start()
        try:
            async with aiohttp.ClientSession() as session:
                async def post(fields: dict[str, Any]) -> tuple[int, Any]:
                    async with session.post(f"{relay.url}/subhook/sms", data=fields) as r:
                        return r.status, await r.json()

                sent_at = int(time.time())
                captured = signed("sms", {"events": "delivered", "address": "13800000000",
                                          "app": 1, "send_id": "real", "timestamp": sent_at})
                assert (await post(captured))[1]["status"] == "accepted"
                await wait_until(lambda: time.time() > sent_at + 3, 10, "window never passed")
                forged = {**captured, "send_id": "forged", "address": "13900000000",
                          "timestamp": int(time.time())}
                assert await post(forged) == (200, {"status": "duplicate"})
                broken = signed("sms", {"events": "delivered", "app": 1,
                                        "timestamp": int(time.time())})
                assert (await post(broken))[0] == 422
                repaired = {**broken, "address": "13800000000", "send_id": "repaired"}
                assert await post(repaired) == (200, {"status": "duplicate"})
        finally:
            relay.stop()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        sends = [json.loads(f)["send_id"] for (f,) in conn.execute("SELECT fields FROM events")]
    assert sends == ["real"]


async def test_every_forwarded_for_line_counts(tmp_path: Path) -> None:
    """From a trusted proxy, two X-Forwarded-For lines are one list: the client is the
    rightmost untrusted entry, so an allowed address in the first line does not pass."""
    config = tmp_path / "relay.yaml"
    port = free_port()
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        f"subhooks:\n  - {{path: /subhook/sms, product: sms, keys: [{KEYS['sms']}], "
        "allow_ips: [203.0.113.7/32]}\nroutes: []\ntrusted_proxies: [127.0.0.1/32]\n",
        encoding="utf-8")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    try:
        push = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "x",
                              "timestamp": int(time.time())})
        async with aiohttp.ClientSession() as session:
            async def status(*lines: str) -> int:
                headers = CIMultiDict(("X-Forwarded-For", line) for line in lines)
                async with session.post(f"{relay.url}/subhook/sms", data=push,
                                        headers=headers) as response:
                    return response.status

            assert await status("203.0.113.7", "198.51.100.9") == 403
            assert await status("203.0.113.7, 198.51.100.9") == 403
            assert await status("198.51.100.9", "203.0.113.7") == 200
    finally:
        relay.stop()


def test_malformed_headers_are_4xx_never_500(threaded: Threaded) -> None:
    """A boundary outside RFC 2046 (non-ASCII, a raw byte), a boundary given twice, and a
    non-ASCII Authorization are refused with 400 or 401 and a JSON body."""
    head = b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\n"
    for content_type in ("multipart/form-data; boundary=\xe2\x82\xac".encode("latin-1"),
                         b"multipart/form-data; boundary=\xff",
                         b"multipart/form-data; boundary=A; boundary=B"):
        status, answer = raw_request(threaded.port, head + b"Content-Type: " + content_type
                                     + b"\r\n", b"--A\r\n")
        assert status == 400, (content_type, answer)
        assert answer["error"] == "unparseable"
    status, answer = raw_request(threaded.port, b"GET /admin/dead HTTP/1.1\r\nHost: x\r\n"
                                 b"Authorization: Bearer \xff\xfe\r\n")
    assert status in (401, 404), answer
    assert answer["status"] == "error"


def test_numbers_forwarded_are_json_numbers(threaded: Threaded) -> None:
    """A float timestamp (1.0e9) is 401, not a way around the window; 1e999 is 400; a float
    where the docs have an integer (app) is 400."""
    now = int(time.time())
    base = {"events": "delivered", "address": "13800000000", "app": 1, "send_id": "n",
            "timestamp": now}
    for change, status, error in (({"timestamp": float(now)}, 401, "outside_replay_window"),
                                  ({"timestamp": 1.0e9}, 401, "outside_replay_window"),
                                  ({"app": 1.0}, 400, "unparseable")):
        body = json.dumps(signed("sms", {**base, **change})).encode()
        got, answer = threaded.send("POST", "/subhook/sms", "application/json", body)
        assert (got, answer["error"]) == (status, error), change
    infinite = json.dumps(signed("sms", base))[:-1].encode() + b', "extra": 1e999}'
    got, answer = threaded.send("POST", "/subhook/sms", "application/json", infinite)
    assert (got, answer["error"]) == (400, "unparseable")


def test_one_reading_of_a_request_for_every_party(threaded: Threaded) -> None:
    """The multipart boundary is the parameter named exactly 'boundary' (a standard parser's
    reading), and a GET query is percent-decoded once."""
    before = len(threaded.forwarded)
    decoy = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "decoy",
                           "timestamp": int(time.time())})
    real = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "real",
                          "timestamp": int(time.time())})

    def parts(boundary: str, fields: dict[str, Any]) -> str:
        return "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                       f"{v}\r\n" for k, v in fields.items())

    body = (parts("AAA", decoy) + "--AAA--\r\n" + parts("BBB", real) + "--BBB--\r\n").encode()
    status, answer = threaded.send("POST", "/subhook/sms",
                                   "multipart/form-data; xboundary=AAA; boundary=BBB", body)
    assert (status, answer["status"]) == (200, "accepted"), answer
    query = "&".join(f"{k}={quote(str(v))}" for k, v in signed("sms", {
        "events": "mo", "address": "1", "app": 1, "content": "100%41",
        "timestamp": int(time.time())}).items())
    status, answer = threaded.send("GET", f"/subhook/sms?{query}", None, b"")
    assert (status, answer["status"]) == (200, "accepted"), answer
    wait_until_blocking(threaded.settled, 10, "not forwarded")
    contents = [e["content"] for e in threaded.forwarded[before:]]
    assert contents == ["real", "100%41"]


def run_relay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True,
                          text=True, check=False, cwd=cwd, timeout=60)


@pytest.mark.parametrize("store", [
    "postgresql://relay:PGPASS-9f@127.0.0.1:1/relay",
    "postgresql://127.0.0.1:1/relay?user=relay&password=PGPASS-9f",
    "postgresql://relay:PG@PASS-9f@127.0.0.1:1/relay",
])
def test_database_passwords_never_printed(tmp_path: Path, store: str) -> None:
    """check, serve and dead list never print a database password, in any URL form."""
    config = tmp_path / "relay.yaml"
    config.write_text(f"listen: 127.0.0.1:{free_port()}\nstore: {store}\n"
                      f"subhooks:\n{subhooks_yaml()}\nroutes: []\n", encoding="utf-8")
    for args in (("check",), ("serve",), ("dead", "list")):
        result = run_relay(*args, "--config", str(config), cwd=tmp_path)
        out = result.stdout + result.stderr
        assert "PASS-9f" not in out and "PG@" not in out, (args, out)
        assert "Traceback" not in out, (args, out)


def test_config_errors_never_quote_secrets(tmp_path: Path) -> None:
    """A key given as a number, a blank key or a bad admin token is named by its key path,
    its value never shown; a YAML alias bomb is refused quickly."""
    config = tmp_path / "relay.yaml"
    config.write_text("subhooks:\n  - {path: /s, product: sms, keys: [31415926535897932]}\n"
                      "routes: []\nadmin: {token: 27182818284590452}\n", encoding="utf-8")
    result = run_relay("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "31415926535897932" not in result.stderr
    assert "27182818284590452" not in result.stderr
    assert "subhooks[0].keys[0]: must be of type string (value hidden)" in result.stderr
    assert "admin.token:" in result.stderr
    config.write_text("subhooks:\n  - {path: /t, product: sms, keys: ['   ']}\nroutes: []\n",
                      encoding="utf-8")
    result = run_relay("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "subhooks[0].keys[0]: key is empty or blank" in result.stderr
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f'{c}: &{c} [{",".join(f"*{p}" for _ in range(9))}]'
              for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    config.write_text("\n".join(lines) + "\nsubhooks: []\nroutes: []\n", encoding="utf-8")
    started = time.monotonic()
    result = run_relay("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "YAML aliases" in result.stderr
    assert time.monotonic() - started < 20


async def test_a_destination_cannot_make_the_relay_read_without_bound() -> None:
    """An answer that never ends, or a gzip answer, is read up to the limit as sent (never
    inflated): the attempt ends, delivered, and keeps at most the first bytes."""
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(1_000_000):
                await response.write(b"x" * 65536)
        return response

    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/endless", endless)
    app.router.add_post("/gzip", gzipped)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        claimed = ClaimedDelivery(1, 1, "d", 0, time.time() + 60, "msg_1", "sms", "mo",
                                  '{"events":"mo"}', b"", "application/json")
        async with new_client() as client:
            for path in ("/endless", "/gzip"):
                destination = Destination("d", str(server.make_url(path)), timeout=20)
                outcome = await asyncio.wait_for(send(client, claimed, destination, 1), 20)
                assert outcome.kind == "delivered", outcome
                assert len(outcome.answer) <= ANSWER_READ_LIMIT
        assert outcome.answer.startswith(b"\x1f\x8b")  # as sent, not inflated
    finally:
        await server.close()


async def test_smaller_things(tmp_path: Path, make_relay: Any) -> None:
    """/readyz names no store detail; the Bearer scheme is case-insensitive and required;
    the dead-letter listing masks the phone number and leaves out token and signature."""
    client = await make_relay(
        '  - {name: all, destinations: [{name: gone, url: "http://127.0.0.1:1/x"}]}',
        "admin: {token: adm}\nretry: {max_attempts: 1}\n")
    assert (await client.get("/admin/dead", headers={"Authorization": "bearer adm"})).status \
        == 200
    assert (await client.get("/admin/dead", headers={"Authorization": "adm"})).status == 401
    fields = signed("sms", {"events": "delivered", "address": "13812345678", "app": 1,
                            "send_id": "d1", "timestamp": int(time.time())})
    assert (await client.post("/subhook/sms", data=fields)).status == 200
    deadline = time.monotonic() + 10
    while not (dead := (await (await client.get(
            "/admin/dead", headers={"Authorization": "Bearer adm"})).json())["dead_letters"]):
        assert time.monotonic() < deadline, "never a dead letter"
        await asyncio.sleep(0.05)
    listing = json.dumps(dead)
    assert dead[0]["fields"]["address"] == "138****5678"
    for secret in ("13812345678", fields["token"], fields["signature"]):
        assert secret not in listing
    assert client.app is not None
    await client.app[STORE].close()
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "error", "error": "store_unavailable",
                                  "problems": ["the store cannot be reached; see the log"]}


header_bytes = st.binary(max_size=80).map(
    lambda b: bytes(c for c in b if c not in b"\r\n"))
param_names = st.sampled_from([b"boundary", b"Boundary", b"xboundary", b"boundary*",
                               b"charset", b""])
#: charset values no reading agrees on, beside UTF-8 written in its usual ways
charsets = st.sampled_from([b"utf-8", b"UTF-8", b'"utf-8"', b"us-ascii", b"nope", b"utf-16",
                            b"utf-32", b"latin-1", b"gbk", b"\xc3\xa9", b"\xc2\x85", b""])
referers = st.one_of(st.sampled_from([b"http://[", b"http://[::1", b"//[", b"http://]",
                                      b"http://127.0.0.1/console/dead", b"javascript:x",
                                      b"http://a:b:c@/", b"%"]), header_bytes)
#: (request line, is it answered by the console's HTML pages)
targets = st.sampled_from([(b"POST /subhook/sms", False), (b"POST /console/signin", True),
                           (b"POST /console/dead/discard", True),
                           (b"POST /admin/dead/discard", False)])


@st.composite
def hostile_headers(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    """(head, body, answered as HTML) of a request whose headers nobody should trust:
    Content-Type parameters (charset, boundary), X-Forwarded-For lines, Authorization and
    Referer, on a push, the console's sign-in and an action, and an admin POST."""
    target, html = draw(targets)
    media = draw(st.sampled_from([b"multipart/form-data", b"application/json",
                                  b"application/x-www-form-urlencoded", b"text/plain"]))
    params = b"".join(b"; " + draw(param_names) + b"=" + draw(header_bytes)
                      for _ in range(draw(st.integers(0, 3))))
    params += b"".join(b"; charset=" + draw(charsets) for _ in range(draw(st.integers(0, 2))))
    lines = [target + b" HTTP/1.1", b"Host: x", b"Content-Type: " + media + params]
    lines += [b"X-Forwarded-For: " + draw(header_bytes)
              for _ in range(draw(st.integers(0, 3)))]
    # the proxy's line last: a new address per request, so no limit on guesses stops the
    # request before its body is read
    lines.append(b"X-Forwarded-For: 10.%d.%d.%d" % tuple(draw(st.integers(0, 255))
                                                       for _ in range(3)))
    if draw(st.booleans()):
        lines.append(b"Authorization: " + draw(st.one_of(
            header_bytes, st.just(f"Bearer {FUZZ_TOKEN}".encode()))))
    if draw(st.booleans()):
        lines.append(b"Referer: " + draw(referers))
    fields = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "fuzz",
                            "timestamp": int(time.time())})
    body = draw(st.sampled_from([_form(fields), json.dumps(fields).encode(),
                                 _multipart(fields, None), b"token=x&next=http://[",
                                 b'{"ids": [999999]}', b""]))
    return b"\r\n".join(lines) + b"\r\n", body, html


def test_fuzzed_headers_never_crash(threaded: Threaded) -> None:
    """Random Content-Type parameters (charsets, boundaries), X-Forwarded-For lines,
    Authorization and Referer values, on the push path, the console's sign-in and an action,
    and the admin API: never a 5xx but 503; a JSON body but on the console's pages."""

    @settings(max_examples=400, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=hostile_headers(), admin=st.booleans())
    def one(request: tuple[bytes, bytes, bool], admin: bool) -> None:
        head, body, html = request
        if admin:
            head = head.replace(b"POST /subhook/sms", b"GET /admin/dead", 1)
        status, answer = raw_request(threaded.port, head, body)
        assert status < 500 or status == 503, (head, status, answer)
        if html:
            return
        if not isinstance(answer, dict):
            # only aiohttp's HTTP parser answers in plain text: a header line it cannot
            # read (a NUL, a byte outside the grammar) never reaches the relay's code
            assert status in (400, 431), (head, status, answer)
            return
        # the admin API's own answers (the right token is among the values drawn) have no
        # "status"; every refusal's has
        assert answer.get("status") in ("accepted", "duplicate", "error") or (
            status == 200 and b" /admin/" in head), (head, answer)

    one()
