from __future__ import annotations

import hashlib
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.ingest.signature import matching_key, sign, verify

pytestmark = pytest.mark.fast

# Fixed vectors: well-known MD5 digests, split into token + key.
HAND_WRITTEN = [
    ("", "", "d41d8cd98f00b204e9800998ecf8427e"),
    ("a", "bc", "900150983cd24fb0d6963f7d28e17f72"),
    ("The quick brown fox ", "jumps over the lazy dog", "9e107d9d372bb6826bd81d3542a419d6"),
]


def test_hand_written_vectors() -> None:
    """sign() reproduces published MD5 digests of token + key."""
    for token, key, expected in HAND_WRITTEN:
        assert sign(token, key) == expected
        assert verify(token, expected, [key])


def test_vectors_computed_with_hashlib() -> None:
    """A 32-char token signed with hashlib verifies; any other key does not."""
    for _ in range(50):
        token, key = secrets.token_hex(16), secrets.token_urlsafe(24)
        signature = hashlib.md5((token + key).encode()).hexdigest()
        assert sign(token, key) == signature
        assert verify(token, signature, [key])
        assert not verify(token, signature, [key + "x"])
        assert not verify(token + "0", signature, [key])


def test_hex_is_compared_case_insensitively() -> None:
    """Upper-case hex from a client is the same signature."""
    token, key = "067ef7e2f286a9a56eabb07dc9657852", "subhook-key"
    assert verify(token, sign(token, key).upper(), [key])


def test_rotation_accepts_either_key_and_reports_which() -> None:
    """During rotation both keys verify; the index tells which one matched."""
    token = secrets.token_hex(16)
    keys = ["new-key", "old-key"]
    assert matching_key(token, sign(token, "new-key"), keys) == 0
    assert matching_key(token, sign(token, "old-key"), keys) == 1
    assert matching_key(token, sign(token, "other"), keys) is None
    assert matching_key(token, sign(token, "old-key"), []) is None


def test_malformed_signatures_are_refused_not_raised() -> None:
    """Empty, short, non-hex and non-ASCII signatures are simply invalid."""
    token, key = "t" * 32, "k"
    good = sign(token, key)
    for bad in ("", good[:31], good + "0", "z" * 32, "é" * 32, good[:-1] + "\udcff", " " + good):
        assert not verify(token, bad, [key])


@given(st.text(max_size=40), st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_only_the_true_signature_verifies(token: str, key: str, forged: str) -> None:
    """For any token and key, a string verifies exactly when it is the md5 of token + key."""
    truth = hashlib.md5((token + key).encode("utf-8", "surrogatepass")).hexdigest()
    assert verify(token, forged, [key]) == (forged.lower() == truth)
