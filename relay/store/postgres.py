"""PostgreSQL store: several relay instances share one durable queue.

The same interface as the SQLite store, for instances behind one load balancer:

- dedupe by token and by identity through unique constraints, so two instances taking
  re-pushes of one event at once still accept it once;
- deliveries claimed with ``FOR UPDATE SKIP LOCKED`` and leased until a time; a lease is
  void once that time passes or once the instance holding it has stopped heartbeating
  (``instances``: no beat for ``dead_after``, 15 s), so rows of an instance that died are
  claimed again within 15 s whatever the destination's timeout, and a lease whose holder
  is alive and whose time has not passed is never claimed twice;
- writes from concurrent requests grouped into one transaction (one WAL flush); when the
  group fails, each op is run again alone, so one bad op (a constraint, a value PostgreSQL
  or asyncpg refuses) fails only its own caller;
- versioned migrations, run under an advisory lock so instances starting together do not
  race;
- a partial index on pending rows, so claims stay fast however many delivered rows pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from relay import constants as c
from relay.redact import redact_text, redact_url
from relay.signature import token_key
from relay.store.base import (
    AttemptRecord,
    ClaimedDelivery,
    Gauges,
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

log = logging.getLogger("relay.store")


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
    # 2: instance heartbeats, which void the leases of an instance that died (_FREE)
    """
    CREATE TABLE instances (
        owner TEXT PRIMARY KEY,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: the token memory keeps 16 bytes per token (signature.token_key) for
    # retention.tokens, not the token's text for the replay window
    """
    CREATE TABLE token_memory (
        key BYTEA PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX token_memory_seen ON token_memory (seen_at);
    INSERT INTO token_memory
    SELECT CASE WHEN token ~ '^[0-9a-fA-F]{32}$' THEN decode(token, 'hex')
                ELSE substring(sha256(convert_to(token, 'UTF8')) FROM 1 FOR 16) END,
           seen_at
    FROM tokens ON CONFLICT DO NOTHING;
    DROP TABLE tokens;
    """,
]

# Heartbeats and the liveness check (_CLAIM, _PENDING_DESTINATIONS) both read the
# database's clock, ``extract(epoch FROM clock_timestamp())``, never an instance's:
# instances on several hosts may disagree about the time, and a host whose clock runs ahead
# must not take its neighbours for dead.
_BEAT = """
INSERT INTO instances (owner, heartbeat_at)
SELECT unnest($1::text[]), extract(epoch FROM clock_timestamp())::float8
ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
"""

#: One round trip: remember the token, then (only if it is new) the event, then (only if
#: its identity is new) its deliveries; the new event's id, or NULL for a duplicate.
_INGEST = """
WITH fresh AS (
    INSERT INTO token_memory (key, seen_at) VALUES ($13, $10)
    ON CONFLICT DO NOTHING RETURNING 1
), event AS (
    INSERT INTO events (webhook_id, identity, token, product, event, tag, fields, body,
                        content_type, received_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
    WHERE EXISTS (SELECT 1 FROM fresh) OR $14::boolean
    ON CONFLICT (identity) DO NOTHING RETURNING id
), owed AS (
    INSERT INTO deliveries (event_id, destination, next_attempt_at, expires_at, updated_at)
    SELECT event.id, d.name, $10, d.expires, $10
    FROM event, unnest($11::text[], $12::float8[]) AS d(name, expires)
)
SELECT id FROM event
"""

#: A due row is free when it is not leased, its lease ran out (by the caller's time $2), or
#: its owner has no beat within $6 (dead_after) seconds. The owners alive are one
#: uncorrelated subquery, hashed once per statement, so the claim still walks the partial
#: index ``deliveries_due`` rather than the table. (NOT IN is safe: ``owner`` is never NULL,
#: and a NULL lease_owner comes with a NULL lease_until.)
_CLAIM = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE state = 'pending' AND destination = $1 AND next_attempt_at <= $2
      AND (lease_until IS NULL OR lease_until < $2
           OR lease_owner NOT IN (
               SELECT owner FROM instances
               WHERE heartbeat_at >= extract(epoch FROM clock_timestamp())::float8 - $6))
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

#: Destinations with a due row free to claim (as in _CLAIM).
_PENDING_DESTINATIONS = """
SELECT DISTINCT destination FROM deliveries
WHERE state = 'pending' AND next_attempt_at <= $1
  AND (lease_until IS NULL OR lease_until < $1
       OR lease_owner NOT IN (
           SELECT owner FROM instances
           WHERE heartbeat_at >= extract(epoch FROM clock_timestamp())::float8 - $2))
"""

#: What the database, the network or asyncpg's encoding of a value raise: StoreUnavailable
#: for the caller. (asyncpg's DataError is a PostgresError in some versions and a
#: ValueError in others; an int too large for its column is an OverflowError in some; a
#: connection the server ended that asyncpg has not noticed yet fails its next statement
#: with InternalClientError.)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError,
              asyncpg.exceptions.InternalClientError, OSError, TimeoutError, OverflowError,
              ValueError)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """``exc`` as StoreUnavailable, its cause kept (also when returned as an op's result,
    not raised ``from exc``)."""
    error = StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _failed(exc: Exception) -> Exception:
    """A grouped op's exception as its result: the database's (BEGIN or COMMIT refused; an
    op maps its own) as StoreUnavailable, any other (a bug) as it is."""
    return _unavailable(exc) if isinstance(exc, _DB_ERRORS) else exc


class PostgresStore:
    """The shared store (see module docstring)."""

    def __init__(self, url: str, pool_size: int = 8, *,
                 heartbeat_interval: float = c.DEFAULT_HEARTBEAT_S,
                 dead_after: float = c.DEFAULT_INSTANCE_DEAD_AFTER_S) -> None:
        self.url = url
        self.pool_size = pool_size
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._writer: GroupedWriter[Op] = GroupedWriter(self._commit_group)
        #: lease owners this store has claimed for (and committed a beat for)
        self._owners: set[str] = set()
        #: time.monotonic() before the last beat that committed
        self._beaten_at = float("-inf")
        self._heartbeat_task: asyncio.Task[None] | None = None
        #: transactions committed by the grouped writer (how grouping is observed)
        self.commits = 0

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._pool.acquire() as conn:
                return await fn(conn)
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` inside the next grouped transaction; return after its commit. What
        the database or asyncpg raise for this op alone is StoreUnavailable for its caller
        only; any other exception (a bug) reaches the caller as it is."""
        async def op(conn: Connection) -> T:
            try:
                return await fn(conn)
            except _DB_ERRORS as exc:
                raise _unavailable(exc) from exc

        result: T = await self._writer.write(op)
        return result

    async def _commit_group(self, ops: list[Op]) -> list[Any]:
        return await self._run(partial(self._transaction, ops=ops))

    async def _transaction(self, conn: Connection, ops: list[Op]) -> list[Any]:
        """Every op of the batch in one transaction, without savepoints (each costs two
        round trips); when any op fails, the batch is rolled back and each op is run again
        in its own transaction, so one failing write never fails its neighbours. An op's
        exception is its result (the grouped writer raises it to that caller alone); only
        a lost connection, which no op can get past, fails the whole group."""
        try:
            async with conn.transaction():
                results = [await fn(conn) for fn in ops]
        except Exception as exc:
            if conn.is_closed():
                raise
            if len(ops) == 1:
                return [_failed(exc)]
        else:
            self.commits += 1
            return results
        return [await self._alone(conn, fn) for fn in ops]

    async def _alone(self, conn: Connection, fn: Op) -> Any:
        """``fn`` in a transaction of its own; its exception as its result. Not raised even
        when the connection is lost: the ops before it are committed, and their callers
        must hear so (the ops after it fail at BEGIN, at once)."""
        try:
            async with conn.transaction():
                result = await fn(conn)
        except Exception as exc:
            return _failed(exc)
        self.commits += 1
        return result

    # -- lifetime ---------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1,
                                                   max_size=self.pool_size, timeout=10)
            async with self._pool.acquire() as conn:
                await _migrate(conn)
        except _DB_ERRORS as exc:
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            raise StoreUnavailable(redact_text(f"cannot open {redact_url(self.url)}: "
                                               f"{type(exc).__name__}: {exc}", self.url)) from exc
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="relay-heartbeat")

    async def close(self) -> None:
        await self._writer.drain()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        if self._pool is not None:
            if self._owners:
                # Gone on purpose: whatever this store still leases is free at once, not
                # after dead_after (the worker has released its leases already, unless the
                # database refused; then they wait for their owner to count as dead).
                try:
                    await self._run(lambda conn: conn.execute(
                        "DELETE FROM instances WHERE owner = ANY($1::text[])",
                        sorted(self._owners)))
                except StoreUnavailable as exc:
                    log.warning("could not remove this instance's heartbeat: %s", exc)
                self._owners.clear()
            await self._pool.close()
            self._pool = None

    async def _heartbeat(self) -> None:
        """Beat for every owner this store has claimed for, every ``heartbeat_interval``,
        until closed. A beat that fails is logged and tried again on the next turn: the
        task must outlive a database outage, or the instance would count as dead after."""
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self._owners:
                continue
            started = time.monotonic()
            try:
                await self._run(partial(_beat, owners=sorted(self._owners)))
            except StoreUnavailable as exc:
                log.warning("heartbeat failed: %s; trying again in %.0f s", exc,
                            self.heartbeat_interval)
                continue
            except Exception:
                log.exception("heartbeat failed; trying again in %.0f s",
                              self.heartbeat_interval)
                continue
            self._beaten_at = max(self._beaten_at, started)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.fetchval("SELECT 1"))

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, event: NewEvent) -> int | None:
        async def write(conn: Connection) -> int | None:
            event_id: int | None = await conn.fetchval(
                _INGEST, event.webhook_id, event.identity, event.token, event.product,
                event.event, event.tag, event.fields, event.body, event.content_type,
                event.received_at, [n for n, _ in event.destinations],
                [e for _, e in event.destinations], token_key(event.token), event.token_seen)
            return event_id

        return await self._write(write)

    async def seen(self, token: str, identity: str) -> bool:
        return bool(await self._run(lambda conn: conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM token_memory WHERE key = $1)"
            " OR EXISTS (SELECT 1 FROM events WHERE identity = $2)", token_key(token),
            identity)))

    async def quarantine(self, push: QuarantinedPush) -> int:
        async def write(conn: Connection) -> int:
            if push.token:
                await conn.execute("INSERT INTO token_memory (key, seen_at) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING", token_key(push.token),
                                   push.received_at)
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
            _PENDING_DESTINATIONS, now, self.dead_after))
        return [r[0] for r in rows]

    async def claim(
        self, destination: str, limit: int, owner: str, lease_until: float, now: float
    ) -> list[ClaimedDelivery]:
        return await self.claim_due({destination: (limit, lease_until)}, owner, now)

    async def claim_due(self, wants: Mapping[str, tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]:
        # A lease must never commit without a fresh beat of its owner, or another instance
        # could take it for a dead one's at once: a new owner, or one whose last beat may
        # not outlive the next heartbeat interval (the task fell behind: a stall, an
        # outage), beats in the claim's own transaction.
        started = time.monotonic()
        stale = started - self._beaten_at > self.dead_after - self.heartbeat_interval
        beat = sorted({*self._owners, owner}) if stale or owner not in self._owners else None

        async def write(conn: Connection) -> list[ClaimedDelivery]:
            if beat is not None:
                await _beat(conn, beat)
            claimed: list[ClaimedDelivery] = []
            for destination, (limit, lease_until) in wants.items():
                rows = await conn.fetch(_CLAIM, destination, now, limit, owner, lease_until,
                                        self.dead_after)
                rows = sorted(rows, key=lambda r: (r["next_attempt_at"], r["id"]))
                claimed += [ClaimedDelivery(*list(r.values())[:11]) for r in rows]
            return claimed

        claimed = await self._write(write)
        if beat is not None:
            # Only once committed: a beat rolled back with its claim must be made again.
            self._owners.add(owner)
            self._beaten_at = max(self._beaten_at, started)
        return claimed

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

    async def gauges(self) -> Gauges:
        async def read(conn: Connection) -> Gauges:
            backlog = {r["destination"]: (int(r["count"]), float(r["oldest"]))
                       for r in await conn.fetch(
                           "SELECT d.destination, count(*) AS count, min(e.received_at) AS oldest"
                           " FROM deliveries d JOIN events e ON e.id = d.event_id"
                           " WHERE d.state = 'pending' GROUP BY d.destination")}
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM deliveries WHERE state = 'dead') AS dead,"
                " (SELECT count(*) FROM quarantine WHERE state = 'held') AS held")
            assert row is not None
            return Gauges(backlog, int(row["dead"]), int(row["held"]))

        return await self._run(read)

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

    async def replay_dead(self, ids: list[int] | None, now: float,
                          max_age: float) -> list[int]:
        async def write(conn: Connection) -> list[int]:
            rows = await conn.fetch(
                "UPDATE deliveries SET state = 'pending', attempt = 0, next_attempt_at = $1,"
                " expires_at = $2, lease_owner = NULL, lease_until = NULL, updated_at = $1"
                " WHERE state = 'dead' AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))"
                " RETURNING id", now, now + max_age, ids)
            return sorted(int(r["id"]) for r in rows)

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
            tokens = await conn.execute("DELETE FROM token_memory WHERE seen_at < $1",
                                        tokens_before)
            await conn.execute(
                "DELETE FROM instances"
                " WHERE heartbeat_at < extract(epoch FROM clock_timestamp())::float8 - $1",
                c.INSTANCE_FORGET_AFTER_S)
            return int(events.split()[-1]), int(tokens.split()[-1])

        return await self._write(write)


async def _beat(conn: Connection, owners: list[str]) -> None:
    await conn.execute(_BEAT, owners)


async def _migrate(conn: Connection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for version, script in enumerate(MIGRATIONS, start=1):
            if version > current:
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
