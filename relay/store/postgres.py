"""PostgreSQL store: several relay instances share one durable queue.

The same interface as the SQLite store, for instances behind one load balancer:

- dedupe by token and by identity through unique constraints, so two instances taking
  re-pushes of one event at once still accept it once;
- deliveries claimed with ``FOR UPDATE SKIP LOCKED`` and leased until a time: an instance
  that dies leaves leases that run out, and the others pick its rows up then (never
  before: a lease that holds is never claimed twice);
- writes from concurrent requests grouped into one transaction (one WAL flush), each in
  its own savepoint, as in SQLite;
- versioned migrations, run under an advisory lock so instances starting together do not
  race;
- a partial index on pending rows, so claims stay fast however many delivered rows pile up.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from relay.store.base import (
    AttemptRecord,
    ClaimedDelivery,
    NewEvent,
    QuarantinedPush,
    StoreUnavailable,
)
from relay.store.grouping import GroupedWriter

T = TypeVar("T")
if TYPE_CHECKING:  # the stubs make the pool's connection proxy generic; asyncpg does not
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
Op = Callable[[Connection], Awaitable[Any]]

#: Key of the advisory lock that serialises migrations between instances.
MIGRATION_LOCK = 0x5EB400C

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        identity TEXT NOT NULL UNIQUE,
        token TEXT NOT NULL,
        product TEXT NOT NULL,
        event TEXT NOT NULL,
        tag TEXT,
        fields TEXT NOT NULL,
        body BYTEA NOT NULL,
        content_type TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE tokens (
        token TEXT PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX tokens_seen ON tokens (seen_at);
    CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        event_id BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempt INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        last_error TEXT,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (event_id, destination)
    );
    CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at)
        WHERE state = 'pending';
    CREATE INDEX deliveries_dead ON deliveries (id) WHERE state = 'dead';
    CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE TABLE attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL,
        http_status INTEGER,
        error TEXT,
        outcome TEXT NOT NULL
    );
    CREATE INDEX attempts_delivery ON attempts (delivery_id);
    CREATE TABLE quarantine (
        id BIGSERIAL PRIMARY KEY,
        identity TEXT NOT NULL UNIQUE,
        subhook_path TEXT NOT NULL,
        product TEXT NOT NULL,
        fields TEXT NOT NULL,
        body BYTEA NOT NULL,
        content_type TEXT NOT NULL,
        problems TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'held',
        event_id BIGINT,
        note TEXT
    );
    """,
]

#: One round trip: remember the token, then (only if it is new) the event, then (only if
#: its identity is new) its deliveries; the new event's id, or NULL for a duplicate.
_INGEST = """
WITH fresh AS (
    INSERT INTO tokens (token, seen_at) VALUES ($3, $10)
    ON CONFLICT DO NOTHING RETURNING 1
), event AS (
    INSERT INTO events (webhook_id, identity, token, product, event, tag, fields, body,
                        content_type, received_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM fresh)
    ON CONFLICT (identity) DO NOTHING RETURNING id
), owed AS (
    INSERT INTO deliveries (event_id, destination, next_attempt_at, expires_at, updated_at)
    SELECT event.id, d.name, $10, d.expires, $10
    FROM event, unnest($11::text[], $12::float8[]) AS d(name, expires)
)
SELECT id FROM event
"""

_CLAIM = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE state = 'pending' AND destination = $1 AND next_attempt_at <= $2
      AND (lease_until IS NULL OR lease_until < $2)
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET lease_owner = $4, lease_until = $5
FROM due, events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING d.id, d.event_id, d.destination, d.attempt, d.expires_at, e.webhook_id,
          e.product, e.event, e.fields, e.body, e.content_type, d.next_attempt_at
"""

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresStore:
    """The shared store (see module docstring)."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._writer: GroupedWriter[Op] = GroupedWriter(self._commit_group)
        #: transactions committed by the grouped writer (how grouping is observed)
        self.commits = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _where(self) -> str:
        """The URL without its password, for error messages."""
        head, sep, tail = self.url.partition("@")
        if not sep:
            return self.url
        scheme, _, credentials = head.partition("://")
        return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"

    async def _run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._pool.acquire() as conn:
                return await fn(conn)
        except _DB_ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` inside the next grouped transaction; return after its commit."""
        result: T = await self._writer.write(fn)
        return result

    async def _commit_group(self, ops: list[Op]) -> list[Any]:
        return await self._run(partial(self._transaction, ops=ops))

    async def _transaction(self, conn: Connection, ops: list[Op]) -> list[Any]:
        """Every op of the batch in one transaction, without savepoints (each costs two
        round trips); when one op fails, the batch is rolled back and each op is run again
        in its own transaction, so one failing write never fails its neighbours."""
        try:
            async with conn.transaction():
                results = [await fn(conn) for fn in ops]
            self.commits += 1
            return results
        except (asyncpg.IntegrityConstraintViolationError, ValueError):
            if len(ops) == 1:
                raise
        results = []
        for fn in ops:
            try:
                async with conn.transaction():
                    results.append(await fn(conn))
                self.commits += 1
            except (asyncpg.IntegrityConstraintViolationError, ValueError) as exc:
                results.append(exc)
        return results

    # -- lifetime ---------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1,
                                                   max_size=self.pool_size, timeout=10)
            async with self._pool.acquire() as conn:
                await _migrate(conn)
        except (*_DB_ERRORS, ValueError) as exc:
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            raise StoreUnavailable(f"cannot open {self._where()}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._writer.drain()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        await self._run(lambda conn: conn.fetchval("SELECT 1"))

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, event: NewEvent) -> int | None:
        async def write(conn: Connection) -> int | None:
            event_id: int | None = await conn.fetchval(
                _INGEST, event.webhook_id, event.identity, event.token, event.product,
                event.event, event.tag, event.fields, event.body, event.content_type,
                event.received_at, [n for n, _ in event.destinations],
                [e for _, e in event.destinations])
            return event_id

        return await self._write(write)

    async def seen(self, token: str, identity: str) -> bool:
        return bool(await self._run(lambda conn: conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM tokens WHERE token = $1)"
            " OR EXISTS (SELECT 1 FROM events WHERE identity = $2)", token, identity)))

    async def quarantine(self, push: QuarantinedPush) -> int:
        async def write(conn: Connection) -> int:
            return int(await conn.fetchval(
                "INSERT INTO quarantine (identity, subhook_path, product, fields, body,"
                " content_type, problems, received_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
                " ON CONFLICT (identity) DO UPDATE SET problems = excluded.problems"
                " RETURNING id",
                push.identity, push.subhook_path, push.product, push.fields, push.body,
                push.content_type, push.problems, push.received_at))

        return await self._write(write)

    # -- delivery ---------------------------------------------------------------------------

    async def pending_destinations(self, now: float) -> list[str]:
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT DISTINCT destination FROM deliveries WHERE state = 'pending'"
            " AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)", now))
        return [r[0] for r in rows]

    async def claim(
        self, destination: str, limit: int, owner: str, lease_until: float, now: float
    ) -> list[ClaimedDelivery]:
        return await self.claim_due({destination: (limit, lease_until)}, owner, now)

    async def claim_due(self, wants: Mapping[str, tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]:
        async def write(conn: Connection) -> list[ClaimedDelivery]:
            claimed: list[ClaimedDelivery] = []
            for destination, (limit, lease_until) in wants.items():
                rows = await conn.fetch(_CLAIM, destination, now, limit, owner, lease_until)
                rows = sorted(rows, key=lambda r: (r["next_attempt_at"], r["id"]))
                claimed += [ClaimedDelivery(*list(r.values())[:11]) for r in rows]
            return claimed

        return await self._write(write)

    async def record(self, records: list[AttemptRecord]) -> None:
        async def write(conn: Connection) -> None:
            await conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
                " http_status, error, outcome) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                [(r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.http_status,
                  r.error, r.state) for r in records])
            await conn.executemany(
                "UPDATE deliveries SET state = $1, attempt = $2, next_attempt_at ="
                " coalesce($3, next_attempt_at), lease_owner = NULL, lease_until = NULL,"
                " last_error = $4, updated_at = $5 WHERE id = $6",
                [(r.state, r.attempt, r.next_attempt_at, r.error,
                  r.started_at + r.duration_ms / 1000, r.delivery_id) for r in records])

        await self._write(write)

    async def release(self, owner: str) -> int:
        async def write(conn: Connection) -> int:
            status = await conn.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = $1 AND state = 'pending'", owner)
            return int(status.split()[-1])

        return await self._write(write)

    async def counts(self) -> tuple[int, int]:
        row = await self._run(lambda conn: conn.fetchrow(
            "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'),"
            " (SELECT count(*) FROM deliveries WHERE state = 'dead')"))
        assert row is not None
        return int(row[0]), int(row[1])

    # -- dead letters and quarantine --------------------------------------------------------

    async def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT d.id, d.destination, d.attempt, d.last_error, d.updated_at, e.webhook_id,"
            " e.product, e.event, e.fields FROM deliveries d JOIN events e ON e.id = d.event_id"
            " WHERE d.state = 'dead' ORDER BY d.id LIMIT $1", limit))
        return [dict(r) for r in rows]

    async def attempts(self, delivery_id: int) -> list[dict[str, Any]]:
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT attempt, started_at, duration_ms, http_status, error, outcome FROM attempts"
            " WHERE delivery_id = $1 ORDER BY id", delivery_id))
        return [dict(r) for r in rows]

    async def replay_dead(self, ids: list[int] | None, now: float, max_age: float) -> int:
        async def write(conn: Connection) -> int:
            status = await conn.execute(
                "UPDATE deliveries SET state = 'pending', attempt = 0, next_attempt_at = $1,"
                " expires_at = $2, lease_owner = NULL, lease_until = NULL, updated_at = $1"
                " WHERE state = 'dead' AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))",
                now, now + max_age, ids)
            return int(status.split()[-1])

        return await self._write(write)

    async def quarantined(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT id, subhook_path, product, fields, body, content_type, problems, received_at"
            " FROM quarantine WHERE state = 'held' ORDER BY id LIMIT $1", limit))
        out = [dict(r) for r in rows]
        for row in out:
            row["problems"] = json.loads(row["problems"])
        return out

    async def resolve_quarantine(self, qid: int, event_id: int | None, note: str) -> None:
        await self._write(lambda conn: conn.execute(
            "UPDATE quarantine SET state = 'replayed', event_id = $1, note = $2 WHERE id = $3",
            event_id, note, qid))

    # -- retention --------------------------------------------------------------------------

    async def prune(self, delivered_before: float, tokens_before: float) -> tuple[int, int]:
        """Delete events whose every delivery was delivered before ``delivered_before``
        (their deliveries and attempts go with them) and tokens first seen before
        ``tokens_before``; (events, tokens) deleted."""
        async def write(conn: Connection) -> tuple[int, int]:
            events = await conn.execute(
                "DELETE FROM events e WHERE e.received_at < $1 AND NOT EXISTS ("
                " SELECT 1 FROM deliveries d WHERE d.event_id = e.id"
                " AND (d.state <> 'delivered' OR d.updated_at >= $1))", delivered_before)
            tokens = await conn.execute("DELETE FROM tokens WHERE seen_at < $1", tokens_before)
            return int(events.split()[-1]), int(tokens.split()[-1])

        return await self._write(write)


async def _migrate(conn: Connection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for version, script in enumerate(MIGRATIONS, start=1):
            if version > current:
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
