"""``relay destinations list|pause|resume|retry`` (SPEC 17): a destination's bad day, steered.

Exit codes: 0 done, 1 an unknown destination (named) or a store problem. A pause or resume
made here is kept in the store; a running relay obeys it within ``CONTROL_POLL_S``.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import Any

from relay.cli.commands import show_rows, with_store
from relay.ops import destinations
from relay.runtime import RunningConfig
from relay.store import Store


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _line(row: dict[str, Any]) -> str:
    paused = row["paused"]
    state = row["state"] + (f" (by {paused['by']}: {paused['reason'] or 'no reason'})"
                            if paused else "")
    oldest = f"{row['oldest_pending_s']:.0f}s" if row["pending"] else "-"
    return (f"{row['name']}\t{row['url']}\t{state}\tpending={row['pending']}\t"
            f"oldest={oldest}\tnext={row['next_attempt'] or '-'}\t"
            f"last_error={row['last_error'] or '-'}")


def destinations_list(path: Path, as_json: bool) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        rows = await destinations.listing(store, running.settings, time.time())
        return show_rows(rows, as_json, _line, "destination(s)")

    return with_store(path, action)


def _guarded(path: Path, act: Any) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        try:
            message = await act(running, store)
        except destinations.UnknownDestination as exc:
            print(f"relay: {exc}", file=sys.stderr)
            return 1
        print(message)
        return 0

    return with_store(path, action)


def destinations_pause(path: Path, name: str, reason: str | None) -> int:
    async def act(running: RunningConfig, store: Store) -> str:
        await destinations.pause(store, running.settings, name, _who(), reason, time.time())
        return (f"paused {name}: no attempts until `relay destinations resume`; new events "
                "are still accepted and queued (a running relay obeys within seconds)")

    return _guarded(path, act)


def destinations_resume(path: Path, name: str) -> int:
    async def act(running: RunningConfig, store: Store) -> str:
        due = await destinations.resume(store, running.settings, name, time.time())
        if due is None:
            return f"{name} was not paused; nothing changed"
        return f"resumed {name}: its pending deliveries are due now, oldest first ({due} moved)"

    return _guarded(path, act)


def destinations_retry(path: Path, name: str) -> int:
    async def act(running: RunningConfig, store: Store) -> str:
        due = await destinations.retry(store, running.settings, name)
        return f"{name}: {due} pending deliveries waiting for a backoff are due now"

    return _guarded(path, act)
