"""The operator's side against both stores: the defects issue 27 found, each held down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import MakeRelay, MakeSink, relay_config, signed, wait_settled
from test_console import OPERATOR, TOKENS, sign_in

from relay.ops import dead, quarantine
from relay.runtime import RunningConfig
from relay.store import AttemptRecord, NewEvent, QuarantinedPush, Store


class Counting:
    """A store that counts the calls made on it (how many round trips a listing costs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return call


async def test_quarantine_replay_all_takes_every_held_push(
        store: Store, write_config: Callable[[str], Path]) -> None:
    """``relay quarantine replay --all`` reaches past the first 1,000 held pushes, and an id
    past them is not reported missing."""
    running = RunningConfig.load(write_config(relay_config("  []")))
    now = time.time()
    ids = await asyncio.gather(*(store.quarantine(QuarantinedPush(
        f"id-{n}", "/subhook/sms", "sms", "{}", b"", "text/plain", '["x"]', now))
        for n in range(1005)))
    done = await quarantine.replay_quarantine(store, running, None)
    assert len(done["still_invalid"]) == 1005
    last = await quarantine.replay_quarantine(store, running, [max(ids)])
    assert (last["missing"], len(last["still_invalid"])) == ([], 1)


async def test_dead_letter_listing_reads_attempts_once(store: Store) -> None:
    """Listing dead letters costs the same round trips for three rows as for one."""
    now = time.time()
    for n in range(3):
        await store.ingest(NewEvent(f"msg_{n}", f"identity-{n}", f"token-{n}", "sms",
                                    "delivered", None, '{"address": "13812345678"}', b"",
                                    "text/plain", now, (("a", now + 3600),)))
    claimed = await store.claim("a", 10, "w", now + 60, now + 1)
    await store.record([AttemptRecord(c.id, 1, now, 5.0, 400, "HTTP 400", "dead")
                        for c in claimed])
    counting = Counting(store)
    rows = await dead.dead_letters(counting)
    assert [len(r["attempts"]) for r in rows] == [1, 1, 1]
    assert len(counting.calls) <= 2, counting.calls


async def test_dead_letter_page_shows_mails_other_contact_fields(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """A dead mail ``receivers`` push (no ``email``, its contact in ``mail_to``) shows its
    masked contact on the dead-letter page, as every other listing does."""
    sink = await make_sink(script=[410])
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: svc, url: "{sink.url}"}}]}}', TOKENS)
    fields = signed("mail", {"events": "receivers", "mail_to": "inbox@example.com",
                             "mail_from": "leo@submail.cn", "subject": "s", "content": "c",
                             "timestamp": int(time.time())})
    assert (await client.post("/subhook/mail", data=fields)).status == 200
    await wait_settled(client)
    await sign_in(client, OPERATOR)
    page = await (await client.get("/console/dead")).text()
    assert "<td>i***@example.com</td>" in page
    assert "inbox@example.com" not in page
