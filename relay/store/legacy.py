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


def _token_memory(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE token_memory (key BLOB PRIMARY KEY, seen_at REAL NOT NULL)"
                 " WITHOUT ROWID")
    conn.execute("CREATE INDEX token_memory_seen ON token_memory (seen_at)")
    conn.executemany("INSERT OR IGNORE INTO token_memory VALUES (?, ?)",
                     ((token_key(t), at) for t, at in conn.execute("SELECT * FROM tokens")))
    conn.execute("DROP TABLE tokens")


SQLITE: list[str | Callable[[sqlite3.Connection], None]] = [
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


POSTGRES: list[str] = [
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
