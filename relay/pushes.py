"""What a SUBHOOK push is made of: reading bodies, identity, masking. Pure functions.

SUBMAIL sends one flat event per request, as a form, JSON, multipart form or (older docs)
text/plain, or as GET query parameters. Every reader returns the fields in the order they
came; a field given twice, a nested value or bytes that are not UTF-8 make the push
unreadable (400), an unknown content type is 415.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from relay.errors import BadPush, UnsupportedMediaType

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART = "multipart/form-data"
TEXT = "text/plain"
SUPPORTED = (FORM, JSON, MULTIPART, TEXT)

Fields = dict[str, Any]


def _collect(pairs: Iterable[tuple[str, Any]], max_fields: int) -> Fields:
    fields: Fields = {}
    for count, (name, value) in enumerate(pairs, start=1):
        if count > max_fields:
            raise BadPush([f"more than {max_fields} fields"])
        if name in fields:
            raise BadPush([f"{name}: given more than once"])
        fields[name] = value
    return fields


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPush([f"body is not valid UTF-8 (byte {exc.start})"]) from exc


def read_form(body: bytes | str, max_fields: int) -> Fields:
    text = body if isinstance(body, str) else _decode(body)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                          errors="strict", max_num_fields=max_fields)
    except UnicodeDecodeError as exc:
        raise BadPush(["form value is not valid UTF-8 once percent-decoded"]) from exc
    except ValueError as exc:
        if "max number of fields" in str(exc).lower():
            raise BadPush([f"more than {max_fields} fields"]) from exc
        raise BadPush([f"form body cannot be read: {exc}"]) from exc
    return _collect(pairs, max_fields)


def read_json(body: bytes, max_fields: int) -> Fields:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> Fields:
        return _collect(pairs, max_fields)

    def no_constants(name: str) -> Any:
        raise BadPush([f"{name} is not a JSON number SUBMAIL sends"])

    try:
        value = json.loads(_decode(body), object_pairs_hook=no_duplicates,
                           parse_constant=no_constants)
    except RecursionError as exc:
        raise BadPush(["JSON nested too deeply"]) from exc
    except ValueError as exc:
        if isinstance(exc, BadPush):
            raise
        raise BadPush([f"body is not valid JSON: {exc}"]) from exc
    if not isinstance(value, dict):
        raise BadPush(["body must be one JSON object (one flat event)"])
    for name, item in value.items():
        if isinstance(item, dict | list):
            raise BadPush([f"{name}: must be a plain value (one flat event per push)"])
        for text in (name, item):
            # "\ud800" escapes decode to lone surrogates, which no UTF-8 store can keep.
            if isinstance(text, str) and not _encodable(text):
                raise BadPush([f"{name!r}: contains an unpaired surrogate escape"])
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_multipart(body: bytes, content_type: str, max_fields: int) -> Fields:
    if "boundary=" not in content_type:
        raise BadPush(["multipart body without a boundary"])
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise BadPush(["multipart body cannot be read (truncated or malformed)"])
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise BadPush(["multipart part without a field name"])
        payload = part.get_payload(decode=True)
        pairs.append((name, _decode(payload if isinstance(payload, bytes) else b"")))
    if not pairs:
        raise BadPush(["multipart body has no fields"])
    return _collect(pairs, max_fields)


def read_push(method: str, content_type: str, body: bytes, query: str,
              max_fields: int) -> Fields:
    """The fields of a push; raises BadPush (400) or UnsupportedMediaType (415)."""
    if method == "GET":
        return read_form(query, max_fields)
    media = content_type.split(";", 1)[0].strip().lower()
    if media == FORM:
        return read_form(body, max_fields)
    if media == JSON:
        return read_json(body, max_fields)
    if media == MULTIPART:
        return read_multipart(body, content_type, max_fields)
    if media == TEXT:
        # Older SUBMAIL docs offer text/plain; what it carries is a form or a JSON object.
        return read_json(body, max_fields) if body.lstrip().startswith(b"{") else \
            read_form(body, max_fields)
    raise UnsupportedMediaType(
        [f"content type {media or '(none)'!r} is not supported; use one of {', '.join(SUPPORTED)}"]
    )


def identity(product: str, fields: Mapping[str, Any]) -> str:
    """Hash of the event without its token and signature: one event, however re-pushed.

    Values are compared as strings, so a JSON push (``app: 1``) and a form push
    (``app=1``) of the same event are the same event.
    """
    canonical = sorted((k, str(v)) for k, v in fields.items() if k not in ("token", "signature"))
    digest = hashlib.sha256(json.dumps([product, canonical], ensure_ascii=False).encode())
    return digest.hexdigest()


def webhook_id(event_identity: str) -> str:
    return "msg_" + event_identity[:32]


_DIGITS = re.compile(r"\d")


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``: enough to tell numbers apart in logs, no more.

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
