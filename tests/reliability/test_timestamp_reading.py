"""One reading of SUBMAIL's ``timestamp`` (SPEC 18, issue 26 item 8): the replay window,
the message records and the console read it the same way, and no page or command fails on
a value stored before they did."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, MakeRelay, eventually, signed

from relay.ingest.events import build_event
from relay.messages.lifecycle import MessageUpdate, submail_time
from relay.store import messages as message_records
from relay.times import TimestampOutOfRange, iso, read_timestamp
from relay.web.state import RUNTIME, STORE

TOKEN = "timestamp-admin-token-0123456789"
TOKENS = f"admin:\n  tokens:\n    - {{name: otto, token: {TOKEN}, role: operator}}\n"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("value", ["+1700000000", "-1", "2001-09-09 09:46:40",
                                   "١٧٠٠٠٠٠٠٠٠", "²", "", " ", "\t1700000000", "17e8",
                                   "1700000000.0", None, True, -1700000000, [1]])
def test_anything_but_ascii_digits_is_unread(value: Any) -> None:
    """A sign, a date, other Unicode digits, a fraction, empty or a tab: ValueError naming
    timestamp (the edge answers it 400)."""
    with pytest.raises(ValueError, match=r"^timestamp: ") as caught:
        read_timestamp(value)
    assert not isinstance(caught.value, TimestampOutOfRange)


def test_ascii_digits_as_text_or_integer_with_spaces_around() -> None:
    """Digits as a string or a JSON integer; surrounding ASCII spaces are ignored; too many
    digits are out of range (the window's 401), never turned into a number."""
    assert read_timestamp(1700000000) == read_timestamp("1700000000") == 1700000000
    assert read_timestamp("  1700000000 ") == 1700000000
    for huge in ("9" * 400, " " + "9" * 400, "9" * 5000, 10 ** 20):
        with pytest.raises(TimestampOutOfRange):
            read_timestamp(huge)
    assert submail_time(" " + "9" * 400) is None and submail_time("²") is None
    assert submail_time("2019-11-18 08:00:00") is None  # a date is no timestamp any more
    assert iso(float("inf")) is None and iso(float("nan")) is None and iso(1e300) is None


def push(send_id: str, timestamp: Any, event: str = "delivered") -> dict[str, Any]:
    return signed("sms", {"events": event, "address": "13812345678", "app": 1,
                          "send_id": send_id, "timestamp": timestamp})


async def test_the_window_refuses_every_other_reading(make_relay: MakeRelay) -> None:
    """Signed pushes whose timestamp is read another way are 400 naming timestamp, as a form
    or as JSON; the same time with spaces around is accepted."""
    client = await make_relay("  []")
    now = int(time.time())
    for index, value in enumerate([f" {now}x", f"+{now}", "2001-09-09 09:46:40",
                                   "".join(chr(0x0660 + int(d)) for d in str(now)), "²", "",
                                   f"{now}\u00a0", -now, None]):
        for as_json in (False, True):
            fields = push(f"bad-{index}-{as_json}", value)
            if not as_json and value is None:
                continue  # a form cannot carry null
            response = await (client.post("/subhook/sms", json=fields) if as_json
                              else client.post("/subhook/sms", data=fields))
            answer = await response.json()
            assert response.status == 400, (value, answer)
            assert answer["problems"][0].startswith("timestamp: "), answer
    response = await client.post("/subhook/sms", data=push("spaced", f"  {now} "))
    assert (response.status, (await response.json())["status"]) == (200, "accepted")
    old = await client.post("/subhook/sms", data=push("old", " 1000000000"))
    assert (old.status, (await old.json())["error"]) == (401, "outside_replay_window")


async def stored_before_the_fix(client: Client, send_id: str, timestamp: str) -> int:
    """An event whose timestamp the edge once let through, stored as it was then; and, for
    ``<send_id>-record``, the message record the old reading made of such a value (SUBMAIL's
    times infinite: float("9" * 400))."""
    assert client.app is not None
    settings, store = client.app[RUNTIME].current.settings, client.app[STORE]
    fields = push(send_id, timestamp)
    record, _ = build_event(settings, "sms", "delivered", fields, b"", "application/json",
                            time.time())
    event_id = await store.ingest(record)
    assert event_id is not None
    await message_records.apply(store, [MessageUpdate(
        "sms", f"{send_id}-record", state, rank, float("inf"), "138****5678", None, None,
        None, None, None, time.time()) for state, rank in (("request", 1), ("delivered", 5))])
    return int(event_id)


async def test_no_page_or_command_fails_on_any_stored_timestamp(
        make_relay: MakeRelay, tmp_path: Path) -> None:
    """Events stored with timestamp " " + "9" * 400 and "²", and message records with an
    infinite time: /console/messages, /console/events/N, /admin/messages/..., /admin/events
    and `relay messages show` answer, never 500 or OverflowError."""
    client = await make_relay("  []", TOKENS)
    ids = [await stored_before_the_fix(client, "nines", " " + "9" * 400),
           await stored_before_the_fix(client, "square", "²")]
    signin = await client.post("/console/signin", data={"token": TOKEN, "next": "/console/"},
                               allow_redirects=False)
    assert signin.status == 303
    # the follower folds the stored events into their records: wait until it has
    assert client.app is not None
    store = client.app[STORE]

    async def read() -> bool:
        return await message_records.cursor(store) >= ids[-1]

    await eventually(read, 10, "the message follower reading the events")
    paths = ["/console/messages", "/console/events", *(f"/console/events/{i}" for i in ids)]
    for path in paths:
        page = await client.get(path)
        assert page.status == 200, (path, (await page.text())[:2000])
    for path in ("/admin/messages/nines", "/admin/messages/nines-record",
                 "/admin/messages/square", "/admin/events",
                 *(f"/admin/events/{i}" for i in ids)):
        answer = await client.get(path, headers=AUTH)
        assert answer.status == 200, (path, await answer.text())
    for send_id in ("nines", "nines-record", "square"):
        for extra in ((), ("--json",)):
            shown = subprocess.run(
                [sys.executable, "-m", "relay", "messages", "show", send_id, *extra,
                 "--config", str(tmp_path / "relay.yaml")], capture_output=True, text=True,
                check=False, cwd=tmp_path, timeout=60)
            assert shown.returncode == 0, shown.stderr
            assert "Traceback" not in shown.stderr and send_id in shown.stdout
    stats = subprocess.run([sys.executable, "-m", "relay", "stats", "--config",
                            str(tmp_path / "relay.yaml")], capture_output=True, text=True,
                           check=False, cwd=tmp_path, timeout=60)
    assert stats.returncode == 0 and "Traceback" not in stats.stderr, stats.stderr
