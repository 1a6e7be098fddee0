"""The uncontended acquire and release, and the per-resource ``Slot``.

``greenpools._speedups`` (C, optional) provides both; this module falls
back to the same logic in Python when it is not built or when the
environment variable ``GREENPOOLS_NO_SPEEDUPS`` is set.

The fast path only moves a slot between the idle stack ``_idle`` and the
caller (setting or clearing its ``lent`` flag; ``_slots`` finds the slot
of a released resource), and only while ``_quiet`` is true: the pool has no
hooks to run, no waiters, nothing to shrink and is open.  The pool's
locked slow paths clear ``_quiet`` *before* they queue a waiter, shrink
or close, and then look at ``_idle``; in C each fast-path call is atomic
under the GIL, and the Python version re-reads ``_quiet`` after its
``append`` so that one side always sees the other.

The C module also queues and serves the callers of a *plain* pool (no
hooks, no options) that is at its limit, see ``_speedups.c``; here those
steps stay in the pool's locked Python methods, and ``WaitingClient`` is
the queued caller's record in both.  ``Mutex`` is the pool's lock: the C
module's is an operating-system lock like ``_thread``'s whose state its
contended paths read.
"""

from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

__all__ = ["SPEEDUPS", "FastPath", "Mutex", "Slot", "WaitingClient", "configure"]


class PySlot:
    """Book-keeping for one pooled resource, made once when it is created."""

    __slots__ = (
        "created", "expires", "generation", "holder", "idle_since", "leak_warned", "lent",
        "lent_at", "pid", "resource", "stack",
    )

    def __init__(
        self, resource: Any, now: float, expires: float, generation: int, pid: int = 0
    ) -> None:
        self.resource = resource
        self.created = now
        self.expires = expires
        self.lent_at = now
        self.idle_since = now
        self.generation = generation
        self.pid = pid
        self.holder: Any = None
        self.stack: list[traceback.FrameSummary] | None = None
        self.leak_warned = False
        self.lent = False  # held by a caller, or granted to a waiter


class PyWaitingClient:
    """One caller queued for a resource; whoever frees one fills it in."""

    __slots__ = ("pid", "since", "slot", "stall_warned", "state", "waiter")

    def __init__(self, waiter: Any, since: float, pid: int) -> None:
        self.waiter = waiter
        self.since = since
        self.pid = pid  # a green thread waiting at fork() lives on, copied, in the child
        self.state = 0  # greenpools.resource._WAITING
        self.slot: Any = None
        self.stall_warned = False


def py_mutex() -> Any:
    """The pool's lock: a native one (the C module's exposes its state to C)."""
    from .backends.base import native_lock

    return native_lock()


def py_configure(stall_watch: Any, monotonic: Any, deque: type) -> None:
    """The C contended paths' view of the rest of the package (nothing here)."""


class PyFastPath:
    """Pure-Python fast path; the pool's slow-path methods do the rest."""

    _idle: list[Any]
    _slots: dict[int, Any]
    _mutex: Any
    _generation: int
    _n_requests: int
    _quiet: bool

    def acquire(self, block: bool = False, timeout: float | None = None) -> Any:
        """Take a resource out of the pool.

        Reuses the most recently released idle resource, else creates one
        while under ``limit``.  Otherwise, with ``block`` false, raises
        ``LimitExceeded``; with ``block`` true, queues first come, first
        served for up to ``timeout`` seconds (default: the pool's
        ``timeout`` option; ``None``: forever) and then raises
        ``PoolTimeout``.
        """
        self._n_requests += 1
        if self._quiet:
            try:
                slot = self._idle.pop()
            except IndexError:
                pass
            else:
                if slot.generation == self._generation:
                    slot.lent = True
                    return slot.resource
                self._discard_stale(slot)
        return self._acquire_slow(block, timeout)

    def release(self, resource: Any) -> None:
        """Return a resource acquired from this pool.

        Raises ``ValueError`` (and changes nothing) when ``resource`` is
        not currently lent by this pool: released twice, or never acquired.
        """
        slot = self._slots.get(id(resource))
        if slot is None:
            self._release_unknown(resource)
            return
        # Test and clear as one step: two threads may race a double release
        # (the C version is one step under the GIL).
        with self._mutex:
            lent = slot.lent
            slot.lent = False
        if not lent:
            self._release_unknown(resource)
            return
        if self._quiet and slot.generation == self._generation:
            self._idle.append(slot)
            # Re-read after the append: a thread may have queued a waiter,
            # shrunk or closed the pool since the first look.
            if not self._quiet or slot.generation != self._generation:
                self._rebalance()
            return
        self._release_slow(slot)

    # Provided by the pool.
    def _acquire_slow(self, block: bool, timeout: float | None) -> Any: ...
    def _discard_stale(self, slot: Any) -> None: ...
    def _release_slow(self, slot: Any) -> None: ...
    def _release_unknown(self, resource: Any) -> None: ...
    def _rebalance(self) -> None: ...


if TYPE_CHECKING:
    Slot = PySlot
    FastPath = PyFastPath
    WaitingClient = PyWaitingClient
    configure = py_configure
    Mutex = py_mutex
    SPEEDUPS = False
else:
    SPEEDUPS = False
    Slot, FastPath, WaitingClient = PySlot, PyFastPath, PyWaitingClient
    configure, Mutex = py_configure, py_mutex
    if not os.environ.get("GREENPOOLS_NO_SPEEDUPS"):
        try:
            from ._speedups import FastPath, Mutex, Slot, WaitingClient, configure
        except ImportError:
            pass
        else:
            SPEEDUPS = True
