"""The endpoint as an edge: client addresses, proxies, slow and odd clients."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from conftest import MakeRelay, signed

from relay.ingest.admission import client_address
from relay.web.state import RUNTIME


def delivered(send_id: str = "s", **extra: Any) -> dict[str, Any]:
    return signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": send_id,
                          "timestamp": int(time.time()), **extra})


def test_client_address_rules() -> None:
    """X-Forwarded-For is believed only from a trusted proxy, read from the right."""
    trusted = ("127.0.0.1/32", "10.0.0.0/8")
    assert client_address("203.0.113.9", "10.1.1.1", trusted) == "203.0.113.9"
    assert client_address("127.0.0.1", "198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("127.0.0.1", "1.1.1.1, 198.51.100.7, 10.2.2.2", trusted) == \
        "198.51.100.7"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "10.0.0.1", trusted) == "10.0.0.1"


async def test_allow_ips_and_trusted_proxies(make_relay: MakeRelay) -> None:
    """A push from outside `allow_ips` is 403; via a trusted proxy the forwarded address counts."""
    client = await make_relay("  []", "trusted_proxies: [127.0.0.1/32]\n")
    assert client.app is not None
    runtime = client.app[RUNTIME]
    source = runtime.current.settings.source
    assert source is not None
    config = source.read_text(encoding="utf-8").replace(
        "keys: [sms-key-0123, old-sms-key-0123]}",
        "keys: [sms-key-0123, old-sms-key-0123], allow_ips: [198.51.100.0/24]}")
    source.write_text(config, encoding="utf-8")
    assert runtime.reload()
    assert runtime.current.settings.subhooks[0].allow_ips == ("198.51.100.0/24",)
    response = await client.post("/subhook/sms", data=delivered("a"))
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    spoofed = await client.post("/subhook/sms", data=delivered("b"),
                                headers={"X-Forwarded-For": "198.51.100.7"})
    assert spoofed.status == 200  # the test client is 127.0.0.1, a trusted proxy here
    other = await client.post("/subhook/sms", data=delivered("c"),
                              headers={"X-Forwarded-For": "192.0.2.1"})
    assert other.status == 403
    # Other SUBHOOKs have no allow list.
    intl = signed("internationalsms", {"events": "delivered", "address": "1", "app": 1,
                                       "send_id": "d", "timestamp": int(time.time())})
    assert (await client.post("/subhook/internationalsms", data=intl)).status == 200


async def test_trickled_body_is_cut_off(make_relay: MakeRelay) -> None:
    """A body sent byte by byte slower than `read_timeout` gets 408, not a held connection."""
    client = await make_relay("  []", "limits: {read_timeout: 300ms}\n")
    body = json.dumps(delivered()).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /subhook/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode())
    started = time.monotonic()
    answer = b""
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(4096), 0.1)
        except TimeoutError:
            continue
        break
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"read_timeout"' in answer
    assert time.monotonic() - started < 2


async def test_oversized_timestamp_and_surrogates_are_refused_cleanly(
    make_relay: MakeRelay,
) -> None:
    """Inputs that once could raise inside the handler get a JSON 4xx instead."""
    client = await make_relay("  []")
    huge = delivered("h", timestamp="9" * 5000)
    response = await client.post("/subhook/sms", data=huge)
    assert response.status == 401
    assert (await response.json())["error"] == "outside_replay_window"
    body = json.dumps(delivered("u")).replace('"1"', '"\\ud800"', 1)
    response = await client.post("/subhook/sms", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "surrogate" in (await response.json())["problems"][0]
