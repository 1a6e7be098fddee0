"""Upkeep of an asyncio pool: the jobs of :mod:`greenpools.core.lifecycle` as
one asyncio task of the pool's loop.

The jobs, their options and when they fall due are lifecycle's own; the
two that make or check resources (:class:`FillToMinSize` and
:class:`KeepIdleAlive`, whose hooks may be coroutines) get an awaiting
``tend`` here, and the others run as they are.  ``close()`` cancels the
task; like lifecycle's, it holds only a weak reference to its pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from ..core import lifecycle
from ..core.lifecycle import MAX_INTERVAL, MIN_INTERVAL, UpkeepPool, UpkeepTask

__all__ = ["AsyncUpkeep", "AsyncUpkeepPool", "FillToMinSize", "KeepIdleAlive"]

logger = logging.getLogger("greenpools")


class AsyncUpkeepPool(UpkeepPool, Protocol):
    """What the awaiting jobs need of a pool, beside :class:`UpkeepPool`."""

    async def _add_ready_async(self) -> bool: ...
    async def _create_idle_async(self) -> bool: ...
    async def _keep_idle_alive_async(self, resource: Any) -> bool: ...


class FillToMinSize(lifecycle.FillToMinSize):
    """lifecycle's job, creating with the pool's (maybe coroutine) ``create``."""

    async def tend_async(self, pool: AsyncUpkeepPool, now: float) -> float:
        while not pool.closed and pool._below_min_size():
            try:
                if not await pool._add_ready_async():
                    break
            except Exception as error:
                return self._failed(pool, now, error)
            self._added(pool)
        pool._wake_ready_waiters()  # some may have become ready outside upkeep
        return MAX_INTERVAL


class KeepIdleAlive(lifecycle.KeepIdleAlive):
    """lifecycle's job, checking with the pool's (maybe coroutine) ``check``."""

    async def tend_async(self, pool: AsyncUpkeepPool, now: float) -> float:
        lost = 0
        for resource in pool._idle_resources():
            if not await pool._keep_idle_alive_async(resource):
                lost += 1
        for _ in range(lost):  # before anyone asks for one
            try:
                if not await pool._create_idle_async():
                    break
            except Exception:
                self._replacing_failed(pool)
                break
        return pool._keepalive_interval() or MAX_INTERVAL


_AWAITING: dict[type[UpkeepTask], type[UpkeepTask]] = {
    lifecycle.FillToMinSize: FillToMinSize,
    lifecycle.KeepIdleAlive: KeepIdleAlive,
}


class AsyncUpkeep(lifecycle.Upkeep):
    """The pool's upkeep as a task of ``loop``, started by :meth:`start`."""

    def __init__(self, pool: AsyncUpkeepPool, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(pool, None)  # type: ignore[arg-type]  # the loop, not a backend
        self._loop = loop
        self.tasks = [_AWAITING.get(type(task), type(task))(pool) for task in self.tasks]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = self._loop.create_task(self.run_async(), name="greenpools upkeep")

    def stop(self) -> None:
        super().stop()
        if self._task is not None:
            self._task.cancel()

    async def run_async(self) -> None:
        while self._live_pool() is not None:
            now = time.monotonic()
            for task in self.tasks:
                if now >= task.due:
                    if self._live_pool() is None:
                        break
                    await _run(task, now)
            next_due = min((task.due for task in self.tasks), default=now + MAX_INTERVAL)
            await asyncio.sleep(min(max(next_due - time.monotonic(), MIN_INTERVAL), MAX_INTERVAL))
        self.ended = True


async def _run(task: UpkeepTask, now: float) -> None:
    """Run one job (as :meth:`UpkeepTask.run`, awaiting it if it awaits)."""
    tend_async = getattr(task, "tend_async", None)
    if tend_async is None:
        task.run(now)
        return
    pool = task._pool()
    if pool is None or pool.closed:
        return
    try:
        task.due = now + await tend_async(pool, now)
    except Exception:
        task.due = now + MAX_INTERVAL
        logger.exception("greenpools: %s of pool %r failed", type(task).__name__, pool.name)
