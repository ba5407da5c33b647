from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.delivery.backoff import exponential_cap, next_attempt, parse_retry_after

pytestmark = pytest.mark.fast


@given(st.integers(1, 60), st.floats(0.001, 10), st.floats(0.001, 1000), st.floats(0, 1))
def test_delay_is_jittered_below_the_capped_exponential(
    attempt: int, initial: float, cap: float, draw: float
) -> None:
    """delay = draw x min(cap, initial x 2^(attempt-1)): never above the cap, never negative."""
    decision = next_attempt(attempt=attempt, max_attempts=100, initial_delay=initial,
                            max_delay=cap, now=0, expires_at=1e12, rand=lambda: draw)
    assert decision.retry
    assert 0 <= decision.delay <= min(cap, initial * 2 ** (attempt - 1)) + 1e-9
    assert decision.delay == draw * exponential_cap(attempt, initial, cap)


def test_zero_jitter_for_tests_and_growth() -> None:
    """With the draw fixed at 1 the delays double up to the cap."""
    delays = [next_attempt(attempt=a, max_attempts=10, initial_delay=1, max_delay=10, now=0,
                           expires_at=1e9, rand=lambda: 1.0).delay for a in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_retry_after_is_a_floor() -> None:
    """Retry-After wins over a shorter backoff, never the other way round."""
    decision = next_attempt(attempt=1, max_attempts=5, initial_delay=1, max_delay=10, now=0,
                            expires_at=1e9, retry_after=30, rand=lambda: 0.5)
    assert decision.delay == 30


def test_max_attempts_and_max_age_end_it() -> None:
    """Past max_attempts, or when the next try would be after expiry, give up."""
    assert not next_attempt(attempt=5, max_attempts=5, initial_delay=1, max_delay=1, now=0,
                            expires_at=1e9).retry
    late = next_attempt(attempt=1, max_attempts=5, initial_delay=1, max_delay=1, now=100,
                        expires_at=100.5, rand=lambda: 1.0)
    assert not late.retry
    assert "max_age" in late.reason


def test_parse_retry_after() -> None:
    """Seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after(formatdate(1000, usegmt=True), now=990) == 10
    assert parse_retry_after(formatdate(1000, usegmt=True), now=2000) == 0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None
