"""Destination health: the lines an operator reads during an outage, and the up state."""

from __future__ import annotations

import logging

import pytest

from relay.delivery.health import DestinationHealth
from relay.store import AttemptRecord, DeliveryState

pytestmark = pytest.mark.fast


def attempt(n: int, state: DeliveryState, status: int | None = 503) -> AttemptRecord:
    error = None if state == DeliveryState.DELIVERED else f"HTTP {status}"
    return AttemptRecord(n, n, 1000.0, 5.0, status, error, state,
                         1010.0 if state == DeliveryState.PENDING else None)


def test_outage_is_one_warning_then_summaries_then_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    """First failure: a warning with webhook-id, error and next attempt; then at most one
    summary per window with the count; a dead letter is an error; success is one info."""
    health = DestinationHealth(every=10)
    caplog.set_level(logging.INFO, logger="relay.destinations")
    health.observe("orders", "msg_1", attempt(1, DeliveryState.PENDING), now=0)
    assert not health.up("orders")
    for t in (1, 2, 3):
        health.observe("orders", "msg_1", attempt(2, DeliveryState.PENDING), now=t)
    health.observe("orders", "msg_2", attempt(3, DeliveryState.DEAD, 400), now=12)
    health.observe("orders", "msg_3", attempt(4, DeliveryState.DELIVERED, 200), now=13)
    assert health.up("orders")
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages[0] == ("WARNING", "destination orders failing: msg_1 attempt 1: HTTP 503; "
                                      "next attempt 1970-01-01T00:16:50+00:00")
    assert messages[1] == ("WARNING", "destination orders still failing: 4 failed attempt(s) "
                                      "in the last 10s, last: HTTP 400")
    assert messages[2] == ("ERROR", "dead letter: msg_2 to orders after 3 attempt(s): HTTP 400")
    assert messages[3] == ("INFO", "destination orders recovered after 5 failed attempt(s) "
                                   "over 13s")
    assert len(messages) == 4


def test_a_healthy_destination_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Successes to a destination that never failed log nothing."""
    health = DestinationHealth()
    caplog.set_level(logging.DEBUG, logger="relay.destinations")
    for n in range(3):
        health.observe("ok", f"msg_{n}", attempt(n, DeliveryState.DELIVERED, 200), now=n)
    assert caplog.records == []
    assert health.up("ok")
