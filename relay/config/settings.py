"""The product's settings: frozen records a loaded config becomes, checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from relay import constants as c
from relay.delivery.backoff import RetryPolicy
from relay.delivery.breaker import BreakerPolicy
from relay.routing import Destination, Route


@dataclass(frozen=True)
class Subhook:
    path: str
    product: str
    keys: tuple[str, ...] = field(repr=False)
    allow_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    #: a mail ``receivers`` push carries the raw message: 2 MiB of it percent-encoded in a
    #: form (3 bytes per byte at worst) plus its other fields fit (SPEC 10)
    max_body_size: int = 8 * 1024 * 1024
    max_header_size: int = 8190
    max_fields: int = 200
    read_timeout: float = 10.0
    #: verified pushes being stored at once; more are shed with 503 (memory and latency)
    max_in_progress: int = 256
    #: open connections on the edge listener (``listen``); more are closed as soon as
    #: they are accepted
    max_connections: int = 1024
    #: open connections of one TCP peer address, on each listener; that address's next
    #: ones are closed as soon as they are accepted, nobody else's (SPEC 18)
    max_connections_per_address: int = 64
    #: open connections on the admin listener (``admin_listen``), counted apart from the
    #: edge's: a crowd on the edge cannot lock operators out of /metrics and the console
    max_admin_connections: int = 64
    #: a connection that sends no complete request this long is closed
    idle_timeout: float = 15.0
    #: bytes of unfinished header blocks and of bodies being read (not yet verified)
    #: held at once; more: 503 at once. One peer address may hold a quarter of it.
    max_buffered: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class AlertTarget:
    """One ``alerts:`` entry: where notifications of a destination's bad day go."""

    name: str
    url: str
    #: json (signed like a delivery when ``secret`` is set), slack, dingtalk, wecom, feishu
    format: str = "json"
    secret: str | None = field(default=None, repr=False)
    kinds: frozenset[str] = frozenset(c.ALERT_KINDS)
    timeout: float = c.DEFAULT_ALERT_TIMEOUT_S


class Role(StrEnum):
    """What a console or admin API token may do (SPEC 13)."""

    #: read every page and listing
    VIEWER = "viewer"
    #: also replay and discard
    OPERATOR = "operator"


@dataclass(frozen=True)
class AdminToken:
    """One ``admin.tokens`` entry: who signs in with it and what they may do."""

    name: str
    token: str = field(repr=False)
    role: Role = Role.VIEWER


@dataclass(frozen=True)
class Settings:
    """A loaded, checked config; nothing in it is ever mutated."""

    subhooks: tuple[Subhook, ...]
    routes: tuple[Route, ...]
    listen_host: str = "0.0.0.0"  # noqa: S104 - an edge gateway listens on every interface
    listen_port: int = 8080
    store: str = c.DEFAULT_STORE
    schemas_dir: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: the global ``breaker:``; each destination carries its own (this one unless overridden)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    alerts: tuple[AlertTarget, ...] = ()
    replay_past: float = c.DEFAULT_REPLAY_PAST_S
    replay_future: float = c.DEFAULT_REPLAY_FUTURE_S
    limits: Limits = Limits()
    admin_token: str | None = field(default=None, repr=False)
    #: ``admin.tokens``, and ``admin.token`` as an operator named ``admin``
    admin_tokens: tuple[AdminToken, ...] = field(default=(), repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    #: ``(host, port)`` of the private listener for /metrics and /admin; None: on ``listen``
    admin_listen: tuple[str, int] | None = None
    #: contacts (phone numbers, email addresses) masked in the log's lines
    mask_contacts: bool = True
    #: delivered events are kept this long (never less than the replay window, which
    #: identity dedupe needs), then pruned every ``retention_interval``
    retention_delivered: float = c.DEFAULT_RETENTION_DELIVERED_S
    retention_interval: float = c.DEFAULT_RETENTION_INTERVAL_S
    #: a token once seen is refused this long (SPEC 16)
    retention_tokens: float = c.DEFAULT_RETENTION_TOKENS_S
    #: how long past a destination's timeout a claimed delivery stays leased; on PostgreSQL
    #: the leases of an instance that stopped heartbeating are void sooner (15 s)
    lease_margin: float = c.DEFAULT_LEASE_MARGIN_S
    source: Path | None = None
    #: the line of each key path in the file, for problems found after loading (SPEC 19's
    #: fields no event has)
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, compare=False,
                                                       repr=False)

    def destinations(self) -> dict[str, Destination]:
        """Every destination by name (one name is one destination across routes)."""
        return {d.name: d for r in self.routes for d in r.destinations}

    def subhook_for(self, path: str) -> Subhook | None:
        return next((s for s in self.subhooks if s.path == path), None)
