"""The interface every concurrency backend implements.

The pool algorithm in :mod:`greenpools.resource` only ever talks to a
:class:`Backend` object: it never asks which library is underneath.  A
backend supplies five things: a one-shot :class:`Waiter` that a releaser
wakes, ``sleep``, ``spawn`` for background upkeep, a monotonic clock and
the identity of the running task.

Mutual exclusion is deliberately *not* part of the interface.  The pool's
critical sections never block or yield, so one native (unpatched) lock
serves every backend: green threads never contend on it, native threads
hold it for nanoseconds, and a backend switch never leaves a pool guarded
by a primitive of the previous library.
"""

from __future__ import annotations

import abc
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol


class NativeLock(Protocol):
    """The subset of ``_thread.LockType`` the pools use."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...


def _unpatched_thread_function(name: str) -> Any:
    """``_thread.<name>`` as it was before gevent or eventlet patched it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("_thread"):
        return monkey.get_original("_thread", name)
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return getattr(patcher.original("_thread"), name)
    import _thread

    return getattr(_thread, name)


#: ``_thread.allocate_lock`` as it was before any patching (looked up once:
#: a waiter of the threading backend makes a lock per wait).
_allocate_lock: Callable[[], NativeLock] = _unpatched_thread_function("allocate_lock")


def native_lock() -> NativeLock:
    """A new lock of the operating system's threads, never a green one."""
    return _allocate_lock()


#: Identity of the running native thread, ignoring monkey patching (the
#: builtin itself: it is called on hot paths).
native_thread_ident: Callable[[], int] = _unpatched_thread_function("get_ident")


class Waiter(abc.ABC):
    """A one-shot signal: one task waits, another wakes it once.

    ``wake`` may be called from any task (and, where the backend allows it,
    any native thread) before or after ``wait`` starts; ``wait`` returns
    True once woken, False when ``timeout`` seconds passed first.  An
    exception delivered to the waiting task (a timeout of the library,
    a kill, ``KeyboardInterrupt``) propagates out of ``wait``.
    """

    __slots__ = ()

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> bool: ...

    @abc.abstractmethod
    def wake(self) -> None: ...


class Task(Protocol):
    """A handle on a background task started with :meth:`Backend.spawn`."""


class Backend(abc.ABC):
    """A concurrency library as the pools see it."""

    #: ``"threading"``, ``"gevent"`` or ``"eventlet"``.
    name: str

    #: Every backend reads the same clock; it is here so that the pool
    #: algorithm never imports ``time`` for itself.
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    @abc.abstractmethod
    def waiter_factory(self) -> Callable[[], Waiter]:
        """What makes this backend's waiters (its waiter class): pools keep
        it, and call it for every wait."""

    def waiter(self) -> Waiter:
        """A new, unset :class:`Waiter` for the running task."""
        return self.waiter_factory()()

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Suspend the running task, letting others run."""

    @abc.abstractmethod
    def spawn(self, func: Callable[..., Any], *args: Any) -> Task:
        """Run ``func(*args)`` as a daemon task; never waits for it."""

    #: A callable returning an identity for the running task (thread or
    #: green thread); backends set it to a builtin for speed.
    current_task: Callable[[], Hashable]

    def __repr__(self) -> str:
        return f"<greenpools backend {self.name!r}>"
