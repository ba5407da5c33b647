"""``relay events``, ``relay tail`` and the discards (SPEC 12): looking up what happened.

Exit codes: 0 found (or done), 1 not found or refused, 2 usage. Times are local for people
and UTC in ``--json`` (relay/lookup.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from relay import times
from relay.cli.commands import report_missing, with_store
from relay.ops import events as lookup
from relay.ops import shown
from relay.products import canonical_event
from relay.runtime import RunningConfig
from relay.store import Store
from relay.store import lookup as q
from relay.store.base import DeliveryState

#: What an attempt's outcome (the state it left its delivery in) says to people.
OUTCOME_WORDS = {DeliveryState.DELIVERED: "delivered", DeliveryState.DEAD: "dead",
                 DeliveryState.PENDING: "failed, will retry"}
#: How often ``relay tail`` asks the store for what is new.
TAIL_POLL_S = 0.5
#: Ids below the newest shown that ``relay tail`` still looks at: on PostgreSQL a
#: transaction may commit after one that took a higher id.
TAIL_LOOKBACK = 200


def _usage(message: str) -> int:
    print(f"relay: {message}", file=sys.stderr)
    return 2


def _deliveries(event: dict[str, Any]) -> str:
    return " ".join(f"{d['destination']}={d['state']}({d['attempts']})"
                    for d in event["deliveries"]) or "(no route)"


def events_list(path: Path, options: dict[str, Any], limit: int, cursor: str | None,
                as_json: bool) -> int:
    try:
        lookup.event_filter(**options)
    except ValueError as exc:
        return _usage(str(exc))

    async def action(running: RunningConfig, store: Store) -> int:
        try:
            # again with the schemas' events: a typo is named, not "0 event(s)"
            checked = lookup.event_filter(**options,
                                          known_events=running.schemas.event_names())
            page = await lookup.list_events(store, checked, limit, cursor)
        except ValueError as exc:
            return _usage(str(exc))
        if as_json:
            print(shown.dumps(page))
        else:
            for event in page["events"]:
                print(f"{event['id']}\t{times.local(event['received_at'])}\t"
                      f"{event['product']}/{event['event']}\t{event['webhook_id']}\t"
                      f"send_id={event['send_id'] or '-'}\tcontact={event['contact'] or '-'}\t"
                      f"{_deliveries(event)}")
            more = f"; more: --cursor {page['next_cursor']}" if page["next_cursor"] else ""
            print(f"{len(page['events'])} event(s){more}")
        return 0 if page["events"] else 1

    return with_store(path, action)


def _one_line(text: str, width: int = 200) -> str:
    """A service's answer on one line of a terminal: control characters escaped, cut."""
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return flat if len(flat) <= width else flat[:width] + "…"


def _print_event(event: dict[str, Any]) -> None:
    print(f"event {event['id']} {event['webhook_id']} {event['product']}/{event['event']}"
          f" received {times.local(event['received_at'])}")
    print(f"  send_id {event['send_id'] or '-'}  tag {event['tag'] or '-'}"
          f"  contact {event['contact'] or '-'}")
    print(f"  fields {json.dumps(event['fields'], ensure_ascii=False)}")
    if not event["deliveries"]:
        print("  no route matched it: stored, forwarded nowhere")
    for delivery in event["deliveries"]:
        replays = f", replayed {delivery['replays']}x" if delivery["replays"] else ""
        print(f"  to {delivery['destination']}: {delivery['state']}{replays}")
        if delivery["state"] == DeliveryState.PENDING:
            print(f"    next attempt {times.local(delivery['next_attempt_at'])}"
                  f"  last error {delivery['last_error'] or '-'}")
        replay = 0
        for attempt in delivery["attempts"]:
            if attempt["replay"] != replay:
                replay = attempt["replay"]
                print(f"    -- replay {replay} --")
            answer = _one_line(attempt["answer"]) if attempt["answer"] else "-"
            print(f"    {times.local(attempt['started_at'])} attempt {attempt['attempt']}"
                  f"  {attempt['status'] or '-'}  {attempt['duration_ms']} ms"
                  f"  {OUTCOME_WORDS.get(attempt['outcome'], attempt['outcome'])}"
                  f"  {attempt['error'] or ''}  answer {answer}")


def events_show(path: Path, key_text: str, as_json: bool) -> int:
    key = lookup.event_key(key_text)
    if key is None:
        return _usage(f"{key_text!r} is neither an event id nor a webhook-id (msg_...)")

    async def action(running: RunningConfig, store: Store) -> int:
        event = await lookup.show_event(store, key)
        if event is None:
            print(f"no event {key_text}", file=sys.stderr)
            return 1
        if as_json:
            print(shown.dumps(event))
        else:
            _print_event(event)
        return 0

    return with_store(path, action)


def events_replay(path: Path, ids: list[int], send_id: str | None) -> int:
    async def action(running: RunningConfig, store: Store) -> int:
        result = await lookup.replay_events(store, running.settings, ids, send_id)
        for replayed in result["replayed"]:
            print(f"event {replayed['event_id']}: {len(replayed['deliveries'])} "
                  "delivery(ies) queued again; the running relay sends them")
        for event_id in result["unchanged"]:
            print(f"event {event_id}: nothing to replay (no route, or still pending)")
        if send_id is not None and not (result["replayed"] or result["unchanged"]):
            print(f"no event with send_id {send_id}", file=sys.stderr)
            return 1
        return report_missing(result["missing"], "event")

    return with_store(path, action)


class _Follower:
    """New rows of one table by id, each shown once (see TAIL_LOOKBACK)."""

    def __init__(self, after: int) -> None:
        self.floor = after
        self.shown: set[int] = set()

    def fresh(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        new = [r for r in rows if r["id"] not in self.shown]
        self.shown.update(r["id"] for r in new)
        if rows:
            self.floor = max(self.floor, max(r["id"] for r in rows) - TAIL_LOOKBACK)
            self.shown = {i for i in self.shown if i > self.floor}
        return new


def _accepted_line(row: dict[str, Any]) -> str:
    event = shown.event({**row, "deliveries": []})
    return (f"{times.local(event['received_at'])} accepted {event['product']}/{event['event']}"
            f" {event['webhook_id']} id={event['id']} send_id={event['send_id'] or '-'}"
            f" contact={event['contact'] or '-'}")


def _attempt_line(row: dict[str, Any]) -> str:
    said = OUTCOME_WORDS.get(row["outcome"], row["outcome"])
    status = row["http_status"] or "-"
    error = f" {row['error']}" if row["error"] else ""
    return (f"{times.local(times.iso(row['started_at']))} {said} {row['destination']}"
            f" {row['product']}/{row['event']} {row['webhook_id']} attempt={row['attempt']}"
            f" status={status} {row['duration_ms']:.0f}ms{error}")


def tail(path: Path, product: str | None, event: str | None) -> int:
    wanted = canonical_event(event) if event else None

    def matches(row: dict[str, Any]) -> bool:
        return (product is None or row["product"] == product) and \
            (wanted is None or row["event"] == wanted)

    async def action(running: RunningConfig, store: Store) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        newest_event, newest_attempt = await q.last_ids(store)
        events, attempts = _Follower(newest_event), _Follower(newest_attempt)
        print(f"following {running.settings.store.split('://')[0]} store; Ctrl-C stops",
              flush=True)
        while not stop.is_set():
            for row in events.fresh(await q.events_after(store, events.floor)):
                if matches(row):
                    print(_accepted_line(row), flush=True)
            for row in attempts.fresh(await q.attempts_after(store, attempts.floor)):
                if matches(row):
                    print(_attempt_line(row), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TAIL_POLL_S)
        return 0

    return with_store(path, action)
