"""relay/ops/dead.py on both stores: dead letters listed, replayed and discarded, by id or
by filter."""

from __future__ import annotations

from conftest import make_dead

from relay.config import Settings
from relay.ops import dead
from relay.ops.filters import ListFilter
from relay.routing import Destination, Match, Route
from relay.store import Store, deliveries

SETTINGS = Settings(subhooks=(), routes=(Route("all", Match(), (
    Destination("a", "http://127.0.0.1:9/a"), Destination("b", "http://127.0.0.1:9/b"))),))


async def test_dead_letters_show_each_with_its_attempts(store: Store) -> None:
    """Each dead letter comes with its attempts, its contact masked, its token left out."""
    ids = await make_dead(store, 2)
    rows = await dead.dead_letters(store)
    assert sorted(r["id"] for r in rows) == ids
    row = rows[0]
    assert [(a["http_status"], a["error"]) for a in row["attempts"]] == [(400, "HTTP 400")]
    assert row["contact"] == "138****5678"
    assert "token" not in row["fields"]


async def test_a_filter_chooses_the_rows_listed(store: Store) -> None:
    """A destination filter lists that destination's dead letters only."""
    await make_dead(store, 2, "a")
    only_b = await make_dead(store, 1, "b")
    rows = await dead.dead_letters(store, ListFilter(destination="b"))
    assert [r["id"] for r in rows] == only_b


async def test_replay_by_id_queues_again_and_names_the_missing(store: Store) -> None:
    """A replay by id makes those pending again; an id that is no dead letter is missing."""
    ids = await make_dead(store, 2)
    result = await dead.replay_dead(store, SETTINGS, [ids[0], 999_999])
    assert (result["replayed"], result["ids"], result["missing"]) == (1, [ids[0]], [999_999])
    assert await deliveries.counts(store) == (1, 1)


async def test_replay_all_of_a_filter_leaves_the_others(store: Store) -> None:
    """``--all`` with a filter replays the rows the filter shows, and only those."""
    await make_dead(store, 2, "a")
    only_b = await make_dead(store, 1, "b")
    result = await dead.replay_dead(store, SETTINGS, None, ListFilter(destination="b"))
    assert (result["ids"], result["missing"]) == (only_b, [])
    assert await deliveries.counts(store) == (1, 2)


async def test_replay_all_of_a_filter_matching_nothing_replays_nothing(store: Store) -> None:
    """A filter that shows no row replays none (not every dead letter)."""
    await make_dead(store, 2, "a")
    result = await dead.replay_dead(store, SETTINGS, None, ListFilter(destination="b"))
    assert result == {"replayed": 0, "ids": [], "missing": []}
    assert await deliveries.counts(store) == (0, 2)


async def test_discard_takes_rows_off_the_list(store: Store) -> None:
    """Discarded dead letters leave the list; an unknown or invalid id is missing."""
    ids = await make_dead(store, 3)
    result = await dead.discard_dead(store, [ids[0], 0])
    assert (result["discarded"], result["missing"]) == ([ids[0]], [0])
    assert sorted(r["id"] for r in await dead.dead_letters(store)) == ids[1:]
    assert (await dead.discard_dead(store, None))["discarded"] == ids[1:]
    assert await dead.dead_letters(store) == []
