"""Backend for gevent greenlets.

A blocking wait parks only the calling greenlet on gevent's hub, whether
or not the standard library is monkey-patched; a wake from another native
thread goes through the hub loop's thread-safe callback.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import gevent
from greenlet import getcurrent

from ._green import HubWaiter
from .base import Backend, Task, Waiter


class GeventWaiter(HubWaiter):
    __slots__ = ()

    _get_hub = staticmethod(gevent.get_hub)

    @staticmethod
    def _call_soon(hub: Any, func: Callable[[bool], None]) -> None:
        hub.loop.run_callback(func, True)

    @staticmethod
    def _call_soon_threadsafe(hub: Any, func: Callable[[bool], None]) -> None:
        hub.loop.run_callback_threadsafe(func, True)

    @staticmethod
    def _call_later(hub: Any, seconds: float, func: Callable[[bool], None]) -> Any:
        timer = hub.loop.timer(seconds)
        # From now, not from the loop's cached time: a greenlet that ran long
        # without yielding would otherwise time out early (as gevent.Timeout).
        timer.start(func, False, update=True)
        return timer

    @staticmethod
    def _cancel(handle: Any) -> None:
        handle.close()


class GeventBackend(Backend):
    name = "gevent"

    #: A builtin, not a method: the pool calls it on hot paths.
    current_task: Callable[[], Hashable] = staticmethod(getcurrent)  # type: ignore[assignment]

    def waiter_factory(self) -> Callable[[], Waiter]:
        return GeventWaiter

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> Task:
        task: Task = gevent.spawn(func, *args)
        return task


backend = GeventBackend()
