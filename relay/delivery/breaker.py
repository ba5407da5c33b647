"""The circuit breaker of one destination (SPEC 17). Pure: the caller says what happened
and when; the breaker says what may be sent.

    healthy ──retryable failure──▶ failing ──``after`` in a row──▶ open
       ▲                              │                             │ one probe every ``probe``
       └──────── an answer ◀──────────┴──────────── an answer ◀─────┘

While open, the destination's deliveries are held: no attempts are made and none of their
``max_attempts`` is used; every ``probe`` seconds one held delivery (the oldest) is tried.
An answer closes it: a 2xx, and also a status that ends a delivery at once (a 4xx other
than 408, 425 and 429), since the service is up and answering. ``paused`` is an operator's
(relay/destinations.py) and lies over whatever the breaker says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from relay import constants as c


class State(StrEnum):
    """Where a destination stands, as ``relay destinations list`` and the metric show it:

    - ``healthy``: its last attempt was answered (or none was made yet)
    - ``failing``: some retryable failures in a row, fewer than the breaker's ``after``
    - ``open``: ``after`` retryable failures in a row: deliveries held, one probe every
      ``probe``
    - ``paused``: an operator paused it: no attempts until resumed
    """

    HEALTHY = "healthy"
    FAILING = "failing"
    OPEN = "open"
    PAUSED = "paused"


class Allowance(StrEnum):
    """What the breaker lets the worker claim for a destination now: ``all`` (as many as its
    slots and rate allow), ``probe`` (one held delivery, the oldest) or ``none`` (open, and
    the next probe is not due or one is in flight)."""

    ALL = "all"
    PROBE = "probe"
    NONE = "none"


@dataclass(frozen=True)
class BreakerPolicy:
    """``breaker: {after, probe}``; ``after`` None: ``breaker: off``."""

    after: int | None = c.DEFAULT_BREAKER_AFTER
    probe: float = c.DEFAULT_BREAKER_PROBE_S


@dataclass
class Breaker:
    """One destination's circuit, in this process."""

    #: retryable failures in a row
    failures: int = 0
    opened_at: float | None = None
    next_probe: float = 0.0
    probing: bool = False

    @property
    def state(self) -> State:
        if self.opened_at is not None:
            return State.OPEN
        return State.FAILING if self.failures else State.HEALTHY

    def allowance(self, now: float) -> Allowance:
        if self.opened_at is None:
            return Allowance.ALL
        if self.probing or now < self.next_probe:
            return Allowance.NONE
        return Allowance.PROBE

    def probe_started(self) -> None:
        self.probing = True

    def answered(self) -> State | None:
        """The service answered (2xx, or a status that is not retryable); the new state
        when it changed."""
        before = self.state
        self.failures, self.opened_at, self.probing = 0, None, False
        return State.HEALTHY if before is not State.HEALTHY else None

    def failed(self, policy: BreakerPolicy, now: float, probe: bool) -> State | None:
        """A retryable failure (``probe``: of the probe); the new state when it changed."""
        self.failures += 1
        if self.opened_at is not None:
            if probe:
                self.probing = False
                self.next_probe = now + policy.probe
            return None
        if policy.after is not None and self.failures >= policy.after:
            self.opened_at = now
            self.next_probe = now + policy.probe
            return State.OPEN
        return State.FAILING if self.failures == 1 else None
