"""``relay messages show`` and ``relay stats`` (SPEC 14). Exit codes as relay/event_commands.py."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from relay import times
from relay.cli.commands import with_store
from relay.messages.lifecycle import STATES
from relay.messages.stats import stats
from relay.ops import shown
from relay.runtime import RunningConfig
from relay.store import Store, messages


def messages_show(path: Path, send_id: str, as_json: bool) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        found = [shown.message(r, STATES) for r in await messages.of_send_id(store, send_id)]
        if not found:
            print(f"no message with send_id {send_id}", file=sys.stderr)
            return 1
        if as_json:
            print(json.dumps(found, ensure_ascii=False, indent=2))
            return 0
        for message in found:
            why = f" report {message['report']} ({message['reason']})" if message["reason"] \
                else ""
            latency = message["latency"]
            took = (f"  request→{latency['to']} {latency['seconds']:g} s" if latency
                    else "  request→delivered -")
            print(f"{message['product']} {message['send_id']}: {message['state']}{why}"
                  f"{took}  contact {message['contact'] or '-'}  "
                  f"operator {message['operator'] or '-'}")
            for state, at in message["reached"].items():
                print(f"  {times.local(at)}  {state}")
        return 0

    return with_store(path, action)


def stats_command(path: Path, since: str | None, as_json: bool) -> int:
    try:
        start = times.parse_time(since, time.time()) if since else 0.0
    except ValueError as exc:
        print(f"relay: since: {exc}", file=sys.stderr)
        return 2

    async def action(running: RunningConfig, store: Store) -> int:
        figures = stats(await messages.since(store, start))
        if as_json:
            print(json.dumps(figures, ensure_ascii=False, indent=2))
            return 0
        if not figures:
            print("no messages" + (f" since {since}" if since else ""))
        for product, got in figures.items():
            latency = got["latency_s"]
            print(f"{product}: {got['messages']} message(s), {got['delivered_share']:.1%} "
                  f"delivered; request->delivered p50 {_s(latency['p50'])}, "
                  f"p90 {_s(latency['p90'])}, p99 {_s(latency['p99'])}")
            if got["dropped"]:
                print("  drops by class: " + ", ".join(
                    f"{k} {v}" for k, v in got["drops_by_class"].items()))
                print("  drops by operator: " + ", ".join(
                    f"{k} {v}" for k, v in got["drops_by_operator"].items()))
        return 0

    return with_store(path, action)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"
