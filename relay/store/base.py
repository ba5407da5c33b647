"""What every store implementation provides, and the records that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from relay.errors import RelayError


class StoreUnavailable(RelayError):
    """The store cannot take or give data now; ingest answers 503 so SUBMAIL retries."""


class StoreInUse(StoreUnavailable):
    """Another ``relay serve`` owns this SQLite file."""


class DeliveryState(StrEnum):
    """Where one (event, destination) delivery stands; stored as its value:

    - ``pending``: waiting for its next attempt (or leased by a worker making it)
    - ``delivered``: the destination answered 2xx
    - ``dead``: attempts ended without success: a dead letter, kept until replayed or
      discarded
    - ``discarded``: a dead letter an operator discarded (``relay dead discard``): off the
      list, kept for lookups until retention prunes its event
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    DISCARDED = "discarded"


class QuarantineState(StrEnum):
    """Where a push refused by a schema stands; stored as its value:

    - ``held``: kept for an operator to look at and replay (``relay quarantine``)
    - ``replayed``: valid against the schemas of the time and ingested (its ``event_id``),
      or found to duplicate an accepted event (no ``event_id``); ``note`` says which
    - ``discarded``: an operator discarded it (``relay quarantine discard``)
    """

    HELD = "held"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


@dataclass(frozen=True)
class NewEvent:
    """An accepted push and the deliveries it owes, written in one transaction."""

    webhook_id: str
    identity: str
    token: str
    product: str
    event: str
    tag: str | None
    fields: str  # JSON of the fields as received
    body: bytes
    content_type: str
    received_at: float
    destinations: tuple[tuple[str, float], ...]  # (name, expires_at)
    #: the token is already in the token memory on purpose (a quarantined push replayed):
    #: accept the event all the same
    token_seen: bool = False
    #: SUBMAIL's send_id, as text; the contact as Product.contact_of stores it (lookups)
    send_id: str | None = None
    contact: str | None = None


@dataclass(frozen=True)
class QuarantinedPush:
    identity: str
    subhook_path: str
    product: str
    fields: str
    body: bytes
    content_type: str
    problems: str  # JSON list
    received_at: float
    #: remembered with the push, so the same token cannot come back with repaired fields
    token: str = ""


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this worker holds the lease on, with what it needs to send it."""

    id: int
    event_id: int
    destination: str
    attempt: int  # attempts already made
    expires_at: float
    webhook_id: str
    product: str
    event: str
    fields: str
    body: bytes
    content_type: str
    #: times the delivery was replayed: its attempts are recorded with this marker
    replays: int = 0


class Want(NamedTuple):
    """What a claim asks of one destination: up to ``limit`` rows, leased until
    ``lease_until``; ``ordered``: ``order: send_id`` (a message's deliveries one at a time);
    ``probe``: the oldest accepted pending row, due or not (an open breaker's probe)."""

    limit: int
    lease_until: float
    ordered: bool = False
    probe: bool = False

    @property
    def kind(self) -> str:
        """Which claim statement serves it (queries.DUE_OF, queries.CLAIM_OF)."""
        return "oldest" if self.probe else "ordered" if self.ordered else "due"


@dataclass(frozen=True)
class AttemptRecord:
    """The outcome of one attempt; ``state`` is the delivery's new state."""

    delivery_id: int
    attempt: int
    started_at: float
    duration_ms: float
    http_status: int | None
    error: str | None
    state: str  # a DeliveryState
    next_attempt_at: float | None = None
    #: the replay the attempt belongs to (0: before any) and the start of the answer
    replay: int = 0
    answer: str | None = None


@dataclass(frozen=True)
class Gauges:
    """What /metrics shows of the store at one moment."""

    #: destination -> (pending deliveries, received_at of the oldest one's event)
    backlog: Mapping[str, tuple[int, float]]
    dead: int
    quarantined: int


class Store(Protocol):
    """What each store implements: its lifetime, the hot path (a push, a claim, attempt
    records: each backend's own, tuned to it) and two primitives that run any named
    statement. Every other query is one statement and one function over ``read`` and
    ``change``, written once for both (relay/store/deliveries.py, quarantine.py,
    lookup.py, messages.py, destinations.py)."""

    @property
    def dead_after(self) -> float | None:
        """How long an owner may go without a heartbeat before its leases are void
        (PostgreSQL's several relays); None where one process owns the store and a lease
        ends only with its time (SQLite)."""

    # ``statement`` is a relay.store.sql.Statement (sql.py imports this module, so the
    # protocol names it Any rather than import it back)
    async def read(self, statement: Any, **values: Any) -> list[dict[str, Any]]:
        """The rows of a reading statement."""
    async def change(self, statement: Any, **values: Any) -> list[dict[str, Any]]:
        """Run a writing statement in the next grouped transaction; its RETURNING rows."""
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def ingest(self, event: NewEvent) -> int | None:
        """The new event's id, or None when its token or identity was already accepted."""
    async def seen(self, token: str, identity: str) -> bool: ...
    async def quarantine(self, push: QuarantinedPush) -> int: ...
    async def claim(
        self, destination: str, limit: int, owner: str, lease_until: float, now: float
    ) -> list[ClaimedDelivery]: ...
    async def claim_due(self, wants: Mapping[str, Want | tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]:
        """Claim, in one transaction, what each destination in ``wants`` asks for
        (``{destination: Want(limit, lease_until, ...)}``)."""
    async def record(self, records: list[AttemptRecord]) -> None: ...
    async def release(self, owner: str) -> int: ...


class ClaimsOne(ABC):
    """What both stores share beside their primitives: claiming for one destination is
    ``claim_due`` for that one (tests and the orphan sweep ask this way)."""

    @abstractmethod
    async def claim_due(self, wants: Mapping[str, Want | tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]: ...

    async def claim(
        self, destination: str, limit: int, owner: str, lease_until: float, now: float
    ) -> list[ClaimedDelivery]:
        return await self.claim_due({destination: (limit, lease_until)}, owner, now)
