"""SPEC 19 end to end: pushes routed on their fields and drop class to real services, and a
templated body that arrives as rendered and verifies with the standardwebhooks library."""

from __future__ import annotations

import time
from typing import Any

from conftest import Client, MakeRelay, MakeSink, Sink, signed, wait_settled
from standardwebhooks import Webhook
from test_worker import SECRET


def routes(app: Sink, us: Sink, compliance: Sink) -> str:
    return f"""\
  - name: by-app
    match: {{product: sms, fields: {{app: "10001"}}}}
    destinations: [{{name: app, url: "{app.url}"}}]
  - name: us-numbers
    match: {{product: [sms, internationalsms], fields: {{address: {{prefix: "+1"}}}}}}
    destinations: [{{name: us, url: "{us.url}"}}]
  - name: compliance
    match: {{event: dropped, drop_class: [blacklist, unsubscribed]}}
    destinations:
      - name: compliance
        url: "{compliance.url}"
        secret: "{SECRET}"
        body:
          phone: "{{address}}"
          app: "{{app}}"
          class: "{{$drop_class}}"
          code: "{{report}}"
          carrier: "{{operator}}"
          about: "{{$product}} {{$event}} of app {{app}}"
          id: "{{$webhook_id}}"
          fixed: {{source: subhook-relay, tags: ["{{tag}}", 1]}}
"""


def dropped(address: str, app: Any, report: str, **extra: Any) -> dict[str, Any]:
    return signed("sms", {"events": "dropped", "address": address, "app": app,
                          "send_id": f"s-{time.monotonic_ns()}", "report": report,
                          "timestamp": int(time.time()), **extra})


async def push(client: Client, fields: dict[str, Any], as_json: bool = False) -> list[str]:
    if as_json:
        response = await client.post("/subhook/sms", json=fields)
    else:
        response = await client.post("/subhook/sms", data={k: str(v) for k, v in fields.items()})
    body = await response.json()
    assert response.status == 200, body
    destinations: list[str] = body["destinations"]
    return destinations


async def test_events_reach_the_routes_whose_fields_hold(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """By app, by country prefix and by drop class: each event reaches exactly the routes
    whose conditions hold, as a form push (text) and as a JSON push (numbers)."""
    app, us, compliance = await make_sink(), await make_sink(), await make_sink()
    client = await make_relay(routes(app, us, compliance))
    assert await push(client, dropped("+14155550100", 10001, "BLACK")) == [
        "app", "us", "compliance"]
    assert await push(client, dropped("+14155550101", 10001, "DB:0141"), as_json=True) == [
        "app", "us", "compliance"]
    assert await push(client, dropped("+447700900000", "10002", "UNDELIV")) == []
    assert await push(client, dropped("13800000000", "10002", "unsubscribe")) == [
        "compliance"]
    delivered = signed("sms", {"events": "delivered", "address": "+16505550100",
                               "app": "10002", "send_id": "d-1",
                               "timestamp": int(time.time())})
    assert await push(client, delivered) == ["us"]
    await wait_settled(client)
    assert (len(app.received), len(us.received), len(compliance.received)) == (2, 3, 3)
    # a service without body: gets the fields as received, a JSON number stays one
    assert [r.json()["app"] for r in app.received] == ["10001", 10001]


async def test_a_templated_body_arrives_as_rendered_and_verifies(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """The compliance service gets the template rendered (types kept, missing fields null,
    the relay's values filled in), signed over the bytes sent: standardwebhooks verifies
    it, and a retry sends the same body."""
    app, us = await make_sink(), await make_sink()
    compliance = await make_sink(script=[503])
    client = await make_relay(routes(app, us, compliance))
    fields = dropped("+14155550100", 10001, " BLACK", tag="order-9")
    await push(client, fields, as_json=True)
    first, retried = await compliance.wait_for(2)
    await wait_settled(client)
    for got in (first, retried):
        headers = {k.lower(): v for k, v in got.headers.items()}
        assert Webhook(SECRET).verify(got.body, headers) == {
            "phone": "+14155550100", "app": 10001, "class": "blacklist", "code": " BLACK",
            "carrier": None, "about": "sms dropped of app 10001",
            "id": headers["webhook-id"],
            "fixed": {"source": "subhook-relay", "tags": ["order-9", 1]}}
        assert got.headers["Content-Type"] == "application/json"
    assert first.body == retried.body
    assert b"token" not in first.body and fields["signature"].encode() not in first.body
    tampered = first.body.replace(b"BLACK", b"WHITE")
    try:
        Webhook(SECRET).verify(tampered, {k.lower(): v for k, v in first.headers.items()})
    except Exception as exc:  # the library's WebhookVerificationError
        assert "signature" in str(exc).lower()
    else:
        raise AssertionError("a tampered body verified")
