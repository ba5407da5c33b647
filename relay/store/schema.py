"""The table layout, written once and rendered for each dialect (``{word}``: sql.DIALECTS).

A new store is created from it directly; a store an earlier release made is brought to it
by relay/store/migrations.py. tests/test_store_layout.py creates both dialects from it and
compares what each database reports of its tables, columns and indexes.
"""

from __future__ import annotations

import re

from relay.store.sql import Dialect, render

LAYOUT = """
-- One accepted push. identity: what makes two pushes the same event (constants.py).
CREATE TABLE events (
    id {id},
    webhook_id TEXT NOT NULL,
    identity TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    product TEXT NOT NULL,
    event TEXT NOT NULL,
    tag TEXT,
    fields TEXT NOT NULL,
    body {blob} NOT NULL,
    content_type TEXT NOT NULL,
    received_at {real} NOT NULL
);
CREATE INDEX events_received ON events (received_at);

-- Tokens seen, 16 bytes each (signature.token_key), kept retention.tokens.
CREATE TABLE token_memory (
    key {blob} PRIMARY KEY,
    seen_at {real} NOT NULL
){without_rowid};
CREATE INDEX token_memory_seen ON token_memory (seen_at);

-- One per (event, destination). state: a DeliveryState. attempt: attempts made.
CREATE TABLE deliveries (
    id {id},
    event_id {ref} NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT {pending},
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    lease_owner TEXT,
    lease_until {real},
    last_error TEXT,
    updated_at {real} NOT NULL,
    UNIQUE (event_id, destination)
);
-- Partial: claims stay fast however many delivered rows pile up.
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at)
    WHERE state = {pending};
CREATE INDEX deliveries_dead ON deliveries (id) WHERE state = {dead};
-- PostgreSQL only (POSTGRES_ONLY): instances release their own leases and claim those of
-- silent ones. On SQLite one relay owns the file and voids every lease once, at start;
-- keeping the index there cost a fifth of the CPU of a push fanned out to two services.
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

-- The attempt log. outcome: the DeliveryState the attempt left its delivery in.
CREATE TABLE attempts (
    id {id},
    delivery_id {ref} NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at {real} NOT NULL,
    duration_ms {real} NOT NULL,
    http_status INTEGER,
    error TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Pushes refused by a schema. state: a QuarantineState. event_id: the event a replay made.
CREATE TABLE quarantine (
    id {id},
    identity TEXT NOT NULL UNIQUE,
    subhook_path TEXT NOT NULL,
    product TEXT NOT NULL,
    fields TEXT NOT NULL,
    body {blob} NOT NULL,
    content_type TEXT NOT NULL,
    problems TEXT NOT NULL,
    received_at {real} NOT NULL,
    state TEXT NOT NULL DEFAULT {held},
    event_id {ref},
    note TEXT
);

-- Heartbeats of the relays sharing a PostgreSQL store (postgres.py); empty on SQLite.
CREATE TABLE instances (
    owner TEXT PRIMARY KEY,
    heartbeat_at {real} NOT NULL
);
"""

_NAME = re.compile(r"CREATE (?:TABLE|INDEX) (\w+)")
_COMMENT = re.compile(r"^\s*--.*$", re.MULTILINE)


#: Indexes only PostgreSQL's layout has.
POSTGRES_ONLY = frozenset({"deliveries_leased"})


def objects(dialect: Dialect, *, as_of_version_4: bool = False) -> dict[str, str]:
    """The dialect's tables and indexes by name, in order: each one's CREATE statement.
    ``as_of_version_4``: as version 4 had them, every index in both dialects."""
    found: dict[str, str] = {}
    for part in _COMMENT.sub("", render(LAYOUT, dialect)).split(";"):
        statement = part.strip()
        if statement:
            match = _NAME.match(statement)
            if match is None:
                raise ValueError(f"layout: not a CREATE TABLE or INDEX: {statement[:40]}")
            if dialect is Dialect.POSTGRES or as_of_version_4 or match[1] not in POSTGRES_ONLY:
                found[match[1]] = statement
    return found


def tables(dialect: Dialect) -> dict[str, str]:
    return {name: sql for name, sql in objects(dialect).items()
            if sql.startswith("CREATE TABLE")}
