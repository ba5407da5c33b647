"""Secrets out of what the relay prints: database and destination URLs in every form SPEC
16 names (a password in the user part, a secret in the query)."""

from __future__ import annotations

import re

MASK = "***"
MIN_SECRET_LEN = 3

#: Query parameters that carry a secret: a connection URL's (libpq's and asyncpg's) and the
#: usual names of a service's credentials in a destination URL.
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:password|pass|passwd|pwd|sslpassword|secret|client_secret|token"
    r"|access_token|api[_-]?key|key|auth|signature|sig)=)[^&#]*")


def redact_url(url: str) -> str:
    """``postgresql://relay:***@db/relay``: the password of the user part (which may itself
    hold ``@``, ``:`` or ``/``) and of secret query parameters replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _SECRET_PARAMS.sub(r"\1" + MASK, url)
    head, qmark, query = rest.partition("?")
    at = head.rfind("@")
    if at >= 0:
        user, colon, _ = head[:at].partition(":")
        head = user + (":" + MASK if colon else "") + head[at:]
    redacted = f"{scheme}://{head}{qmark}{query}"
    return _SECRET_PARAMS.sub(r"\1" + MASK, redacted)


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message that may quote ``url`` or its password) without them."""
    _, sep, rest = url.partition("://")
    head = rest.partition("?")[0]
    at = head.rfind("@")
    password = head[:at].partition(":")[2] if sep and at >= 0 else ""
    text = text.replace(url, redact_url(url))
    secrets = [password] + [url[m.end(1):m.end()] for m in _SECRET_PARAMS.finditer(url)]
    for secret in secrets:
        # A one- or two-character password cannot be told from the text around it.
        if len(secret) >= MIN_SECRET_LEN:
            text = text.replace(secret, MASK)
    return text
