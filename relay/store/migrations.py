"""Numbered versions of the layout, and how a store reaches the newest.

Versions 1 to 3 are history (legacy.py): SQLite's 1 (first schema) and 2 (token memory);
PostgreSQL's 1, 2 (instances) and 3 (token memory). Version 4 is the one layout
(schema.py) in both dialects: PostgreSQL at 3 had it already, so its 4 changes nothing;
SQLite's 3 is PostgreSQL's number and changes nothing, and its 4 rebuilds deliveries and
attempts with ON DELETE CASCADE (copying their rows), makes ``deliveries_due`` partial and
adds the indexes and table it lacked. Version 5 drops ``deliveries_leased`` from SQLite
(a PostgreSQL-only index since: schema.POSTGRES_ONLY).

schema.py's layout is version 5's, and stays so: SQLite's step 4 rebuilds tables from it.
Versions from 6 on are statements for both dialects (``AFTER_LAYOUT``, rendered like every
statement, sql.render), run on old stores and new ones alike: a new store (no version
recorded) is created from the layout, takes the steps after it in the same transaction,
and records every version. tests/test_store_layout.py upgrades stores left at every old
version and compares each with a new one.

6 (lookup, SPEC 12): ``events.send_id`` and ``events.contact`` (the push's contact as
events.contact_of normalises it) with an index each, filled in for the events already
stored; ``deliveries.replays`` and ``attempts.replay`` (the replay an attempt belongs to)
and ``attempts.answer`` (the start of the service's answer).

7 (messages, SPEC 14): ``messages``, one row per (product, send_id) derived from its events
by relay/store/messages.py (each state's earliest SUBMAIL time, the highest state reached,
why it failed), and ``message_cursor``, the last event id applied.

8 (a destination's bad day, SPEC 17): ``destinations``, one row per destination an operator
paused or whose breaker state a worker reported (relay/store/destinations.py).

9 (the edge under abuse, SPEC 18): ``signed_out``, the console sessions signed out before
they expire, so a sign-out holds after a restart and on every instance
(relay/store/sessions.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from relay.store.legacy import POSTGRES as LEGACY_POSTGRES
from relay.store.legacy import SQLITE as LEGACY_SQLITE
from relay.store.schema import objects
from relay.store.sql import Dialect, Statement, collect, render

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PostgresConnection: TypeAlias = (PoolConnectionProxy[asyncpg.Record]
                                     | asyncpg.Connection[asyncpg.Record])

#: The newest version.
LATEST = 9
#: The version schema.py's layout is.
LAYOUT_VERSION = 5

#: Contact fields as version 6 knew them, for filling in ``events.contact`` (frozen: a
#: product added later has no events stored before it).
_V6_CONTACTS = {"sms": "address", "internationalsms": "address", "mms": "address",
                "voice": "address", "mail": "email"}


#: The states messages has a time column for (frozen as version 7 made them).
V7_STATES = ("request", "sending", "unknown", "dropped", "bounced", "delivered", "signal",
             "opened", "clicked")


def _v6_fill(json_text: str) -> str:
    """Version 6's UPDATE of stored events; ``json_text`` reads one field as text."""
    phones = " ".join(f"WHEN '{p}' THEN trim({json_text.format(f)})"
                      for p, f in _V6_CONTACTS.items() if f == "address")
    # only constants of this module go into the text
    return (f"UPDATE events SET send_id = {json_text.format('send_id')}, "  # noqa: S608
            "contact = CASE product "
            f"{phones} WHEN 'mail' THEN lower(trim(coalesce({json_text.format('email')}, "
            f"{json_text.format('mail_to')}))) END")


#: Each version's statements from 6 on, per dialect (one text where they agree).
AFTER_LAYOUT: list[dict[Dialect, list[str]]] = [
    {dialect: [
        "ALTER TABLE events ADD COLUMN send_id TEXT",
        "ALTER TABLE events ADD COLUMN contact TEXT",
        "ALTER TABLE deliveries ADD COLUMN replays INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN replay INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN answer TEXT",
        _v6_fill(fill),
        "CREATE INDEX events_send_id ON events (send_id, id) WHERE send_id IS NOT NULL",
        "CREATE INDEX events_contact ON events (contact, id) WHERE contact IS NOT NULL",
    ] for dialect, fill in ((Dialect.SQLITE, "CAST(json_extract(fields, '$.{}') AS TEXT)"),
                            (Dialect.POSTGRES, "(fields::jsonb ->> '{}')"))},
    {dialect: [render(text, dialect) for text in (
        "CREATE TABLE messages (product TEXT NOT NULL, send_id TEXT NOT NULL,"
        " state TEXT NOT NULL, rank INTEGER NOT NULL, contact TEXT, tag TEXT,"
        + "".join(f" {state}_at {{real}}," for state in V7_STATES)
        + " report TEXT, reason TEXT, operator TEXT, location TEXT,"
        " updated_at {real} NOT NULL, PRIMARY KEY (product, send_id))",
        "CREATE INDEX messages_updated ON messages (updated_at)",
        "CREATE TABLE message_cursor (name TEXT PRIMARY KEY, last_id {ref} NOT NULL)",
        "INSERT INTO message_cursor (name, last_id) VALUES ('messages', 0)",
    )] for dialect in Dialect},
    {dialect: [render(text, dialect) for text in (
        "CREATE TABLE destinations (name TEXT PRIMARY KEY,"
        " state TEXT NOT NULL DEFAULT 'healthy', state_at {real}, last_error TEXT,"
        " paused_at {real}, paused_by TEXT, reason TEXT)",
    )] for dialect in Dialect},
    {dialect: [render(text, dialect) for text in (
        "CREATE TABLE signed_out (nonce TEXT PRIMARY KEY, expires_at {real} NOT NULL)",
    )] for dialect in Dialect},
]
assert LAYOUT_VERSION + len(AFTER_LAYOUT) == LATEST

#: Key of the advisory lock that serialises migrations between PostgreSQL instances.
MIGRATION_LOCK = 0x5EB400C

CREATE_VERSIONS = Statement(
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
CURRENT_VERSION = Statement("SELECT max(version) AS version FROM schema_version")
RECORD_VERSION = Statement("INSERT INTO schema_version (version) VALUES (:version)")
LOCK_MIGRATIONS = Statement("SELECT pg_advisory_xact_lock(:key)", only=Dialect.POSTGRES)
STATEMENTS = collect(globals())


def _sqlite_one_layout(conn: sqlite3.Connection) -> None:
    """4: deliveries and attempts gain ON DELETE CASCADE, which SQLite adds only by
    rebuilding a table: each is created anew from the layout, its rows copied, the old
    one dropped and the new one renamed (foreign keys are off meanwhile, and checked before
    the commit). Then whatever of the layout the store lacks is created: the partial
    indexes of the rebuilt tables, ``events_received``, ``instances``."""
    layout = objects(Dialect.SQLITE, as_of_version_4=True)
    # Only the layout's own names are formatted into these statements, never values.
    for table in ("deliveries", "attempts"):
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        conn.execute(layout[table].replace(f"CREATE TABLE {table} ",
                                           f"CREATE TABLE {table}_new ", 1))
        conn.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")  # noqa: S608
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    for name, create in layout.items():
        if name not in have:
            conn.execute(create)


SqliteStep = str | Callable[[sqlite3.Connection], None] | None

#: Each version's step, from 1; None: the version changes nothing in this dialect.
def _sqlite_after(statements: list[str]) -> Callable[[sqlite3.Connection], None]:
    def step(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return step


SQLITE_STEPS: list[SqliteStep] = [
    *LEGACY_SQLITE, None, _sqlite_one_layout, "DROP INDEX IF EXISTS deliveries_leased;",
    *(_sqlite_after(step[Dialect.SQLITE]) for step in AFTER_LAYOUT)]
POSTGRES_STEPS: list[str | None] = [
    *LEGACY_POSTGRES, None, None,
    *(";\n".join(step[Dialect.POSTGRES]) for step in AFTER_LAYOUT)]
assert len(SQLITE_STEPS) == len(POSTGRES_STEPS) == LATEST


def migrate_sqlite(conn: sqlite3.Connection, target: int = LATEST) -> None:
    """Bring the store of ``conn`` (autocommit, no transaction open) to ``target``, each
    version in a transaction of its own. Foreign keys are off meanwhile (a rebuild drops
    a table others refer to) and as they were after."""
    foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute(CREATE_VERSIONS.sqlite)
        current = conn.execute(CURRENT_VERSION.sqlite).fetchone()[0] or 0
        if current == 0 and target == LATEST:
            _sqlite_step(conn, LATEST, _sqlite_create, versions=range(1, LATEST + 1))
            return
        for version in range(current + 1, target + 1):
            _sqlite_step(conn, version, SQLITE_STEPS[version - 1])
    finally:
        conn.execute(f"PRAGMA foreign_keys={int(foreign_keys)}")


def _sqlite_create(conn: sqlite3.Connection) -> None:
    for create in objects(Dialect.SQLITE).values():
        conn.execute(create)
    for step in AFTER_LAYOUT:
        _sqlite_after(step[Dialect.SQLITE])(conn)


def _sqlite_step(conn: sqlite3.Connection, version: int, step: SqliteStep,
                 versions: range | None = None) -> None:
    record = [RECORD_VERSION.args(version=v) for v in versions or (version,)]
    if isinstance(step, str):
        # executescript commits first whatever is open: the script carries its transaction.
        conn.executescript(f"BEGIN;\n{step}\nINSERT INTO schema_version VALUES ({version});"
                           "\nCOMMIT;")
        return
    conn.execute("BEGIN")
    try:
        if step is not None:
            step(conn)
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise sqlite3.IntegrityError(f"migration {version}: rows refer to missing rows: "
                                         f"{[tuple(p) for p in problems[:5]]}")
        conn.executemany(RECORD_VERSION.sqlite, record)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


async def migrate_postgres(conn: PostgresConnection, target: int = LATEST) -> None:
    """Bring the database of ``conn`` to ``target`` in one transaction, under an advisory
    lock, so instances starting together do not race."""
    async with conn.transaction():
        await conn.execute(LOCK_MIGRATIONS.postgres, MIGRATION_LOCK)
        await conn.execute(CREATE_VERSIONS.postgres)
        current = await conn.fetchval(CURRENT_VERSION.postgres) or 0
        if current == 0 and target == LATEST:
            for create in objects(Dialect.POSTGRES).values():
                await conn.execute(create)
            for version in range(LAYOUT_VERSION + 1, LATEST + 1):
                await conn.execute(POSTGRES_STEPS[version - 1] or "")
            await conn.executemany(RECORD_VERSION.postgres,
                                   [RECORD_VERSION.args(version=v) for v in range(1, LATEST + 1)])
            return
        for version in range(current + 1, target + 1):
            step = POSTGRES_STEPS[version - 1]
            if step:
                await conn.execute(step)
            await conn.execute(RECORD_VERSION.postgres, version)
