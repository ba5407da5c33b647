"""What a SUBHOOK push is made of: reading bodies, identity. Pure functions.

SUBMAIL sends one flat event per request, as a form, JSON, multipart form or (older docs)
text/plain, or as GET query parameters. Every reader returns the fields in the order they
came; a field given twice, a nested value or bytes that are not UTF-8 make the push
unreadable (400), an unknown content type is 415.
"""

from __future__ import annotations

import json
import math
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

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise BadPush([f"{text[:20]} is out of range for a JSON number"])
        return number

    try:
        value = json.loads(_decode(body), object_pairs_hook=no_duplicates,
                           parse_constant=no_constants, parse_float=finite)
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


#: RFC 2046 ``bchars`` (a space may not end it), 1 to 70 of them.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def boundary(content_type: str) -> bytes:
    """The ``boundary`` parameter, matched by name exactly, as every standard parser reads
    it; a parameter given twice, or a value outside RFC 2046's characters, is refused: a
    body two parsers could split differently must not be verified by one and forwarded to
    the other."""
    found: list[str] = []
    for param in content_type.split(";")[1:]:
        name, sep, value = param.partition("=")
        if sep and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found.append(value)
    if len(found) > 1:
        raise BadPush(["multipart content type gives its boundary more than once"])
    if not found:
        raise BadPush(["multipart body without a boundary"])
    if not _BOUNDARY.fullmatch(found[0]):
        raise BadPush(["multipart boundary must be 1 to 70 characters of RFC 2046's set"])
    return found[0].encode("ascii")

#: The charsets a body may declare: every body is read as UTF-8 (ASCII is a subset of it).
UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def check_charset(content_type: str) -> None:
    """Refuse a ``charset`` parameter other than UTF-8 (or its subset ASCII), or given
    twice: the relay reads every body as UTF-8, and a body its sender encoded otherwise
    would be read one way here and another way by the sender (or a service)."""
    found = [value.strip().strip('"') for name, sep, value in
             (param.partition("=") for param in content_type.split(";")[1:])
             if sep and name.strip().lower() == "charset"]
    if len(found) > 1:
        raise BadPush(["content type gives its charset more than once"])
    if found and found[0].lower() not in UTF8_CHARSETS:
        raise BadPush([f"charset {found[0][:40]!r} is not read here: send UTF-8"])


_FILENAME = re.compile(r'(?:^|;)\s*filename\*?=', re.IGNORECASE)
_PART_NAME = re.compile(r'(?:^|;)\s*name="([^"]*)"|(?:^|;)\s*name=([^;\s"]+)', re.IGNORECASE)


def read_multipart(body: bytes, content_type: str, max_fields: int) -> Fields:
    """A ``multipart/form-data`` body (RFC 7578): one field per part, read strictly.

    A part must name its field in ``Content-Disposition``; a transfer encoding other than
    7bit/8bit/binary, a file part or a body that does not end with the closing delimiter
    make the push unreadable.
    """
    delimiter = b"--" + boundary(content_type)
    unreadable = BadPush(["multipart body cannot be read (truncated or malformed)"])
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2:start] != b"\r\n"):
        raise unreadable
    if body.startswith(b"--", start + len(delimiter)):
        raise BadPush(["multipart body has no fields"])
    end = body.find(b"\r\n" + delimiter + b"--", start)
    if end < 0:
        raise unreadable
    pairs = []
    for count, chunk in enumerate(
            body[start + len(delimiter):end].split(b"\r\n" + delimiter), start=1):
        if count > max_fields:
            raise BadPush([f"more than {max_fields} fields"])
        # Each chunk is "<transport padding>\r\n<headers>\r\n\r\n<value>".
        line_end = chunk.find(b"\r\n")
        head_end = chunk.find(b"\r\n\r\n", line_end)
        if line_end < 0 or head_end < 0 or chunk[:line_end].strip(b" \t"):
            raise unreadable
        name = _part_name(_decode(chunk[line_end + 2:head_end]))
        pairs.append((name, _decode(chunk[head_end + 4:])))
    if not pairs:
        raise BadPush(["multipart body has no fields"])
    return _collect(pairs, max_fields)


def _part_name(headers: str) -> str:
    name: str | None = None
    for line in headers.split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            raise BadPush(["multipart part header cannot be read"])
        key = key.strip().lower()
        if key == "content-disposition":
            kind, _, params = value.strip().partition(";")
            found = _PART_NAME.search(params)
            if kind.strip().lower() != "form-data" or found is None:
                raise BadPush(["multipart part without a field name"])
            if _FILENAME.search(params):
                raise BadPush([f"{found.group(1) or found.group(2)}: file parts are not "
                               "accepted (a push is plain fields)"])
            name = found.group(1) if found.group(1) is not None else found.group(2)
        elif key == "content-transfer-encoding" and \
                value.strip().lower() not in ("7bit", "8bit", "binary"):
            raise BadPush([f"multipart transfer encoding {value.strip()!r} is not supported"])
    if name is None:
        raise BadPush(["multipart part without a field name"])
    return name


def read_push(method: str, content_type: str, body: bytes, query: str,
              max_fields: int) -> Fields:
    """The fields of a push; raises BadPush (400) or UnsupportedMediaType (415)."""
    if method == "GET":
        return read_form(query, max_fields)
    check_charset(content_type)
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


def refuse_float_integers(fields: Mapping[str, Any], integers: frozenset[str]) -> None:
    """A JSON float where the docs have an integer (``"app": 1.0e4``) is refused: a service
    would receive ``10000.0`` where SUBMAIL means ``10000``."""
    for name in integers:
        if isinstance(fields.get(name), float):
            raise BadPush([f"{name}: must be an integer, not {fields[name]!r}"])
