"""An attempt's record: what it says (``decide``, pure) and how it is written (``Recorder``).

Records are settled in groups: the outcomes of deliveries that end while a write is under
way are recorded by the next one write (one ``store.record`` of all of them: one op of the
group commit, one ``executemany`` of attempts and one of settles) instead of one each. A
group the store refuses is written again one record at a time, each retried on its own
while the store cannot write: a record refused alone never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from relay.constants import STORED_ANSWER_BYTES
from relay.delivery.backoff import next_attempt
from relay.delivery.client import Kind, Outcome
from relay.routing import Destination
from relay.store import AttemptRecord, ClaimedDelivery
from relay.store.base import DeliveryState


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


class Recorder:
    """Attempt records written in groups: each delivery's record waits in a list, and one
    ``write_group`` (``store.record`` of all of them) writes the list while the next one
    fills. Each caller learns whether its group was written; one that was not writes its
    record alone, so a record the store refuses never fails its neighbours."""

    def __init__(self, write_group: Callable[[list[AttemptRecord]], Awaitable[None]],
                 tasks: set[asyncio.Task[None]]) -> None:
        self._write_group = write_group
        self._tasks = tasks
        self._waiting: list[tuple[AttemptRecord, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def record(self, record: AttemptRecord) -> bool:
        """True once ``record`` is written with its group; False if the group failed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((record, future))
        if self._task is None:
            task = self._task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    await self._write_group([record for record, _ in group])
                    written = True
                except Exception:  # each caller writes its own again, alone
                    written = False
                for _, future in group:
                    if not future.done():
                        future.set_result(written)
        finally:
            self._task = None
            for _, future in self._waiting:  # cancelled with records waiting
                if not future.done():
                    future.set_result(False)
