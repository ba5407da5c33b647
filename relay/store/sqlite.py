"""SQLite store: one file, WAL, one connection on one thread, commits grouped.

Operations run on a single worker thread, one at a time on the connection. Writes from
concurrent requests are grouped into one transaction (relay/store/grouping.py), one failing
write never failing its neighbours (relay/store/sqlite_group.py), so N pushes that arrive
together cost one fsync, and each caller is answered only after that commit. The hot
path's few short statements (a push, a claim, attempt records) run on the event loop's
thread inside that transaction, the COMMIT on the worker (``SqliteStore._commit_group``
says why). Its statements are relay/store/queries.py's, most of them shared with
PostgreSQL; its table layout is relay/store/schema.py's.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import relay.store.queries as q
from relay.ingest.signature import token_key
from relay.store.base import ClaimedDelivery, ClaimsOne, QuarantineState, StoreUnavailable, Want
from relay.store.grouping import GroupedWriter
from relay.store.migrations import migrate_sqlite
from relay.store.ownership import OwnerLock
from relay.store.sql import Statement, as_dicts, records
from relay.store.sqlite_group import (
    BUSY_TIMEOUT_MS,
    Op,
    answer_ready,
    begin_now,
    begin_waiting,
    foreign_errors,
    rolled_back_on_failure,
    run_ops,
)

if TYPE_CHECKING:
    from relay.store.base import AttemptRecord, NewEvent, QuarantinedPush

T = TypeVar("T")

log = logging.getLogger("relay.store")


class SqliteStore(ClaimsOne):
    """The embedded store (see module docstring).

    One process serves a file: it holds an exclusive lock on ``<file>.lock`` (which names its
    pid) while open, and only it may void leases a killed predecessor left. ``attach=True``
    is for the operator's commands beside it: the file must exist, no lock, no lease touched.
    """

    #: one process owns the file: a lease ends only with its time
    dead_after: float | None = None

    def __init__(self, path: Path, attach: bool = False) -> None:
        self.path = path
        self.attach = attach
        self._lock: OwnerLock | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._writer = GroupedWriter(self._commit_group)
        #: held by whatever uses the connection: the thread's calls and a group's on-loop ops
        self._using = asyncio.Lock()
        #: transactions committed by the grouped writer (how grouping is observed)
        self.commits = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> None:
        if self.attach:
            if not self.path.is_file():
                raise StoreUnavailable(f"{self.path.resolve()}: no such store file (relay serve "
                                       "creates it; is the working directory the right one?)")
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                                   isolation_level=None, check_same_thread=False)
        else:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = OwnerLock.take(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # 32 MiB of page cache (default 2 MiB): the token and identity indexes take random
        # keys, so as the store grows their inserts miss a small cache (docs/performance.md).
        conn.execute("PRAGMA cache_size=-32768")
        # Each grouped write's savepoint journals the pages it changes; on disk (the default)
        # that journal spills to a temporary file once an op touches one index more than
        # the old layout's (events_received), which cost a fifth of the ingest rate.
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.row_factory = sqlite3.Row
        migrate_sqlite(conn)
        if not self.attach:
            # This process owns the file (the lock says so): leases left by a killed
            # predecessor are void.
            _execute(conn, q.VOID_LEASES)
        self._conn = conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the store's thread, alone on the connection."""
        async with self._using:
            return await self._call(fn)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with foreign_errors():
                return fn(self._connection())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except RuntimeError as exc:  # the executor is shut down: the store was closed
            raise StoreUnavailable("store is closed") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("store is closed")
        return self._conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T], on_loop: bool = False) -> T:
        """Run ``fn`` inside the next grouped transaction; return after its commit.

        ``on_loop`` is for the few short statements of the hot path (a push, a claim, a
        batch of attempt records): they run on the event loop's thread, see
        ``_commit_group``."""
        result: T = await self._writer.write(Op(fn, on_loop))
        return result

    async def _write_early(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the loop's thread in the next grouped transaction; return as soon
        as it has run, while its group goes on to COMMIT (``claim_due`` says when that is
        right). A group that then fails is logged: what ``fn`` wrote is rolled back."""
        ready: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        committed = self._writer.submit(Op(fn, on_loop=True, ready=ready))
        committed.add_done_callback(partial(_log_early_failure, ready))
        await asyncio.wait((ready, committed), return_when=asyncio.FIRST_COMPLETED)
        return ready.result() if ready.done() else committed.result()

    async def _commit_group(self, ops: list[Op]) -> list[Any]:
        """One transaction for the group: its on-loop ops run here, then the store's thread
        runs the others and COMMIT (the fsync).

        Why not all on the thread: sqlite3 lets go of the GIL for every statement and must
        take it back after, while the loop holds it for request handling; a group's
        statements waited for it twice as long as they ran, and the group commit was the
        relay's bottleneck (docs/performance.md). Here they run in one stretch; only the
        BEGIN (when another process holds the write lock) and COMMIT can wait, and they
        wait on the thread."""
        async with self._using:
            conn = self._connection()
            if not begin_now(conn):
                await self._call(begin_waiting)
            # Early ops (claims) first: they must not see the group's own uncommitted rows.
            here = sorted((i for i, op in enumerate(ops) if op.on_loop),
                          key=lambda i: ops[i].ready is None)
            results: list[Any] = [None] * len(ops)
            with foreign_errors(), rolled_back_on_failure(conn):  # full, read-only, ...
                done_here = run_ops(conn, [ops[i].fn for i in here])
            for i, result in zip(here, done_here, strict=True):
                results[i] = result
                answer_ready(ops[i], result)
            rest = [i for i, op in enumerate(ops) if not op.on_loop]
            done = await self._call(partial(self._finish, fns=[ops[i].fn for i in rest]))
            for i, result in zip(rest, done, strict=True):
                results[i] = result
            return results

    def _finish(self, conn: sqlite3.Connection,
                fns: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """On the store's thread: the group's other ops, then COMMIT."""
        with rolled_back_on_failure(conn):
            results = run_ops(conn, fns)
            conn.execute("COMMIT")
        self.commits += 1
        return results

    # -- lifetime ---------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            with foreign_errors(f"cannot open {self.path}"):
                await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except BaseException:
            self._unlock()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            async with self._using:
                conn = self._conn
                await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
                self._conn = None
        self._executor.shutdown(wait=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def ping(self) -> None:
        await self._run(lambda conn: _execute(conn, q.PING).fetchone())

    async def read(self, statement: Statement, **values: Any) -> list[dict[str, Any]]:
        return await self._run(lambda conn: as_dicts(_execute(conn, statement, **values)))

    async def change(self, statement: Statement, **values: Any) -> list[dict[str, Any]]:
        return await self._write(lambda conn: as_dicts(_execute(conn, statement, **values)))

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, event: NewEvent) -> int | None:
        def write(conn: sqlite3.Connection) -> int | None:
            # The hot path: each statement's values bound by name with its bind(), the
            # cheapest way (sql.Statement).
            fresh = conn.execute(q.REMEMBER_TOKEN.sqlite, q.REMEMBER_TOKEN.bind(
                key=token_key(event.token), seen_at=event.received_at)).rowcount
            if not fresh and not event.token_seen:
                return None
            cursor = conn.execute(q.INSERT_EVENT.sqlite, q.INSERT_EVENT.args(event))
            if not cursor.rowcount:
                return None
            event_id = int(cursor.lastrowid or 0)
            if event.destinations:  # none when no route matched
                bind = q.INSERT_DELIVERY.bind
                conn.executemany(q.INSERT_DELIVERY.sqlite, [
                    bind(event_id=event_id, destination=name,
                         next_attempt_at=event.received_at, expires_at=expires,
                         updated_at=event.received_at)
                    for name, expires in event.destinations])
            return event_id

        return await self._write(write, on_loop=True)

    async def seen(self, token: str, identity: str) -> bool:
        row = await self._run(lambda conn: _execute(
            conn, q.SEEN, key=token_key(token), identity=identity).fetchone())
        return bool(row["seen"])

    async def quarantine(self, push: QuarantinedPush) -> int:
        def write(conn: sqlite3.Connection) -> int:
            if push.token:
                _execute(conn, q.REMEMBER_TOKEN, key=token_key(push.token),
                         seen_at=push.received_at)
            return int(_execute(conn, q.QUARANTINE, push,
                                state=QuarantineState.HELD).fetchone()["id"])

        return await self._write(write)

    # -- delivery ---------------------------------------------------------------------------

    async def claim_due(self, wants: Mapping[str, Want | tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]:
        def write(conn: sqlite3.Connection) -> list[ClaimedDelivery]:
            claimed: list[ClaimedDelivery] = []
            for destination, want in wants.items():
                claimed += _claim(conn, destination, Want(*want), owner, now)
            return claimed

        # The rows are sent as soon as their lease is written, not once it is committed:
        # waiting for that COMMIT (a group's fsync) was most of what a claim took, and kept
        # the worker from keeping up (docs/performance.md). Safe because this process alone
        # writes the file (OwnerLock), so no other claim can see the rows meanwhile; a crash
        # before the COMMIT loses only leases, which the next start voids anyway. Claims
        # run first in their group, so they never take a delivery of an event whose push
        # is not yet committed (and answered). If the COMMIT fails the lease is rolled
        # back, and the worker skips rows it already holds when a later claim returns them.
        return await self._write_early(write)

    async def record(self, records: list[AttemptRecord]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(q.RECORD_ATTEMPT.sqlite,
                             [q.RECORD_ATTEMPT.args(r) for r in records])
            conn.executemany(q.SETTLE.sqlite, [
                q.SETTLE.args(r, updated_at=r.started_at + r.duration_ms / 1000)
                for r in records])

        await self._write(write, on_loop=True)

    async def release(self, owner: str) -> int:
        return await self._write(lambda conn: _execute(conn, q.RELEASE, owner=owner).rowcount)


def _log_early_failure(ready: asyncio.Future[Any], committed: asyncio.Future[Any]) -> None:
    """Say when a claim already answered with its rows is then rolled back with its group;
    a claim that failed itself, or whose group failed before it ran, raised to its caller."""
    if committed.cancelled():
        return
    failure = committed.exception()  # retrieved whatever follows, so asyncio never warns
    if failure is None or not ready.done() or ready.cancelled() \
            or ready.exception() is not None:
        return
    log.warning("a claim's group failed to commit; its leases are rolled back and the worker "
                "keeps the rows it took: %s", failure)


def _execute(conn: sqlite3.Connection, statement: Statement, source: object = None, /,
             **values: Any) -> sqlite3.Cursor:
    """``statement`` run with its parameters named (see Statement.args)."""
    return conn.execute(*statement.sqlite_call(statement.args(source, **values)))


def _claim(conn: sqlite3.Connection, destination: str, want: Want, owner: str,
           now: float) -> list[ClaimedDelivery]:
    due = _execute(conn, q.DUE_OF[want.kind], destination=destination, now=now,
                   limit=want.limit)
    ids = [row["id"] for row in due]
    if not ids:
        return []
    _execute(conn, q.LEASE, owner=owner, lease_until=want.lease_until, ids=ids)
    return records(ClaimedDelivery, _execute(conn, q.CLAIMED, ids=ids).fetchall())
