"""The waiter shared by the green-thread backends (gevent, eventlet).

It parks the calling greenlet on its hub with a bare ``hub.switch()`` and
is resumed by a callback the hub runs: the cheapest hand-off either
library offers (a gevent ``Event`` costs about four times as much).  A
backend module subclasses it with its hub's operations.

``wait`` publishes its greenlet before it reads ``_woken`` and ``wake``
sets ``_woken`` before it reads the greenlet, so a wake from another
native thread is never missed; ``_resume`` switches only into a greenlet
that is still parked here (and forgets it first), so a late timer, a
second callback or a direct switch can never resume it at a wrong point.

Run next.  A pool under contention wakes a waiter and, a moment later,
the waker itself parks (it asked again and queued behind).  Going
through the hub for that is a callback and two switches; instead the
hub keeps one *run-next* slot, as Go's scheduler does for a goroutine
readied by a channel hand-off: a wake in the hub's own thread fills the
slot, and the next greenlet to park here switches straight into it.  A
callback scheduled with the slot still resumes it if nobody parks soon,
and at most ``_DIRECT_SWITCHES`` direct switches happen between two runs
of that callback, so greenlets passing resources among themselves
without ever yielding cannot keep the hub (timers, I/O) from running.

The C extension provides the same waiter (``_speedups.HubWaiter``, which
calls the subclass's hub operations below); this module's Python version
is used when it is not built or ``GREENPOOLS_NO_SPEEDUPS`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import greenlet
from greenlet import getcurrent

from .. import _fastpath, forking
from .base import Waiter, native_thread_ident

#: Direct switches allowed between two visits of the hub (_speedups.c too).
_DIRECT_SWITCHES = 16


class _Home:
    """What the waiters of one hub share: its thread and its run-next slot.

    Made by the first wait in the hub's own thread (and again in a forked
    child); kept on the hub.
    """

    __slots__ = ("direct", "due", "flush", "hub", "pid", "run_next", "thread")

    def __init__(self, hub: Any, thread: int, pid: int) -> None:
        self.hub = hub
        self.thread = thread
        self.pid = pid
        self.run_next: PyHubWaiter | None = None
        self.due = False  # a flush callback is scheduled
        self.direct = 0  # direct switches since the hub last ran the flush
        self.flush = self._flush  # bound once: scheduled again and again

    def _flush(self, _woken: bool) -> None:
        self.due = False
        self.direct = 0
        waiter = self.run_next
        if waiter is not None:
            self.run_next = None
            waiter._resume(True)


class HubOperations:
    """What a backend supplies to its waiter: its hub's operations."""

    __slots__ = ()

    _home_class: Callable[[Any, int, int], Any] = _Home
    #: Where a hub keeps its home (each implementation its own, so that the
    #: tests can run both in one process).
    _home_attribute = "_greenpools_py_home"

    @staticmethod
    def _get_hub() -> Any:
        raise NotImplementedError

    #: Optional: the running thread's hub if it has one yet, else None; a
    #: cheaper ``_get_hub`` for every wait but a thread's first.
    _peek_hub: Callable[[], Any] | None = None

    @staticmethod
    def _call_soon(hub: Any, func: Callable[[bool], None]) -> None:
        """Run ``func(True)`` from ``hub``'s loop (same native thread)."""
        raise NotImplementedError

    @staticmethod
    def _call_soon_threadsafe(hub: Any, func: Callable[[bool], None]) -> None:
        """Run ``func(True)`` from ``hub``'s loop, called from another thread."""
        raise NotImplementedError

    @staticmethod
    def _call_later(hub: Any, seconds: float, func: Callable[[bool], None]) -> Any:
        """Run ``func(False)`` after ``seconds``; returns a handle for ``_cancel``."""
        raise NotImplementedError

    @staticmethod
    def _cancel(handle: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def _prepare_hub(hub: Any) -> None:
        """Called in the hub's thread when its waiters first use it (and
        again in a forked child); does nothing by default."""

    def _new_home(self, hub: Any) -> Any:
        self._prepare_hub(hub)
        home = self._home_class(hub, native_thread_ident(), forking.pid)
        setattr(hub, self._home_attribute, home)
        return home


class PyHubWaiter(HubOperations, Waiter):
    __slots__ = ("_greenlet", "_home", "_woken")

    def __init__(self) -> None:
        self._woken = False
        self._greenlet: Any = None
        self._home: _Home | None = None

    def _home_here(self) -> _Home:
        hub = (self._peek_hub is not None and self._peek_hub()) or self._get_hub()
        home: _Home | None = hub.__dict__.get(self._home_attribute)
        if home is None or home.pid != forking.pid:
            home = self._new_home(hub)
        return home

    def wait(self, timeout: float | None) -> bool:
        if self._woken:
            return True
        if timeout is not None and timeout <= 0:
            return False
        home = self._home = self._home_here()
        self._greenlet = getcurrent()
        if self._woken:
            self._greenlet = None
            return True
        timer = None if timeout is None else self._call_later(home.hub, timeout, self._resume)
        try:
            waiter = home.run_next
            if waiter is not None and home.direct < _DIRECT_SWITCHES:
                home.run_next = None
                home.direct += 1
                parked = waiter._greenlet
                if parked is not None:  # not resumed by its timer meanwhile
                    waiter._greenlet = None
                    return bool(parked.switch(True))
            return bool(home.hub.switch())
        finally:
            self._greenlet = None
            if timer is not None:
                self._cancel(timer)

    def _resume(self, woken: bool) -> None:
        parked = self._greenlet
        if parked is not None:
            self._greenlet = None
            parked.switch(woken)

    def wake(self) -> None:
        self._woken = True
        if self._greenlet is None:
            return
        home = self._home
        assert home is not None  # published before the greenlet
        if native_thread_ident() != home.thread:
            self._call_soon_threadsafe(home.hub, self._resume)
        elif home.run_next is None:
            home.run_next = self
            if not home.due:
                home.due = True
                self._call_soon(home.hub, home.flush)
        else:
            self._call_soon(home.hub, self._resume)


if TYPE_CHECKING or not _fastpath.SPEEDUPS:
    HubWaiter = PyHubWaiter
else:
    from .. import _speedups

    _speedups.configure_green(greenlet.getcurrent)

    class HubWaiter(_speedups.HubWaiter, HubOperations, Waiter):
        """The C waiter with the backend's hub operations."""

        __slots__ = ()
        _home_class = _speedups.Home
        _home_attribute = "_greenpools_home"  # read by _speedups.c
