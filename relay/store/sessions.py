"""Console sessions signed out before they expire (SPEC 18), kept in the store so a
sign-out holds after a restart and on every relay sharing the store. A session is its
signed cookie; what is stored is its nonce until the cookie would have expired anyway.
Written once for both stores, run through ``read`` and ``change``."""

from __future__ import annotations

from relay.store.sql import Readable, Statement, collect

SIGN_OUT = Statement("""
INSERT INTO signed_out (nonce, expires_at) VALUES (:nonce, :expires_at)
ON CONFLICT (nonce) DO NOTHING
""")

FORGET_EXPIRED = Statement("DELETE FROM signed_out WHERE expires_at <= :now")

IS_SIGNED_OUT = Statement("SELECT 1 AS found FROM signed_out WHERE nonce = :nonce")

STATEMENTS = collect(globals())


async def sign_out(store: Readable, nonce: str, expires_at: float, now: float) -> None:
    await store.change(FORGET_EXPIRED, now=now)
    await store.change(SIGN_OUT, nonce=nonce, expires_at=expires_at)


async def is_signed_out(store: Readable, nonce: str) -> bool:
    return bool(await store.read(IS_SIGNED_OUT, nonce=nonce))
