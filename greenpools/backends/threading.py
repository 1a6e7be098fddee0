"""Backend for plain operating-system threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from .base import Backend, Task, Waiter, native_lock, native_thread_ident


class ThreadWaiter(Waiter):
    """A native lock taken at creation; waking releases it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        lock = self._lock = native_lock()
        lock.acquire()

    def wait(self, timeout: float | None) -> bool:
        return self._lock.acquire(True, -1 if timeout is None else timeout)

    def wake(self) -> None:
        self._lock.release()


class ThreadingBackend(Backend):
    name = "threading"

    def waiter_factory(self) -> Callable[[], Waiter]:
        return ThreadWaiter

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> Task:
        thread = threading.Thread(target=func, args=args, daemon=True,
                                  name=f"greenpools-{getattr(func, '__name__', 'task')}")
        thread.start()
        return thread

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(native_thread_ident)  # type: ignore[assignment]


backend = ThreadingBackend()
