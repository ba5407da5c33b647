"""relay/delivery/worker.py's pure decision: an attempt's outcome becomes its record and the
delivery's next state, without a socket or a store."""

from __future__ import annotations

import pytest

from relay.constants import STORED_ANSWER_BYTES
from relay.delivery.backoff import RetryPolicy
from relay.delivery.client import Kind, Outcome
from relay.delivery.settle import decide, stored_answer
from relay.routing import Destination
from relay.store.base import ClaimedDelivery, DeliveryState

pytestmark = pytest.mark.fast

NOW = 1_800_000_000.0
#: no jitter to speak of: the delay is the Retry-After, or nothing
NO_WAIT = RetryPolicy(max_attempts=5, initial_delay=0.0, max_delay=0.0, max_age=3600.0)


def claimed(attempt: int = 0, expires_at: float = NOW + 3600, replays: int = 0
            ) -> ClaimedDelivery:
    return ClaimedDelivery(7, 3, "svc", attempt, expires_at, "msg_1", "sms", "delivered",
                           "{}", b"{}", "application/json", replays)


def outcome(kind: Kind, status: int | None = None, error: str | None = None,
            retry_after: float | None = None, answer: bytes = b"") -> Outcome:
    return Outcome(kind, status, error, 250.0, retry_after, answer)


def destination(retry: RetryPolicy = NO_WAIT) -> Destination:
    return Destination("svc", "http://127.0.0.1:9/hook", retry=retry)


def test_a_2xx_is_delivered_with_when_it_started() -> None:
    """A delivered attempt ends the delivery; it started its duration before now."""
    record = decide(claimed(), destination(), 1, outcome(Kind.DELIVERED, 200, answer=b"ok"),
                    NOW)
    assert (record.delivery_id, record.attempt, record.state) == (7, 1, DeliveryState.DELIVERED)
    assert (record.http_status, record.error, record.next_attempt_at) == (200, None, None)
    assert record.started_at == NOW - 0.25
    assert (record.duration_ms, record.answer) == (250.0, "ok")


def test_a_permanent_failure_is_a_dead_letter_at_once() -> None:
    """A status retrying cannot help makes a dead letter on the first attempt."""
    record = decide(claimed(), destination(), 1, outcome(Kind.PERMANENT, 400, "HTTP 400"), NOW)
    assert record.state == DeliveryState.DEAD
    assert record.error == "HTTP 400 (not retryable)"
    assert record.next_attempt_at is None


def test_a_retryable_failure_waits_at_least_its_retry_after() -> None:
    """A retryable failure stays pending, due again no sooner than the Retry-After."""
    record = decide(claimed(), destination(), 1,
                    outcome(Kind.RETRYABLE, 503, "HTTP 503", retry_after=30.0), NOW)
    assert (record.state, record.error) == (DeliveryState.PENDING, "HTTP 503")
    assert record.next_attempt_at == NOW + 30.0


def test_the_jitter_stays_within_the_backoff_cap() -> None:
    """Without a Retry-After, the next attempt is due within the policy's cap."""
    policy = RetryPolicy(max_attempts=None, initial_delay=1.0, max_delay=8.0, max_age=3600.0)
    for attempt in range(1, 10):
        record = decide(claimed(attempt - 1), destination(policy), attempt,
                        outcome(Kind.RETRYABLE, None, "connection refused"), NOW)
        assert record.next_attempt_at is not None
        assert NOW <= record.next_attempt_at <= NOW + 8.0


def test_the_last_allowed_attempt_gives_up() -> None:
    """At max_attempts a retryable failure is a dead letter that says why."""
    record = decide(claimed(4), destination(), 5, outcome(Kind.RETRYABLE, 500, "HTTP 500"), NOW)
    assert record.state == DeliveryState.DEAD
    assert record.error == "HTTP 500; gave up after 5 attempts (max_attempts)"


def test_a_retry_past_the_delivery_expiry_gives_up() -> None:
    """A Retry-After that would land past max_age ends the delivery now."""
    record = decide(claimed(expires_at=NOW + 10), destination(), 1,
                    outcome(Kind.RETRYABLE, 429, "HTTP 429", retry_after=60.0), NOW)
    assert record.state == DeliveryState.DEAD
    assert record.error == "HTTP 429; gave up: next attempt would be past max_age"


def test_a_replayed_delivery_marks_its_attempts() -> None:
    """Attempts of a replayed dead letter carry the replay they belong to."""
    record = decide(claimed(replays=2), destination(), 1, outcome(Kind.DELIVERED, 204), NOW)
    assert record.replay == 2


def test_the_stored_answer_is_its_first_bytes_as_text() -> None:
    """An answer keeps its first STORED_ANSWER_BYTES as text, odd bytes replaced; none is None."""
    assert stored_answer(b"") is None
    assert stored_answer(b"\xffok") == "\ufffdok"
    assert stored_answer(b"x" * (STORED_ANSWER_BYTES + 10)) == "x" * STORED_ANSWER_BYTES
