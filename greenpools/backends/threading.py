"""Backend for plain operating-system threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

from .base import Backend, Mutex, Waiter, native_thread_ident

_TIMEOUT_MAX = threading.TIMEOUT_MAX


class ThreadWaiter(Waiter):
    """A native lock taken at creation; waking releases it (a second wake
    changes nothing).  Compiled, both are C calls (see ``threading.pxd``),
    so a thread that wakes a waiter and then queues itself reaches its own
    park without Python frames in between."""

    def __init__(self) -> None:
        if not cython.compiled:  # compiled, the client's fields start zeroed: WAITING
            Waiter.__init__(self)
        self._woken = False
        self._lock = Mutex()
        self._lock.acquire()

    def wait(self, timeout: float | None) -> bool:
        if timeout is None or timeout > _TIMEOUT_MAX:  # too long to count: forever
            return self._lock.acquire()
        return self._lock.acquire(True, max(0.0, timeout))

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._lock.release()


class ThreadingBackend(Backend):
    name = "threading"

    def waiter_factory(self) -> Callable[[], Waiter]:
        return ThreadWaiter

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=func, args=args, daemon=True,
                                  name=f"greenpools-{getattr(func, '__name__', 'task')}")
        thread.start()

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(native_thread_ident)  # type: ignore[assignment]


backend = ThreadingBackend()
