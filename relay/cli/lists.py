"""``relay dead`` and ``relay quarantine``: list, replay and discard, each filtered by
destination, product, event and since (SPEC 21); with ``--all`` a filter chooses the rows a
bulk action takes. Exit codes: 0 done, 1 ids that match nothing (named), 2 usage."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from relay.cli.commands import report_missing, show_rows, with_store
from relay.ops import dead, quarantine
from relay.ops.filters import ListFilter, config_filter
from relay.runtime import RunningConfig
from relay.store import Store


def checked_filter(running: RunningConfig, values: dict[str, str | None],
                   ids: list[int] | None = None) -> ListFilter | int:
    """The list filter of a command's options, or exit code 2 after naming the first bad
    one (and filters beside ids: a filter chooses with --all, ids choose themselves)."""
    try:
        which = config_filter(values, running)
    except ValueError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    if ids is not None and which.active:
        print("relay: filters choose with --all; give ids or filters, not both",
              file=sys.stderr)
        return 2
    return which


def dead_list(path: Path, as_json: bool, filters: dict[str, str | None]) -> int:
    def line(row: dict[str, Any]) -> str:
        return (f"{row['id']}\t{row['destination']}\t{row['product']}/{row['event']}\t"
                f"{row['webhook_id']}\tattempts={row['attempt']}\t{row['last_error']}")

    async def action(running: RunningConfig, store: Store) -> int:
        which = checked_filter(running, filters)
        if isinstance(which, int):
            return which
        return show_rows(await dead.dead_letters(store, which), as_json, line, "dead letter(s)")

    return with_store(path, action)


def dead_replay(path: Path, ids: list[int] | None, filters: dict[str, str | None]) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        which = checked_filter(running, filters, ids)
        if isinstance(which, int):
            return which
        result = await dead.replay_dead(store, running.settings, ids, which)
        if result["replayed"] or not result["missing"]:
            print(f"replayed {result['replayed']} dead letter(s); the running relay picks "
                  "them up")
        if result["missing"]:
            print(f"no dead letter with id {', '.join(map(str, result['missing']))}: dead "
                  "letters have ids of their own (the first column of `relay dead list`); "
                  "to deliver an event again by its id, use `relay events replay ID`",
                  file=sys.stderr)
            return 1
        return 0

    return with_store(path, action)


def quarantine_list(path: Path, as_json: bool, filters: dict[str, str | None]) -> int:
    def line(row: dict[str, Any]) -> str:
        return f"{row['id']}\t{row['subhook_path']}\t{row['product']}\t" + "; ".join(
            row["problems"])

    async def action(running: RunningConfig, store: Store) -> int:
        which = checked_filter(running, filters)
        if isinstance(which, int):
            return which
        return show_rows(await quarantine.quarantined(store, which), as_json, line,
                     "quarantined push(es)")

    return with_store(path, action)


def quarantine_replay(path: Path, ids: list[int] | None,
                      filters: dict[str, str | None]) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        which = checked_filter(running, filters, ids)
        if isinstance(which, int):
            return which
        result = await quarantine.replay_quarantine(store, running, ids, which)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return report_missing(result["missing"], "quarantined push") or int(
            bool(result["still_invalid"]))

    return with_store(path, action)


def _discard(path: Path, ids: list[int] | None, filters: dict[str, str | None],
             discard: Callable[[Store, list[int] | None, ListFilter],
                               Awaitable[dict[str, Any]]],
             noun: str, plural: str) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        which = checked_filter(running, filters, ids)
        if isinstance(which, int):
            return which
        result = await discard(store, ids, which)
        print(f"discarded {len(result['discarded'])} {plural}")
        return report_missing(result["missing"], noun)

    return with_store(path, action)


def dead_discard(path: Path, ids: list[int] | None, filters: dict[str, str | None]) -> int:
    return _discard(path, ids, filters, dead.discard_dead, "dead letter", "dead letter(s)")


def quarantine_discard(path: Path, ids: list[int] | None,
                       filters: dict[str, str | None]) -> int:
    return _discard(path, ids, filters, quarantine.discard_quarantine, "quarantined push",
                    "quarantined push(es)")
