"""relay/ops/shown.py: what an operator sees of a stored row, decided once (pure)."""

from __future__ import annotations

import json

import pytest

from relay.ops import shown

pytestmark = pytest.mark.fast

PHONE = '{"events": "delivered", "address": "13812345678", "token": "t", "signature": "s"}'


def test_row_ids_are_ascii_digits_within_a_bigint() -> None:
    """An id is positive ASCII digits no larger than a BIGINT; anything else is None."""
    assert shown.row_id("42") == 42
    assert [shown.row_id(t) for t in ("0", "-1", "²", "4a", str(shown.MAX_ID + 1))] == \
        [None] * 5
    assert shown.valid_id(shown.MAX_ID) and not shown.valid_id(True)


def test_fields_leave_the_signature_out_and_mask_contacts() -> None:
    """SUBMAIL's token and signature are left out, the phone number masked."""
    assert shown.fields("sms", PHONE) == {"events": "delivered", "address": "138****5678"}


def test_the_contact_is_the_products_own_field() -> None:
    """An SMS's contact is its address, a mail's its mail_to when it has no email."""
    assert shown.contact("sms", PHONE) == "138****5678"
    assert shown.contact("mail", '{"mail_to": "inbox@example.com"}') == "i***@example.com"
    assert shown.contact("nosuchproduct", "{}") is None


def test_a_held_push_is_shown_without_its_body() -> None:
    """A quarantined push shows its fields masked and its time in ISO, never its body."""
    row = {"id": 1, "product": "sms", "fields": PHONE, "body": b"raw",
           "received_at": 1_800_000_000.0}
    held = shown.held(row)
    assert "body" not in held
    assert held["received_at"] == "2027-01-15T08:00:00.000Z"
    assert held["fields"]["address"] == "138****5678"


def test_a_dead_letter_carries_its_attempts_with_iso_times() -> None:
    """A dead letter's attempts keep what they said, their times in ISO."""
    row = {"id": 3, "product": "sms", "fields": PHONE, "updated_at": 0.0}
    got = shown.dead_letter(row, [{"attempt": 1, "started_at": 0.5, "http_status": 400}])
    assert got["contact"] == "138****5678"
    assert got["attempts"] == [{"attempt": 1, "started_at": "1970-01-01T00:00:00.500Z",
                                "http_status": 400}]


def test_dumps_keeps_text_as_written() -> None:
    """JSON output keeps non-ASCII text as it is and nests objects."""
    text = shown.dumps({"reason": "空号", "nested": {"a": 1}})
    assert "空号" in text and json.loads(text)["nested"] == {"a": 1}
