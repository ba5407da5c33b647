"""relay/ops/destinations.py on both stores: destinations listed, paused, resumed and made
due now, and the alert a change of state makes."""

from __future__ import annotations

import time

import pytest
from conftest import make_dead

from relay.config import Settings
from relay.delivery.breaker import State
from relay.ops import destinations
from relay.routing import Destination, Match, Route
from relay.store import AttemptRecord, NewEvent, Store

SETTINGS = Settings(subhooks=(), routes=(Route("all", Match(), (
    Destination("a", "http://user:secret@127.0.0.1:9/a"),
    Destination("b", "http://127.0.0.1:9/b"))),))


async def _waiting(store: Store, destination: str, now: float) -> None:
    """One delivery to ``destination`` that failed once and waits 10 min for its next try."""
    await store.ingest(NewEvent("msg_p", "identity-p", "token-p", "sms", "delivered", None,
                                "{}", b"", "text/plain", now, ((destination, now + 3600),)))
    claimed = await store.claim(destination, 1, "test", now + 60, now + 1)
    await store.record([AttemptRecord(claimed[0].id, 1, now, 5.0, 503, "HTTP 503",
                                      "pending", now + 600)])


async def test_listing_names_every_destination_with_its_backlog(store: Store) -> None:
    """Each configured destination is listed, its URL's password masked, its backlog counted."""
    now = time.time()
    await _waiting(store, "a", now)
    await make_dead(store, 1, "b")
    rows = {r["name"]: r for r in await destinations.listing(store, SETTINGS, now)}
    assert sorted(rows) == ["a", "b"]
    assert "secret" not in rows["a"]["url"]
    assert (rows["a"]["state"], rows["a"]["pending"], rows["b"]["pending"]) == \
        ("healthy", 1, 0)
    assert rows["a"]["oldest_pending"] is not None and rows["b"]["oldest_pending"] is None


async def test_pause_and_resume(store: Store) -> None:
    """A pause shows who and why until resumed; resuming twice says it was not paused."""
    now = time.time()
    await destinations.pause(store, SETTINGS, "a", "ops", "maintenance", now)
    paused = {r["name"]: r for r in await destinations.listing(store, SETTINGS, now)}["a"]
    assert paused["state"] == "paused"
    assert (paused["paused"]["by"], paused["paused"]["reason"]) == ("ops", "maintenance")
    assert await destinations.resume(store, SETTINGS, "a", now) is not None
    assert await destinations.resume(store, SETTINGS, "a", now) is None


async def test_retry_makes_waiting_deliveries_due_now(store: Store) -> None:
    """Retry now makes the destination's waiting deliveries due, counting them."""
    await _waiting(store, "a", time.time())
    assert await destinations.retry(store, SETTINGS, "a") == 1
    assert await destinations.retry(store, SETTINGS, "b") == 0


async def test_an_unknown_destination_is_refused_with_the_known_ones(store: Store) -> None:
    """Pause, resume and retry name the destinations there are when given another."""
    with pytest.raises(destinations.UnknownDestination) as refused:
        await destinations.pause(store, SETTINGS, "c", "ops", None, time.time())
    assert "known: a, b" in str(refused.value)
    with pytest.raises(destinations.UnknownDestination):
        await destinations.retry(store, SETTINGS, "c")


@pytest.mark.fast
@pytest.mark.parametrize(("before", "after", "kind"), [
    (State.HEALTHY, State.PAUSED, "destination.paused"),
    (State.PAUSED, State.HEALTHY, "destination.resumed"),
    (State.FAILING, State.OPEN, "destination.open"),
    (State.OPEN, State.HEALTHY, "destination.closed"),
    (State.HEALTHY, State.FAILING, None),
    (State.FAILING, State.HEALTHY, None),
])
def test_the_alert_a_change_of_state_makes(before: State, after: State,
                                           kind: str | None) -> None:
    """Pausing, resuming, opening and closing alert; failing and recovering do not."""
    assert destinations._kind(before, after) == kind
