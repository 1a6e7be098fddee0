"""Backend for plain operating-system threads.

What relies on the GIL.  Several steps of the threading path are single
steps only because the GIL lets one native thread at a time run Python or
the compiled code (the cross-thread wakes of the green backends count on
it too):

- The compiled :class:`~greenpools.backends.base.Mutex` is a benaphore: its
  ``_count`` is a plain C field that ``acquire`` tests and sets, and
  ``release`` decrements, with no atomic instruction; only the GIL makes
  each of those one step.  (As plain Python the Mutex is ``_thread``'s
  lock and needs no GIL.)
- The lock-free paths of :mod:`greenpools.core.slotpool`: ``acquire``
  pops ``_idle`` (compiled: a length test, then ``_pop_last`` shrinking
  the list in place through ``Py_SET_SIZE``, which bypasses the list's own
  locking) and ``release`` appends to it, both without the pool's lock;
  compiled, ``release`` tests and clears ``slot.lent`` as two plain field
  accesses, so that of two racing releases only one gets through.
- Shared state read or written outside the lock: ``_lock_free`` and
  ``_generation`` on those paths (``release`` pushes, then reads
  ``_lock_free`` again, while the locked side writes ``_lock_free`` and
  then looks at ``_idle``: a store-then-load on each side that is correct
  only with the total order the GIL gives), ``_n_requests += 1`` (a lost
  bump is tolerated), upkeep's ``list(self._idle)`` snapshots and
  ``list.remove`` (one step against the fast paths only under the GIL),
  and a green waiter's ``_woken`` against a wake from another native thread
  (:mod:`greenpools.backends._green`: the same store-then-load pattern).

A free-threaded build (3.13t, 3.14t with the GIL off) would need: the
Mutex's count made a real atomic (or ``PyMutex`` used instead); the fast
paths' pop, append and ``lent`` test-and-clear made atomic (a
per-object critical section on ``_idle``, an atomic exchange on
``lent``) or simply taken under the Mutex; sequentially consistent loads
and stores for ``_lock_free``, ``_generation`` and ``_woken``; and the
compiled modules declared ``freethreading_compatible`` to Cython, which
they are not: until then importing them turns the GIL back on (CPython
warns) unless ``PYTHON_GIL=0`` keeps it off.  ``import greenpools`` warns
and ``doctor`` reports when the GIL is disabled
(:mod:`greenpools._freethreading`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

from ..forking import fork_guard
from .base import Backend, Mutex, TaskEndListener, Waiter, native_thread_ident, unpatched

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


class _ThreadEnd:
    """Calls back the pools in ``pools`` when the thread that owns this
    object ends.

    Kept in a ``_thread._local``: CPython drops a thread's values there when
    it clears the thread's state, after its last Python frame, so
    ``__del__`` runs then, in the ending thread; or in another one, for
    the copies of other threads in a forked child and for daemon threads
    at interpreter exit, which ``__del__`` leaves alone.  (A thread that C
    code lends to Python ends each time it gives the interpreter back.)"""

    __slots__ = ("pid", "pools")

    def __init__(self, pools: dict[int, weakref.ref[TaskEndListener]]) -> None:
        self.pid = os.getpid()
        self.pools = pools

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing,
                _getpid: Callable[[], int] = os.getpid) -> None:
        # A forked child clears its copies of the parent's other threads
        # before its own resets run, and their pools' locks may be held
        # there for good: only the process that watched calls back.  At
        # interpreter exit nobody is left to serve.
        if _finalizing() or _getpid() != self.pid:
            return
        for ref in list(self.pools.values()):
            pool = ref()
            if pool is not None:
                pool._task_ended()


#: Per thread: ``pools``, the pools its end is to call back (by id, held
#: weakly), and ``end``, the :class:`_ThreadEnd` that calls them.
#: ``_thread``'s own local even under gevent's patching (whose local is
#: per greenlet).
_thread_end = unpatched("_thread", "_local")()


def _watch(pool: TaskEndListener) -> None:
    """The slow part of ``ThreadingBackend.watch_task_end``: a pool new to
    this thread, or a thread new to watching."""
    try:
        pools: dict[int, weakref.ref[TaskEndListener]] = _thread_end.pools
    except AttributeError:
        pools = _thread_end.pools = {}
        _thread_end.end = _ThreadEnd(pools)
    if len(pools) >= 8:  # the ids of pools that are gone may be reused
        for key in [key for key, ref in pools.items() if ref() is None]:
            del pools[key]
    pools[id(pool)] = weakref.ref(pool)


@fork_guard.after_fork_in_child
def _adopt_thread_end() -> None:
    """The thread that forked goes on in the child: its watch is the child's now,
    with the pools' parent-side idle resources forgotten."""
    end: _ThreadEnd | None = getattr(_thread_end, "end", None)
    if end is not None:
        end.pid = os.getpid()
        end.pools.clear()


class ThreadingBackend(Backend):
    name = "threading"

    #: Bounded barging, after Go's ``sync.Mutex``: a hand-off to a sleeping
    #: thread puts its wake-up (tens of microseconds) on the critical path
    #: of every cycle, while a thread that is running anyway (a releaser
    #: asking again) can take the idle resource at once; the caller first in
    #: the queue is passed over for at most 1 ms (see
    #: ``Backend.barging_bound``).
    barging_bound = 0.001

    def waiter_factory(self) -> Callable[[], Waiter]:
        return ThreadWaiter

    def watch_task_end(self, pool: TaskEndListener) -> None:
        # Asked on nearly every contended release: a hit is a lookup or two.
        try:
            ref = _thread_end.pools.get(id(pool))
        except AttributeError:
            ref = None
        if ref is None or ref() is not pool:
            _watch(pool)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=func, args=args, daemon=True,
                                  name=f"greenpools-{getattr(func, '__name__', 'task')}")
        thread.start()

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(native_thread_ident)  # type: ignore[assignment]


backend = ThreadingBackend()
