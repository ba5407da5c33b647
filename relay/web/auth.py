"""Who is asking (SPEC 13): admin tokens compared in constant time, console sessions in a
signed cookie, CSRF tokens, and a limit on sign-in attempts (the console's and, in Guard,
the admin API's bearer tokens).

A session is a cookie the relay signs with a key derived from the configured admin tokens:
it needs no server-side store (several instances on PostgreSQL accept each other's
sessions), and changing or removing a token ends every session signed with the old set.
The role is read from the config at each request, so a token demoted to viewer takes
effect at once. The CSRF token is derived from the session's nonce: one per session, on
every form, checked on every POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.config import AdminToken, Role
from relay.logs import Throttle

#: the admin API's lines (Guard): its refusals are the admin API's, not the console's
admin_log = logging.getLogger("relay.admin")

COOKIE = "relay_console"
#: How long a session lasts from sign-in.
SESSION_TTL_S = 8 * 3600
#: Sign-in attempts one client address may make per window; more are answered 429.
SIGN_IN_ATTEMPTS = 10
SIGN_IN_WINDOW_S = 300.0


def match_token(tokens: Sequence[AdminToken], given: bytes) -> AdminToken | None:
    """The entry whose token is ``given``. Every entry is compared, whatever matched, each
    in constant time: the time taken tells neither whether nor which token matched."""
    found = None
    for entry in tokens:
        if hmac.compare_digest(given, entry.token.encode()):
            found = entry
    return found


def _key(tokens: Sequence[AdminToken]) -> bytes:
    material = b"\0".join(sorted(t.token.encode() for t in tokens))
    return hashlib.sha256(b"subhook-relay console session\0" + material).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    name: str
    role: Role
    expires: float
    nonce: str

    @property
    def may_act(self) -> bool:
        return self.role is Role.OPERATOR


def open_session(entry: AdminToken, tokens: Sequence[AdminToken],
                 now: float | None = None) -> tuple[Session, str]:
    """A new session for ``entry`` and the cookie value that carries it."""
    now = time.time() if now is None else now
    session = Session(entry.name, entry.role, now + SESSION_TTL_S, secrets.token_urlsafe(16))
    payload = _b64(json.dumps({"n": session.name, "e": session.expires,
                               "s": session.nonce}).encode())
    mac = _b64(hmac.new(_key(tokens), payload.encode(), hashlib.sha256).digest())
    return session, f"{payload}.{mac}"


def read_session(cookie: str | None, tokens: Sequence[AdminToken],
                 now: float | None = None) -> Session | None:
    """The session a cookie carries, if the relay signed it with the tokens configured now,
    it has not expired and its name still has a token (with that token's role today)."""
    if not cookie or not tokens or "." not in cookie:
        return None
    payload, _, mac = cookie.partition(".")
    expected = _b64(hmac.new(_key(tokens), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        name, expires, nonce = str(data["n"]), float(data["e"]), str(data["s"])
    except (ValueError, KeyError, TypeError):
        return None
    now = time.time() if now is None else now
    entry = next((t for t in tokens if t.name == name), None)
    if entry is None or expires <= now:
        return None
    return Session(name, entry.role, expires, nonce)


def csrf_token(session: Session, tokens: Sequence[AdminToken]) -> str:
    """The session's CSRF token: forms carry it, every POST must."""
    return hmac.new(_key(tokens), b"csrf\0" + session.nonce.encode(),
                    hashlib.sha256).hexdigest()[:32]


def csrf_ok(session: Session, tokens: Sequence[AdminToken], given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given.encode(),
                                                     csrf_token(session, tokens).encode())


@dataclass
class SignInLimit:
    """At most ``attempts`` counted tries per client address per ``window`` seconds; the
    oldest addresses are forgotten past ``remember`` of them, so the table stays small under
    a spray of addresses. The console counts every sign-in (failed or not: a client
    guessing tokens is slowed either way), the admin API every wrong bearer token."""

    attempts: int = SIGN_IN_ATTEMPTS
    window: float = SIGN_IN_WINDOW_S
    remember: int = 10_000
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def wait(self, address: str, now: float | None = None) -> float | None:
        """None when ``address`` may try now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        times = self._seen.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[address]
            return None
        return times[0] + self.window - now if len(times) >= self.attempts else None

    def count(self, address: str, now: float | None = None) -> None:
        """One try of ``address`` counted."""
        now = time.monotonic() if now is None else now
        times = self._seen.pop(address, deque())
        self._seen[address] = times  # most recent last, for forgetting the oldest
        times.append(now)
        while len(self._seen) > self.remember:
            del self._seen[next(iter(self._seen))]

    def allow(self, address: str, now: float | None = None) -> float | None:
        """``wait``, and the try counted when it may go on."""
        now = time.monotonic() if now is None else now
        wait = self.wait(address, now)
        if wait is None:
            self.count(address, now)
        return wait


@dataclass
class Guard:
    """Wrong bearer tokens per client address (429 past the limit, as the console's
    sign-in), and the throttle of the lines they log."""

    limit: SignInLimit = field(default_factory=SignInLimit)
    lines: Throttle = field(default_factory=Throttle)

    def note(self, kind: str, address: str) -> None:
        """One warning per kind every 10 s, with the count it speaks for."""
        count = self.lines.let(kind, time.monotonic())
        if count is None:
            return
        what = {"wrong_token": "wrong bearer token", "limited": "answered 429 (too many "
                "wrong bearer tokens)"}[kind]
        admin_log.warning("admin API: %s from %s (%d in the last 10s)", what, address, count,
                    extra={"error": kind, "client": address, "count": count})
