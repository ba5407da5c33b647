"""The token memory at scale: bytes per token on disk, and the cost of remembering one more
and of looking one up, as it fills (SQLite, the relay's own layout and statements).

    python bench/tokens.py [MILLIONS ...]     (default: 1 4)

SUBMAIL's tokens are random: keys arrive in random order, the worst case for the index.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.ingest.signature import token_key
from relay.store.sqlite import SqliteStore

REMEMBER = "INSERT OR IGNORE INTO token_memory (key, seen_at) VALUES (?, ?)"
LOOKUP = "SELECT EXISTS (SELECT 1 FROM token_memory WHERE key = ?)"
BATCH = 100  # tokens per transaction, about one group commit at load


def fill(conn: sqlite3.Connection, count: int) -> None:
    now = time.time()
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        conn.execute("BEGIN")
        conn.executemany(REMEMBER, ((token_key(os.urandom(16).hex()), now) for _ in range(n)))
        conn.execute("COMMIT")


def measure(conn: sqlite3.Connection, ops: int = 20_000) -> tuple[float, float]:
    """(µs to remember a fresh token, µs to look one up), in transactions of BATCH."""
    keys = [token_key(os.urandom(16).hex()) for _ in range(ops)]
    started = time.perf_counter()
    for i in range(0, ops, BATCH):
        conn.execute("BEGIN")
        conn.executemany(REMEMBER, ((k, time.time()) for k in keys[i:i + BATCH]))
        conn.execute("COMMIT")
    remember = (time.perf_counter() - started) / ops * 1e6
    started = time.perf_counter()
    for key in keys:
        conn.execute(LOOKUP, (key,)).fetchone()
    return remember, (time.perf_counter() - started) / ops * 1e6


def main(millions: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.db"

        async def create() -> None:
            store = SqliteStore(path)
            await store.open()
            await store.close()

        asyncio.run(create())
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-32768")
        held = 0
        for target in millions:
            fill(conn, int(target * 1_000_000) - held)
            held = int(target * 1_000_000)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            size = pages * conn.execute("PRAGMA page_size").fetchone()[0]
            remember, lookup = measure(conn)
            print(f"{held:>11,} tokens: {size / held:5.1f} bytes/token on disk; remember one "
                  f"{remember:6.1f} us, look one up {lookup:5.1f} us")
        conn.close()


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [1.0, 4.0])
