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

from ._green import HubWaiters
from .base import Backend, HubOperations, Waiter


class GeventHub(HubOperations):
    """gevent's hub, as the green waiter uses it."""

    def __init__(self) -> None:
        # gevent's own (compiled) function, without a Python frame around it.
        self.get_hub = gevent.get_hub  # type: ignore[method-assign]

    def get_hub(self) -> Any:
        return gevent.get_hub()

    #: Hub.destroy() leaves the hub's greenlet suspended but drops its loop.
    destroyed_hub_drops = "loop"

    def call_soon(self, hub: Any, func: Callable[[bool], object]) -> None:
        hub.loop.run_callback(func, True)

    def call_soon_threadsafe(self, hub: Any, func: Callable[[bool], object]) -> None:
        hub.loop.run_callback_threadsafe(func, True)

    def call_later(self, hub: Any, seconds: float, func: Callable[[bool], object]) -> Any:
        timer = hub.loop.timer(seconds)
        # From now, not from the loop's cached time: a greenlet that ran long
        # without yielding would otherwise time out early (as gevent.Timeout).
        timer.start(func, False, update=True)
        return timer

    def cancel(self, handle: Any) -> None:
        handle.close()


#: What makes this backend's waiters (green waiters over GeventHub).
WAITERS = HubWaiters(GeventHub())


class GeventBackend(Backend):
    name = "gevent"

    #: A builtin, not a method: the pool calls it on hot paths.
    current_task: Callable[[], Hashable] = staticmethod(getcurrent)  # type: ignore[assignment]

    def waiter_factory(self) -> Callable[[], Waiter]:
        return WAITERS

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        gevent.spawn(func, *args)


backend = GeventBackend()
