"""Looking events up (SPEC 12) on both stores: filters, cursor paging, an event's history
across a replay, discards, and what stores made before version 6 hold."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import fresh_postgres_db

from relay.ingest.identity import identity, webhook_id
from relay.ops import dead, quarantine
from relay.ops import events as lookup
from relay.products import PRODUCTS
from relay.store import AttemptRecord, NewEvent, QuarantinedPush, Store, deliveries, open_store
from relay.store import quarantine as held
from relay.store.migrations import migrate_postgres, migrate_sqlite

NOW = time.time()


def new_event(n: int, *, product: str = "sms", contact: str = "13800000000",
              send_id: str | None = None, at: float = NOW,
              destinations: tuple[str, ...] = ("svc",)) -> NewEvent:
    field = PRODUCTS[product].contact_field or "address"
    fields = {"events": "delivered", field: contact, "app": 1, "timestamp": int(at),
              "send_id": send_id if send_id is not None else f"send-{n}", "n": n}
    ident = identity(product, fields)
    return NewEvent(webhook_id(ident), ident, f"token-{n}-{at}", product, "delivered", None,
                    json.dumps(fields), b"", "application/json", at,
                    tuple((d, at + 3600) for d in destinations),
                    send_id=str(fields["send_id"]),
                    contact=PRODUCTS[product].contact_of(fields))


async def opened(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


async def ids(store: Store, **options: Any) -> list[int]:
    page = await lookup.list_events(store, lookup.event_filter(**options, now=NOW), 100)
    return [e["id"] for e in page["events"]]


async def test_lookup_by_send_id_contact_time_range_and_state(store_url: str) -> None:
    """Each filter finds exactly its events, newest first; a contact typed in any usual
    form finds the number and shows it masked; unknown values find nothing."""
    store = await opened(store_url)
    try:
        a = await store.ingest(new_event(1, contact="13812345678", at=NOW - 7200))
        b = await store.ingest(new_event(2, contact="13812345678", send_id="order-9"))
        c = await store.ingest(new_event(3, product="mail", contact="Leo@SUBMAIL.cn",
                                         send_id="order-9"))
        d = await store.ingest(new_event(4, contact="13900000000", at=NOW - 60))
        assert await ids(store, send_id="order-9") == [c, b]
        for typed in ("13812345678", "+86 138-1234-5678", "8613812345678"):
            assert await ids(store, contact=typed) == [b, a], typed
        assert await ids(store, contact="leo@submail.cn") == [c]
        assert await ids(store, since="1h") == [d, c, b]
        assert await ids(store, until="1h") == [a]
        assert await ids(store, product="mail") == [c]
        assert await ids(store, send_id="nope") == []
        (claimed,) = await store.claim("svc", 1, "w", NOW + 60, NOW + 7200)
        assert claimed.event_id == a
        await store.record([AttemptRecord(claimed.id, 1, NOW, 3.0, 410, "HTTP 410", "dead")])
        assert await ids(store, state="dead") == [a]
        assert await ids(store, state="pending") == [d, c, b]
        page = await lookup.list_events(store, lookup.event_filter(contact="13812345678"))
        shown = json.dumps(page)
        assert "13812345678" not in shown and "138****5678" in shown
        assert [e["contact"] for e in page["events"]] == ["138****5678"] * 2
        assert page["events"][1]["deliveries"][0]["state"] == "dead"
    finally:
        await store.close()


async def test_paging_returns_every_event_once_while_new_ones_arrive(store_url: str) -> None:
    """Pages of 3 over 10 events, with 4 more pushed between pages: the listing's 10 events
    come back once each, newest first; the new ones are above the first page."""
    store = await opened(store_url)
    try:
        first = [i for n in range(10) if (i := await store.ingest(new_event(n))) is not None]
        assert len(first) == 10
        seen: list[int] = []
        cursor = None
        for extra in range(100, 104):
            page = await lookup.list_events(store, lookup.event_filter(), 3, cursor)
            seen += [e["id"] for e in page["events"]]
            await store.ingest(new_event(extra))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(first, reverse=True)
        assert cursor is None
        newest = await lookup.list_events(store, lookup.event_filter(), 4)
        assert all(e["id"] > max(first) for e in newest["events"])
        with pytest.raises(ValueError, match="cursor"):
            await lookup.list_events(store, lookup.event_filter(), 3, "12abc")
    finally:
        await store.close()


class Settings:
    """What replay_events reads of the settings."""

    class retry:
        max_age = 3600.0


async def test_show_lists_every_attempt_in_order_across_a_replay(store_url: str) -> None:
    """An event's history: two failed attempts with the service's answers, dead, replayed,
    then delivered; attempts after the replay carry its number; by id and webhook-id."""
    store = await opened(store_url)
    try:
        event_id = await store.ingest(new_event(1, destinations=("svc", "other")))
        assert event_id is not None
        for attempt, state in ((1, "pending"), (2, "dead")):
            (claimed,) = await store.claim("svc", 1, "w", NOW + 60, NOW + 7200)
            await store.record([AttemptRecord(claimed.id, attempt, NOW + attempt, 5.0, 503,
                                              "HTTP 503", state, NOW,
                                              answer=f"busy {attempt}")])
        result = await lookup.replay_events(store, Settings(), [event_id, 999_999])  # type: ignore[arg-type]
        assert result["missing"] == [999_999]
        assert [r["event_id"] for r in result["replayed"]] == [event_id]
        (claimed,) = await store.claim("svc", 1, "w", NOW + 60, NOW + 7200)
        assert claimed.replays == 1
        await store.record([AttemptRecord(claimed.id, 1, NOW + 9, 2.0, 200, None, "delivered",
                                          replay=claimed.replays, answer="ok")])
        shown = await lookup.show_event(store, event_id)
        assert shown is not None
        assert shown == await lookup.show_event(store, shown["webhook_id"])
        svc, other = shown["deliveries"]
        assert (svc["destination"], svc["state"], svc["replays"]) == ("svc", "delivered", 1)
        assert [(a["replay"], a["attempt"], a["status"], a["answer"]) for a in svc["attempts"]] \
            == [(0, 1, 503, "busy 1"), (0, 2, 503, "busy 2"), (1, 1, 200, "ok")]
        assert (other["state"], other["attempts"]) == ("pending", [])
        assert await lookup.show_event(store, 999_999) is None
        assert await lookup.show_event(store, "msg_" + "0" * 32) is None
    finally:
        await store.close()


async def test_discards_take_dead_letters_and_held_pushes_off_their_lists(
        store_url: str) -> None:
    """Discarded dead letters leave `dead list` but their event stays findable; ids that
    name nothing are reported missing; quarantine likewise."""
    store = await opened(store_url)
    try:
        event_id = await store.ingest(new_event(1))
        (claimed,) = await store.claim("svc", 1, "w", NOW + 60, NOW + 7200)
        await store.record([AttemptRecord(claimed.id, 1, NOW, 1.0, 410, "HTTP 410", "dead")])
        assert await dead.discard_dead(store, [claimed.id, 424242]) == {
            "discarded": [claimed.id], "missing": [424242]}
        assert await deliveries.dead_letters(store) == []
        assert await ids(store, state="discarded") == [event_id]
        kept = await store.quarantine(QuarantinedPush("q1", "/subhook/sms", "sms", "{}", b"",
                                                      "application/json", "[]", NOW))
        assert await quarantine.discard_quarantine(store, None) == {"discarded": [kept],
                                                                 "missing": []}
        assert await held.quarantined(store) == []
    finally:
        await store.close()


OLD_EVENT = ("INSERT INTO events (webhook_id, identity, token, product, event, tag, fields,"
             " body, content_type, received_at) VALUES ({})")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_events_stored_before_version_6_are_found(tmp_path: Path, kind: str) -> None:
    """Upgrading fills send_id and contact in from the stored fields, as ingest would."""
    rows = [("msg_a", "ia", "t1", "sms", "delivered", None,
             '{"send_id": "old-1", "address": " 13812345678"}', b"", "x", NOW),
            ("msg_b", "ib", "t2", "mail", "request", None,
             '{"send_id": 77, "email": "Leo@Submail.cn"}', b"", "x", NOW),
            ("msg_c", "ic", "t3", "mail", "receivers", None,
             '{"mail_to": "in@example.com"}', b"", "x", NOW)]
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
        migrate_sqlite(conn, target=5)
        conn.executemany(OLD_EVENT.format(",".join("?" * 10)), rows)
        conn.close()
        await check_found(url)
        return
    async with fresh_postgres_db() as url:
        pg = await asyncpg.connect(url)
        try:
            await migrate_postgres(pg, target=5)
            await pg.executemany(OLD_EVENT.format(",".join(f"${i}" for i in range(1, 11))),
                                 rows)
        finally:
            await pg.close()
        await check_found(url)


async def check_found(url: str) -> None:
    store = await opened(url)
    try:
        assert len(await ids(store, send_id="old-1")) == 1
        assert len(await ids(store, contact="13812345678")) == 1
        assert len(await ids(store, send_id="77")) == 1
        assert len(await ids(store, contact="leo@submail.cn")) == 1
        assert len(await ids(store, contact="IN@example.com")) == 1
    finally:
        await store.close()


def test_an_event_no_schema_has_is_refused_with_a_suggestion() -> None:
    """A filter on an event none of the schemas has (a typo) is refused naming the closest
    events; an alias spelling is the event it stands for."""
    known = {"delivered", "dropped", "unknown"}
    with pytest.raises(ValueError, match="did you mean delivered"):
        lookup.event_filter(event="delivred", known_events=known)
    assert lookup.event_filter(event="unkown", known_events=known).event == "unknown"
    assert lookup.event_filter(event="delivred").event == "delivred"  # no schemas given
