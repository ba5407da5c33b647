"""Request headers and bodies the console and the admin API read, checked before they are
read: a charset other than UTF-8, multipart without a usable boundary, a body aiohttp
cannot decode or a ``Referer`` that is no URL is a 400 naming the problem, never a 500
(SPEC 18). The SUBHOOK paths check the same way in relay/pushes.py."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import ParseResult, urlparse

from aiohttp import web
from multidict import MultiDictProxy

from relay.errors import BadPush
from relay.pushes import FORM, MULTIPART, boundary, check_charset

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


class Unreadable(ValueError):
    """The request's body cannot be read as it declares; the text says why."""


def _check_content_type(request: web.Request) -> str:
    content_type = request.headers.get("Content-Type", "")
    try:
        check_charset(content_type)
        if content_type.split(";", 1)[0].strip().lower() == MULTIPART:
            boundary(content_type)
    except BadPush as exc:
        raise Unreadable(exc.problems[0]) from None
    return content_type


async def read_form(request: web.Request) -> Form:
    """The form of a POST (urlencoded or multipart; other types give an empty form)."""
    content_type = _check_content_type(request)
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        return await request.post()
    except (ValueError, LookupError) as exc:  # aiohttp's words for a body it cannot split
        kind = "multipart" if media == MULTIPART else "form" if media == FORM else "body"
        raise Unreadable(f"the {kind} cannot be read ({type(exc).__name__})") from None


async def read_json(request: web.Request) -> Any:
    """The JSON value of a POST's body, read as UTF-8."""
    _check_content_type(request)
    try:
        return json.loads((await request.read()).decode("utf-8"))
    except ValueError as exc:
        raise Unreadable(f"the body is not JSON in UTF-8 ({type(exc).__name__})") from None


def parse_url(url: str | None) -> ParseResult | None:
    """A URL a client sent (``Referer``, a ``next`` field) split in its parts; None for one
    that is no URL (``http://[``)."""
    try:
        return urlparse(url or "")
    except ValueError:
        return None
