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
- versioned migrations (relay/store/migrations.py), run under an advisory lock so
  instances starting together do not race.

Its statements are relay/store/queries.py's, most of them shared with SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

import relay.store.queries as q
from relay import constants as c
from relay.ingest.signature import token_key
from relay.redact import redact_text, redact_url
from relay.store.base import ClaimedDelivery, ClaimsOne, QuarantineState, StoreUnavailable, Want
from relay.store.grouping import GroupedWriter
from relay.store.migrations import migrate_postgres
from relay.store.sql import Statement, as_dicts, records

T = TypeVar("T")
if TYPE_CHECKING:  # the stubs make the pool's connection proxy generic; asyncpg does not
    from asyncpg.pool import PoolConnectionProxy

    from relay.store.base import AttemptRecord, NewEvent, QuarantinedPush

    Connection = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
Op = Callable[[Connection], Awaitable[Any]]

log = logging.getLogger("relay.store")


#: What the database, the network or asyncpg's encoding of a value raise: StoreUnavailable
#: for the caller. (asyncpg's DataError is a PostgresError in some versions and an
#: InterfaceError in others; an int too large for its column is an OverflowError in some; a
#: connection the server ended that asyncpg has not noticed yet fails its next statement
#: with InternalClientError.)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError,
              asyncpg.exceptions.InternalClientError, OSError, TimeoutError, OverflowError)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """``exc`` as StoreUnavailable, its cause kept (also when returned as an op's result,
    not raised ``from exc``)."""
    error = StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def _foreign_errors() -> Iterator[None]:
    """The one boundary of the PostgreSQL store: what the database, the network or asyncpg
    raise in the block becomes StoreUnavailable, ``from`` it; anything else (a TypeError in
    a statement's bind is a bug) passes as it is."""
    try:
        yield
    except _DB_ERRORS as exc:
        raise _unavailable(exc) from exc


def _failed(exc: Exception) -> Exception:
    """A grouped op's exception as its result: the database's (BEGIN or COMMIT refused; an
    op maps its own) as StoreUnavailable, any other (a bug) as it is."""
    return _unavailable(exc) if isinstance(exc, _DB_ERRORS) else exc


class PostgresStore(ClaimsOne):
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
        with _foreign_errors():
            async with self._pool.acquire() as conn:
                return await fn(conn)

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` inside the next grouped transaction; return after its commit. What
        the database or asyncpg raise for this op alone is StoreUnavailable for its caller
        only; any other exception (a bug) reaches the caller as it is."""
        async def op(conn: Connection) -> T:
            with _foreign_errors():
                return await fn(conn)

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
                await migrate_postgres(conn)
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
                    owners = sorted(self._owners)
                    await self._run(lambda conn: _execute(conn, q.LEAVE, owners=owners))
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
        await self._run(lambda conn: _fetchval(conn, q.PING))

    async def read(self, statement: Statement, **values: Any) -> list[dict[str, Any]]:
        return as_dicts(await self._run(lambda conn: _fetch(conn, statement, **values)))

    async def change(self, statement: Statement, **values: Any) -> list[dict[str, Any]]:
        return as_dicts(await self._write(lambda conn: _fetch(conn, statement, **values)))

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, event: NewEvent) -> int | None:
        async def write(conn: Connection) -> int | None:
            event_id: int | None = await _fetchval(
                conn, q.INGEST, event, key=token_key(event.token),
                destinations=[name for name, _ in event.destinations],
                expires=[expires for _, expires in event.destinations])
            return event_id

        return await self._write(write)

    async def seen(self, token: str, identity: str) -> bool:
        return bool(await self._run(lambda conn: _fetchval(
            conn, q.SEEN, key=token_key(token), identity=identity)))

    async def quarantine(self, push: QuarantinedPush) -> int:
        async def write(conn: Connection) -> int:
            if push.token:
                await _execute(conn, q.REMEMBER_TOKEN, key=token_key(push.token),
                               seen_at=push.received_at)
            return int(await _fetchval(conn, q.QUARANTINE, push, state=QuarantineState.HELD))

        return await self._write(write)

    # -- delivery ---------------------------------------------------------------------------

    async def claim_due(self, wants: Mapping[str, Want | tuple[int, float]], owner: str,
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
            for destination, raw in wants.items():
                want = Want(*raw)
                rows = await _fetch(conn, q.CLAIM_OF[want.kind], destination=destination, now=now,
                                    limit=want.limit, owner=owner,
                                    lease_until=want.lease_until, dead_after=self.dead_after)
                rows = sorted(rows, key=lambda r: (r["next_attempt_at"], r["id"]))
                claimed += records(ClaimedDelivery, rows)
            return claimed

        claimed = await self._write(write)
        if beat is not None:
            # Only once committed: a beat rolled back with its claim must be made again.
            self._owners.add(owner)
            self._beaten_at = max(self._beaten_at, started)
        return claimed

    async def record(self, records: list[AttemptRecord]) -> None:
        async def write(conn: Connection) -> None:
            await conn.executemany(q.RECORD_ATTEMPT.postgres,
                                   [q.RECORD_ATTEMPT.args(r) for r in records])
            await conn.executemany(q.SETTLE.postgres, [
                q.SETTLE.args(r, updated_at=r.started_at + r.duration_ms / 1000)
                for r in records])

        await self._write(write)

    async def release(self, owner: str) -> int:
        async def write(conn: Connection) -> int:
            return _changed(await _execute(conn, q.RELEASE, owner=owner))

        return await self._write(write)


# Statements run with their parameters named (see Statement.args).

async def _execute(conn: Connection, statement: Statement, source: object = None, /,
                   **values: Any) -> str:
    return await conn.execute(statement.postgres, *statement.args(source, **values))


async def _fetch(conn: Connection, statement: Statement, source: object = None, /,
                 **values: Any) -> list[asyncpg.Record]:
    return await conn.fetch(statement.postgres, *statement.args(source, **values))


async def _fetchval(conn: Connection, statement: Statement, source: object = None, /,
                    **values: Any) -> Any:
    return await conn.fetchval(statement.postgres, *statement.args(source, **values))


def _changed(status: str) -> int:
    """Rows a statement changed, from its status ("DELETE 3")."""
    return int(status.rsplit(maxsplit=1)[-1])


async def _beat(conn: Connection, owners: list[str]) -> None:
    await _execute(conn, q.BEAT, owners=owners)
