"""SQLite store: one file, WAL, one connection on one thread, commits grouped.

Every operation runs on a single worker thread that owns the connection. Writes from
concurrent requests are grouped into one transaction (relay/store/grouping.py), each in its
own savepoint, so N pushes that arrive together cost one fsync, and each caller is
answered only after that commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from relay.signature import token_key
from relay.store.base import (
    AttemptRecord,
    ClaimedDelivery,
    Gauges,
    NewEvent,
    QuarantinedPush,
    StoreUnavailable,
)
from relay.store.grouping import GroupedWriter, unavailable
from relay.store.ownership import OwnerLock

T = TypeVar("T")

def _token_memory(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE token_memory (key BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
                 " WITHOUT ROWID")
    conn.execute("CREATE INDEX token_memory_seen ON token_memory (seen_at)")
    conn.executemany("INSERT OR IGNORE INTO token_memory VALUES (?, ?)",
                     ((token_key(t), at) for t, at in conn.execute("SELECT * FROM tokens")))
    conn.execute("DROP TABLE tokens")


MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: the first schema
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        identity TEXT NOT NULL UNIQUE,
        token TEXT NOT NULL,
        product TEXT NOT NULL,
        event TEXT NOT NULL,
        tag TEXT,
        fields TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        token TEXT PRIMARY KEY,
        seen_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        event_id INTEGER NOT NULL REFERENCES events(id),
        destination TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempt INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        lease_owner TEXT,
        lease_until REAL,
        last_error TEXT,
        updated_at REAL NOT NULL,
        UNIQUE (event_id, destination)
    );
    CREATE INDEX deliveries_due ON deliveries (state, destination, next_attempt_at);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        http_status INTEGER,
        error TEXT,
        outcome TEXT NOT NULL
    );
    CREATE INDEX attempts_delivery ON attempts (delivery_id);
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        identity TEXT NOT NULL UNIQUE,
        subhook_path TEXT NOT NULL,
        product TEXT NOT NULL,
        fields TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        problems TEXT NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'held',
        event_id INTEGER,
        note TEXT
    );
    """,
    # 2: the token memory keeps 16 bytes per token (signature.token_key) for
    # retention.tokens, not the token's text for the replay window
    _token_memory,
]


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for version, step in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        if isinstance(step, str):
            conn.executescript(f"BEGIN;\n{step}\nINSERT INTO schema_version VALUES ({version});"
                               "\nCOMMIT;")
            continue
        conn.execute("BEGIN")
        try:
            step(conn)
            conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class SqliteStore:
    """The embedded store (see module docstring).

    One process serves a file: it holds an exclusive lock on ``<file>.lock`` (which names its
    pid) while open, and only it may void leases a killed predecessor left. ``attach=True``
    is for the operator's commands beside it: the file must exist, no lock, no lease touched.
    """

    def __init__(self, path: Path, attach: bool = False) -> None:
        self.path = path
        self.attach = attach
        self._lock: OwnerLock | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._writer = GroupedWriter(self._commit_group)
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
        conn.execute("PRAGMA busy_timeout=5000")
        # 32 MiB of page cache (default 2 MiB): the token and identity indexes take random
        # keys, so as the store grows their inserts miss a small cache (docs/performance.md).
        conn.execute("PRAGMA cache_size=-32768")
        _migrate(conn)
        if not self.attach:
            # This process owns the file (the lock says so): leases left by a killed
            # predecessor are void.
            conn.execute("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                         " WHERE lease_owner IS NOT NULL")
        self._conn = conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise StoreUnavailable("store is closed")
            try:
                return fn(self._conn)
            except (sqlite3.Error, ValueError, OverflowError, TypeError) as exc:
                raise StoreUnavailable(f"sqlite: {exc}") from exc

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except RuntimeError as exc:  # the executor is shut down: the store was closed
            raise StoreUnavailable("store is closed") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next grouped transaction; return after its commit."""
        result: T = await self._writer.write(fn)
        return result

    async def _commit_group(self, ops: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await self._run(partial(self._transaction, ops=ops))

    def _transaction(self, conn: sqlite3.Connection,
                     ops: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        results: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append(fn(conn))
                    conn.execute("RELEASE op")
                except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
                        ValueError, OverflowError, TypeError) as exc:
                    # This op's own fault (a value SQLite cannot take): it fails alone, its
                    # neighbours in the group commit. A fault of the database itself (full,
                    # read-only, corrupt) propagates and fails the whole group.
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append(unavailable(exc))
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    # -- lifetime ---------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except (sqlite3.Error, OSError) as exc:
            self._unlock()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        except StoreUnavailable:
            self._unlock()
            raise

    async def close(self) -> None:
        if self._conn is not None:
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
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(self, event: NewEvent) -> int | None:
        def write(conn: sqlite3.Connection) -> int | None:
            fresh = conn.execute(_REMEMBER_TOKEN,
                                 (token_key(event.token), event.received_at)).rowcount
            if not fresh and not event.token_seen:
                return None
            cursor = conn.execute(
                "INSERT OR IGNORE INTO events (webhook_id, identity, token, product, event, tag,"
                " fields, body, content_type, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (event.webhook_id, event.identity, event.token, event.product, event.event,
                 event.tag, event.fields, event.body, event.content_type, event.received_at),
            )
            if not cursor.rowcount:
                return None
            event_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT INTO deliveries (event_id, destination, next_attempt_at, expires_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?)",
                [(event_id, name, event.received_at, expires, event.received_at)
                 for name, expires in event.destinations],
            )
            return event_id

        return await self._write(write)

    async def seen(self, token: str, identity: str) -> bool:
        row = await self._run(lambda conn: conn.execute(
            "SELECT EXISTS (SELECT 1 FROM token_memory WHERE key = ?)"
            " OR EXISTS (SELECT 1 FROM events WHERE identity = ?)",
            (token_key(token), identity)).fetchone())
        return bool(row[0])

    async def quarantine(self, push: QuarantinedPush) -> int:
        def write(conn: sqlite3.Connection) -> int:
            if push.token:
                conn.execute(_REMEMBER_TOKEN, (token_key(push.token), push.received_at))
            conn.execute(
                "INSERT INTO quarantine (identity, subhook_path, product, fields, body,"
                " content_type, problems, received_at) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT (identity) DO UPDATE SET problems = excluded.problems",
                (push.identity, push.subhook_path, push.product, push.fields, push.body,
                 push.content_type, push.problems, push.received_at),
            )
            row = conn.execute(
                "SELECT id FROM quarantine WHERE identity = ?", (push.identity,)
            ).fetchone()
            return int(row[0])

        return await self._write(write)

    # -- delivery ---------------------------------------------------------------------------

    async def pending_destinations(self, now: float) -> list[str]:
        rows = await self._run(lambda conn: conn.execute(
            "SELECT DISTINCT destination FROM deliveries WHERE state = 'pending'"
            " AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)",
            (now, now),
        ).fetchall())
        return [r[0] for r in rows]

    async def claim(
        self, destination: str, limit: int, owner: str, lease_until: float, now: float
    ) -> list[ClaimedDelivery]:
        return await self.claim_due({destination: (limit, lease_until)}, owner, now)

    async def claim_due(self, wants: Mapping[str, tuple[int, float]], owner: str,
                        now: float) -> list[ClaimedDelivery]:
        def write(conn: sqlite3.Connection) -> list[ClaimedDelivery]:
            claimed: list[ClaimedDelivery] = []
            for destination, (limit, lease_until) in wants.items():
                claimed += _claim(conn, destination, limit, owner, lease_until, now)
            return claimed

        return await self._write(write)

    async def record(self, records: list[AttemptRecord]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
                " http_status, error, outcome) VALUES (?,?,?,?,?,?,?)",
                [(r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.http_status,
                  r.error, r.state) for r in records],
            )
            conn.executemany(
                "UPDATE deliveries SET state = ?, attempt = ?, next_attempt_at ="
                " coalesce(?, next_attempt_at), lease_owner = NULL, lease_until = NULL,"
                " last_error = ?, updated_at = ? WHERE id = ?",
                [(r.state, r.attempt, r.next_attempt_at, r.error,
                  r.started_at + r.duration_ms / 1000, r.delivery_id) for r in records],
            )

        await self._write(write)

    async def release(self, owner: str) -> int:
        return await self._write(lambda conn: conn.execute(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND state = 'pending'", (owner,)).rowcount)

    async def counts(self) -> tuple[int, int]:
        row = await self._run(lambda conn: conn.execute(
            "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'),"
            " (SELECT count(*) FROM deliveries WHERE state = 'dead')").fetchone())
        return int(row[0]), int(row[1])

    async def gauges(self) -> Gauges:
        def read(conn: sqlite3.Connection) -> Gauges:
            backlog = {name: (int(count), float(oldest)) for name, count, oldest in conn.execute(
                _BACKLOG)}
            dead, held = conn.execute(_DEAD_AND_HELD).fetchone()
            return Gauges(backlog, int(dead), int(held))

        return await self._run(read)

    # -- dead letters and quarantine --------------------------------------------------------

    async def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        return await self._run(lambda conn: _dicts(conn.execute(
            "SELECT d.id, d.destination, d.attempt, d.last_error, d.updated_at, e.webhook_id,"
            " e.product, e.event, e.fields FROM deliveries d JOIN events e ON e.id = d.event_id"
            " WHERE d.state = 'dead' ORDER BY d.id LIMIT ?", (limit,))))

    async def attempts(self, delivery_id: int) -> list[dict[str, Any]]:
        return await self._run(lambda conn: _dicts(conn.execute(
            "SELECT attempt, started_at, duration_ms, http_status, error, outcome FROM attempts"
            " WHERE delivery_id = ? ORDER BY id", (delivery_id,))))

    async def replay_dead(self, ids: list[int] | None, now: float,
                          max_age: float) -> list[int]:
        def write(conn: sqlite3.Connection) -> list[int]:
            sql = ("UPDATE deliveries SET state = 'pending', attempt = 0, next_attempt_at = ?,"
                   " expires_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?"
                   " WHERE state = 'dead'")
            params: list[Any] = [now, now + max_age, now]
            if ids is not None:
                sql += f" AND id IN ({','.join('?' * len(ids))})"
                params += ids
            return sorted(int(r[0]) for r in conn.execute(sql + " RETURNING id", params))

        return await self._write(write)

    async def quarantined(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self._run(lambda conn: _dicts(conn.execute(
            "SELECT id, subhook_path, product, fields, body, content_type, problems, received_at"
            " FROM quarantine WHERE state = 'held' ORDER BY id LIMIT ?", (limit,))))
        for row in rows:
            row["problems"] = json.loads(row["problems"])
        return rows

    async def prune(self, delivered_before: float, tokens_before: float) -> tuple[int, int]:
        def write(conn: sqlite3.Connection) -> tuple[int, int]:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM prune_ids")
            conn.execute(f"INSERT INTO prune_ids {_PRUNABLE}", (delivered_before,
                                                                  delivered_before))
            conn.execute("DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries"
                         " WHERE event_id IN (SELECT id FROM prune_ids))")
            conn.execute("DELETE FROM deliveries WHERE event_id IN (SELECT id FROM prune_ids)")
            events = conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM prune_ids)").rowcount
            tokens = conn.execute("DELETE FROM token_memory WHERE seen_at < ?",
                                  (tokens_before,)).rowcount
            return events, tokens

        return await self._write(write)

    async def resolve_quarantine(self, qid: int, event_id: int | None, note: str) -> None:
        await self._write(lambda conn: conn.execute(
            "UPDATE quarantine SET state = 'replayed', event_id = ?, note = ? WHERE id = ?",
            (event_id, note, qid)))


def _claim(conn: sqlite3.Connection, destination: str, limit: int, owner: str,
           lease_until: float, now: float) -> list[ClaimedDelivery]:
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM deliveries WHERE state = 'pending' AND destination = ?"
        " AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
        " ORDER BY next_attempt_at LIMIT ?",
        (destination, now, now, limit),
    )]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    conn.execute(
        f"UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",  # noqa: S608
        (owner, lease_until, *ids),
    )
    # Only "?" placeholders are formatted into the query, never values.
    rows = conn.execute(_CLAIMED.format(marks=marks), ids).fetchall()
    return [ClaimedDelivery(*row) for row in rows]


_REMEMBER_TOKEN = "INSERT OR IGNORE INTO token_memory (key, seen_at) VALUES (?, ?)"  # noqa: S105

_BACKLOG = (
    "SELECT d.destination, count(*), min(e.received_at) FROM deliveries d"
    " JOIN events e ON e.id = d.event_id WHERE d.state = 'pending' GROUP BY d.destination"
)

_DEAD_AND_HELD = (
    "SELECT (SELECT count(*) FROM deliveries WHERE state = 'dead'),"
    " (SELECT count(*) FROM quarantine WHERE state = 'held')"
)

_PRUNABLE = (
    "SELECT e.id FROM events e WHERE e.received_at < ? AND NOT EXISTS ("
    " SELECT 1 FROM deliveries d WHERE d.event_id = e.id"
    " AND (d.state <> 'delivered' OR d.updated_at >= ?))"
)

_CLAIMED = (
    "SELECT d.id, d.event_id, d.destination, d.attempt, d.expires_at, e.webhook_id,"
    " e.product, e.event, e.fields, e.body, e.content_type FROM deliveries d"
    " JOIN events e ON e.id = d.event_id WHERE d.id IN ({marks}) ORDER BY d.next_attempt_at"
)


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
