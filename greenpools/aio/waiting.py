"""The asyncio waiting client: a waiter whose wake resolves a future.

The pool queues it like any backend's waiter and serves it with the same
transitions (:class:`greenpools.backends.base.Waiter`); instead of parking
a thread or a greenlet, the waiting task awaits :attr:`AsyncWaiter.future`.
A wake in the loop's own thread sets the future's result directly (the
loop then schedules the task: no extra callback); a wake from another
native thread goes through ``loop.call_soon_threadsafe``.  A wake never
raises: it runs under the pool's lock.

Compiled by Cython when built (see ``waiting.pxd``), so that a releaser's
grant reaches the future without a Python frame; plain Python otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

from ..backends.base import Waiter, native_thread_ident

__all__ = ["AsyncWaiter"]


class AsyncWaiter(Waiter):
    """One wait of one asyncio task, for the pool bound to ``loop`` (run by
    the native thread ``thread``); ``future_type`` makes its future when
    that is what ``loop.create_future()`` would do (else None: it is called)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread: int, future_type: Any = None
    ) -> None:
        if not cython.compiled:  # compiled, the client's fields start zeroed: WAITING
            Waiter.__init__(self)
        self._loop = loop
        self._thread = thread
        #: Resolved True by a wake, False when the wait's timer ran out first.
        self.future: asyncio.Future[bool] = (
            loop.create_future() if future_type is None else future_type(loop=loop))

    def wake(self) -> None:
        if native_thread_ident() == self._thread:
            future: Any = self.future
            if not future.done():  # a cancelled task's future is done already
                future.set_result(True)
        else:
            try:
                self._loop.call_soon_threadsafe(self._resolve, True)
            except RuntimeError:  # the loop is closed: nobody awaits the future
                pass

    def expire(self) -> None:
        """The wait's timer ran out (called by the loop)."""
        self._resolve(False)

    def _resolve(self, woken: bool) -> None:
        future: Any = self.future
        if not future.done():
            future.set_result(woken)

    def wait(self, timeout: float | None) -> bool:
        raise RuntimeError("an asyncio waiter is awaited (its future), not waited on")
