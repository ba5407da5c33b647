"""relay/delivery/client.py's pure part: a status classified, a request built, its body
and Standard Webhooks signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from relay.delivery.client import (
    CACHED_FIELDS_MAX,
    build_request,
    classify,
    standard_webhook_signature,
    unsigned_body,
)
from relay.routing import Destination
from relay.store import ClaimedDelivery

pytestmark = pytest.mark.fast


def test_classification() -> None:
    """2xx delivered; 408, 425, 429 and 5xx retried; any other status is permanent."""
    assert [classify(s) for s in (200, 204, 299)] == ["delivered"] * 3
    assert [classify(s) for s in (408, 425, 429, 500, 502, 503, 599)] == ["retryable"] * 7
    assert [classify(s) for s in (300, 301, 400, 401, 403, 404, 410, 413, 422)] == \
        ["permanent"] * 9


def test_standard_webhooks_signature_by_hand() -> None:
    """v1,base64(HMAC-SHA256(key, id.timestamp.body)) computed independently."""
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert standard_webhook_signature(secret, "msg_1", 1700000000, b"{}") == "v1," + expected


def test_headers_of_an_attempt() -> None:
    """Product, event, attempt and id headers; extra headers kept; no signature without secret."""
    delivery = ClaimedDelivery(1, 1, "d", 2, 0.0, "msg_x", "sms", "delivered", '{"a":"1"}',
                               b"a=1", "application/x-www-form-urlencoded")
    destination = Destination("d", "http://127.0.0.1/", headers=(("X-Env", "prod"),))
    body, headers = build_request(delivery, destination, 3, 1700000000.5)
    assert body == b'{"a":"1"}'
    assert headers == {"X-Env": "prod", "Content-Type": "application/json",
                       "webhook-id": "msg_x", "webhook-timestamp": "1700000000",
                       "X-Subhook-Product": "sms", "X-Subhook-Event": "delivered",
                       "X-Relay-Attempt": "3"}


def test_forwarded_body_leaves_out_the_signature_whatever_its_size() -> None:
    """The body sent to a service is the event without SUBMAIL's token and signature, for
    an event small enough to be remembered across its destinations and for one that is
    not; two events never share a body."""
    def fields(content: str) -> str:
        return json.dumps({"events": "mo", "token": "t" * 32, "content": content,
                           "signature": "s" * 32}, ensure_ascii=False, separators=(",", ":"))

    for content in ("短信", "x" * CACHED_FIELDS_MAX):
        for _ in range(2):  # computed, then remembered (or not)
            assert json.loads(unsigned_body(fields(content))) == {"events": "mo",
                                                                  "content": content}
    assert unsigned_body(fields("a")) != unsigned_body(fields("b"))
    assert unsigned_body(fields("短信")).decode("utf-8") == '{"events":"mo","content":"短信"}'
