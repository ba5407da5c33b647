"""A destination's ``rate`` (SPEC 17): a token bucket. Pure: the caller gives the time.

The bucket holds at most one second's worth of tokens (the burst) and starts full; each
delivery started takes one. With several instances on PostgreSQL each live instance runs
its bucket at an equal share of the rate, so the deployment as a whole keeps to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m)\s*")


def parse_rate(text: str) -> float:
    """Deliveries per second from ``50/s`` or ``600/m``."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate (write 50/s or 600/m)")
    per = float(match[1]) / (60.0 if match[2] == "m" else 1.0)
    if per <= 0:
        raise ValueError(f"{text!r} must be more than none")
    return per


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, now: float) -> TokenBucket:
        return cls(rate, max(1.0, rate), now)

    @property
    def burst(self) -> float:
        return max(1.0, self.rate)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def available(self, now: float) -> int:
        """Deliveries that may start now."""
        self._refill(now)
        return int(self.tokens)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds until the next delivery may start."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def set_rate(self, rate: float, now: float) -> None:
        """A new share (instances came or went) or a reloaded rate; tokens kept, capped."""
        self._refill(now)
        self.rate = rate
        self.tokens = min(self.tokens, self.burst)
