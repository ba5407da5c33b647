"""Mail, voice and short URL on the wire (SPEC 10): aliases routed as their event and
forwarded as spelled, a mail `receivers` push carrying a raw message, every doc example's
required fields."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import KEYS, MakeRelay, MakeSink, signed, wait_settled
from test_web_subhook import push

from relay import docs2schema
from relay.drop_reasons import DropClass, drop_class
from relay.products import PRODUCTS
from relay.sample import CONTENT_TYPES, sample_fields, send_push
from relay.schemas import EventSchemas


def _now() -> int:
    return int(time.time())


ALIAS_ROUTES = """\
  - name: unsubscribes
    match: {product: mail, event: unsubscribe}
    destinations: [{name: unsub, url: "UNSUB"}]
  - name: visits
    match: {product: shorturl, event: [visit]}
    destinations: [{name: visits, url: "VISIT"}]
  - name: unknown
    match: {product: sms, event: unknown}
    destinations: [{name: unknown, url: "UNKNOWN"}]
"""


async def test_each_alias_spelling_is_routed_as_its_event_and_forwarded_as_sent(
    make_relay: MakeRelay, make_sink: MakeSink, docs_dir: Path
) -> None:
    """`unsubscribed`/`unsubscribe`, `vist`/`visit`, `unkown`/`unknown`: a route naming one
    takes both; the service gets SUBMAIL's spelling in the body and the event's one name in
    X-Subhook-Event; metrics count the one name."""
    sinks = {name: await make_sink() for name in ("UNSUB", "VISIT", "UNKNOWN")}
    routes = ALIAS_ROUTES
    for name, sink in sinks.items():
        routes = routes.replace(f'"{name}"', f'"{sink.url}"')
    client = await make_relay(routes)
    (visit,) = [f for p, e, f in docs2schema.examples(docs_dir) if (p, e) == ("shorturl", "visit")]
    sent = {
        "UNSUB": [("mail", {"events": spelling, "email": "leo@submail.cn", "app": 10034,
                            "send_id": f"u-{spelling}", "timestamp": _now()})
                  for spelling in ("unsubscribe", "unsubscribed")],
        "VISIT": [("shorturl", {**visit, "events": spelling, "item": f"v-{spelling}",
                                "timestamp": str(_now())})
                  for spelling in ("visit", "vist")],
        "UNKNOWN": [("sms", {"events": spelling, "address": "13800000000", "app": 1,
                             "send_id": f"k-{spelling}", "timestamp": _now()})
                    for spelling in ("unknown", "unkown")],
    }
    for pushes in sent.values():
        for product, fields in pushes:
            status, answer = await push(client, product, signed(product, fields), "json")
            assert (status, answer["status"]) == (200, "accepted"), (product, fields, answer)
    await wait_settled(client, within=30)
    canonical = {"UNSUB": "unsubscribe", "VISIT": "visit", "UNKNOWN": "unknown"}
    for name, sink in sinks.items():
        got = await sink.wait_for(2)
        assert sorted(r.json()["events"] for r in got) == sorted(
            f["events"] for _, f in sent[name]), name
        assert {r.headers["X-Subhook-Event"] for r in got} == {canonical[name]}
        assert len(sink.received) == 2, name
    metrics = await (await client.get("/metrics")).text()
    assert 'event="unsubscribe"' in metrics and 'event="visit"' in metrics
    assert 'event="unsubscribed"' not in metrics and 'event="vist"' not in metrics


def raw_message(size: int) -> str:
    """An .eml of about ``size`` bytes: headers, a Chinese quoted-printable part and a
    base64 attachment, CRLF line ends: what percent-encoding and JSON escaping expand."""
    head = ("From: =?UTF-8?B?5rWL6K+V?= <ops@example.com>\r\nTo: leo@submail.cn\r\n"
            "Subject: test\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n你好，世界 & = + % / ?\r\n"
            "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    line = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURlY29k+/=\r\n"
    return head + line * ((size - len(head.encode())) // len(line)) + "--b--\r\n"


async def test_a_receivers_push_with_a_large_raw_message_is_accepted_and_forwarded_intact(
    make_relay: MakeRelay, make_sink: MakeSink
) -> None:
    """1.5 MiB of raw message in `content`, as a form, JSON and multipart, under the default
    body limit: accepted, and the service receives the message byte for byte. A body over
    the limit is still 413."""
    sink = await make_sink()
    client = await make_relay(
        f'  - {{name: inbox, match: {{product: mail, event: receivers}},'
        f' destinations: [{{name: inbox, url: "{sink.url}"}}]}}')
    content = raw_message(3 * 1024 * 1024 // 2)
    assert len(content.encode()) > 1.49 * 1024 * 1024
    kinds = ("form", "json", "multipart")
    for kind in kinds:
        fields = signed("mail", {"events": "receivers", "mail_to": "in@example.com",
                                 "mail_from": "leo@submail.cn", "subject": f"big {kind}",
                                 "content": content, "timestamp": _now()})
        status, answer = await push(client, "mail", fields, kind)
        assert (status, answer["status"]) == (200, "accepted"), (kind, answer)
    got = await sink.wait_for(len(kinds))
    assert sorted(r.json()["subject"] for r in got) == sorted(f"big {k}" for k in kinds)
    assert all(r.json()["content"] == content for r in got)
    too_big = signed("mail", {"events": "receivers", "mail_to": "a", "mail_from": "b",
                              "subject": "s", "content": "x" * (8 * 1024 * 1024),
                              "timestamp": _now()})
    status, answer = await push(client, "mail", too_big, "form")
    assert (status, answer["error"]) == (413, "too_large")


async def test_new_products_answer_a_missing_required_field_by_name(
    make_relay: MakeRelay,
) -> None:
    """Over HTTP: a voice push without `address` and a receivers push without `content` are
    422 naming the field (the schema-level check of every field: test_schemas.py)."""
    client = await make_relay("  []")
    voice = signed("voice", {"events": "dropped", "send_id": "s", "app": 1, "report": "480",
                             "timestamp": _now()})
    status, answer = await push(client, "voice", voice, "form")
    assert (status, answer["problems"]) == (422, ["address: required"])
    mail = signed("mail", {"events": "receivers", "mail_to": "a@b.c", "mail_from": "d@e.f",
                           "subject": "s", "timestamp": _now()})
    status, answer = await push(client, "mail", mail, "json")
    assert (status, answer["problems"]) == (422, ["content: required"])
    assert "a@b.c" not in json.dumps(answer)



async def test_relay_push_samples_every_event_of_every_product(make_relay: MakeRelay) -> None:
    """What `relay push` sends for each event of each product is accepted, in each content
    type in turn; mail's contacts are email addresses."""
    client = await make_relay("  []")
    schemas = EventSchemas.load()
    pushed = set()
    for index, (product, event) in enumerate(schemas):
        fields = sample_fields(product, event, KEYS[product], None, schemas)
        kind = CONTENT_TYPES[index % len(CONTENT_TYPES)]
        status, text = await send_push(str(client.make_url(f"/subhook/{product}")), fields, kind)
        assert (status, json.loads(text)["status"]) == (200, "accepted"), (product, event, text)
        pushed.add(product)
        if product == "mail":
            assert all("@" in str(fields[name]) for name in ("email", "mail_to", "new_email")
                       if name in fields)
    assert pushed == set(PRODUCTS)


def test_a_sample_drop_carries_a_failure_code_and_a_carrier() -> None:
    """`relay push --event dropped` sends a report that classes as a failure (never the
    success code) and, for a phone, a carrier, so a demo's stats have both."""
    schemas = EventSchemas.load()
    classes = set()
    for _ in range(40):
        fields = sample_fields("sms", "dropped", KEYS["sms"], None, schemas)
        assert fields["report"] != "DELIVRD" and fields["operator"]
        classes.add(drop_class(fields["report"]))
    assert DropClass.OTHER not in classes and len(classes) >= 3
    mail = sample_fields("mail", "dropped", KEYS["mail"], None, schemas)
    assert "operator" not in mail
