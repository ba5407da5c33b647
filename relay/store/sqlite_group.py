"""The pieces of a grouped SQLite transaction: each op in its savepoint, and a BEGIN that
never makes the event loop wait for another process's write lock (relay/store/sqlite.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from relay.store.base import StoreUnavailable
from relay.store.grouping import unavailable

#: how long a statement waits for another process's write lock
BUSY_TIMEOUT_MS = 5000


class Op(NamedTuple):
    """A write of the group: ``fn`` on the connection, on the loop's thread or the store's.

    ``ready``, for an on-loop op, is answered with its result as soon as the group's
    statements have run, before the COMMIT; such ops run first in their group, so they see
    only what earlier groups committed (``SqliteStore.claim_due`` says why)."""

    fn: Callable[[sqlite3.Connection], Any]
    on_loop: bool
    ready: asyncio.Future[Any] | None = None


def answer_ready(op: Op, result: Any) -> None:
    """An early op's result (or its own fault) to whoever awaits ``op.ready``."""
    if op.ready is None or op.ready.done():
        return
    if isinstance(result, BaseException):
        op.ready.set_exception(result)
    else:
        op.ready.set_result(result)


#: What SQLite, its driver's encoding of a value and the file system raise: the store's
#: trouble, StoreUnavailable for the caller. The one boundary of the SQLite store: any
#: other exception (a TypeError in a statement's bind is a bug) reaches its caller as it is.
FOREIGN = (sqlite3.Error, OverflowError, UnicodeError, OSError)


@contextlib.contextmanager
def foreign_errors(what: str = "sqlite") -> Iterator[None]:
    """SQLite's own errors in the block raised as StoreUnavailable, ``from`` them."""
    try:
        yield
    except FOREIGN as exc:
        raise StoreUnavailable(f"{what}: {exc}") from exc


def as_result(exc: Exception) -> Exception:
    """An op's own failure as its result: a foreign one as StoreUnavailable, a bug as it
    is."""
    return unavailable(exc) if isinstance(exc, FOREIGN) else exc


#: An op's own fault (a value SQLite cannot take, or a bug in it): it fails alone.
OP_FAULTS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, ValueError,
             OverflowError, TypeError)


def run_ops(conn: sqlite3.Connection, fns: list[Callable[[sqlite3.Connection], Any]]
            ) -> list[Any]:
    """Each op's result, or its own fault as a value: it fails alone and its neighbours in
    the group commit. A fault of the database itself (full, read-only, corrupt) propagates
    and fails the whole group.

    The ops run under one savepoint; only when one fails are they run again, each in its
    own (a savepoint pair per op cost a tenth of a push). So an op must keep its effects
    in the database: it may run twice, the first run rolled back."""
    if not fns:
        return []
    conn.execute("SAVEPOINT ops")
    try:
        results = [fn(conn) for fn in fns]
    except OP_FAULTS:
        conn.execute("ROLLBACK TO ops")
        conn.execute("RELEASE ops")
        return [_in_savepoint(conn, fn) for fn in fns]
    conn.execute("RELEASE ops")
    return results


def _in_savepoint(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    conn.execute("SAVEPOINT op")
    try:
        result = fn(conn)
    except OP_FAULTS as exc:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return as_result(exc)
    conn.execute("RELEASE op")
    return result


@contextlib.contextmanager
def rolled_back_on_failure(conn: sqlite3.Connection) -> Iterator[None]:
    """The open transaction rolled back if the block fails, whatever the failure."""
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def begin_now(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if the write lock is free now; False if another process holds it
    (an operator's command writing), to be waited for off the event loop."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return True


def begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
