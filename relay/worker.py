"""Delivery workers: claim due deliveries, send them, apply the outcome.

A retry is data: each delivery row carries its attempt count, next attempt time, expiry
and lease. The dispatcher claims rows per destination, never more than the destination's
``max_in_flight`` free slots, so a slow or dead service holds only its own slots and never
delays the others. ``decide`` is pure; ``Worker`` only applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable

from pyreqwest.client import Client

from relay.backoff import next_attempt
from relay.config import Settings
from relay.constants import STORED_ANSWER_BYTES
from relay.delivery import Kind, Outcome, new_client, send
from relay.health import DestinationHealth
from relay.metrics import Metrics
from relay.routing import Destination
from relay.store import AttemptRecord, ClaimedDelivery, Store, StoreUnavailable
from relay.store.base import DeliveryState

log = logging.getLogger("relay.worker")

#: How often the worker looks for deliveries to destinations no config names any more.
ORPHAN_CHECK_S = 5.0
#: Waits between tries to record an attempt while the store cannot write.
RECORD_RETRY_MIN_S = 0.1
RECORD_RETRY_MAX_S = 5.0


def stored_answer(answer: bytes) -> str | None:
    """What an attempt keeps of the service's answer: its first ``STORED_ANSWER_BYTES``,
    as text (bytes that are not UTF-8 replaced); None for an empty answer."""
    if not answer:
        return None
    return answer[:STORED_ANSWER_BYTES].decode("utf-8", "replace")


def decide(delivery: ClaimedDelivery, destination: Destination, attempt: int,
           outcome: Outcome, now: float) -> AttemptRecord:
    """Pure: the record of an attempt and the delivery's next state."""

    def record(state: DeliveryState, error: str | None,
               next_at: float | None = None) -> AttemptRecord:
        return AttemptRecord(delivery.id, attempt, now - outcome.duration_ms / 1000,
                             outcome.duration_ms, outcome.status, error, state, next_at,
                             replay=delivery.replays, answer=stored_answer(outcome.answer))

    if outcome.kind == Kind.DELIVERED:
        return record(DeliveryState.DELIVERED, None)
    if outcome.kind == Kind.PERMANENT:
        return record(DeliveryState.DEAD, f"{outcome.error} (not retryable)")
    policy = destination.retry
    decision = next_attempt(attempt=attempt, max_attempts=policy.max_attempts,
                            initial_delay=policy.initial_delay, max_delay=policy.max_delay,
                            now=now, expires_at=delivery.expires_at,
                            retry_after=outcome.retry_after)
    if not decision.retry:
        return record(DeliveryState.DEAD, f"{outcome.error}; {decision.reason}")
    return record(DeliveryState.PENDING, outcome.error, now + decision.delay)


class Worker:
    """Runs deliveries for one relay process."""

    def __init__(self, store: Store, settings: Callable[[], Settings], owner: str,
                 metrics: Metrics, poll_interval: float = 0.25,
                 health: DestinationHealth | None = None) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner
        self.metrics = metrics
        self.health = health or DestinationHealth()
        self.poll_interval = poll_interval
        self.in_flight: dict[str, int] = defaultdict(int)
        #: claimed rows waiting for a slot, per destination (leased, so no claim takes them)
        self._waiting: dict[str, deque[ClaimedDelivery]] = defaultdict(deque)
        #: ids of the rows waiting or in flight until their attempt is recorded: a claim
        #: that returns one again (its lease rolled back with a failed group, or run out
        #: while the attempt was being recorded) must not start it twice
        self._held: set[int] = set()
        self._known: dict[str, Destination] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: Client | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._next_orphan_check = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self.run(), name="relay-worker")

    async def run(self) -> None:
        self._client = new_client()
        try:
            while not self._stopping:
                # Cleared before dispatching, not after: a wake while a claim waits for its
                # commit (an event accepted, a slot freed) must start the next dispatch at
                # once, not wait for the poll.
                self._wake.clear()
                try:
                    await self._dispatch()
                except Exception:
                    log.exception("dispatch failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            await self._client.close()

    async def _dispatch(self) -> None:
        settings = self.settings()
        self._known.update(settings.destinations())
        margin = settings.lease_margin
        now = time.time()
        if now >= self._next_orphan_check:
            # Rows for destinations no config names any more; rare, so looked for rarely.
            self._next_orphan_check = now + ORPHAN_CHECK_S
            for name in await self.store.pending_destinations(now):
                if name not in self._known:
                    await self._orphan(name, now, margin)
        # Each destination's slots, and as many claimed rows again waiting in memory for a
        # slot: a freed slot takes the next at once instead of waiting for a claim's commit
        # (docs/decisions.md). A waiting row starts within one timeout (every slot frees
        # once in that time), so its lease covers two, plus the margin.
        wants = {name: (room, now + 2 * destination.timeout + margin)
                 for name, destination in self._known.items()
                 if (room := 2 * destination.max_in_flight - self.in_flight[name]
                     - len(self._waiting[name])) > 0}
        if not wants or self._stopping:
            return
        for delivery in await self.store.claim_due(wants, self.owner, now):
            if delivery.id not in self._held:
                self._held.add(delivery.id)
                self._waiting[delivery.destination].append(delivery)
        for name in wants:
            self._start_waiting(name)

    def _start_waiting(self, name: str) -> None:
        """Start claimed rows of ``name`` while it has free slots."""
        destination, waiting = self._known[name], self._waiting[name]
        while waiting and self.in_flight[name] < destination.max_in_flight \
                and not self._stopping:
            self.in_flight[name] += 1
            task = asyncio.create_task(self._deliver(waiting.popleft(), destination))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _orphan(self, name: str, now: float, margin: float) -> None:
        """Deliveries to a destination no config names any more become dead letters."""
        claimed = await self.store.claim(name, 1000, self.owner, now + margin, now)
        records = [AttemptRecord(d.id, d.attempt, now, 0.0, None,
                                 f"destination {name!r} is not in the config",
                                 DeliveryState.DEAD, replay=d.replays) for d in claimed]
        await self.store.record(records)
        for delivery, record in zip(claimed, records, strict=True):
            self.health.observe(name, delivery.webhook_id, record, now)

    async def _deliver(self, delivery: ClaimedDelivery, destination: Destination) -> None:
        attempt = delivery.attempt + 1
        try:
            try:
                assert self._client is not None  # set before dispatching
                outcome = await send(self._client, delivery, destination, attempt)
            finally:
                # The request is over: its slot takes the next delivery while this attempt
                # is recorded (its row stays leased until then, so no claim takes it
                # again). Held until the commit, a slot spent most of its time waiting for
                # it, and 16 slots could not carry 1,500 deliveries a second to one service.
                self._release(destination.name)
            record = decide(delivery, destination, attempt, outcome, time.time())
            self.metrics.attempt(destination.name, outcome, record.state)
            await self._record(record)
            self.health.observe(destination.name, delivery.webhook_id, record)
        except Exception:
            log.exception("delivery %s to %s failed to record", delivery.id, destination.name)
        finally:
            self._held.discard(delivery.id)

    def _release(self, destination: str) -> None:
        self.in_flight[destination] -= 1
        self._start_waiting(destination)
        self._wake.set()

    async def _record(self, record: AttemptRecord) -> None:
        """Record an attempt that was made, retrying while the store cannot write (full,
        read-only): left unrecorded, the delivery would stay leased and be sent again once
        the lease ran out. Gives up only when stopping (then the lease decides)."""
        delay = RECORD_RETRY_MIN_S
        while True:
            try:
                await self.store.record([record])
                return
            except StoreUnavailable as exc:
                if self._stopping:
                    raise
                log.warning("could not record attempt %d of delivery %d (retrying in %.1fs): "
                            "%s", record.attempt, record.delivery_id, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_S)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let deliveries in flight finish (up to ``grace``), release leases."""
        self._stopping = True
        self._wake.set()
        # No new claim starts from here on; deliveries in flight get ``grace`` seconds to
        # finish and record, the rest are cancelled; the loop ends (waiting for deliveries a
        # claim already under way started) and whatever this worker still leases is released.
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if self._loop_task is not None:
            await self._loop_task
        try:
            released = await self.store.release(self.owner)
        except StoreUnavailable as exc:
            # Stopping must not fail for it: the leases run out (or, on PostgreSQL, die with
            # this instance's heartbeat) and the rows are claimed again.
            log.warning("could not release leased deliveries at stop: %s", exc)
            return
        if released:
            log.info("released %d leased deliveries", released)
