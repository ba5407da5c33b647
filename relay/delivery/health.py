"""Where each destination stands, and the log lines an operator reads about it.

A destination is up until an attempt to it fails; the first failure is a warning naming
the webhook-id, the status or error and when it is tried next. While it keeps failing, at
most one summary line every ``every`` seconds (count, last error); the first success after
that is one info line. Every dead letter is an error line with its reason.

Its state (relay/breaker.py) is this process's breaker, under an operator's pause: the
pauses are the store's (read by the worker), the breakers this process's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from relay.delivery.breaker import Allowance, Breaker, BreakerPolicy, State
from relay.logs import Throttle
from relay.store import AttemptRecord
from relay.store.base import DeliveryState

log = logging.getLogger("relay.destinations")


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


@dataclass
class _Failing:
    since: float
    failures: int = 0
    last_error: str = ""


@dataclass
class DestinationHealth:
    every: float = 10.0
    _failing: dict[str, _Failing] = field(default_factory=dict)
    _throttle: Throttle = field(init=False)
    breakers: dict[str, Breaker] = field(default_factory=dict)
    #: destination -> (who, reason) of the pauses standing, as the worker last read them
    paused: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._throttle = Throttle(self.every)

    def up(self, destination: str) -> bool:
        return destination not in self._failing

    def breaker(self, destination: str) -> Breaker:
        found = self.breakers.get(destination)
        if found is None:
            found = self.breakers[destination] = Breaker()
        return found

    def state(self, destination: str) -> State:
        if destination in self.paused:
            return State.PAUSED
        found = self.breakers.get(destination)
        return State.HEALTHY if found is None else found.state

    def allowance(self, destination: str, now: float) -> Allowance:
        if destination in self.paused:
            return Allowance.NONE
        found = self.breakers.get(destination)
        return Allowance.ALL if found is None else found.allowance(now)

    def outcome(self, destination: str, retryable: bool, policy: BreakerPolicy, now: float,
                probe: bool) -> State | None:
        """One attempt's outcome for the breaker; its new state when that changed."""
        if retryable:
            return self.breaker(destination).failed(policy, now, probe)
        found = self.breakers.get(destination)
        return None if found is None else found.answered()

    def last_error(self, destination: str) -> str | None:
        failing = self._failing.get(destination)
        return None if failing is None else failing.last_error

    def observe(self, destination: str, webhook_id: str, record: AttemptRecord,
                now: float | None = None) -> None:
        """Note one attempt's record and log what an operator needs to hear of it."""
        now = time.time() if now is None else now
        context = {"destination": destination, "webhook_id": webhook_id,
                   "attempt": record.attempt, "status": record.http_status}
        if record.state == DeliveryState.DELIVERED:
            failing = self._failing.pop(destination, None)
            if failing is not None:
                log.info("destination %s recovered after %d failed attempt(s) over %.0fs",
                         destination, failing.failures, now - failing.since, extra=context)
            return
        error = record.error or "failed"
        failing = self._failing.get(destination)
        if failing is None:
            failing = self._failing[destination] = _Failing(since=now)
            self._throttle.let(destination, now)
            log.warning("destination %s failing: %s attempt %d: %s; next attempt %s",
                        destination, webhook_id, record.attempt, error,
                        _when(record.next_attempt_at), extra=context)
        else:
            spoken = self._throttle.let(destination, now)
            if spoken is not None:
                log.warning("destination %s still failing: %d failed attempt(s) in the last "
                            "%.0fs, last: %s", destination, spoken, self.every, error,
                            extra={**context, "count": spoken})
        failing.failures += 1
        failing.last_error = error
        if record.state == DeliveryState.DEAD:
            log.error("dead letter: %s to %s after %d attempt(s): %s", webhook_id,
                      destination, record.attempt, error, extra=context)
