"""Group commit: writes from concurrent requests share one transaction.

A write is queued and its caller awaits; the first write of a loop turn starts a flush on
the next turn, so every write queued meanwhile joins the same group. Each caller is
answered only after its group is committed: N pushes arriving together cost one commit
(one fsync) and every 200 still means "on disk".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from relay.store.base import StoreUnavailable

Op = TypeVar("Op")


def unavailable(exc: BaseException) -> StoreUnavailable:
    """A foreign error as the store's own, its cause kept."""
    error = StoreUnavailable(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class GroupedWriter(Generic[Op]):
    """Queues ops and hands each group to ``commit_group``, which runs them in one
    transaction and returns one result per op (an exception as a value fails only that op's
    caller), or raises, which fails every caller of the group with that error: a caller is
    always answered, never left waiting (and holding its request's slot) for ever."""

    def __init__(self, commit_group: Callable[[list[Op]], Awaitable[list[Any]]]) -> None:
        self._commit_group = commit_group
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flush_task: asyncio.Task[None] | None = None

    async def write(self, op: Op) -> Any:
        """The op's result, once the group it joined is committed."""
        return await self.submit(op)

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue the op now (it joins the next group); its future is answered once that
        group is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())
        return future

    async def drain(self) -> None:
        """Wait until every queued write has been committed or failed."""
        if self._flush_task is not None:
            await asyncio.gather(self._flush_task, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    results = await self._commit_group([op for op, _ in group])
                except Exception as exc:
                    failure = exc if isinstance(exc, StoreUnavailable) else unavailable(exc)
                    for _, future in group:
                        if not future.done():
                            future.set_exception(failure)
                    continue
                except BaseException as exc:  # cancelled: the callers must not wait for ever
                    for _, future in group:
                        if not future.done():
                            future.cancel()
                    raise exc
                for (_, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flush_task = None
