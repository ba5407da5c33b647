"""How stores made by earlier releases were built: frozen, never edited.

Each list is one dialect's migrations as they stood when the two dialects still had a
layout each (SQLite up to version 2, PostgreSQL up to 3). A store an earlier release left at
an older version still takes the steps after its version from here, then
relay/store/migrations.py brings it to the one layout; the tests build stores at these old
layouts from here too. Editing a step would change what an old store becomes: add a
migration instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from relay.ingest.signature import token_key
from relay.store.schema import objects
from relay.store.sql import Dialect, render


def _token_memory(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE token_memory (key BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
                 " WITHOUT ROWID")
    conn.execute("CREATE INDEX token_memory_seen ON token_memory (seen_at)")
    conn.executemany("INSERT OR IGNORE INTO token_memory VALUES (?, ?)",
                     ((token_key(t), at) for t, at in conn.execute("SELECT * FROM tokens")))
    conn.execute("DROP TABLE tokens")


def _first_schema(dialect: Dialect) -> str:
    """1: the first schema. Its events, deliveries, attempts and quarantine tables are the
    layout's (schema.py, itself frozen as version 5's), with the tokens of the replay
    window instead of the token memory; SQLite had them without ON DELETE CASCADE, with a
    plain ``deliveries_due`` and without the indexes its step 4 added."""
    layout = objects(dialect, as_of_version_4=True)
    tokens = render("CREATE TABLE tokens (\n    token TEXT PRIMARY KEY,\n"
                    "    seen_at {real} NOT NULL\n){without_rowid}", dialect)
    if dialect is Dialect.POSTGRES:
        return ";\n".join([layout["events"], layout["events_received"], tokens,
                            "CREATE INDEX tokens_seen ON tokens (seen_at)",
                            *(layout[name] for name in _V1_DELIVERY_OBJECTS),
                            layout["quarantine"]]) + ";"
    no_cascade = [layout[name].replace(" ON DELETE CASCADE", "")
                  for name in ("deliveries", "attempts")]
    return ";\n".join([
        layout["events"], tokens, no_cascade[0],
        "CREATE INDEX deliveries_due ON deliveries (state, destination, next_attempt_at)",
        no_cascade[1], layout["attempts_delivery"], layout["quarantine"]]) + ";"


_V1_DELIVERY_OBJECTS = ("deliveries", "deliveries_due", "deliveries_dead",
                        "deliveries_leased", "attempts", "attempts_delivery")


SQLITE: list[str | Callable[[sqlite3.Connection], None]] = [
    _first_schema(Dialect.SQLITE),
    # 2: the token memory keeps 16 bytes per token (signature.token_key) for
    # retention.tokens, not the token's text for the replay window
    _token_memory,
]


POSTGRES: list[str] = [
    _first_schema(Dialect.POSTGRES),
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
