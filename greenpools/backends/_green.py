"""The waiter shared by the green-thread backends (gevent, eventlet).

It parks the calling greenlet on its hub with a bare ``hub.switch()`` and
is resumed by a callback the hub runs: the cheapest hand-off either
library offers (a gevent ``Event`` costs about four times as much).  A
backend subclasses it and returns its hub's operations
(:class:`greenpools.backends.base.HubOperations`) from ``hub_operations()``.

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

Compiled by Cython when built (see ``_green.pxd``); plain Python otherwise.
Compiled, ``getcurrent()`` and ``switch`` are calls into greenlet's C API
(the ``greenlet._C_API`` capsule), the switch only into a greenlet whose
type keeps greenlet's own ``switch``: a subclass that overrides it (gevent's
hub) is switched into through its override.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]
import greenlet

from ..forking import fork_guard
from .base import HubOperations, Waiter, native_thread_ident

if cython.compiled:
    # greenlet's C API (see _green.pxd): getcurrent() and switch without a
    # Python call, the switch only into greenlets that keep greenlet's own.
    _greenlet_api = _import_greenlet_api()  # type: ignore[name-defined]  # noqa: F821  # in _green.pxd
    _greenlet_switch_method = vars(greenlet.greenlet)["switch"]
else:  # the same operations as Python calls
    _thread_ident = native_thread_ident
    _getcurrent = greenlet.getcurrent

    def _switch(target: Any, args: tuple[Any, ...]) -> Any:
        return target.switch(*args)

    def _parent(target: Any) -> Any:
        return target.parent

    def _active(target: Any) -> bool:
        return bool(target)  # a greenlet is true while started and not ended

#: What a switch into a parked greenlet passes: woken, or not (a timer ran).
_WOKEN = (True,)
_TIMED_OUT = (False,)
_NOTHING = ()

#: Direct switches allowed between two visits of the hub.
_DIRECT_SWITCHES = 16

#: Where a hub keeps its home.
_HOME_ATTRIBUTE = "_greenpools_home"


class Home:
    """What the waiters of one hub share: its thread and its run-next slot.

    Made by the first wait in the hub's own thread (and again in a forked
    child); kept on the hub.
    """

    def __init__(self, hub: Any, ops: HubOperations, thread: int, pid: int) -> None:
        self.hub = hub
        self.greenlet = ops.hub_greenlet(hub)
        self.dropped = ops.destroyed_hub_drops
        self.ops = ops
        self.thread = thread
        self.pid = pid
        self.run_next: HubWaiter | None = None
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


#: The home found last: most waits in a process happen on one hub.
_last_home: Home | None = None


def _home_here(ops: HubOperations, current: Any) -> Home:
    """The running hub's home, made if missing or inherited across a fork;
    ``current`` is the running greenlet."""
    global _last_home, _ops, _peek_hub, _get_hub
    home = _last_home  # forgotten in a forked child (see below)
    # The common case, without asking the library for the thread's hub (a
    # thread-local lookup): the running greenlet is a child of the hub found
    # last (another thread's hub is never its parent), and that hub still
    # runs: its greenlet has not ended, and it was not destroyed.
    if (home is not None and home.ops is ops and _parent(current) is home.greenlet
            and _active(home.greenlet)
            and (home.dropped is None or getattr(home.hub, home.dropped) is not None)):
        return home
    if ops is not _ops:
        _peek_hub = ops.peek_hub
        _get_hub = ops.get_hub
        _ops = ops
    hub = None if _peek_hub is None else _peek_hub()
    if hub is None:
        hub = _get_hub()
    if home is not None and home.hub is hub:
        if not _active(home.greenlet):  # eventlet remakes its hub's greenlet
            home.greenlet = ops.hub_greenlet(hub)
        return home
    pid = fork_guard.pid
    home = getattr(hub, _HOME_ATTRIBUTE, None)
    if home is None or home.pid != pid or home.ops is not ops:
        ops.prepare_hub(hub)
        home = Home(hub, ops, _thread_ident(), pid)
        setattr(hub, _HOME_ATTRIBUTE, home)
    _last_home = home
    return home


#: The hub operations of the last waiter that waited, and the two of them
#: every wait calls, looked up once.
_ops: Any = None
_peek_hub: Any = None
_get_hub: Any = None


@fork_guard.after_fork_in_child
def _forget_last_home() -> None:
    global _last_home
    _last_home = None


class HubWaiter(Waiter):
    """A one-shot waiter that parks the calling greenlet on its hub; made by
    a :class:`HubWaiters` over the backend's hub operations."""

    def __init__(self, ops: HubOperations) -> None:
        Waiter.__init__(self)
        self._ops = ops
        self._woken = False
        self._greenlet: Any = None
        self._home: Home | None = None

    def hub_operations(self) -> HubOperations:
        """The hub operations this waiter parks with."""
        return self._ops  # type: ignore[no-any-return]

    def wait(self, timeout: float | None) -> bool:
        if self._woken:
            return True
        seconds = 0.0
        if timeout is not None:
            seconds = timeout
            if seconds <= 0:
                return False
        current = _getcurrent()
        home = _home_here(self._ops, current)
        if current is home.greenlet:  # nothing could switch back into the hub
            raise RuntimeError(
                "greenpools: a blocking wait cannot run in the hub itself (an event-loop "
                "callback, or a coroutine under eventlet's asyncio hub): wait from a green "
                "thread, or use greenpools.aio.Pool from asyncio code")
        self._home = home
        self._greenlet = current
        if self._woken:
            self._greenlet = None
            return True
        timer = None if timeout is None else home.ops.call_later(home.hub, seconds, self._resume)
        try:
            waiter = home.run_next
            if waiter is not None and home.direct < _DIRECT_SWITCHES:
                home.run_next = None
                home.direct += 1
                parked = waiter._greenlet
                if parked is not None:  # not resumed by its timer meanwhile
                    waiter._greenlet = None
                    return bool(_switch(parked, _WOKEN))
            return bool(_switch(home.hub, _NOTHING))
        finally:
            self._greenlet = None
            if timer is not None:
                home.ops.cancel(timer)

    def _resume(self, woken: bool) -> None:
        parked = self._greenlet
        if parked is not None:
            self._greenlet = None
            _switch(parked, _WOKEN if woken else _TIMED_OUT)

    def wake(self) -> None:
        self._woken = True
        if self._greenlet is None:
            return
        home = self._home
        assert home is not None  # published before the greenlet
        if _thread_ident() != home.thread:
            home.ops.call_soon_threadsafe(home.hub, self._resume)
        elif home.run_next is None:
            home.run_next = self
            if not home.due:
                home.due = True
                home.ops.call_soon(home.hub, home.flush)
        else:
            home.ops.call_soon(home.hub, self._resume)


class HubWaiters:
    """Makes :class:`HubWaiter` objects over one backend's hub operations:
    what a green backend's ``waiter_factory()`` returns (the pool calls it
    for every wait, so it makes them without running ``__init__``)."""

    def __init__(self, ops: HubOperations) -> None:
        self.ops = ops

    @cython.locals(waiter=HubWaiter)  # type: ignore[untyped-decorator]
    def __call__(self) -> HubWaiter:
        if not cython.compiled:
            return HubWaiter(self.ops)
        # Compiled, a new waiter's other fields start False/None/0 (WAITING):
        # skip __init__.
        waiter = HubWaiter.__new__(HubWaiter)
        waiter._ops = self.ops
        return waiter
