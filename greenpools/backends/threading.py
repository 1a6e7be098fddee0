"""Backend for plain operating-system threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from .. import _fastpath
from .base import Backend, Task, Waiter, native_lock, native_thread_ident


class PyThreadWaiter(Waiter):
    """A native lock taken at creation; waking releases it (a second wake
    changes nothing)."""

    __slots__ = ("_lock", "_woken")

    def __init__(self) -> None:
        self._woken = False
        lock = self._lock = native_lock()
        lock.acquire()

    def wait(self, timeout: float | None) -> bool:
        if timeout is None or timeout > threading.TIMEOUT_MAX:  # too long to count: forever
            return self._lock.acquire()
        return self._lock.acquire(True, max(0.0, timeout))

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._lock.release()


if TYPE_CHECKING or not _fastpath.SPEEDUPS:
    ThreadWaiter = PyThreadWaiter
else:
    from .. import _speedups

    class ThreadWaiter(_speedups.ThreadWaiter, Waiter):
        """The C waiter (the same lock, without Python frames around it)."""

        __slots__ = ()


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
