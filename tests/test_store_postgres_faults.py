"""The PostgreSQL store when one grouped write is bad: that write fails alone, with
StoreUnavailable, and its group neighbours are committed; nobody waits for ever.

Writes issued together (one ``asyncio.gather``) are queued in the same loop turn, so they
share one group (relay/store/grouping.py). Skipped, with the reason, without a PostgreSQL
server (RELAY_TEST_POSTGRES_URL; .ci/run installs and starts one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from relay.store import AttemptRecord, NewEvent, StoreUnavailable, deliveries
from relay.store.base import DeliveryState
from relay.store.postgres import PostgresStore

#: Long enough for a loaded machine, far shorter than pytest's own timeout: a group whose
#: futures hang fails here, naming the cause, instead of being killed.
WITHIN_S = 20.0


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    await opened.open()
    yield opened
    await opened.close()


def new_event(n: int, text: str = "") -> NewEvent:
    now = time.time()
    return NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", "sms", "delivered", None,
                    f'{{"n":{n}, "text": "{text}"}}', b"n=1",
                    "application/x-www-form-urlencoded", now, (("a", now + 3600),))


async def together(*calls: Any) -> list[Any]:
    """Results (or exceptions) of writes issued in one loop turn, so in one group."""
    results: list[Any] = await asyncio.wait_for(
        asyncio.gather(*calls, return_exceptions=True), WITHIN_S)
    return results


def assert_ingested(results: list[Any], count: int) -> None:
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == count


async def test_replay_of_an_id_too_large_for_bigint_fails_alone(
    store: PostgresStore,
) -> None:
    """asyncpg refuses to encode 10**30 as a BIGINT: that replay fails with StoreUnavailable
    (its cause kept); the ingests of its group are committed."""
    replay, *ingests = await together(deliveries.replay_dead(store, [10**30], time.time(), 3600),
                                      *(store.ingest(new_event(n)) for n in range(8)))
    assert isinstance(replay, StoreUnavailable), replay
    assert isinstance(replay.__cause__, asyncpg.PostgresError | ValueError | OverflowError)
    assert_ingested(ingests, 8)
    assert await deliveries.counts(store) == (8, 0)


async def test_a_value_postgresql_refuses_fails_alone(store: PostgresStore) -> None:
    """A NUL character is refused by the server, which aborts the transaction: only that
    ingest fails; the others, before and after it in the group, are committed."""
    results = await together(*(store.ingest(new_event(n, "\x00" if n == 3 else ""))
                               for n in range(8)))
    assert isinstance(results[3], StoreUnavailable), results[3]
    assert isinstance(results[3].__cause__, asyncpg.PostgresError)
    assert_ingested(results[:3] + results[4:], 7)
    assert await deliveries.counts(store) == (7, 0)


async def test_an_overflow_in_an_op_fails_alone(store: PostgresStore) -> None:
    """An OverflowError raised in an op as asyncpg encodes a value (a time too large for a
    float) is StoreUnavailable for that caller alone."""
    replay, *ingests = await together(store.change(
        deliveries.REPLAY_DEAD, state=DeliveryState.PENDING, now=1.0, expires_at=10**400,
        every=True, ids=[]),
                                      *(store.ingest(new_event(n)) for n in range(4)))
    assert isinstance(replay, StoreUnavailable), replay
    assert "too large" in str(replay.__cause__)
    assert_ingested(ingests, 4)


async def test_a_duration_asyncpg_cannot_encode_fails_alone(store: PostgresStore) -> None:
    """asyncpg refuses an attempt's duration too large for a float8 (an executemany):
    that record fails; the ingests of its group are committed."""
    bad = AttemptRecord(1, 1, time.time(), 10**400, None, None, DeliveryState.PENDING)
    record, *ingests = await together(store.record([bad]),
                                      *(store.ingest(new_event(n)) for n in range(4)))
    assert isinstance(record, StoreUnavailable), record
    assert_ingested(ingests, 4)


async def test_a_bad_op_alone_fails_and_the_store_goes_on(store: PostgresStore) -> None:
    """A group of one bad op fails it with StoreUnavailable; the store still answers."""
    with pytest.raises(StoreUnavailable) as caught:
        await asyncio.wait_for(store.claim("a", 10**30, "w", time.time() + 60, time.time()),
                               WITHIN_S)
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError | ValueError)
    assert await store.ingest(new_event(1)) is not None
    await store.ping()


async def test_an_ops_own_bug_reaches_its_caller_as_it_is(store: PostgresStore) -> None:
    """An exception that is no database's (a bug in an op) is not disguised as
    StoreUnavailable, and fails only its own caller."""
    async def broken(conn: object) -> None:
        raise KeyError("a bug")

    bug, *ingests = await together(store._write(broken),
                                   *(store.ingest(new_event(n)) for n in range(4)))
    assert isinstance(bug, KeyError), bug
    assert_ingested(ingests, 4)


async def test_connections_killed_under_a_group_fail_it_and_the_store_recovers(
    store: PostgresStore, postgres_url: str
) -> None:
    """PostgreSQL ends the store's connections (a restart, an administrator): the group
    on a dead connection fails with StoreUnavailable, nobody waits for ever, and the next
    writes get new connections."""
    assert await store.ingest(new_event(100)) is not None  # a pooled connection, now idle
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await admin.close()
    results = await together(*(store.ingest(new_event(n)) for n in range(4)))
    # Whether asyncpg noticed the dead connections before using one is a race; what fails
    # is mapped by the store itself, naming PostgreSQL and keeping asyncpg's error.
    for result in results:
        assert isinstance(result, int) or (isinstance(result, StoreUnavailable)
                                           and str(result).startswith("postgresql: ")
                                           and result.__cause__ is not None), result
    assert isinstance(await asyncio.wait_for(store.ingest(new_event(200)), WITHIN_S), int)
