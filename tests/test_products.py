"""Products as data: names, aliases, contact fields and their masks."""

from __future__ import annotations

import pytest

from relay.products import PRODUCTS, Contact, canonical_event, mask, mask_phone, masked_fields

pytestmark = pytest.mark.fast


def test_mask_contact_phones_and_emails() -> None:
    """Phones keep 3 + 4 digits, emails the local part's first character; short ones less."""
    assert mask("13800138000") == "138****8000"
    assert mask("1234") == "****"
    assert mask("li@submail.cn") == "l***@submail.cn"
    assert mask("a@submail.cn") == "***@submail.cn"
    assert mask("li@submail.cn", Contact.EMAIL) == "l***@submail.cn"
    assert mask("+86 138-1234-5678", Contact.PHONE) == "+86 1**-****-5678"


def test_each_product_masks_its_own_contact_field() -> None:
    """The product decides which field is the contact; other fields are left alone."""
    fields = {"address": "13812345678", "content": "13812345678", "app": 1}
    assert masked_fields("sms", fields) == {"address": "138****5678",
                                            "content": "13812345678", "app": 1}
    assert masked_fields("sms", {"app": 1}) == {"app": 1}
    assert masked_fields("nonesuch", fields) == fields
    assert {p.name: p.contact_field for p in PRODUCTS.values()} == {
        "sms": "address", "internationalsms": "address", "mms": "address", "voice": "address",
        "mail": "email", "shorturl": None}


def test_mail_masks_every_address_it_carries_and_shorturl_none() -> None:
    """Mail: the contact, a changed address and both ends of a received message, as email
    addresses; a short URL has no recipient and nothing is masked."""
    changed = {"email": "leo@submail.cn", "new_email": "leo@submailer.cn", "app": 1}
    assert masked_fields("mail", changed) == {
        "email": "l***@submail.cn", "new_email": "l***@submailer.cn", "app": 1}
    received = {"mail_to": "ops@example.com", "mail_from": "x@submail.cn", "subject": "s"}
    assert masked_fields("mail", received) == {
        "mail_to": "o***@example.com", "mail_from": "***@submail.cn", "subject": "s"}
    assert PRODUCTS["mail"].masked(received) == "o***@example.com"
    assert PRODUCTS["mail"].masked(changed) == "l***@submail.cn"
    assert PRODUCTS["voice"].masked({"address": "13812345678"}) == "138****5678"
    visit = {"ip": "10.0.0.1", "tag": "x,18616761881", "short_url": "http://link.wiki/a"}
    assert masked_fields("shorturl", visit) == visit
    assert PRODUCTS["shorturl"].masked(visit) is None


def test_aliases_are_one_event() -> None:
    """SUBMAIL's spellings of one event map to its one name; others are left alone."""
    assert canonical_event("unkown") == "unknown"
    assert canonical_event("unknown") == "unknown"
    assert canonical_event("delivered") == "delivered"
    assert canonical_event("unsubscribed") == "unsubscribe"
    assert canonical_event("vist") == "visit"
    assert PRODUCTS["mail"].aliases == {"unsubscribed": "unsubscribe"}
    assert PRODUCTS["shorturl"].aliases == {"vist": "visit"}


def test_phone_masking() -> None:
    """Keep the first three and last four digits at most; short numbers vanish entirely."""
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "+861******5678"
    assert mask_phone("138 1234 5678") == "138 **** 5678"
    assert mask_phone("12345678") == "****5678"
    assert mask_phone("12345") == "***45"
    assert mask_phone("1234") == "****"
