"""The durable queue: events, one delivery row per (event, destination), attempts, dead
letters, quarantine. ``open_store(url)`` picks the implementation from the config's URL."""

from __future__ import annotations

from pathlib import Path

from relay.store.base import (
    AttemptRecord,
    ClaimedDelivery,
    DeliveryState,
    Gauges,
    NewEvent,
    QuarantinedPush,
    QuarantineState,
    Store,
    StoreInUse,
    StoreUnavailable,
    Want,
)
from relay.store.sqlite import SqliteStore

__all__ = [
    "AttemptRecord",
    "ClaimedDelivery",
    "DeliveryState",
    "Gauges",
    "NewEvent",
    "QuarantineState",
    "QuarantinedPush",
    "Store",
    "StoreInUse",
    "StoreUnavailable",
    "Want",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` is relative to the working directory, ``sqlite:////abs.db`` not."""
    return Path(url.removeprefix("sqlite:///"))


def open_store(url: str, attach: bool = False) -> Store:
    """The store behind ``url``; ``attach`` for the operator's commands beside a running
    relay (an SQLite file must exist already and is not taken over)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(sqlite_path(url), attach=attach)
    if url.startswith(("postgresql://", "postgres://")):
        from relay.store.postgres import PostgresStore  # noqa: PLC0415 (asyncpg on demand)

        return PostgresStore(url)
    raise StoreUnavailable(f"store {url.split(':', 1)[0]}: not supported "
                           "(use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB)")
