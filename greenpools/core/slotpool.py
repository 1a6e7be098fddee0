"""The pool algorithm: an idle stack of slots, a limit, a FIFO queue of waiters.

Written once for every backend and both builds: Cython compiles this
module (declarations in ``slotpool.pxd``) when greenpools is built with a
compiler, and the very same source runs as plain Python otherwise.
Nothing here asks which backend is active.

This class is the only writer of the pool's state (the counts, the idle
stack, the slot map, the queue, the retired lent resources): every change
is one of its transitions, a method here, from acquire and release to
resize, drain, close, force-close and the fork reset.
:class:`greenpools.core.resource.Resource` configures it (options, hooks,
leases, upkeep wiring, the statistics' presentation) and calls them; front
ends that wait their own way (:mod:`greenpools.aio`) call the same ones.
What would tie it to the layers above (the stall watch, listener errors,
leak reports' frames) is handed in, so it imports none of them.

- ``_idle`` is a stack of :class:`Slot` (one per resource, made when the
  resource is created): acquire pops the most recently released, warm one.
- ``_slots`` maps ``id(resource)`` to the slot of every resource the
  pool holds, idle or lent, from its creation until it is closed; a
  slot's ``lent`` flag says whether a caller has it.  So any object can be
  pooled (nothing is set on it, it need not be hashable), a double or
  foreign release is caught, and lending and returning only flip a flag:
  the map changes only when resources are made and closed.  One object
  has one slot: a creation that returns an object the pool holds already
  is refused (:meth:`SlotPool._created`).
- ``_size`` counts every resource that exists or is being created, except
  lent ones a reset or force-close retired (``_retiring``, ``_retired``).
  It exceeds ``limit`` only after a shrink below the number lent:
  ``_excess`` counts those to close, not keep, as they come back.
- A caller that must wait queues its backend's waiter (its waiting
  client) on ``_waiting``, a :class:`greenpools.core.waiting.WaitQueue`.
  Whoever frees something (a release, a discard, a failed creation, a
  resize) hands it *directly* to the oldest client: the resource itself or
  the permission to create one.  Nobody takes an idle resource while
  someone is queued, so grants follow request order.  A client that stops
  waiting withdraws under the lock and passes on whatever reached it.
- While the broker blocks the pool's connections (a RabbitMQ resource
  alarm: :meth:`SlotPool._block`, :meth:`SlotPool._unblock`, called by the
  layer that hears of it), the pool lends nothing and makes nothing:
  callers queue on ``_held`` instead of ``_waiting``, which stays empty, so
  nothing that serves waiters sees them; the unblock moves them back, in
  order, and serves them.  A wait that runs out meanwhile raises
  ``ConnectionBlocked``.
- Bounded barging, when the backend asks for it (``barging_bound`` > 0,
  the threading backend).  The bound counts, for the client first in the
  queue, from the first time a resource came free while it was first
  (``passed_since``).  Within it, a caller that finds a resource idle
  takes it ahead of the queue (the releaser asking again, too), and a
  release leaves the resource idle and wakes the first client to compete
  for it (``WOKEN``: at most one at a time, the first, still first in the
  queue).  If it loses it waits on, first, and looks again by itself at
  ``recheck_at`` (half the bound later, at the latest when the bound
  runs out); meanwhile the release of a resource that was taken
  ahead of the queue does not wake it, since its holder is most likely
  about to ask again (a wake that would lose again costs a context
  switch per cycle); if that holder's task ends instead, its end wakes
  the client, where the backend hears of task ends (threads:
  ``Backend.watch_task_end``).  Once the bound has run out, nobody barges:
  each resource goes straight to the first client, and the next in line
  starts its own count when a resource first comes free for it.  Queued
  clients are served in their order either way, so a client's wait is
  bounded by its place in the queue times the bound and the hold time.

Locking.  Everything that changes ``_size``, ``_waiting`` or the
generation happens under ``_mutex``, a native lock that is never held
across anything that can block or yield (creating, closing, checking and
preparing resources all happen outside it); so one kind of lock serves
threads, gevent and eventlet alike (see :mod:`greenpools.backends.base`).

The lock-free paths.  While ``_lock_free`` says that nothing else is going
on (the pool's leases are bare, nobody waits, nothing is to shrink, the
pool is open), ``acquire`` pops a slot off ``_idle`` and ``release``
pushes it back, flipping its ``lent`` flag, without the lock.  Every
locked path that queues a waiter, shrinks or closes clears ``_lock_free``
first (``_settle_locked`` sets it back), and ``_idle`` and ``_slots`` are
only mutated in place, never replaced, so no lock-free step writes into a
stale list; ``release`` reads ``_lock_free`` again after its push, so
that one side always sees the other.  Slots popped or pushed across a
close or reset are caught by their ``generation``.
"""

from __future__ import annotations

import logging
import numbers
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

from ..backends.base import Mutex
from ..exceptions import (
    ConnectionBlocked,
    PoolClosed,
    PoolTimeout,
    is_interruption,
    not_checked_out,
)
from .waiting import WaitQueue

if not cython.compiled:  # compiled, slotpool.pxd cimports them (a C enum, a C type)
    from .waiting import GRANTED, MAY_CREATE, WAITING, WOKEN, WaitingClient

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "AcquireAgain", "Slot", "SlotPool", "acquirer_stack", "check_seconds", "skip_frames_of",
]

logger = logging.getLogger("greenpools")

_INF = float("inf")

#: Which build runs, as a plain global: the lock-free paths test it on every
#: call, and a global costs the plain-Python build less than ``cython.compiled``.
_COMPILED = cython.declare(cython.bint, cython.compiled)

#: The generation of a slot retired in doubt (:meth:`SlotPool._retire_lent_resource`):
#: none, so that nothing lends it again; its loss is counted already.
_IN_DOUBT = cython.declare(cython.Py_ssize_t, -1)

if not cython.compiled:  # compiled, slotpool.pxd defines these inline, without a call
    _identity = id
    _now = time.monotonic

    def _pop_last(idle: list[Slot], last: int) -> Slot:
        return idle.pop(last)


#: A client that lost a contest looks again by itself after at most this
#: share of the barging bound: a release that does not wake it leaves a
#: resource idle for at most that long.  A smaller share measured slower
#: at limit 1 (each look is a wake-up that holds the GIL while the holder
#: may want it back), a larger one no faster.
_RECHECK_SHARE = 0.5


def check_seconds(name: str, value: Any) -> float | None:
    """``value`` as a non-negative float or ``None``, or a clear error."""
    if value is None:
        return None
    # Any real number but a bool: numpy's, Fraction (kombu takes them too).
    real = isinstance(value, (int, float, numbers.Real)) and not isinstance(value, bool)
    if not real:
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int past any float: longer than forever needs
        seconds = _INF if value > 0 else -_INF
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return seconds


#: Modules whose frames sit between a caller and the hand-out: a leak
#: report's stack ends at the first frame outside them.  Layers above the
#: core add theirs (:func:`skip_frames_of`).
_POOL_MODULES = {
    "greenpools.core.leases", "greenpools.core.pool", "greenpools.core.resource",
    "greenpools.core.slotpool",
}


def skip_frames_of(*modules: str) -> None:
    """Leave the frames of ``modules`` (pool code of a layer above) out of leak reports."""
    _POOL_MODULES.update(modules)


def acquirer_stack() -> traceback.StackSummary:
    """The running task's stack, ending with the line that called ``acquire``.

    (Compiled code has no frames of its own, so the walk starts wherever the
    innermost Python frame is.)
    """
    frame: Any = sys._getframe(0)
    while frame is not None and frame.f_globals.get("__name__") in _POOL_MODULES:
        frame = frame.f_back
    return traceback.extract_stack(frame)


class AcquireAgain(Exception):
    """Internal: start the acquire over (with what is left of the timeout).

    Raised when the check hook refused a resource, and when a waiter
    copied into a forked child wakes there: the child's pool never knew of
    its request, so it asks that pool afresh.
    """


class Slot:
    """Book-keeping for one pooled resource, made once when it is created."""

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
        self.fresh = False  # made for the caller it is lent to, not handed out yet
        self.returns = 0  # releases so far: a lease is (slot, returns when it began)
        self.barged_at = -1  # ``returns`` when last lent ahead of queued clients


def _no_waiter() -> Any:
    raise RuntimeError("greenpools: the pool has no backend yet")


def _ignore_listener_failure(fn: Any, event: str, pool: Any) -> None:
    """Until the pool's owner hands in its own: a listener's error changes nothing."""


class SlotPool:
    """The pool algorithm; :class:`greenpools.core.resource.Resource` builds on it.

    The attributes are set by ``Resource.__init__``; the methods a subclass
    must provide are listed at the end of the class.  The algorithm's own
    steps call each other as ``SlotPool.step(self, ...)``: compiled, that is
    a direct C call (a call through ``self`` would first look for an
    override in the subclass), and in both builds a subclass cannot change
    a step by accident.
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self._limit = limit
        self._mutex = Mutex()
        self._idle: list[Slot] = []
        self._slots: dict[int, Slot] = {}
        self._waiting = WaitQueue()
        self._pending_close: list[Slot] = []  # filled under the lock, closed outside it
        self._size = 0
        self._excess = 0  # resources to close, not keep, when next returned
        self._generation = 0
        self._forks = 0  # forks this pool was copied through (see _after_fork_in_child)
        self._closed = False
        self._n_requests = 0
        self._n_queued = 0
        self._n_request_errors = 0
        self._n_timeouts = 0
        self._n_returns_bad = 0
        self._n_connections_lost = 0
        self._n_connections = 0
        self._n_connection_errors = 0
        self._connect_s = 0.0
        self._wait_s = 0.0
        self._usage_s = 0.0
        # What the pool's options and hooks ask of the algorithm (Resource sets them).
        self.timeout: float | None = None
        self.max_waiting = 0
        self.leak_timeout: float | None = None
        self.check: Callable[[Any], object] | None = None
        self.reset: Callable[[Any], object] | None = None
        self._prepare_hook: Callable[[Any], Any] | None = None
        self._release_hook: Callable[[Any], object] | None = None
        self._bare_leases = True  # a lease is the slot alone: nothing runs at hand-out or return
        self._bare_hand_out = True  # nothing runs at hand-out
        self._track_lending = False  # note when and by whom each resource is lent
        self._watched = False  # listeners or metrics want events
        self._event_listeners: dict[str, tuple[Any, ...]] = {}  # by event, set by the pool's owner
        self._needs_upkeep = False
        self._lock_free = True
        # The broker's block (see _block): its reason while any connection
        # is blocked, how many are, since when, and the callers held meanwhile.
        self._blocked: str | None = None
        self._n_blocked = 0
        self._blocked_since = 0.0
        self._held = WaitQueue()
        # The backend's barging_bound, read when a client queues on an empty
        # queue (it matters only while someone waits).
        self._barging_bound = 0.0
        # Errors raised, as the subclass specialises them.
        self._limit_exceeded: Callable[[str], Exception] = PoolTimeout
        self._pool_timeout: Callable[[str], Exception] = PoolTimeout
        self._too_many_requests: Callable[[str], Exception] = PoolTimeout
        self._connection_blocked: Callable[[str], Exception] = ConnectionBlocked
        # What the backend provides.
        self._backend: Any = None
        self._new_waiter: Callable[[], Any] = _no_waiter
        self._upkeep: Any = None
        self._stall_watch: object = False  # the stall watcher's ``running`` once it watches us
        # Handed in from above, so that this module imports neither the
        # upkeep nor the listeners: something with ``running`` and
        # ``watch(pool)`` (greenpools.core.lifecycle.stall_watch), and what
        # to do with a listener that raised.
        self._stall_watcher: Any = None
        self._listener_failed: Callable[[Any, str, Any], object] = _ignore_listener_failure
        # Lent resources the pool no longer counts, by id(resource): retired
        # by force_close_all or inherited across fork (dropped silently when
        # returned), and retiring (retired by a reset, or in doubt: closed
        # when returned).
        self._retired: dict[int, Slot] = {}
        self._retiring: dict[int, Slot] = {}
        # (id(resource), task) of each lease its holder ended by hand inside a
        # ``with`` block on the resource itself (kombu's objects are their own
        # context managers: greenpools.kombu.base.SelfLeasing).  Empty, it is
        # what the exit of every such block tests; compiled, a field: cheap.
        self._ended_in_with: set[tuple[int, Any]] = set()
        # The options the state machine reads (Resource validates and sets them).
        self.min_size = 0
        self.max_idle: float | None = None
        self.max_lifetime: float | None = None

    # -- the lock-free paths ----------------------------------------------

    @cython.locals(slot=Slot, idle=list, last=cython.Py_ssize_t)  # type: ignore[untyped-decorator]
    def acquire(self, block: bool = False, timeout: float | None = None) -> Any:
        """Take a resource out of the pool.

        Reuses the most recently released idle resource, else creates one
        while under ``limit``.  Otherwise, with ``block`` false, raises
        ``LimitExceeded``; with ``block`` true, queues first come, first
        served for up to ``timeout`` seconds (default: the pool's
        ``timeout`` option; ``None``: forever) and then raises
        ``PoolTimeout``.  Also raises ``TooManyRequests`` when
        ``max_waiting`` callers already wait, ``PoolClosed`` on a closed
        pool (or one closed while waiting), and whatever creating a
        resource raised (its place is passed on first).
        """
        # A bad timeout is refused whether or not a resource is free (not
        # only once the caller would wait); the common float and int inline.
        if timeout is not None and block and not (
                (type(timeout) is float or type(timeout) is int) and timeout >= 0):
            check_seconds("timeout", timeout)
        self._n_requests += 1
        if self._lock_free:
            if _COMPILED:
                # The length test and the pop run under the GIL with no
                # Python code between them: one step.
                idle = self._idle
                last = len(idle) - 1
                if last < 0:
                    return SlotPool._acquire_slow(self, block, timeout)
                slot = _pop_last(idle, last)
            else:
                try:
                    slot = self._idle.pop()
                except IndexError:  # empty, or another thread took the last one
                    return SlotPool._acquire_slow(self, block, timeout)
            if slot.generation == self._generation:
                slot.lent = True
                return slot.resource
            SlotPool._discard_stale(self, slot)
        return SlotPool._acquire_slow(self, block, timeout)

    @cython.locals(slot=Slot, lent=cython.bint)  # type: ignore[untyped-decorator]
    def release(self, resource: Any, /) -> None:
        """Return a resource acquired from this pool.

        Raises ``ValueError`` (and changes nothing) when ``resource`` is
        not currently lent by this pool: released twice, or never acquired.
        """
        slot: Slot | None = self._slots.get(_identity(resource))
        if slot is None:
            SlotPool._release_unknown(self, resource)
            return
        # Test and clear as one step, so that of two racing releases one
        # fails.  Compiled, the two statements run under the GIL with no
        # Python code between them; as plain Python they need the lock.
        if _COMPILED:
            lent = slot.lent
            slot.lent = False
        else:
            with self._mutex:
                lent = slot.lent
                slot.lent = False
        if not lent:
            SlotPool._release_unknown(self, resource)
            return
        slot.returns += 1
        if self._lock_free and slot.generation == self._generation:
            self._idle.append(slot)
            # Read again after the push: a thread may have queued a waiter,
            # shrunk or closed the pool since the first look.
            if not self._lock_free or slot.generation != self._generation:
                SlotPool._rebalance(self)
            return
        SlotPool._release_slow(self, slot)

    # -- acquire ----------------------------------------------------------

    def _acquire_slow(self, block: bool, timeout: float | None) -> Any:
        if not block:
            timeout = None  # never waits: a timeout is ignored, as kombu does
        elif timeout is None:
            timeout = self.timeout
        else:
            timeout = check_seconds("timeout", timeout)
        asked = timeout  # what a timeout error reports, however much is left
        deadline: float = _INF if timeout is None else _now() + timeout
        started: float = _now() if self._watched else 0.0
        if self._upkeep is None and self._needs_upkeep and not self._closed:
            self._start_upkeep()
        while True:
            try:
                slot = SlotPool._take_or_queue(self, block, timeout, asked)
                if self._pending_close:
                    SlotPool._close_pending(self)
                if self._bare_hand_out:
                    slot.fresh = False
                    return slot.resource
                resource = SlotPool._hand_out(self, slot)
                if self._watched:
                    SlotPool._emit(self, "checkout", resource, _now() - started)
                return resource
            except PoolTimeout:
                if self._watched:
                    SlotPool._emit(self, "timeout", None, _now() - started)
                raise
            except AcquireAgain:
                if deadline != _INF:
                    timeout = max(0.0, deadline - _now())

    def _take_or_queue(self, block: bool, timeout: float | None, asked: float | None) -> Slot:
        """A slot lent to the caller, waiting for one if allowed (its
        ``fresh`` flag says whether it was made for this call); ``asked`` is
        the caller's whole timeout, for the error."""
        taken = SlotPool._take_or_enqueue(self, block, timeout, asked)
        if taken is None:
            return SlotPool._create_lent(self)
        if isinstance(taken, Slot):
            return taken
        client: WaitingClient = taken
        # Wait here, not in a method of its own: one call frame less per wait.
        if timeout is None and self._stall_watch is not self._stall_watcher.running:
            self._stall_watcher.watch(self)
        deadline: float = _INF if timeout is None else client.since + timeout
        while True:
            wait_for = timeout
            recheck: cython.bint = False
            if client.recheck_at:  # it lost a contest: it looks again by then
                left: float = client.recheck_at - _now()
                recheck = timeout is None or left < timeout
                if recheck:
                    wait_for = max(0.0, left)
            try:
                woken = client.wait(wait_for)
            except BaseException:
                self._abandon(client)
                raise
            step = SlotPool._after_wait(self, client, woken, recheck, deadline, asked)
            if step is None:
                return SlotPool._create_lent(self)
            if isinstance(step, Slot):
                return step
            client = step  # lost a contest: wait on, in the same turn
            if timeout is not None:
                timeout = max(0.0, deadline - _now())

    def _take_or_enqueue(
        self, block: bool, timeout: float | None, asked: float | None
    ) -> Slot | WaitingClient | None:
        """The first step of every acquire that missed the fast path, under
        the lock and without waiting: a slot lent to the caller; None when
        the caller may create a resource (its place is counted); or, when it
        must wait, its waiting client, queued (then :meth:`_outcome` once
        served, or :meth:`_abandon` if it stops waiting)."""
        self._mutex.acquire()
        try:
            if self._closed:
                self._n_request_errors += 1
                raise PoolClosed(f"acquire on closed pool {self.name!r}")
            if self._blocked is not None:
                return SlotPool._hold_locked(self, block, timeout, asked)
            if not self._waiting.length or (
                    self._barging_bound and self._idle
                    and SlotPool._may_barge_locked(self, self._waiting.oldest(), _now())):
                slot = SlotPool._pop_idle_locked(self)
                if slot is not None:
                    slot.lent = True
                    if self._waiting.length:  # ahead of the queue
                        slot.barged_at = slot.returns
                    return slot
            limit = self._limit
            if not limit or self._size < limit:
                self._size += 1
                return None
            if not block:
                self._n_request_errors += 1
                raise self._limit_exceeded(f"pool {self.name!r}: all {limit} resources are in use")
            if self.max_waiting and self._waiting.length >= self.max_waiting:
                self._n_request_errors += 1
                raise self._too_many_requests(
                    f"pool {self.name!r}: {self.max_waiting} requests are already waiting"
                )
            if timeout is not None and timeout <= 0:
                raise SlotPool._timeout_locked(self, asked)
            client: WaitingClient = self._new_waiter()  # WAITING: its own waiting client
            client.since = _now()
            client.forks = self._forks
            if not self._waiting.length:
                self._barging_bound = getattr(self._backend, "barging_bound", 0.0)
            self._waiting.push(client)
            self._lock_free = False
            self._n_queued += 1
            if self._idle:  # a lock-free release pushed one since we looked
                SlotPool._rebalance_locked(self)
            return client
        finally:
            self._mutex.release()

    def _timeout_locked(self, asked: float | None) -> Exception:
        """Count a wait that ran out (``asked``: the caller's whole timeout)
        and make its error."""
        if self._blocked is not None:
            return SlotPool._blocked_error_locked(self, asked)
        self._n_request_errors += 1
        self._n_timeouts += 1
        if not asked:
            return self._pool_timeout(f"pool {self.name!r}: no resource is free")
        return self._pool_timeout(
            f"pool {self.name!r}: no resource became free within {asked:g} s")

    def _after_wait(
        self, client: WaitingClient, woken: bool, rechecking: bool, deadline: float,
        asked: float | None,
    ) -> Slot | WaitingClient | None:
        """Where a client's wait that returned leads, for every front end
        (``rechecking``: the wait ran to the client's own ``recheck_at``): a
        slot; a successor to wait on, first in the queue (it lost a contest);
        or, once served, what :meth:`_outcome` says."""
        if not woken and rechecking:
            SlotPool._recheck(self, client)
            woken = True
        if client.state == WOKEN:
            contest = SlotPool._compete(self, client, woken, deadline, asked)
            if contest is not None:  # None: served meanwhile
                return contest  # type: ignore[no-any-return]
        return SlotPool._outcome(self, client, asked)

    def _outcome(self, client: WaitingClient, asked: float | None) -> Slot | None:
        """What a wait that returned brought: a slot, ``None`` when the
        caller is to create one (its place is counted), or an error."""
        if client.forks != self._forks:  # copied into a forked child while waiting
            raise AcquireAgain
        # A grant is final and made before the wake: only a client still
        # WAITING or WOKEN (timed out, or a grant racing in) needs the lock.
        state = client.state
        if state == WAITING or state == WOKEN:
            self._mutex.acquire()
            try:
                state = client.state
                if state == WAITING or state == WOKEN:
                    client.withdraw()
                    SlotPool._unqueue_locked(self, client)
                    SlotPool._wake_oldest_locked(self)
                    SlotPool._settle_locked(self)
                    self._wait_s += _now() - client.since
                    raise SlotPool._timeout_locked(self, asked)
            finally:
                self._mutex.release()
        self._wait_s += _now() - client.since  # a statistic: a lost add is harmless
        if state == GRANTED:
            slot: Slot = client.slot
            if slot.generation == self._generation:
                return slot
            # Retired between the grant and the wake (a close, reset or
            # force-close): not to be handed out; ask again.
            if slot.lent:  # the pool closed: it is still in the books
                SlotPool._discard_lent(self, slot, False)
            else:
                SlotPool._drop_retired(self, slot.resource)
            raise AcquireAgain
        if state == MAY_CREATE:
            return None
        raise PoolClosed(f"pool {self.name!r} was closed while waiting")

    def _abandon(self, client: WaitingClient) -> None:
        """The waiting task was interrupted: pass on whatever reached it."""
        if client.forks != self._forks:
            return  # queued in the parent: nothing of it is in this process's pool
        retired: Slot | None = None
        with self._mutex:
            state = client.withdraw()
            if state == WAITING or state == WOKEN:
                SlotPool._unqueue_locked(self, client)
                SlotPool._wake_oldest_locked(self)
            elif state == GRANTED:
                slot: Slot = client.slot
                if slot.lent:
                    slot.lent = False
                    SlotPool._return_locked(self, slot)
                else:  # a reset or force-close retired it since the grant
                    retired = slot
            elif state == MAY_CREATE:  # its place, perhaps one a shrink counts
                SlotPool._drop_capacity_locked(self)
            SlotPool._settle_locked(self)
        if retired is not None:
            SlotPool._drop_retired(self, retired.resource)
        SlotPool._close_pending(self)

    # -- bounded barging (a backend's barging_bound > 0) ------------------------

    def _may_barge_locked(self, oldest: WaitingClient | None, now: float) -> bool:
        """Whether a caller may take an idle resource ahead of the queue (one
        is free) at ``now``: the first client (``oldest``) has been passed
        over for less than the barging bound, counted from now if this is its
        first chance."""
        if oldest is None:  # an empty queue: nobody to pass over
            return True
        if not oldest.passed_since:
            oldest.passed_since = now
            return True
        return now - oldest.passed_since < self._barging_bound

    def _wake_oldest_locked(self) -> None:
        """Resources idle while clients wait (barging leaves them so): the
        oldest client must be awake to take one, whoever barges."""
        if self._idle:
            oldest: WaitingClient | None = self._waiting.oldest()
            if oldest is not None:
                oldest.wake_to_compete()  # nothing if it is awake already

    def _pass_on_locked(self, slot: Slot, barged: bool = False) -> None:
        """A usable slot comes back while clients wait: to the oldest one, or,
        while barging is allowed, idle, with the oldest woken to compete;
        not woken if it lost a contest (it looks again by itself) and the
        slot comes back from a holder that took it ahead of the queue
        (``barged``): that holder is most likely about to ask again."""
        oldest: WaitingClient | None = self._waiting.oldest()
        now: float = _now() if self._barging_bound else 0.0
        if oldest is None or not self._barging_bound or not SlotPool._may_barge_locked(
                self, oldest, now):
            SlotPool._grant_locked(self, slot)
            SlotPool._wake_oldest_locked(self)
            return
        slot.idle_since = now
        self._idle.append(slot)
        if barged and oldest.recheck_at and oldest.state == WAITING:
            # It looks again by itself, and the releaser is likely to ask
            # again; if the releaser's task ends instead, the end wakes it.
            self._backend.watch_task_end(self)
            return
        oldest.wake_to_compete()  # nothing if it is awake already

    def _task_ended(self) -> None:
        """A task that gave back a resource ahead of the queue, leaving it
        idle for itself to take again, ended (``Backend.watch_task_end``):
        the first client must be awake to take what is idle."""
        with self._mutex:
            SlotPool._wake_oldest_locked(self)

    def _recheck(self, client: WaitingClient) -> None:
        """A client that lost a contest waited until its ``recheck_at``: it
        is to compete again, unless it was served meanwhile."""
        with self._mutex:
            client.wake_to_compete()  # nothing if it was served

    def _compete(
        self, client: WaitingClient, woken: bool, deadline: float, asked: float | None
    ) -> Slot | WaitingClient | None:
        """The oldest client, woken to compete (``WOKEN``), tries for an idle
        slot: the slot; or, if others took them all, a new client in its
        place in the queue to wait on; or None if it was served meanwhile
        (then :meth:`_outcome`).  Out of time, a timeout error."""
        if client.forks != self._forks:
            return None  # copied into a forked child: _outcome says ask again
        self._mutex.acquire()
        try:
            if client.state != WOKEN:
                return None
            # Held by the broker's block since the wake: nothing to take.
            blocked = self._blocked is not None
            slot = None if blocked else SlotPool._pop_idle_locked(self)
            if client.state != WOKEN:  # a stale idle slot closed on the way gave it its place
                if slot is not None:
                    SlotPool._return_locked(self, slot)
                return None
            now = _now()
            if slot is None and woken and now < deadline:
                successor: WaitingClient = self._new_waiter()
                successor.since = client.since
                successor.forks = client.forks
                successor.stall_warned = client.stall_warned
                successor.passed_since = client.passed_since
                if client.passed_since and not blocked:
                    recheck_at: float = min(client.passed_since + self._barging_bound,
                                            now + self._barging_bound * _RECHECK_SHARE)
                    if recheck_at > now:
                        successor.recheck_at = recheck_at
                (self._held if blocked else self._waiting).replace(client, successor)
                client.withdraw()
                return successor
            client.withdraw()
            SlotPool._unqueue_locked(self, client)
            self._wait_s += now - client.since
            SlotPool._wake_oldest_locked(self)
            SlotPool._settle_locked(self)
            if slot is None:
                raise SlotPool._timeout_locked(self, asked)
            slot.lent = True
            return slot
        finally:
            self._mutex.release()

    def _pop_idle_locked(self) -> Slot | None:
        """The warmest usable idle slot; stale ones met on the way are closed."""
        idle = self._idle
        while idle:
            try:
                slot: Slot = idle.pop()
            except IndexError:  # a lock-free acquire took the last one
                return None
            if slot.generation == self._generation and (
                slot.expires == _INF or _now() < slot.expires
            ):
                return slot
            self._pending_close.append(slot)
            SlotPool._free_capacity_locked(self)
        return None

    def _hand_out(self, slot: Slot) -> Any:
        """Run the hand-out hooks on a lent slot; return what the caller gets."""
        resource = slot.resource
        fresh = slot.fresh
        slot.fresh = False
        try:
            # A resource made for this very call is not checked: it just
            # connected, and a check that always fails would otherwise loop
            # forever creating and discarding resources.
            if self.check is not None and not fresh:
                try:
                    self.check(resource)
                except Exception:
                    SlotPool._discard_failed_check(self, slot)
                    raise AcquireAgain from None
            if self._track_lending:
                slot.lent_at = _now()
                slot.holder = self._backend.current_task()
                slot.leak_warned = False
                if self.leak_timeout is not None:
                    slot.stack = acquirer_stack()
            if self._prepare_hook is not None:
                prepared = self._prepare_hook(resource)
                if prepared is not resource:
                    SlotPool._adopt_prepared(self, slot, prepared)
                    resource = prepared
        except AcquireAgain:
            raise
        except BaseException:
            SlotPool._give_back(self, slot)
            raise
        return resource

    def _adopt_prepared(self, slot: Slot, prepared: Any) -> None:
        """``prepare`` handed out ``prepared`` for the resource of the lent
        ``slot``: the slot holds ``prepared`` from now on.  Raises
        ``ValueError`` (and changes nothing) when another slot holds it.
        Also for pools that run ``prepare`` themselves (kombu's producers)."""
        with self._mutex:
            held = SlotPool._holds(self, prepared)
            if not held:
                SlotPool._forget_slot_locked(self, slot)
                slot.resource = prepared
                self._slots[_identity(prepared)] = slot
        if held:  # another slot's: this one stays as it was
            raise ValueError(
                f"prepare returned {prepared!r}, which pool {self.name!r} already "
                f"holds: prepare must return the resource it is given or a new "
                f"object")

    def _discard_failed_check(self, slot: Slot) -> None:
        """A lent slot's resource failed its check (called from the ``except``):
        log it and discard the slot; the caller then starts the acquire over."""
        logger.warning("greenpools: pool %r discards a resource that failed its check",
                       self.name, exc_info=True)
        SlotPool._discard_lent(self, slot, True)

    def _create_lent(self) -> Slot:
        """Create a resource in a place already counted, and lend it."""
        return SlotPool._lend_created(self, self._new_slot(False))

    def _lend_created(self, slot: Slot) -> Slot:
        """Lend a slot just made for the caller, unless the pool closed meanwhile."""
        with self._mutex:
            if not self._closed:
                slot.lent = True
                slot.fresh = True
                return slot
            SlotPool._drop_capacity_locked(self)  # a place a shrink may count
            SlotPool._forget_slot_locked(self, slot)
        self._close_quietly(slot.resource)
        raise PoolClosed(f"pool {self.name!r} was closed while creating a resource")

    # -- release ----------------------------------------------------------

    def _release_slow(self, slot: Slot) -> None:
        # Whether this loan was taken ahead of queued clients (release counted it).
        barged: cython.bint = slot.barged_at == slot.returns - 1
        if self._bare_leases:  # only waiters, a shrink or a close kept it off the fast path
            self._mutex.acquire()
            try:
                SlotPool._return_locked(self, slot, barged)
            finally:
                self._mutex.release()
            if self._pending_close:
                SlotPool._close_pending(self)
            return
        resource = slot.resource
        now = _now()
        if self._track_lending:
            self._usage_s += now - slot.lent_at
        try:
            if self._release_hook is not None:
                self._release_hook(resource)
            if self.reset is not None:
                self.reset(resource)
        except BaseException as exc:
            # Interrupted (gevent.Timeout, KeyboardInterrupt...) or failed, the
            # reset left the resource in a state nobody knows: discard it and
            # free its place either way; only an interruption goes on up, and
            # the next caller closes the resource.
            interrupted: cython.bint = is_interruption(exc)
            if not interrupted:
                logger.warning("greenpools: pool %r discards a resource whose reset failed",
                               self.name, exc_info=True)
            with self._mutex:
                self._n_returns_bad += 1
                self._pending_close.append(slot)
                SlotPool._drop_capacity_locked(self)
            if interrupted:
                raise
            SlotPool._emit(self, "invalidate", resource, None)
        else:
            with self._mutex:
                SlotPool._return_locked(self, slot, barged)
            if self._watched:
                SlotPool._emit(self, "checkin", resource, now - slot.lent_at)
        SlotPool._close_pending(self)

    def _give_back(self, slot: Slot) -> None:
        """Put a lent slot back untouched (a hand-out hook failed)."""
        with self._mutex:
            if slot.lent:
                slot.lent = False
                SlotPool._return_locked(self, slot)
        SlotPool._close_pending(self)

    def _rebalance(self) -> None:
        with self._mutex:
            SlotPool._rebalance_locked(self)
        SlotPool._close_pending(self)

    def _rebalance_locked(self) -> None:
        """Hand idle slots to waiters; retire stale and excess idle slots."""
        if not self._idle:  # the usual case when a waiter queues up
            SlotPool._settle_locked(self)
            return
        while self._waiting.length:
            slot = SlotPool._pop_idle_locked(self)
            if slot is None:
                break
            SlotPool._grant_locked(self, slot)
        while self._excess:  # a shrink raced with a lock-free release
            try:
                self._pending_close.append(self._idle.pop(0))
            except IndexError:
                break
            self._excess -= 1
            self._size -= 1
        SlotPool._settle_locked(self)
        generation = self._generation
        for stale in [s for s in self._idle if s.generation != generation]:
            try:
                self._idle.remove(stale)
            except ValueError:  # taken by a lock-free acquire meanwhile
                continue
            self._pending_close.append(stale)
            SlotPool._free_capacity_locked(self)

    def _grant_locked(self, slot: Slot) -> None:
        """Lend ``slot`` to the oldest client (there is one)."""
        slot.lent = True
        while True:
            client = self._waiting.pop_oldest()
            if client is None:  # nobody took it after all: keep it idle
                slot.lent = False
                slot.idle_since = _now()
                self._idle.append(slot)
                break
            if client.grant(slot):
                break
        if not self._waiting.length:
            SlotPool._settle_locked(self)

    def _settle_locked(self) -> None:
        """Let the lock-free paths run again if nothing else is going on."""
        self._lock_free = (
            self._bare_leases and not self._waiting.length and not self._excess and not self._closed
            and self._blocked is None
        )

    def _must_close_locked(self, slot: Slot) -> bool:
        """Whether a slot coming back must close rather than be reused: the
        pool closed or shrinks, the slot is from before a reset, or expired."""
        return bool(
            self._closed or self._excess or slot.generation != self._generation
            or (slot.expires != _INF and _now() >= slot.expires)
        )

    def _return_locked(self, slot: Slot, barged: bool = False) -> None:
        """Route a slot that is neither idle nor lent: to a waiter, idle, or
        closing (``barged``: its holder, giving it back, took it ahead of
        queued clients)."""
        if SlotPool._must_close_locked(self, slot):
            self._pending_close.append(slot)
            SlotPool._drop_capacity_locked(self)
        elif self._waiting.length:
            if self._barging_bound:
                SlotPool._pass_on_locked(self, slot, barged)
            else:  # no clock read: the contended path's common case
                SlotPool._grant_locked(self, slot)
        else:
            slot.idle_since = _now()
            self._idle.append(slot)

    def _drop_capacity_locked(self) -> None:
        """A resource is going away: count it against a shrink, or pass it on."""
        if self._excess:
            self._excess -= 1
            self._size -= 1
            SlotPool._settle_locked(self)
        else:
            SlotPool._free_capacity_locked(self)

    def _free_capacity_locked(self) -> None:
        """A resource stopped existing: let the oldest waiter create one."""
        if not self._closed and (not self._limit or self._size <= self._limit):
            while self._waiting.length:
                client = self._waiting.pop_oldest()
                if client is not None and client.allow_create():
                    SlotPool._wake_oldest_locked(self)
                    SlotPool._settle_locked(self)
                    return
        self._size -= 1

    def _wake_creators_locked(self) -> None:
        """Capacity appeared (grown limit, dropped resources): hand it out."""
        while self._waiting.length and (not self._limit or self._size < self._limit):
            client = self._waiting.pop_oldest()
            if client is not None and client.allow_create():
                self._size += 1
        SlotPool._wake_oldest_locked(self)
        SlotPool._settle_locked(self)

    def _refuse_all_locked(self) -> None:
        """The pool closed: every queued client gets PoolClosed."""
        for client in self._waiting.take_all():
            client.refuse()

    # -- the broker's block --------------------------------------------------
    # A broker that runs short of memory or disk blocks the connections that
    # publish (RabbitMQ's resource alarms, cluster wide) and tells each of
    # them; the layer that hears it (greenpools.kombu.connections) calls
    # _block once per connection told, and _unblock once per connection
    # unblocked or closed.  While any is blocked the pool lends nothing and
    # makes nothing: callers wait on _held, apart from the waiters everything
    # else serves, and a wait that runs out raises ConnectionBlocked.

    def _block(self, resource: Any, reason: str) -> None:
        """``resource`` heard the broker block it for ``reason``: lend nothing
        until every blocked connection is unblocked or gone."""
        with self._mutex:
            self._n_blocked += 1
            first = self._blocked is None
            self._blocked = reason
            if first:
                self._blocked_since = _now()
                for client in self._waiting.take_all():  # the queued are held too, in order
                    self._held.push(client)
            self._lock_free = False
        if first:
            SlotPool._emit(self, "blocked", resource, None)

    def _unblock(self, resource: Any) -> None:
        """One blocked connection, ``resource``, was unblocked or is gone: when
        it was the last, serve the held callers (oldest first) and lend again."""
        with self._mutex:
            if not self._n_blocked:
                return
            self._n_blocked -= 1
            if self._n_blocked:
                return
            self._blocked = None
            seconds = _now() - self._blocked_since
            SlotPool._release_held_locked(self)
            SlotPool._rebalance_locked(self)  # idle ones to the oldest
            SlotPool._wake_creators_locked(self)  # free places to the next; settles
        SlotPool._close_pending(self)
        SlotPool._emit(self, "unblocked", resource, seconds)

    def _hold_locked(
        self, block: bool, timeout: float | None, asked: float | None
    ) -> WaitingClient:
        """:meth:`_take_or_enqueue` while blocked: the caller's client, held
        until the unblock, or the error of a caller that would not wait."""
        if not block or (timeout is not None and timeout <= 0):
            raise SlotPool._blocked_error_locked(self, asked if block else None)
        if self.max_waiting and self._held.length >= self.max_waiting:
            self._n_request_errors += 1
            raise self._too_many_requests(
                f"pool {self.name!r}: {self.max_waiting} requests are already waiting"
            )
        client: WaitingClient = self._new_waiter()
        client.since = _now()
        client.forks = self._forks
        self._held.push(client)
        self._n_queued += 1
        return client

    def _blocked_error_locked(self, asked: float | None) -> Exception:
        """Count a request refused or timed out while blocked; make its error."""
        self._n_request_errors += 1
        message = f"pool {self.name!r}: the broker has blocked its connections ({self._blocked})"
        if asked:
            self._n_timeouts += 1
            message += f"; none was lent within {asked:g} s"
        return self._connection_blocked(message)

    def _release_held_locked(self) -> None:
        """Queue the held callers, oldest first, behind any waiting ones."""
        for client in self._held.take_all():
            self._waiting.push(client)

    def _unqueue_locked(self, client: WaitingClient) -> None:
        """Take a client that stopped waiting off whichever queue holds it."""
        if not self._waiting.remove(client):
            self._held.remove(client)

    # -- discarding -------------------------------------------------------

    def _close_pending(self) -> None:
        """Close the slots queued by code that held the lock."""
        if not self._pending_close:
            return
        with self._mutex:
            slots = self._pending_close[:]
            del self._pending_close[:]
        SlotPool._dispose(self, slots, True, False)

    def _forget_slot_locked(self, slot: Slot) -> None:
        """Drop a slot (no longer idle or lent) from ``_slots``."""
        key = _identity(slot.resource)
        if self._slots.get(key) is slot:
            del self._slots[key]

    def _discard_stale(self, slot: Slot) -> None:
        """A lock-free acquire popped a slot retired by a close or reset."""
        with self._mutex:
            self._pending_close.append(slot)
            SlotPool._free_capacity_locked(self)
        SlotPool._close_pending(self)

    def _discard_lent(self, slot: Slot, lost: bool = True) -> None:
        with self._mutex:
            if not slot.lent:
                return
            slot.lent = False
            if lost:
                self._n_connections_lost += 1
            self._pending_close.append(slot)
            SlotPool._drop_capacity_locked(self)
        if lost:
            SlotPool._emit(self, "invalidate", slot.resource, None)
        SlotPool._close_pending(self)

    def _emit(self, event: str, resource: Any = None, seconds: float | None = None) -> None:
        """Call ``event``'s listeners (the metrics' first, see
        :mod:`greenpools.core.events`); free for unwatched pools, never raises."""
        if not self._watched:
            return
        listeners = self._event_listeners.get(event)
        if listeners is None:
            return
        for fn in listeners:
            try:
                fn(self, resource, seconds)
            except Exception:
                self._listener_failed(fn, event, self)

    # -- creating ---------------------------------------------------------
    # A resource is made outside the lock for a unit of capacity already
    # counted in _size (by _take_or_queue, a MAY_CREATE grant or
    # _reserve_idle); these record the outcome.  ``forks`` is the pool's fork
    # count when the creation began: a task copied into a forked child
    # finishes its creation there, and the child's books never counted it.

    def _reserve_idle(self) -> bool:
        """Count one more resource, to be made idle, if there is room."""
        with self._mutex:
            if self._closed or (self._limit and self._size >= self._limit):
                return False
            self._size += 1
            return True

    def _created(self, resource: Any, forks: int, started: float, expires: float,
                 pid: int) -> Slot | None:
        """Record a resource made for counted capacity: its new slot, or
        None when the process forked meanwhile (the caller forgets it).

        A resource the pool holds already (lent, idle, or retired while
        lent and not yet returned) is refused: slots are found by identity,
        so a second slot for one object would take the first one's entry
        and its place would be lost for good.  The place counted for this
        creation is passed on, the object is left alone (it is the other
        slot's), and the error of :meth:`_not_new` is raised.
        """
        now = _now()
        key = _identity(resource)
        with self._mutex:
            if forks != self._forks:
                return None
            held = SlotPool._holds(self, resource)
            if held:
                self._n_connection_errors += 1
                SlotPool._drop_capacity_locked(self)  # perhaps one a shrink counts
            else:
                self._n_connections += 1
                self._connect_s += now - started
                slot = Slot(resource, now, expires, self._generation, pid)
                self._slots[key] = slot
        if held:
            raise self._not_new(resource)
        SlotPool._emit(self, "connect", resource, now - started)
        return slot

    def _holds(self, resource: Any) -> bool:
        """Whether ``resource`` has a slot here: lent, idle, or retired while
        lent and not yet returned (one object can have only one slot)."""
        key = _identity(resource)
        return key in self._slots or key in self._retiring or key in self._retired

    def _refuse_held(self, resource: Any) -> None:
        """Raise the error of :meth:`_not_new` if ``resource`` has a slot here."""
        if SlotPool._holds(self, resource):
            raise self._not_new(resource)

    def _create_failed(self, forks: int) -> bool:
        """A creation for counted capacity failed: free the place; whether
        the process forked meanwhile (the child never counted it)."""
        with self._mutex:
            if forks != self._forks:
                return True
            self._n_connection_errors += 1
            SlotPool._drop_capacity_locked(self)  # perhaps one a shrink counts
        return False

    def _add_idle(self, slot: Slot) -> None:
        """A resource made for the pool itself (preload, upkeep): to the
        oldest waiter, or idle."""
        with self._mutex:
            SlotPool._return_locked(self, slot)
        SlotPool._close_pending(self)

    # -- upkeep of idle resources (greenpools.core.lifecycle) ---------------
    # Upkeep takes a slot out of the idle stack while it works on it, so
    # that nobody acquires it meanwhile.  ``list.remove`` is one atomic step
    # against the lock-free paths (which only pop and append): the slot is
    # either upkeep's or theirs.

    def _take_idle(self, wanted: Callable[[Any], bool]) -> Slot | None:
        """Take the coldest idle slot whose resource is ``wanted``."""
        for slot in list(self._idle):
            if not wanted(slot.resource):
                continue
            with self._mutex:
                if slot.generation != self._generation:
                    continue
                try:
                    self._idle.remove(slot)
                except ValueError:  # a caller took it meanwhile
                    continue
                return slot
        return None

    def _take_idle_resource(self, resource: Any) -> Slot | None:
        """Take ``resource``'s slot out of the idle stack if it is still idle."""
        slot = self._slots.get(_identity(resource))
        if slot is None or slot.resource is not resource:
            return None
        with self._mutex:
            try:
                self._idle.remove(slot)
            except ValueError:  # lent, or closed, meanwhile
                return None
        return slot

    def _put_back_idle(self, slot: Slot) -> None:
        """Return a slot taken by :meth:`_take_idle` where it was: to the oldest
        waiter, or into the idle stack by its ``idle_since`` (so that upkeep
        neither warms it up nor resets its ``max_idle`` clock)."""
        with self._mutex:
            if SlotPool._must_close_locked(self, slot):
                self._pending_close.append(slot)
                SlotPool._drop_capacity_locked(self)
            elif self._waiting.length:
                SlotPool._pass_on_locked(self, slot)
            else:
                # A snapshot: lock-free acquires may pop meanwhile, and an
                # insert past the end appends.
                idle = list(self._idle)
                position = len(idle)
                while position and idle[position - 1].idle_since > slot.idle_since:
                    position -= 1
                self._idle.insert(position, slot)
        SlotPool._close_pending(self)

    def _drop_dead_idle(self, slot: Slot) -> None:
        """A slot taken by :meth:`_take_idle` holds a dead resource: close it
        (quickly, it cannot talk) and count it in ``connections_lost``."""
        with self._mutex:
            self._n_connections_lost += 1
            SlotPool._drop_capacity_locked(self)
        SlotPool._emit(self, "invalidate", slot.resource, None)
        SlotPool._dispose(self, [slot], True, True)

    def _retire_idle(self, now: float) -> int:
        """Close idle resources past their lifetime, or idle for ``max_idle``
        while more than ``min_size`` are idle; how many were closed."""
        doomed: list[Slot] = []
        max_idle = self.max_idle
        with self._mutex:
            keep: list[Slot] = []
            spare = len(self._idle) - self.min_size  # idle ones max_idle may close
            for slot in self._idle:  # the coldest first
                if now >= slot.expires:
                    doomed.append(slot)
                elif max_idle is not None and spare > 0 and now - slot.idle_since >= max_idle:
                    doomed.append(slot)
                    spare -= 1
                else:
                    keep.append(slot)
            if doomed:
                self._idle[:] = keep  # in place: the lock-free paths hold the list
                for _ in doomed:
                    SlotPool._free_capacity_locked(self)
        if doomed:
            SlotPool._dispose(self, doomed, True, False)
        return len(doomed)

    # -- leases -----------------------------------------------------------

    def _lent_slots(self) -> list[Slot]:
        """The slots lent right now."""
        return [slot for slot in list(self._slots.values()) if slot.lent]

    def _lease_of(self, resource: Any) -> int:
        """Which lease of ``resource`` its holder is in now (-1: not lent)."""
        slot = self._slots.get(_identity(resource))
        if slot is None or not slot.lent or slot.resource is not resource:
            return -1
        return slot.returns

    def _end_lease(self, resource: Any, lease: int, broken: bool) -> None:
        """End lease ``lease`` of ``resource`` (a ``with`` block exits): return
        it, or replace it if ``broken`` (the subclass's ``release`` and
        ``replace``, so that their overrides run).  A no-op when the lease
        ended inside the block already (released, replaced, force-closed),
        even if the resource was lent again since; one a reset retired
        closes now."""
        if lease < 0 or SlotPool._lease_of(self, resource) != lease:
            SlotPool._drop_retired(self, resource, broken)
        elif broken:
            self.replace(resource)
        else:
            self.release(resource)

    def _discard_lent_resource(self, resource: Any, lost: bool) -> None:
        """Close a lent resource instead of returning it and free its place;
        ``lost`` counts it in ``connections_lost`` (broken, not done with)."""
        slot = self._slots.get(_identity(resource))
        if slot is None or not slot.lent or slot.resource is not resource:
            if SlotPool._drop_retired(self, resource, lost):
                return
            raise not_checked_out(resource, self.name, "it cannot be replaced")
        if self._track_lending:
            self._usage_s += _now() - slot.lent_at
        SlotPool._discard_lent(self, slot, lost)

    def _retire_lent_resource(self, resource: Any) -> None:
        """A lent resource is in a state nobody knows (kombu: a publish on it
        ran out of time, its confirm may still come): never lend it again.
        Its place is free at once (it counts in ``connections_lost``) and it
        closes when its holder gives it back."""
        slot = self._slots.get(_identity(resource))
        if slot is None or slot.resource is not resource:
            return
        with self._mutex:
            if not slot.lent:
                return
            slot.lent = False
            slot.generation = _IN_DOUBT
            self._n_connections_lost += 1
            SlotPool._forget_slot_locked(self, slot)
            self._retiring[_identity(resource)] = slot
            SlotPool._drop_capacity_locked(self)
        SlotPool._emit(self, "invalidate", resource, None)

    def _release_unknown(self, resource: Any) -> None:
        """A release of something this pool does not lend now."""
        if SlotPool._drop_retired(self, resource, False):
            return
        raise not_checked_out(resource, self.name, "released twice, or never acquired from it")

    def _drop_retired(self, resource: Any, lost: bool = False) -> bool:
        """``resource`` was retired while lent and comes back: close it if a
        reset retired it (counted lost if ``lost``), forget it if it was
        force-closed or inherited across fork; whether it was either."""
        return SlotPool._close_retiring(self, resource, lost) or SlotPool._forget_retired(
            self, resource)

    def _forget_retired(self, resource: Any) -> bool:
        """Drop a resource force-closed or inherited while lent; whether it was."""
        if not self._retired:
            return False
        with self._mutex:
            slot = self._retired.pop(_identity(resource), None)
        return slot is not None and slot.resource is resource

    def _close_retiring(self, resource: Any, lost: bool) -> bool:
        """Close ``resource`` if a reset retired it while lent (or it was
        retired in doubt); whether it had."""
        if not self._retiring:
            return False
        with self._mutex:
            slot = self._retiring.pop(_identity(resource), None)
            lost = lost and slot is not None and slot.generation != _IN_DOUBT
            if lost:
                self._n_connections_lost += 1
        if slot is None:
            return False
        if lost:
            SlotPool._emit(self, "invalidate", resource, None)
        SlotPool._dispose(self, [slot], True, False)
        return True

    def _retire_lent_locked(self) -> None:
        """A reset: the lent resources stop counting against the limit now.

        Each closes when its holder gives it back, and one that is never
        given back no longer takes a place (kombu forgets them too).
        """
        lent = self._lent_slots()
        for slot in lent:
            slot.lent = False
            SlotPool._forget_slot_locked(self, slot)
            self._retiring[_identity(slot.resource)] = slot
        self._size -= len(lent)

    # -- resizing and closing ---------------------------------------------

    def _resize(self, limit: int, force: bool, reset: bool) -> list[Slot]:
        """Set the limit; the idle slots to close now (see ``Resource.resize``).

        Idle resources over the new limit go now (the coldest first), lent
        ones as they come back (``_excess``).  ``reset``, or ``force`` below
        the number lent, starts a new generation: idle ones go now and lent
        ones retire (:meth:`_retire_lent_locked`).
        """
        with self._mutex:
            self._limit = limit
            to_close: list[Slot] = []
            if reset or (force and 0 < limit < self._size - len(self._idle)):
                self._generation += 1
                to_close = SlotPool._take_idle_locked(self)
                self._size -= len(to_close)
                SlotPool._retire_lent_locked(self)
            excess = self._size - limit if limit else 0
            while excess > 0:
                try:
                    to_close.append(self._idle.pop(0))  # the coldest first
                except IndexError:
                    break
                self._size -= 1
                excess -= 1
            self._excess = max(0, excess)
            SlotPool._wake_creators_locked(self)  # also settles _lock_free
        return to_close

    def _drain(self) -> list[Slot]:
        """Start a new generation: the idle slots to close now.  Lent ones
        stay counted and close when they come back (their generation is
        stale: :meth:`_must_close_locked`), freeing their places then."""
        with self._mutex:
            if self._closed:
                raise PoolClosed(f"drain on closed pool {self.name!r}")
            self._generation += 1
            slots = SlotPool._take_idle_locked(self)
            self._size -= len(slots)
            SlotPool._wake_creators_locked(self)  # the places freed, to waiters first
        return slots

    def _close_pool(self) -> list[Slot] | None:
        """Close the pool: the idle slots to close now (None: closed already).

        Lent resources close when they come back; waiting callers get
        ``PoolClosed``.
        """
        with self._mutex:
            if self._closed:
                return None
            self._generation += 1
            slots = SlotPool._take_idle_locked(self)
            self._size -= len(slots)
            SlotPool._close_locked(self)
        return slots

    def _retire_all(self, close_pool: bool) -> list[Slot] | None:
        """Retire every resource, idle and lent: the slots to close now, each
        once (None: the pool is closed already).  Lent ones are dropped
        silently when returned.  With ``close_pool`` false the pool stays
        open and makes new ones."""
        with self._mutex:
            if self._closed:
                return None
            self._generation += 1
            slots = SlotPool._take_idle_locked(self)
            for slot in self._lent_slots():
                slot.lent = False
                self._retired[_identity(slot.resource)] = slot
                slots.append(slot)
            self._size -= len(slots)
            # Nothing is lent now; what is left over the limit is being made.
            self._excess = max(0, self._size - self._limit) if self._limit else 0
            slots.extend(self._retiring.values())  # their places are free already
            self._retired.update(self._retiring)
            self._retiring.clear()
            if close_pool:
                SlotPool._close_locked(self)
            else:
                SlotPool._wake_creators_locked(self)
        return slots

    def _take_idle_locked(self) -> list[Slot]:
        idle = self._idle
        taken = []
        while idle:
            try:
                taken.append(idle.pop())
            except IndexError:
                break
        return taken

    def _close_locked(self) -> None:
        self._closed = True
        self._lock_free = False
        SlotPool._release_held_locked(self)  # they are refused too
        SlotPool._refuse_all_locked(self)

    # -- fork ---------------------------------------------------------------

    def _reset_after_fork(self) -> list[Slot]:
        """Start over in a forked child: empty books, a new generation.

        Returns every slot inherited from the parent, to be dropped (never
        closed: the parent still uses them).  Lent ones are remembered as
        retired, so that their holders' releases are quiet.  Waiters copied
        from the parent see the new fork count and ask again
        (:meth:`_outcome`), and so does a task that was creating a
        resource, or had been granted the right to (:meth:`_created`).
        Never blocks or yields; the child is single threaded here, so the
        collections may be replaced.
        """
        self._mutex = Mutex()
        # Slots queued for closing are still in _slots: count each once.
        inherited = list({
            _identity(s): s for s in [*self._slots.values(), *self._idle, *self._pending_close,
                                      *self._retiring.values()]
        }.values())
        self._retired.update((_identity(s.resource), s) for s in self._lent_slots())
        self._retired.update(self._retiring)
        self._retiring = {}
        self._ended_in_with = set()  # the parent's tasks'
        self._idle, self._slots, self._pending_close = [], {}, []
        self._waiting = WaitQueue()  # the tasks that waited exist only in the parent
        self._held = WaitQueue()
        self._blocked, self._n_blocked = None, 0  # the child has no connection to be blocked
        self._size = self._excess = 0
        self._generation += 1
        self._forks += 1
        SlotPool._settle_locked(self)
        self._upkeep = None  # restarted lazily by the next acquire
        return inherited

    # -- what the pool closes -------------------------------------------------

    def _dispose(self, slots: list[Slot], ignore_errors: bool, collect: bool) -> None:
        """Forget ``slots`` (no longer idle or lent) and close their resources."""
        with self._mutex:
            for slot in slots:
                SlotPool._forget_slot_locked(self, slot)
        self._close_slots(slots, ignore_errors, collect)

    # -- provided by the subclass (greenpools.core.resource.Resource) -------------
    # Real methods, not type stubs: Cython compiles ``if TYPE_CHECKING:`` blocks
    # in a class body, so stubs there would return None in the compiled build.

    def _new_slot(self, ready: bool = False) -> Slot:
        """Create a resource and its slot (the subclass's ``new`` and hooks)."""
        raise NotImplementedError

    def _close_slots(self, slots: list[Slot], ignore_errors: bool, collect: bool = False) -> None:
        """Close the resources of forgotten ``slots`` (the subclass's close hooks)."""
        raise NotImplementedError

    def _close_quietly(self, resource: Any) -> None:
        """Close a resource, logging rather than raising."""
        raise NotImplementedError

    def _not_new(self, resource: Any) -> Exception:
        """The error of a creation that returned ``resource``, which the pool holds already."""
        raise NotImplementedError

    def _start_upkeep(self) -> None:
        """Start the pool's background upkeep."""
        raise NotImplementedError

    def replace(self, resource: Any) -> None:
        """Close a broken lent resource instead of returning it."""
        raise NotImplementedError
