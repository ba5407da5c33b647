"""SUBHOOK signatures: ``md5(token + key)``, lowercase hex, nothing else signed.

Pure functions. During a key rotation a SUBHOOK has two keys; every key is compared, in
constant time, so neither timing nor order tells an attacker which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{32}")


def sign(token: str, key: str) -> str:
    """The signature SUBMAIL sends with ``token`` for a SUBHOOK whose key is ``key``."""
    return hashlib.md5((token + key).encode("utf-8"), usedforsecurity=False).hexdigest()


def matching_key(token: str, signature: str, keys: Sequence[str]) -> int | None:
    """Index of the key that signed ``token``, or None; hex compared case-insensitively."""
    given = signature.lower().encode("utf-8", "surrogateescape")
    matched: int | None = None
    for index, key in enumerate(keys):
        expected = sign(token, key).encode("ascii")
        if hmac.compare_digest(expected, given) and matched is None:
            matched = index
    return matched


def verify(token: str, signature: str, keys: Sequence[str]) -> bool:
    """True when one of ``keys`` signed ``token``."""
    return matching_key(token, signature, keys) is not None


def token_key(token: str) -> bytes:
    """How the token memory keeps ``token``: 16 bytes. SUBMAIL's 32-hex-digit tokens are
    kept whole (no two share a key); any other token as the first 16 bytes of its SHA-256
    (a 128-bit key: no false duplicate in any number of pushes a relay will see)."""
    if _HEX_TOKEN.fullmatch(token):
        return bytes.fromhex(token)
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()[:16]
