"""Whether a push is admitted, before its event is looked at: client address, signature,
replay window. Pure functions of the push's parts and the settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from relay.config import Settings, Subhook
from relay.errors import BadPush, NotAllowed, ReplayRefused, SignatureInvalid
from relay.ingest.signature import verify
from relay.times import TimestampOutOfRange, read_timestamp


@lru_cache(maxsize=256)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(c, strict=False) for c in cidrs)


def _in(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(cidrs))


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[str, ...]) -> str | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
    ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    if peer is None or not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def forwarded_client(peer: str | None, forwarded_lines: Iterable[str],
                     trusted: tuple[str, ...]) -> str | None:
    """The client's address as ``allow_ips``, the sign-in limit and the admin limit all read
    it: every X-Forwarded-For line is read as one list (RFC 9110: repeated lines are one
    comma-separated value), from a trusted proxy only; a proxy that adds a line must not
    hide the client's own."""
    forwarded = ",".join(forwarded_lines)
    return client_address(peer, forwarded or None, trusted)


def check_address(peer: str | None, forwarded_lines: Iterable[str], subhook: Subhook,
                  settings: Settings) -> None:
    """Refuse (403) a client outside the SUBHOOK's ``allow_ips`` (``forwarded_client``)."""
    if not subhook.allow_ips:
        return
    address = forwarded_client(peer, forwarded_lines, settings.trusted_proxies)
    if address is None or not _in(address, subhook.allow_ips):
        raise NotAllowed([f"address {address} is not allowed to push to {subhook.path}"])


def check_signature(fields: dict[str, Any], keys: tuple[str, ...]) -> None:
    token, signature = fields.get("token"), fields.get("signature")
    if not isinstance(token, str) or not token:
        raise SignatureInvalid(["token: required (a signed push carries token and signature)"])
    if not isinstance(signature, str) or not signature:
        raise SignatureInvalid(["signature: required"])
    if not verify(token, signature, keys):
        raise SignatureInvalid(["signature: does not match md5(token + key) for any key"])


def check_window(fields: dict[str, Any], settings: Settings, now: float) -> None:
    """Refuse a ``timestamp`` outside the window (401), or one that is not read as UNIX
    seconds (400, naming it: times.read_timestamp is the one reading). A missing one is left
    to the schema, which requires it."""
    if "timestamp" not in fields:
        return
    raw = fields["timestamp"]
    if isinstance(raw, float):
        # 1.0e9 would pass an integer schema and skip the window: no timestamp SUBMAIL sends
        raise ReplayRefused([f"timestamp: {raw!r} is not an integer UNIX time"])
    try:
        stamp = read_timestamp(raw)
    except TimestampOutOfRange as exc:
        raise ReplayRefused([str(exc)]) from None
    except ValueError as exc:
        raise BadPush([str(exc)]) from None
    if stamp < now - settings.replay_past:
        raise ReplayRefused([f"timestamp: {stamp} is older than the replay window "
                             f"({settings.replay_past:g}s)"])
    if stamp > now + settings.replay_future:
        raise ReplayRefused([f"timestamp: {stamp} is in the future beyond "
                             f"{settings.replay_future:g}s"])
