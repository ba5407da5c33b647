from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from conftest import KEYS, Client, MakeRelay, MakeSink, signed, wait_settled

from relay import docs2schema
from relay.products import canonical_event
from relay.store import quarantine as held
from relay.web.state import RUNTIME, STORE
from relay.web.subhook import accepted


def body_for(fields: dict[str, Any], kind: str) -> tuple[io.BytesIO, dict[str, str]]:
    """Encode a push as SUBMAIL would in each content type (as a file: aiohttp warns about
    bytes bodies over 1 MiB)."""
    if kind == "json":
        return io.BytesIO(json.dumps(fields).encode()), {"Content-Type": "application/json"}
    if kind == "multipart":
        boundary = "relay-test-" + uuid.uuid4().hex
        parts = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + str(value).encode() + b"\r\n" for name, value in fields.items())
        return io.BytesIO(parts + f"--{boundary}--\r\n".encode()), {
            "Content-Type": f"multipart/form-data; boundary={boundary}"}
    encoded = urlencode({k: str(v) for k, v in fields.items()})
    content_type = "text/plain" if kind == "text" else "application/x-www-form-urlencoded"
    return io.BytesIO(encoded.encode()), {"Content-Type": content_type}


async def push(client: Client, product: str, fields: dict[str, Any], kind: str = "form",
               path: str | None = None) -> tuple[int, Any]:
    url = path or f"/subhook/{product}"
    if kind == "get":
        response = await client.get(url, params={k: str(v) for k, v in fields.items()})
    else:
        data, headers = body_for(fields, kind)
        response = await client.post(url, data=data, headers=headers)
    return response.status, await response.json()


def fresh(fields: dict[str, Any], event: str) -> dict[str, Any]:
    """A doc example made current: its section's event, a timestamp inside the window."""
    return {**fields, "events": event, "timestamp": int(time.time())}


ROUTES_BY_PRODUCT = """\
  - name: sms-all
    match: {product: sms}
    destinations: [{name: sms-sink, url: "SMS"}]
  - name: intl-receipts
    match: {product: internationalsms, event: [delivered, dropped]}
    destinations: [{name: intl-sink, url: "INTL"}]
  - name: mms-templates
    match: {product: mms, event: "*template_*"}
    destinations: [{name: mms-sink, url: "MMS"}]
  - name: mail-engagement
    match: {product: mail, event: [opened, clicked, unsubscribe]}
    destinations: [{name: mail-sink, url: "MAIL"}]
  - name: voice-all
    match: {product: voice}
    destinations: [{name: voice-sink, url: "VOICE"}]
  - name: short-visits
    match: {product: shorturl, event: visit}
    destinations: [{name: short-sink, url: "SHORT"}]
  - name: untagged-audit
    match: {tag: null}
    destinations: [{name: audit, url: "AUDIT"}]
"""


#: Which sink each route of ROUTES_BY_PRODUCT should bring a (product, event, fields) to.
WANTED: dict[str, Callable[[str, str, dict[str, Any]], bool]] = {
    "SMS": lambda product, event, fields: product == "sms",
    "INTL": lambda product, event, fields: (product == "internationalsms"
                                            and event in ("delivered", "dropped")),
    "MMS": lambda product, event, fields: product == "mms" and "template_" in event,
    "MAIL": lambda product, event, fields: (product == "mail"
                                            and event in ("opened", "clicked", "unsubscribe")),
    "VOICE": lambda product, event, fields: product == "voice",
    "SHORT": lambda product, event, fields: product == "shorturl" and event == "visit",
    "AUDIT": lambda product, event, fields: not fields.get("tag"),
}


async def test_every_doc_event_in_every_content_type_reaches_its_routes(
    make_relay: MakeRelay, make_sink: MakeSink, docs_dir: Path
) -> None:
    """Each doc example, in each content type, reaches exactly the sinks its routes name."""
    sinks = {name: await make_sink() for name in WANTED}
    routes = ROUTES_BY_PRODUCT
    for name, sink in sinks.items():
        routes = routes.replace(f'"{name}"', f'"{sink.url}"')
    client = await make_relay(routes)
    expected: dict[str, list[str]] = {name: [] for name in sinks}
    for kind in ("form", "json", "multipart", "text", "get"):
        for index, (product, event, fields) in enumerate(docs2schema.examples(docs_dir)):
            push_fields = signed(product, fresh(fields, event))
            push_fields["send_id"] = f"{kind}-{index}"
            status, body = await push(client, product, push_fields, kind)
            assert (status, body["status"]) == (200, "accepted"), (kind, product, event, body)
            for name, wanted in WANTED.items():
                if wanted(product, event, fields):
                    expected[name].append(push_fields["send_id"])
    await wait_settled(client, within=30)  # from here on nothing more is sent
    for name, sink in sinks.items():
        got = await sink.wait_for(len(expected[name]))
        assert sorted(r.json()["send_id"] for r in got) == sorted(expected[name]), name
        for request in got:
            assert request.headers["X-Subhook-Product"] in KEYS
            assert request.headers["X-Subhook-Event"] == canonical_event(request.json()["events"])


async def test_forwarded_body_is_the_fields_as_received(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """JSON body of exactly the received fields but SUBMAIL's token and signature (SPEC 16);
    form values stay strings; headers set."""
    sink = await make_sink()
    client = await make_relay(f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}')
    fields = signed("sms", {"events": "mo", "address": "13800001111", "app": "12",
                            "content": "你好, world", "timestamp": str(int(time.time()))})
    status, answer = await push(client, "sms", fields, "form")
    assert status == 200
    (got,) = await sink.wait_for(1)
    unsigned = {k: v for k, v in fields.items() if k not in ("token", "signature")}
    assert got.json() == unsigned
    assert list(got.json()) == list(unsigned)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["webhook-id"] == answer["webhook_id"]
    assert got.headers["X-Relay-Attempt"] == "1"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5


async def test_format_original_passes_body_through(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """`format: original` forwards SUBMAIL's body and content type unchanged."""
    sink = await make_sink()
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}", format: original,'
        ' headers: {X-Team: billing}}]}')
    fields = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "x",
                            "timestamp": int(time.time())})
    raw = json.dumps(fields, indent=1).encode()
    response = await client.post("/subhook/sms", data=raw,
                                  headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status == 200
    (got,) = await sink.wait_for(1)
    assert got.body == raw
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.headers["X-Team"] == "billing"


async def test_fan_out_and_one_delivery_per_destination(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """Two routes to two sinks: both get it; a sink named by both routes gets it once."""
    a, b = await make_sink(), await make_sink()
    client = await make_relay(
        f'  - {{name: r1, match: {{event: delivered}}, destinations: [{{name: a, url: "{a.url}"}},'
        f' {{name: b, url: "{b.url}"}}]}}\n'
        f'  - {{name: r2, match: {{product: sms}}, destinations: [{{name: a, url: "{a.url}"}}]}}')
    fields = signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": "s",
                            "timestamp": int(time.time())})
    status, answer = await push(client, "sms", fields)
    assert status == 200
    assert answer["destinations"] == ["a", "b"]
    await a.wait_for(1)
    await b.wait_for(1)
    await wait_settled(client)  # from here on nothing more is sent
    assert len(a.received) == 1
    assert len(b.received) == 1
    assert a.received[0].headers["webhook-id"] == b.received[0].headers["webhook-id"]


async def test_duplicates_by_token_and_by_identity(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """A re-push with the same token, or the same event with a new token, is 200, not resent."""
    sink = await make_sink()
    client = await make_relay(f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}')
    fields = signed("sms", {"events": "delivered", "address": "1", "app": 1, "send_id": "s1",
                            "timestamp": int(time.time())})
    assert (await push(client, "sms", fields))[1]["status"] == "accepted"
    assert await push(client, "sms", fields, "json") == (200, {"status": "duplicate"})
    # Replayed with an altered field but the captured token: refused silently.
    altered = {**fields, "send_id": "forged"}
    assert await push(client, "sms", altered) == (200, {"status": "duplicate"})
    # ... also when the altered push would fail the schema: dedupe comes first, no quarantine.
    broken = {**fields, "send_id": 7}
    assert await push(client, "sms", broken, "json") == (200, {"status": "duplicate"})
    assert client.app is not None
    assert await held.quarantined(client.app[STORE]) == []
    # Same event, fresh token (and JSON numbers instead of form strings): same identity.
    again = signed("sms", fields)
    assert await push(client, "sms", again, "json") == (200, {"status": "duplicate"})
    await sink.wait_for(1)
    await wait_settled(client)
    assert len(sink.received) == 1


async def test_each_error_status_in_order(make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """413, 415, 400, 401 (signature, window), 422 — each with a JSON body naming the problem."""
    sink = await make_sink()
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}',
        "limits: {max_body_size: 2KiB}\n")
    now = int(time.time())
    good = {"events": "delivered", "address": "1", "app": 1, "send_id": "s", "timestamp": now}

    async def raw(data: bytes, content_type: str) -> tuple[int, Any]:
        response = await client.post("/subhook/sms", data=data,
                                     headers={"Content-Type": content_type})
        return response.status, await response.json()

    status, body = await raw(b"x" * 3000, "application/json")
    assert status == 413 and body["error"] == "too_large"
    status, body = await raw(b"<xml/>", "application/xml")
    assert status == 415 and "application/xml" in body["problems"][0]
    status, body = await raw(b"{not json", "application/json")
    assert status == 400 and body["problems"][0].startswith("body is not valid JSON")
    status, body = await raw(b'[1, 2]', "application/json")
    assert status == 400 and "one JSON object" in body["problems"][0]
    status, body = await raw(b"a=1&a=2", "application/x-www-form-urlencoded")
    assert (status, body["problems"]) == (400, ["a: given more than once"])
    status, body = await raw(b"\xff\xfe", "application/json")
    assert status == 400 and "UTF-8" in body["problems"][0]
    assert (await push(client, "sms", good))[0] == 401
    status, body = await push(client, "sms", signed("sms", good, key="wrong"))
    assert (status, body["error"]) == (401, "invalid_signature")
    assert (await push(client, "sms", signed("sms", good, key="old-" + KEYS["sms"])))[0] == 200
    stale = signed("sms", {**good, "send_id": "old", "timestamp": now - 73 * 3600})
    status, body = await push(client, "sms", stale)
    assert (status, body["error"]) == (401, "outside_replay_window")
    future = signed("sms", {**good, "send_id": "new", "timestamp": now + 600})
    assert (await push(client, "sms", future))[0] == 401
    invalid = signed("sms", {**good, "send_id": True})
    status, body = await push(client, "sms", invalid, "json")
    assert (status, body["problems"]) == (422, ["send_id: must be a string or a number"])
    unknown = signed("sms", {**good, "events": "exploded"})
    status, body = await push(client, "sms", unknown)
    assert status == 422 and body["problems"][0].startswith("events: unknown event 'exploded'")
    status, body = await push(client, "sms", signed("sms", good), path="/subhook/nope")
    assert status == 404
    await sink.wait_for(1)
    await wait_settled(client)  # from here on nothing more is sent
    assert len(sink.received) == 1


async def test_quarantine_then_replay_after_schema_fix(
    make_relay: MakeRelay, make_sink: MakeSink, tmp_path: Path
) -> None:
    """A 422 push is kept; once an operator schema accepts it, replay forwards it."""
    sink = await make_sink()
    schemas = tmp_path / "operator-schemas"
    (schemas / "sms").mkdir(parents=True)
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}"}}]}}',
        f"schemas_dir: {schemas}\nadmin: {{token: adm1n-token}}\n")
    fields = signed("sms", {"events": "keyword_reply", "address": "1", "app": 1,
                            "timestamp": int(time.time())})
    assert (await push(client, "sms", fields))[0] == 422
    # SUBMAIL re-pushes: its token was remembered with the held push, so the re-push is a
    # duplicate (and the same token with repaired fields could not pass either)
    assert (await push(client, "sms", fields))[1] == {"status": "duplicate"}
    auth = {"Authorization": "Bearer adm1n-token"}
    listed = await (await client.get("/admin/quarantine", headers=auth)).json()
    (held,) = listed["quarantine"]
    assert held["problems"][0].startswith("events: unknown event 'keyword_reply'")
    response = await client.post("/admin/quarantine/replay", json={"all": True}, headers=auth)
    assert (await response.json())["still_invalid"][0]["id"] == held["id"]
    (schemas / "sms" / "keyword_reply.json").write_text('{"type": "object"}', encoding="utf-8")
    # the config file did not change, so ask for a reload the way an operator would
    assert client.app is not None
    assert client.app[RUNTIME].reload()
    response = await client.post("/admin/quarantine/replay", json={"ids": [held["id"]]},
                                 headers=auth)
    result = await response.json()
    assert result["replayed"][0]["note"] == "replayed"
    (got,) = await sink.wait_for(1)
    assert got.json() == {k: str(v) for k, v in fields.items()  # a form push: strings
                          if k not in ("token", "signature")}
    assert (await (await client.get("/admin/quarantine", headers=auth)).json())["quarantine"] == []
    assert (await push(client, "sms", fields))[1] == {"status": "duplicate"}


async def test_include_signature_keeps_token_and_signature(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """A destination with include_signature: true gets SUBMAIL's token and signature too."""
    sink = await make_sink()
    client = await make_relay(f'  - {{name: all, destinations: [{{name: s, url: "{sink.url}", '
                              'include_signature: true}]}')
    fields = signed("sms", {"events": "mo", "address": "13800001111", "app": 12,
                            "content": "hi", "timestamp": int(time.time())})
    assert (await push(client, "sms", fields, "json"))[0] == 200
    (got,) = await sink.wait_for(1)
    assert got.json() == fields


def test_the_accepted_answer_is_what_json_response_makes() -> None:
    """The answer to a stored push is built by hand for speed: the same bytes and headers
    as aiohttp's json_response, whatever the destinations are called."""
    names = ["billing", "订单 \"svc\"\\", "b\u2028"]
    expected = web.json_response({"status": "accepted", "webhook_id": "msg_" + "0f" * 16,
                                  "destinations": names})
    got = accepted("msg_" + "0f" * 16, names)
    assert got.body == expected.body
    assert got.content_type == expected.content_type and got.charset == expected.charset
    assert accepted("msg_00", []).body == b'{"status": "accepted", "webhook_id": "msg_00", ' \
        b'"destinations": []}'
