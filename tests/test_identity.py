"""An event's identity: one event however it is re-pushed."""

from __future__ import annotations

from relay.identity import identity


def test_identity_ignores_token_signature_and_value_types() -> None:
    """Identity: same for a re-push with a new token, differs for any changed field."""
    base = {"events": "delivered", "app": 1, "send_id": "s", "token": "t1", "signature": "x"}
    same = {**base, "app": "1", "token": "t2", "signature": "y"}
    assert identity("sms", base) == identity("sms", same)
    assert identity("sms", base) != identity("mms", base)
    assert identity("sms", base) != identity("sms", {**base, "send_id": "s2"})
