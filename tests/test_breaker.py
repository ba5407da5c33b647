"""The breaker and the token bucket: pure decisions of a destination's bad day."""

from __future__ import annotations

import pytest

from relay.delivery.backoff import next_attempt
from relay.delivery.breaker import Allowance, Breaker, BreakerPolicy, State
from relay.delivery.pacing import TokenBucket, parse_rate

pytestmark = pytest.mark.fast


def test_consecutive_failures_open_it_and_an_answer_closes_it() -> None:
    """Failing from the first retryable failure, open at ``after``; an answer closes it."""
    policy, breaker = BreakerPolicy(after=3, probe=30), Breaker()
    assert breaker.failed(policy, 0, probe=False) is State.FAILING
    assert breaker.failed(policy, 1, probe=False) is None
    assert breaker.allowance(1) is Allowance.ALL
    assert breaker.failed(policy, 2, probe=False) is State.OPEN
    assert breaker.allowance(2) is Allowance.NONE
    assert breaker.answered() is State.HEALTHY
    assert breaker.answered() is None
    assert breaker.allowance(3) is Allowance.ALL


def test_an_answer_resets_the_count() -> None:
    """Only failures in a row count: one answer in between starts again."""
    policy, breaker = BreakerPolicy(after=2), Breaker()
    breaker.failed(policy, 0, probe=False)
    breaker.answered()
    assert breaker.failed(policy, 1, probe=False) is State.FAILING
    assert breaker.state is State.FAILING


def test_open_allows_one_probe_per_interval() -> None:
    """Open: nothing until ``probe`` has passed, then one probe; none while it is out; a
    failed probe sets the next one an interval later; other failures do not."""
    policy, breaker = BreakerPolicy(after=1, probe=30), Breaker()
    breaker.failed(policy, 100, probe=False)
    assert breaker.allowance(129.9) is Allowance.NONE
    assert breaker.allowance(130) is Allowance.PROBE
    breaker.probe_started()
    assert breaker.allowance(131) is Allowance.NONE
    assert breaker.failed(policy, 131, probe=False) is None  # a late in-flight failure
    assert breaker.allowance(140) is Allowance.NONE
    assert breaker.failed(policy, 140, probe=True) is None
    assert breaker.allowance(169.9) is Allowance.NONE
    assert breaker.allowance(170) is Allowance.PROBE


def test_off_never_opens() -> None:
    """``breaker: off``: any number of failures leaves it failing, never open."""
    policy, breaker = BreakerPolicy(after=None), Breaker()
    for n in range(1000):
        breaker.failed(policy, n, probe=False)
    assert breaker.state is State.FAILING
    assert breaker.allowance(1000) is Allowance.ALL


def test_retries_last_max_age_by_default() -> None:
    """With no max_attempts, the 500th failure is retried while max_age allows; a
    configured max_attempts still ends it."""
    assert next_attempt(attempt=500, max_attempts=None, initial_delay=1, max_delay=600,
                        now=0, expires_at=3600, rand=lambda: 0.5).retry
    past = next_attempt(attempt=500, max_attempts=None, initial_delay=1, max_delay=600,
                        now=3500, expires_at=3600, rand=lambda: 0.5)
    assert not past.retry and "max_age" in past.reason
    assert not next_attempt(attempt=10, max_attempts=10, initial_delay=1, max_delay=600,
                            now=0, expires_at=3600).retry


def test_rates_parse() -> None:
    """``50/s`` and ``600/m`` are per second; anything else names the form to write."""
    assert parse_rate("50/s") == 50
    assert parse_rate(" 600 / m ") == 10
    for bad in ("0/s", "fast", "5/h", "-1/s"):
        with pytest.raises(ValueError, match=r"rate|none"):
            parse_rate(bad)


def test_bucket_bursts_one_second_then_paces() -> None:
    """A full bucket lets a second's worth start at once, then one every 1/rate."""
    bucket = TokenBucket.full(5, now=0)
    assert sum(bucket.take(0) for _ in range(10)) == 5
    assert bucket.wait(0) == pytest.approx(0.2)
    assert not bucket.take(0.19)
    assert bucket.take(0.2)
    assert bucket.available(100) == 5  # never more than the burst


def test_bucket_share_changes_keep_tokens_capped() -> None:
    """A smaller share (another instance came) caps the tokens at the new burst."""
    bucket = TokenBucket.full(10, now=0)
    bucket.set_rate(5, now=0)
    assert bucket.available(0) == 5
    assert bucket.rate == 5
