"""relay/ops/quarantine.py on both stores: held pushes listed, replayed against the schemas
of the running config, and discarded, by id or by filter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_held, relay_config

from relay.ops import quarantine
from relay.ops.filters import ListFilter
from relay.runtime import RunningConfig
from relay.store import Store, lookup

VALID = {"events": "delivered", "address": "13812345678", "app": "1", "send_id": "s-1",
         "timestamp": "1800000000", "token": "t" * 32, "signature": "x" * 32}


@pytest.fixture
def running(write_config: Callable[[str], Path]) -> RunningConfig:
    return RunningConfig.load(write_config(relay_config(
        '  - {name: all, destinations: [{name: a, url: "http://127.0.0.1:9/a"}]}')))


async def test_held_pushes_are_listed_without_their_body(store: Store) -> None:
    """Every held push is listed with its problems, never its raw body."""
    ids = await make_held(store, 2)
    rows = await quarantine.quarantined(store)
    assert sorted(r["id"] for r in rows) == ids
    assert all("body" not in r and r["problems"] == ["x: missing"] for r in rows)


async def test_a_filter_lists_the_pushes_it_holds(store: Store) -> None:
    """A product filter lists that product's held pushes only."""
    await make_held(store, 2, "sms")
    mail = await make_held(store, 1, "mail")
    assert [r["id"] for r in await quarantine.quarantined(store, ListFilter(product="mail"))] \
        == mail


async def test_a_replay_ingests_what_the_schemas_now_accept(store: Store,
                                                            running: RunningConfig) -> None:
    """A push the schemas accept becomes an event; one they refuse stays, with why."""
    valid = await make_held(store, 1, fields=VALID)
    invalid = await make_held(store, 1)
    done = await quarantine.replay_quarantine(store, running, None)
    assert [r["id"] for r in done["replayed"]] == valid
    assert done["replayed"][0]["note"] == "replayed"
    assert [r["id"] for r in done["still_invalid"]] == invalid
    event_id = done["replayed"][0]["event_id"]
    assert (await lookup.event(store, event_id) or {})["send_id"] == "s-1"
    again = await quarantine.replay_quarantine(store, running, [*valid, 424242])
    assert (again["replayed"], again["missing"]) == ([], [*valid, 424242])


async def test_discard_by_id_and_by_filter(store: Store) -> None:
    """Discarding by id names the missing; by filter it takes only the rows shown."""
    sms = await make_held(store, 2, "sms")
    mail = await make_held(store, 1, "mail")
    first = await quarantine.discard_quarantine(store, [sms[0], 0])
    assert (first["discarded"], first["missing"]) == ([sms[0]], [0])
    by_filter = await quarantine.discard_quarantine(store, None, ListFilter(product="mail"))
    assert by_filter["discarded"] == mail
    assert [r["id"] for r in await quarantine.quarantined(store)] == sms[1:]
