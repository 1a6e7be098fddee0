"""The interface every concurrency backend implements.

The pool algorithm only ever talks to a :class:`Backend` object: it never
asks which library is underneath.  A backend supplies five things: a
one-shot :class:`Waiter`, a signal that a releaser fills in and wakes,
``sleep``, ``spawn`` for background upkeep, a monotonic clock and the
identity of the running task.  A waiter is also the pool's *waiting
client*: the pool queues the waiter itself (see
:mod:`greenpools.core.waiting`), and a releaser serves it with one of the
transitions the :class:`Waiter` base class defines, once for every
backend.
A green backend (gevent, eventlet) builds its waiter from the shared
:class:`greenpools.backends._green.HubWaiter` and the :class:`HubOperations`
of its event loop, the second half of this interface.

Mutual exclusion is deliberately *not* part of the interface.  The pool's
critical sections never block or yield, so one native (unpatched) lock,
:class:`Mutex`, serves every backend: green threads never contend on it,
native threads hold it for nanoseconds, and a backend switch never leaves
a pool guarded by a primitive of the previous library.

Compiled by Cython when built (``base.pxd`` declares ``Waiter``, its
states and ``Mutex``); the same source runs as plain Python otherwise.
"""

from __future__ import annotations

import abc
import sys
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

if TYPE_CHECKING:  # C functions, declared for Cython in base.pxd

    def PyThread_allocate_lock() -> Any: ...
    def PyThread_free_lock(lock: Any) -> None: ...
    def PyThread_acquire_lock(lock: Any, mode: int) -> int: ...
    def PyThread_acquire_lock_timed(lock: Any, microseconds: int, intr: int) -> int: ...
    def PyThread_release_lock(lock: Any) -> None: ...
    def PyErr_CheckSignals() -> int: ...


class NativeLock(Protocol):
    """The subset of ``_thread.LockType`` the pools use."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...


def unpatched(module: str, name: str) -> Any:
    """``<module>.<name>`` as it was before gevent or eventlet patched it
    (``module``: ``"_thread"``, ``"select"``...)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched(module):
        return monkey.get_original(module, name)
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched(module.lstrip("_")):
        return getattr(patcher.original(module), name)
    import importlib

    return getattr(importlib.import_module(module), name)


_monotonic = time.monotonic

#: ``_thread.allocate_lock`` as it was before any patching (looked up once:
#: a waiter of the threading backend makes a lock per wait).
_allocate_lock: Callable[[], NativeLock] = unpatched("_thread", "allocate_lock")


def native_lock() -> NativeLock:
    """A new lock of the operating system's threads, never a green one."""
    return _allocate_lock()


class Mutex:
    """The pool's lock: an operating-system lock, never a green one.

    As plain Python it *is* the native lock (``_thread.allocate_lock()``
    before any patching), see below.  Compiled, it is a counter guarded by
    the GIL with an operating-system lock behind it for the contended case
    (a "benaphore"): the counter holds the holder and the threads waiting,
    and is tested and changed by C code that runs no Python code in
    between, so an uncontended acquire and release cost a few instructions;
    a thread that finds it held waits on the native lock (the GIL
    released), and a release with waiters hands the lock to one of them.
    It is held only across steps that never block or yield.
    """

    def __cinit__(self) -> None:
        self._count = 0
        self._lock = PyThread_allocate_lock()
        if not self._lock:
            raise MemoryError("greenpools: cannot allocate a lock")
        PyThread_acquire_lock(self._lock, 0)  # taken: each hand-over releases it once

    def __dealloc__(self) -> None:
        if self._lock:
            PyThread_acquire_lock(self._lock, 0)  # freed unlocked, whatever its state
            PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Like ``_thread.lock.acquire``: True once held, False if not in time."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        if self._count == 0:
            self._count = 1
            return True
        if not blocking:
            return False
        self._count += 1  # a waiter now: the holder's release hands the lock over
        deadline = 0.0
        if timeout != -1:
            deadline = _monotonic() + timeout
        while True:
            microseconds = -1 if timeout == -1 else int(timeout * 1e6)
            with cython.nogil:
                status = PyThread_acquire_lock_timed(self._lock, microseconds, 1)
            if status == 1:  # PY_LOCK_ACQUIRED: handed over
                return True
            if status == 2:  # PY_LOCK_INTR: a signal interrupted the wait
                try:
                    PyErr_CheckSignals()  # its handler may raise
                except BaseException:
                    if not self._withdraw():  # handed over meanwhile: pass it on
                        self.release()
                    raise
                if timeout == -1:
                    continue
                timeout = deadline - _monotonic()
                if timeout > 0:
                    continue
            return not self._withdraw()

    def _withdraw(self) -> bool:
        """A waiter gives up: True if the lock was handed to it meanwhile (it
        holds it then), else it stops counting as a waiter."""
        if PyThread_acquire_lock(self._lock, 0):
            return False
        self._count -= 1
        return True

    def release(self) -> None:
        if self._count == 0:
            raise RuntimeError("release unlocked lock")
        self._count -= 1
        if self._count:
            PyThread_release_lock(self._lock)  # hand over to one waiter

    def locked(self) -> bool:
        return self._count > 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


if not cython.compiled:
    # Plain Python: the native lock itself, no wrapper around it.
    Mutex = native_lock  # type: ignore[assignment,misc]


#: Identity of the running native thread, ignoring monkey patching (the
#: builtin itself: it is called on hot paths).
native_thread_ident: Callable[[], int] = unpatched("_thread", "get_ident")


if not cython.compiled:  # compiled, base.pxd declares them as a C enum
    #: The states of a waiter as a waiting client; every state but WAITING
    #: and WOKEN is final.  WAITING is 0: a compiled waiter made without
    #: running ``__init__`` (its fields zeroed) starts in it.
    WAITING, GRANTED, MAY_CREATE, REFUSED, WOKEN = 0, 1, 2, 3, 4


class Waiter:
    """A one-shot signal a releaser fills in: one task waits, another serves it once.

    ``wake`` may be called from any task (and, where the backend allows it,
    any native thread) before or after ``wait`` starts; ``wait`` returns
    True once woken, False when ``timeout`` seconds passed first.  An
    exception delivered to the waiting task (a timeout of the library,
    a kill, ``KeyboardInterrupt``) propagates out of ``wait``.
    Subclasses implement both methods (a compiled class, so that the pool
    calls them without a Python method lookup), and call
    ``Waiter.__init__`` as plain Python (compiled, the fields below start
    zeroed: ``WAITING``).

    A pool queues the waiter itself as a *waiting client*
    (:mod:`greenpools.core.waiting`).  Whoever frees something serves the
    oldest client, under the pool's lock, with one of three transitions,
    each made once and before the wake-up:

    - :meth:`grant`: here is a resource (``slot``, already lent to it);
    - :meth:`allow_create`: here is a place under the limit, create one;
    - :meth:`refuse`: the pool closed.

    A pool whose backend lets callers barge (:attr:`Backend.barging_bound`)
    may also :meth:`wake_to_compete` its oldest client: ``WOKEN``, not
    served and still queued first, it wakes to try for an idle resource
    itself; it may still be served any of the three above meanwhile.

    A client whose wait ended without one (timeout, exception, kill) calls
    :meth:`withdraw` under the lock: it refuses every later transition and
    returns the state it was in, so that the pool can leave the queue
    (still ``WAITING``), pass an unwanted grant on (``GRANTED``) or give
    the place back (``MAY_CREATE``).  A transition on a client that no
    longer waits returns False and changes nothing.  ``since`` (when it
    queued), ``forks`` (its pool's fork count then: a task waiting at
    ``fork()`` lives on, copied, in the child, whose pool counts one more)
    and, for a pool that barges, ``passed_since`` (when a resource first
    came free while it was first in the queue) and ``recheck_at`` (when a
    client that lost a contest looks again by itself) are the pool's to
    fill in; the waiter only keeps them.
    """

    def __init__(self) -> None:
        self.state = WAITING
        self.slot: Any = None
        self.since = 0.0
        self.passed_since = 0.0
        self.recheck_at = 0.0
        self.forks = 0
        self.stall_warned = False

    def wait(self, timeout: float | None) -> bool:
        """Block the calling task until woken (True) or ``timeout`` seconds
        passed (False; ``None``: no limit), yielding to others meanwhile.
        Raises whatever is delivered to the task while it waits."""
        raise NotImplementedError

    def wake(self) -> None:
        """Wake the waiting task, now or, if it has not started waiting
        yet, as soon as it does.  Never blocks."""
        raise NotImplementedError

    def grant(self, slot: Any) -> bool:
        """Hand ``slot`` (already lent) to this client and wake it."""
        return self._serve(GRANTED, slot)

    def allow_create(self) -> bool:
        """Give this client a place under the limit to create a resource in."""
        return self._serve(MAY_CREATE, None)

    def refuse(self) -> bool:
        """Tell this client the pool closed."""
        return self._serve(REFUSED, None)

    def wake_to_compete(self) -> bool:
        """Wake this client unserved (``WOKEN``): a resource is idle, and it
        is to try for it; False if it is awake or served already."""
        return self._serve(WOKEN, None)

    def _serve(self, state: int, slot: Any) -> bool:
        """Move a waiting client to ``state`` (with ``slot``) and wake it
        (once: a ``WOKEN`` client is awake already); False, changing
        nothing, if it no longer waits."""
        current: int = self.state
        if current != WAITING and (current != WOKEN or state == WOKEN):
            return False
        self.slot = slot
        self.state = state
        if current == WAITING:
            self.wake()
        return True

    def withdraw(self) -> int:
        """The caller stopped waiting: refuse anything more, and return the
        state it was in (what reached it, if anything)."""
        state: int = self.state
        self.state = REFUSED
        return state


class HubOperations(abc.ABC):
    """What a green backend's waiter needs of its event loop (its *hub*).

    Each operation runs in the hub's own native thread unless its name
    says otherwise; callbacks get one bool: True when run as a wake-up,
    False when run by a timer.
    """

    @abc.abstractmethod
    def get_hub(self) -> Any:
        """The running thread's hub, made if it has none yet."""

    #: Optional: a callable returning the running thread's hub if it has one
    #: yet, else None; a cheaper :meth:`get_hub` for every wait but a
    #: thread's first.
    peek_hub: Callable[[], Any] | None = None

    #: Optional: the name of an attribute of a hub that is None once the hub
    #: was destroyed (its thread's next hub is a new one) though its greenlet
    #: may not have ended; None if the library leaves no hub so.
    destroyed_hub_drops: str | None = None

    def hub_greenlet(self, hub: Any) -> Any:
        """The greenlet that runs ``hub`` (the greenlets it runs are its
        children); by default the hub itself, as gevent's."""
        return hub

    def prepare_hub(self, hub: Any) -> None:
        """Called in the hub's thread when waiters first use it (and again
        in a forked child); does nothing by default."""
        return None

    @abc.abstractmethod
    def call_soon(self, hub: Any, func: Callable[[bool], object]) -> None:
        """Run ``func(True)`` from ``hub``'s loop."""

    @abc.abstractmethod
    def call_soon_threadsafe(self, hub: Any, func: Callable[[bool], object]) -> None:
        """Run ``func(True)`` from ``hub``'s loop; called from another native thread."""

    @abc.abstractmethod
    def call_later(self, hub: Any, seconds: float, func: Callable[[bool], object]) -> Any:
        """Run ``func(False)`` after ``seconds``; returns a handle for :meth:`cancel`."""

    @abc.abstractmethod
    def cancel(self, handle: Any) -> None:
        """Stop a :meth:`call_later` that has not run (harmless if it has)."""


class TaskEndListener(Protocol):
    """What :meth:`Backend.watch_task_end` calls back: a pool."""

    def _task_ended(self) -> None: ...


class Backend(abc.ABC):
    """A concurrency library as the pools see it."""

    #: ``"threading"``, ``"gevent"`` or ``"eventlet"``.
    name: str

    #: How long (seconds) the caller first in the queue may be passed over,
    #: counted from the first time a resource came free while it was first:
    #: until then a caller that finds a resource idle takes it (*barges*),
    #: and a release leaves the resource idle for the first caller to
    #: compete for; from then on each resource goes straight to it.  0 (the
    #: default): strict first come, first served hand-off, always.
    barging_bound: float = 0.0

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
    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` as a daemon task; never waits for it."""

    #: A callable returning an identity for the running task (thread or
    #: green thread); backends set it to a builtin for speed.
    current_task: Callable[[], Hashable]

    def watch_task_end(self, pool: TaskEndListener) -> None:
        """Call ``pool._task_ended()`` when the running task ends, once
        however often asked meanwhile; ``pool`` is held weakly.  A barging
        pool asks when it leaves a resource idle for its releaser to take
        back: if the releaser ends instead, the pool wakes its first
        caller.  Nothing by default (a backend that does not barge never
        leaves one so)."""
        return

    def __repr__(self) -> str:
        return f"<greenpools backend {self.name!r}>"
