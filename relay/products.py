"""SUBMAIL's products as data: name, event aliases, the field holding the contact and how it
is masked. Pure.

A product's events are not listed here: they come from its generated schemas
(``schemas/<product>/<event>.json``, built from its doc). Adding a product is one entry
below, its doc in ../shared/subhook-docs and its generated schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Contact(StrEnum):
    """What a product's contact field holds, which decides its mask and its sample."""

    #: a phone number: ``13812345678`` → ``138****5678``
    PHONE = "phone"
    #: an email address: ``leo@submail.cn`` → ``l***@submail.cn``
    EMAIL = "email"


#: What ``relay push`` puts in a contact field of each kind.
SAMPLE_CONTACT = {Contact.PHONE: "13800000000", Contact.EMAIL: "relay-push@example.com"}


@dataclass(frozen=True)
class Product:
    name: str
    #: the push field that names the recipient, masked in logs, answers and listings
    contact_field: str | None
    contact: Contact | None = None
    #: other spellings SUBMAIL's docs and pushes use for an event → its one name
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: other fields some event carries a contact of the same kind in, masked alike (mail's
    #: ``new_email``, and ``mail_to``/``mail_from`` of ``receivers``, which has no ``email``)
    other_contacts: tuple[str, ...] = ()

    @property
    def contact_fields(self) -> tuple[str, ...]:
        """Every field holding a contact, the contact field first."""
        return ((self.contact_field,) if self.contact_field else ()) + self.other_contacts

    def contact_value(self, fields: Mapping[str, Any]) -> str | None:
        """The push's contact as it came: the first contact field it has (the one rule for
        which field is the contact; stored, masked and logged alike). None when none."""
        for name in self.contact_fields:
            value = fields.get(name)
            if value is not None and value != "" and not isinstance(value, bool):
                return str(value)
        return None

    def contact_of(self, fields: Mapping[str, Any]) -> str | None:
        """The push's contact as stored for lookups (``events.contact``): spaces trimmed,
        an email address in lower case."""
        value = self.contact_value(fields)
        if value is None:
            return None
        text = value.strip(" ")
        return text.lower() if self.contact is Contact.EMAIL else text

    def masked(self, fields: Mapping[str, Any]) -> str | None:
        """The push's contact, masked; None when none."""
        value = self.contact_value(fields)
        return None if value is None else mask(value, self.contact)


#: ``unkown`` is how several SUBMAIL docs spell ``unknown``.
_UNKNOWN = {"unkown": "unknown"}

PRODUCTS: Mapping[str, Product] = {p.name: p for p in (
    Product("sms", "address", Contact.PHONE, _UNKNOWN),
    Product("internationalsms", "address", Contact.PHONE, _UNKNOWN),
    Product("mms", "address", Contact.PHONE, _UNKNOWN),
    # mail.md heads its ``unsubscribe`` table "unsubscribed".
    Product("mail", "email", Contact.EMAIL, {"unsubscribed": "unsubscribe"},
            other_contacts=("new_email", "mail_to", "mail_from")),
    Product("voice", "address", Contact.PHONE),
    # shorturl.md heads its ``visit`` table "vist". A short URL has no recipient.
    Product("shorturl", None, None, {"vist": "visit"}),
)}

#: Every alias of every product (no two products give one spelling two meanings).
EVENT_ALIASES: Mapping[str, str] = {a: e for p in PRODUCTS.values() for a, e in p.aliases.items()}


def canonical_event(name: str) -> str:
    """The one name of an event, whatever SUBMAIL's spelling."""
    return EVENT_ALIASES.get(name, name)


_DIGITS = re.compile(r"\d")


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``: enough to tell numbers apart, no more.

    Shorter numbers show less: the last four digits from eight digits on, the last two
    from five, nothing below that. Characters other than digits are kept.
    """
    digits = len(_DIGITS.findall(value))
    keep_head = 3 if digits >= 11 else 0
    keep_tail = 4 if digits >= 8 else 2 if digits > 4 else 0
    out, seen = [], 0
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= keep_head or seen > digits - keep_tail else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_email(value: str) -> str:
    """``leo@submail.cn`` → ``l***@submail.cn`` (a one-letter local part shows nothing)."""
    local, _, domain = value.rpartition("@")
    return (local[0] if len(local) > 1 else "") + "***@" + domain


def mask(value: str, contact: Contact | None = None) -> str:
    """``value`` masked as ``contact``; guessed from its shape when not given."""
    if contact is Contact.EMAIL or (contact is None and "@" in value):
        return mask_email(value)
    return mask_phone(value)


def contact_forms(value: str) -> list[str]:
    """What ``events.contact`` may hold for a contact an operator typed: an email address
    in lower case; a phone number as typed, as its digits, with and without a ``+``, and
    a Chinese mobile number with and without its country code (``+86 138-1234-5678`` finds
    ``13812345678``)."""
    text = value.strip()
    if "@" in text:
        return [text.lower()]
    digits = "".join(_DIGITS.findall(text))
    forms = [text, digits, "+" + digits]
    if len(digits) == 13 and digits.startswith("861"):
        forms += [digits[2:]]
    if len(digits) == 11 and digits.startswith("1"):
        forms += ["86" + digits, "+86" + digits]
    return list(dict.fromkeys(f for f in forms if f and f != "+"))


def masked_fields(product: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with every contact field of the product masked."""
    shown = dict(fields)
    known = PRODUCTS.get(product)
    for name in known.contact_fields if known is not None else ():
        value = shown.get(name)
        if value is not None and value != "" and not isinstance(value, bool):
            shown[name] = mask(str(value), known.contact if known else None)
    return shown
