"""Backend for gevent greenlets.

Waiting uses :class:`gevent.event.Event`, which parks only the calling
greenlet whether or not the standard library is monkey-patched, and which
gevent allows to be set from another native thread.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import gevent
from gevent.event import Event
from greenlet import getcurrent

from .base import Backend, Task, Waiter


class GeventWaiter(Waiter):
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = Event()

    def wait(self, timeout: float | None) -> bool:
        return bool(self._event.wait(timeout))

    def wake(self) -> None:
        self._event.set()


class GeventBackend(Backend):
    name = "gevent"

    def waiter(self) -> Waiter:
        return GeventWaiter()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> Task:
        task: Task = gevent.spawn(func, *args)
        return task

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(getcurrent)  # type: ignore[assignment]


backend = GeventBackend()
