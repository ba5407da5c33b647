"""Notifications of a destination's bad day (SPEC 17): ``alerts:`` in the config.

Best effort and out of the way: a notice is queued (never awaited by the worker) and sent
by one task, each target tried a few times; one that keeps failing costs a warning, never a
delivery's time. Alerts are not events: they are not stored and not replayed. Dead letters
are summed per destination: at most one notice a minute each, with the count.

Formats: ``json`` posts ``{"type", "destination", "at", "detail", "count"}``, signed with
Standard Webhooks headers when the target has a ``secret``; ``slack`` posts ``{"text"}``;
``dingtalk`` and ``wecom`` post ``{"msgtype": "text", "text": {"content"}}``; ``feishu``
posts ``{"msg_type": "text", "content": {"text"}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from relay.config import AlertTarget
from relay.constants import H_ID, H_SIGNATURE, H_TIMESTAMP
from relay.delivery.client import standard_webhook_signature
from relay.logs import Throttle
from relay.redact import redact_url

log = logging.getLogger("relay.alerts")

#: Dead-letter notices of one destination: at most one per this many seconds.
DEAD_LETTER_EVERY_S = 60.0
#: Tries per target and notice, and the waits between them.
TRIES = 3
RETRY_WAIT_S = 1.0
#: Notices waiting to be sent; more are dropped (with a warning): alerts never hold memory.
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Notice:
    type: str  # one of constants.ALERT_KINDS
    destination: str
    at: float
    detail: str
    count: int = 1

    def text(self) -> str:
        at = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        counted = f" ({self.count})" if self.count > 1 else ""
        return f"[subhook-relay] {self.type}{counted}: destination {self.destination}: " \
               f"{self.detail} at {at}"


def render(target: AlertTarget, notice: Notice) -> tuple[bytes, dict[str, str]]:
    """The body and headers a notice is posted to ``target`` with. Pure but for the id."""
    payload: dict[str, Any]
    if target.format == "slack":
        payload = {"text": notice.text()}
    elif target.format in ("dingtalk", "wecom"):
        payload = {"msgtype": "text", "text": {"content": notice.text()}}
    elif target.format == "feishu":
        payload = {"msg_type": "text", "content": {"text": notice.text()}}
    else:
        payload = {"type": notice.type, "destination": notice.destination,
                   "at": datetime.fromtimestamp(notice.at, UTC).isoformat(timespec="seconds"),
                   "detail": notice.detail, "count": notice.count}
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if target.format == "json" and target.secret:
        msg_id, stamp = f"alert_{secrets.token_hex(12)}", int(time.time())
        headers.update({H_ID: msg_id, H_TIMESTAMP: str(stamp),
                        H_SIGNATURE: standard_webhook_signature(target.secret, msg_id, stamp,
                                                                body)})
    return body, headers


@dataclass
class _Held:
    last_sent: float
    count: int = 0
    detail: str = ""


class Alerter:
    """Queues notices for the configured targets and sends them from one task."""

    def __init__(self, targets: Callable[[], tuple[AlertTarget, ...]],
                 retry_wait: float = RETRY_WAIT_S) -> None:
        self.targets = targets
        self.retry_wait = retry_wait
        self._queue: asyncio.Queue[tuple[AlertTarget, Notice]] = asyncio.Queue(QUEUE_SIZE)
        self._dead: dict[str, _Held] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._throttle = Throttle(10.0)

    def notify(self, notice: Notice) -> None:
        for target in self.targets():
            if notice.type in target.kinds:
                try:
                    self._queue.put_nowait((target, notice))
                except asyncio.QueueFull:
                    if self._throttle.let(("full", target.name), time.monotonic()):
                        log.warning("alert to %s dropped: %d notices already waiting",
                                    target.name, QUEUE_SIZE)

    def dead_letter(self, destination: str, detail: str, now: float) -> None:
        """A dead letter: a notice now, or summed into the next one (a minute apart)."""
        held = self._dead.get(destination)
        if held is None or now - held.last_sent >= DEAD_LETTER_EVERY_S:
            self._dead[destination] = _Held(now)
            self.notify(Notice("dead_letter", destination, now, detail))
            return
        held.count += 1
        held.detail = detail
        if destination not in self._timers:
            delay = held.last_sent + DEAD_LETTER_EVERY_S - now
            self._timers[destination] = asyncio.get_running_loop().call_later(
                delay, self._flush, destination)

    def _flush(self, destination: str) -> None:
        self._timers.pop(destination, None)
        held = self._dead.get(destination)
        if held is None or not held.count:
            return
        now = time.time()
        self._dead[destination] = _Held(now)
        self.notify(Notice("dead_letter", destination, now, held.detail, held.count))

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            try:
                while True:
                    target, notice = await self._queue.get()
                    await self._send(session, target, notice)
            finally:
                for timer in self._timers.values():
                    timer.cancel()

    async def _send(self, session: aiohttp.ClientSession, target: AlertTarget,
                    notice: Notice) -> None:
        body, headers = render(target, notice)
        problem = ""
        for tried in range(1, TRIES + 1):
            try:
                async with session.post(target.url, data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=target.timeout),
                                        allow_redirects=False) as answer:
                    if answer.status < 300:
                        return
                    problem = f"HTTP {answer.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if tried < TRIES:
                await asyncio.sleep(self.retry_wait * tried)
        if self._throttle.let(("failed", target.name), time.monotonic()):
            log.warning("alert %s to %s (%s) not sent after %d tries: %s", notice.type,
                        target.name, redact_url(target.url), TRIES,
                        problem.replace(target.url, redact_url(target.url)))
