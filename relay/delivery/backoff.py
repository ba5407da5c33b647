"""Backoff: when to try a delivery again. Pure; the random source is a parameter.

Exponential with full jitter (a uniform draw between 0 and the capped exponential), so many
deliveries failing together do not retry together. ``Retry-After`` from the service is a
floor: the relay never comes back sooner than asked, and never later than ``max_delay``
unless the service asked for more.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from relay import constants as c


@dataclass(frozen=True)
class RetryPolicy:
    """A destination's (or the global) retry settings."""

    #: None: no limit, ``max_age`` alone ends retries
    max_attempts: int | None = c.DEFAULT_MAX_ATTEMPTS
    initial_delay: float = c.DEFAULT_INITIAL_DELAY_S
    max_delay: float = c.DEFAULT_MAX_DELAY_S
    max_age: float = c.DEFAULT_MAX_AGE_S


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt: retry after ``delay`` seconds, or give up."""

    retry: bool
    delay: float
    reason: str


def exponential_cap(attempt: int, initial: float, maximum: float) -> float:
    """The ceiling of the jitter draw after ``attempt`` (1-based) failed attempts."""
    return min(maximum, initial * 2.0 ** max(0, attempt - 1))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def next_attempt(
    *,
    attempt: int,
    max_attempts: int | None,
    initial_delay: float,
    max_delay: float,
    now: float,
    expires_at: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """After the ``attempt``-th failure (retryable), retry when, or give up and why."""
    if max_attempts is not None and attempt >= max_attempts:
        return Decision(False, 0.0, f"gave up after {attempt} attempts (max_attempts)")
    delay = rand() * exponential_cap(attempt, initial_delay, max_delay)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if now + delay > expires_at:
        return Decision(False, 0.0, "gave up: next attempt would be past max_age")
    return Decision(True, delay, "retry")
