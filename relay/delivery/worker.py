"""Delivery workers: claim due deliveries, send them, apply the outcome.

A retry is data: each delivery row carries its attempt count, next attempt time, expiry
and lease. The dispatcher claims rows per destination, never more than the destination's
``max_in_flight`` free slots, so a slow or dead service holds only its own slots and never
delays the others. ``decide`` is pure (relay/delivery/settle.py, with the writing of attempt
records in groups); ``Worker`` only applies it.

A destination's bad day (SPEC 17) is decided apart and applied here: its breaker
(relay/breaker.py, kept in ``health``) and an operator's pause (read from the store every
``CONTROL_POLL_S``) say whether to claim all, one probe or nothing; its ``rate`` is a token
bucket (relay/pacing.py) shared out over the live instances; ``order: send_id`` claims with
the statement that holds a message's later deliveries back. A success after failures makes
every pending delivery of the destination due at once (relay/destinations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from relay.config import Settings
from relay.constants import CONTROL_POLL_S
from relay.delivery.alerts import Alerter
from relay.delivery.breaker import Allowance, State
from relay.delivery.client import Kind
from relay.delivery.health import DestinationHealth
from relay.delivery.pacing import TokenBucket
from relay.delivery.settle import Recorder, decide
from relay.metrics import Metrics
from relay.ops import destinations as controls
from relay.routing import Destination
from relay.senders import Senders
from relay.store import AttemptRecord, ClaimedDelivery, Store, StoreUnavailable, Want, deliveries
from relay.store import destinations as store_destinations
from relay.store.base import DeliveryState

log = logging.getLogger("relay.worker")

#: How often the worker looks for deliveries to destinations no config names any more.
ORPHAN_CHECK_S = 5.0
#: Waits between tries to record an attempt while the store cannot write.
RECORD_RETRY_MIN_S = 0.1
RECORD_RETRY_MAX_S = 5.0


class Worker:
    """Runs deliveries for one relay process."""

    def __init__(self, store: Store, settings: Callable[[], Settings], owner: str,
                 metrics: Metrics, poll_interval: float = 0.25,
                 health: DestinationHealth | None = None,
                 alerter: Alerter | None = None) -> None:
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
        #: held ids a claim returned again, with a lease of its own: freed once their
        #: attempt is recorded, or they would wait for that lease to run out
        self._reclaimed: set[int] = set()
        self._known: dict[str, Destination] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: attempt records written in groups (relay/delivery/settle.py)
        self._recorder = Recorder(self.store.record, self._tasks)
        self._wake = asyncio.Event()
        self._stopping = False
        #: how each destination is sent to: HTTP or a broker (relay/senders)
        self._senders = Senders()
        self._loop_task: asyncio.Task[None] | None = None
        self._next_orphan_check = 0.0
        self.alerter = alerter
        #: the delivery an open breaker is probing with, per destination
        self._probes: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        #: when a dispatch is already set to run for a destination (a probe, a token)
        self._wake_timers: dict[str, float] = {}
        #: relays sharing each rate (PostgreSQL's live instances; 1 on SQLite)
        self._share = 1
        self._next_control_check = 0.0
        #: times the pauses were read from the store (what a wait for them to apply counts)
        self.controls_read = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self.run(), name="relay-worker")

    async def run(self) -> None:
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
            await self._senders.close()

    async def _dispatch(self) -> None:
        settings = self.settings()
        self._known.update(settings.destinations())
        margin = settings.lease_margin
        now = time.time()
        if now >= self._next_orphan_check:
            # Rows for destinations no config names any more; rare, so looked for rarely.
            self._next_orphan_check = now + ORPHAN_CHECK_S
            for name in await deliveries.pending_destinations(self.store, now):
                if name not in self._known:
                    await self._orphan(name, now, margin)
        # Each destination's slots, and as many claimed rows again waiting in memory for a
        # slot: a freed slot takes the next at once instead of waiting for a claim's commit
        # (docs/decisions.md). A waiting row starts within one timeout (every slot frees
        # once in that time), so its lease covers two, plus the margin.
        if now >= self._next_control_check:
            self._next_control_check = now + CONTROL_POLL_S
            await self.refresh_controls(now)
        wants = {name: want for name, destination in self._known.items()
                 if (want := self._want(destination, now, margin)) is not None}
        if not wants or self._stopping:
            return
        for delivery in await self.store.claim_due(wants, self.owner, now):
            if delivery.id in self._held:
                self._reclaimed.add(delivery.id)
            else:
                self._held.add(delivery.id)
                self._waiting[delivery.destination].append(delivery)
                if wants[delivery.destination].probe:
                    self._probes[delivery.destination] = delivery.id
                    self.health.breaker(delivery.destination).probe_started()
        for name in wants:
            self._start_waiting(name)

    def _want(self, destination: Destination, now: float, margin: float) -> Want | None:
        """What to claim for ``destination`` now: None (nothing), one probe, or as many
        rows as its free slots (and as many again to wait in memory) and its rate allow."""
        name = destination.name
        lease_until = now + 2 * destination.timeout + margin
        allowance = self.health.allowance(name, now)
        if allowance is Allowance.NONE:
            breaker = self.health.breakers.get(name)
            if breaker is not None and breaker.opened_at is not None and not breaker.probing:
                self._wake_at(name, breaker.next_probe, now)
            return None
        if allowance is Allowance.PROBE:
            busy = self.in_flight[name] or self._waiting[name]
            return None if busy else Want(1, lease_until, probe=True)
        room = 2 * destination.max_in_flight - self.in_flight[name] - len(self._waiting[name])
        if destination.rate is not None:
            room = min(room, self._bucket(destination, now).available(now)
                       - len(self._waiting[name]))
        if room <= 0:
            return None
        return Want(room, lease_until, ordered=destination.order == "send_id")

    def _wake_at(self, name: str, at: float, now: float) -> None:
        """Dispatch again at ``at`` (a probe or a token due), not at the next poll."""
        if self._wake_timers.get(name, float("inf")) <= at and \
                self._wake_timers.get(name, 0.0) > now:
            return
        self._wake_timers[name] = at
        asyncio.get_running_loop().call_later(max(0.0, at - now), self._wake.set)

    def _bucket(self, destination: Destination, now: float) -> TokenBucket:
        assert destination.rate is not None
        share = destination.rate / self._share
        bucket = self._buckets.get(destination.name)
        if bucket is None:
            bucket = self._buckets[destination.name] = TokenBucket.full(share, now)
        elif bucket.rate != share:
            bucket.set_rate(share, now)
        return bucket

    async def refresh_controls(self, now: float) -> None:
        """Read the pauses standing and the relays sharing the rates; log (and alert) a
        pause or a resume this process had not seen."""
        pauses = await store_destinations.pauses(self.store)
        self._share = await store_destinations.live_instances(self.store)
        self.controls_read += 1
        before = self.health.paused
        self.health.paused = {name: (p.paused_by, p.reason) for name, p in pauses.items()}
        for name in sorted(set(before) | set(pauses)):
            if (name in before) != (name in pauses):
                paused = name in pauses
                self._changed(name, self.health.breaker(name).state if paused else State.PAUSED,
                              State.PAUSED if paused else self.health.breaker(name).state, now)
        for name in pauses:
            self._drop_waiting(name)

    def _start_waiting(self, name: str) -> None:
        """Start claimed rows of ``name`` while it has free slots (and tokens, with a
        ``rate``); an open breaker starts only its probe, a pause nothing."""
        destination, waiting = self._known[name], self._waiting[name]
        allowance = self.health.allowance(name, time.time())
        if allowance is not Allowance.ALL and not (
                waiting and self._probes.get(name) == waiting[0].id):
            self._drop_waiting(name)
            return
        while waiting and self.in_flight[name] < destination.max_in_flight \
                and not self._stopping:
            if destination.rate is not None:
                now = time.time()
                bucket = self._bucket(destination, now)
                if not bucket.take(now):
                    self._wake_at(name, now + bucket.wait(now), now)
                    return
            self.in_flight[name] += 1
            self._spawn(self._deliver(waiting.popleft(), destination))

    def _drop_waiting(self, name: str) -> None:
        """Rows claimed for ``name`` that may not start now (paused, breaker open): let go,
        their leases freed, so no other instance waits on them and none starts them twice."""
        waiting = self._waiting[name]
        probe = self._probes.get(name)
        dropped = [d.id for d in waiting if d.id != probe]
        if not dropped:
            return
        self._waiting[name] = deque(d for d in waiting if d.id == probe)
        self._held.difference_update(dropped)
        self._spawn(self._unlease(dropped))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the worker waits for when it stops."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unlease(self, ids: list[int]) -> None:
        try:
            await controls.unlease(self.store, ids, self.owner)
        except StoreUnavailable as exc:
            log.warning("could not free the leases of %d held deliveries (they run out): %s",
                        len(ids), exc)

    def _changed(self, name: str, before: State, after: State, now: float) -> None:
        """A destination's state changed: log it, report it to the store, alert."""
        self._spawn(controls.changed(self.store, name, before, after, self.health,
                                     self._known.get(name), self.alerter, now))

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
                outcome = await self._senders.send(delivery, destination, attempt)
            finally:
                # The request is over: its slot takes the next delivery while this attempt
                # is recorded (its row stays leased until then, so no claim takes it
                # again). Held until the commit, a slot spent most of its time waiting for
                # it, and 16 slots could not carry 1,500 deliveries a second to one service.
                self._release(destination.name)
            now = time.time()
            record = decide(delivery, destination, attempt, outcome, now)
            self.metrics.attempt(destination.name, outcome, record.state)
            probe = self._probes.get(destination.name) == delivery.id
            if probe:
                del self._probes[destination.name]
            before = self.health.breaker(destination.name).state
            change = self.health.outcome(destination.name, outcome.kind is Kind.RETRYABLE,
                                         destination.breaker, now, probe)
            await self._record(record)
            self.health.observe(destination.name, delivery.webhook_id, record)
            if change is not None:
                self._changed(destination.name, before, change, now)
            if change is State.HEALTHY and before in (State.FAILING, State.OPEN):
                await controls.wake(self.store, destination.name)
                self._wake.set()
            if record.state == DeliveryState.DEAD and self.alerter is not None:
                self.alerter.dead_letter(destination.name, f"{delivery.webhook_id}: "
                                         f"{record.error}", now)
        except Exception:
            log.exception("delivery %s to %s failed to record", delivery.id, destination.name)
        finally:
            if delivery.id in self._reclaimed:
                self._spawn(self._free_reclaimed(delivery.id))
            else:
                self._held.discard(delivery.id)

    async def _free_reclaimed(self, delivery_id: int) -> None:
        """A delivery a claim took again while its attempt was being recorded: free that
        claim's lease (as often as claims take it), then let it go, so that the next claim
        sends it (its attempt is recorded: it is sent once per attempt, never twice)."""
        try:
            while delivery_id in self._reclaimed:
                self._reclaimed.discard(delivery_id)
                await self._unlease([delivery_id])
        finally:
            self._held.discard(delivery_id)

    def _release(self, destination: str) -> None:
        self.in_flight[destination] -= 1
        self._start_waiting(destination)
        self._wake.set()

    async def _record(self, record: AttemptRecord) -> None:
        """Record an attempt that was made, retrying while the store cannot write (full,
        read-only): left unrecorded, the delivery would stay leased and be sent again once
        the lease ran out. Gives up only when stopping (then the lease decides).

        Written with the records of the other deliveries that end meanwhile; if that
        group's write fails, alone (a record the store refuses fails no other)."""
        if await self._recorder.record(record):
            return
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
