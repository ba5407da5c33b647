"""Hostile input: fuzzed pushes, replays, slow clients, secrets.

The fuzzing test drives a relay and a recording service running in a background thread
(their own event loop) with raw HTTP from http.client, so hypothesis, which is
synchronous, can send anything: any bytes, any content type, any size.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import signal
import string
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
from conftest import KEYS, signed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relayproc import Relay, free_port, subhooks_yaml

from relay.app import create_app
from relay.runtime import Runtime

pytestmark = pytest.mark.timeout(300)

SECRET = "whsec_" + "c2VjcmV0LWRlc3RpbmF0aW9uLWtleS0wMTIzNDU2Nzg="
ADMIN = "admin-token-never-logged-7f3a"


@dataclass
class Threaded:
    """A relay and a recording service on one event loop in a background thread."""

    port: int
    forwarded: list[dict[str, Any]] = field(default_factory=list)

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
    state = Threaded(relay_port)
    subhooks = subhooks_yaml()
    config = tmp / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{relay_port}\nstore: sqlite:///{tmp / 'relay.db'}\n"
        f"subhooks:\n{subhooks}\nroutes:\n  - name: all\n    destinations:\n"
        f"      - {{name: s, url: 'http://127.0.0.1:{sink_port}/hook'}}\n"
        "limits: {max_body_size: 256KiB, max_fields: 200, read_timeout: 2s}\n",
        encoding="utf-8")
    runners: list[web.AppRunner] = []

    async def record(request: web.Request) -> web.Response:
        state.forwarded.append(await request.json())
        return web.Response(text="ok")

    async def start() -> None:
        sink = web.Application()
        sink.router.add_post("/hook", record)
        for app, port in ((sink, sink_port), (create_app(Runtime.load(config)), relay_port)):
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
    time.sleep(0.5)  # deliveries in flight
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
    deadline = time.monotonic() + 5
    while len(threaded.forwarded) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
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
                "sms", {**good, "send_id": 5}, key=keys["sms"]))
            await call("GET", "/admin/dead", headers={"Authorization": "Bearer wrong"})
            await asyncio.sleep(1.0)  # two failed attempts, then a dead letter
            await call("GET", "/admin/dead", headers={"Authorization": f"Bearer {ADMIN}"})
            await call("GET", "/admin/quarantine", headers={"Authorization": f"Bearer {ADMIN}"})
            await call("GET", "/metrics")
            # a broken edit of the config is reported in the log, keys included in the file
            config.write_text(config.read_text(encoding="utf-8") + "bogus: [\n",
                              encoding="utf-8")
            assert relay.proc is not None
            relay.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
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
