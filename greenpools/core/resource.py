"""Pools of anything: ``Resource`` (kombu's API) and ``Pool`` (built from callables).

The algorithm itself (the idle stack, the limit, the queue of waiters,
the lock-free paths) is :class:`greenpools.core.slotpool.SlotPool`; this
module adds what a user configures around it: the hooks a subclass
overrides, psycopg_pool's options, closing and resizing, statistics, the
context manager, and the reset of a pool in a forked child.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import random
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .. import backends, forking
from ..exceptions import (
    ConnectionBlocked,
    LimitExceeded,
    PoolClosed,
    PoolTimeout,
    TooManyRequests,
    specialise,
)
from . import events, lifecycle, registry
from .leases import Lease
from .options import HOOK_NAMES, Hook, PoolOptions, check_limit, check_options
from .slotpool import AcquireAgain, Slot, SlotPool, acquirer_stack, check_seconds
from .stats import Counters

__all__ = ["Resource", "Slot", "acquirer_stack", "check_limit", "check_seconds", "live_pools"]

T = TypeVar("T")
logger = logging.getLogger("greenpools")

_INF = float("inf")
_monotonic = time.monotonic  # every backend's clock (Backend.monotonic)

_pool_names = itertools.count(1)


class Resource(PoolOptions[T], SlotPool, Counters, Generic[T]):
    """A pool of resources, compatible with ``kombu.resource.Resource``.

    Subclasses implement ``new()``; the other hooks are optional:
    ``prepare(r)`` (runs on every hand-out and returns the object handed
    out), ``release_resource(r)`` (runs on every return),
    ``close_resource(r)`` (default: ``r.close()`` if it has one),
    ``collect_resource(r)`` (a fast close used by ``force_close_all``;
    default: ``close_resource``), ``forget_resource(r)`` (drop a resource
    inherited across ``fork()``) and ``setup()`` (runs once at the end of
    ``__init__``).

    A hook may also be set on one pool (``pool.prepare = f``) and deleted
    again.  A resource its holder drops without releasing keeps its place,
    as in kombu: places come back through ``release``, ``replace``,
    ``force_close_all`` or a reset (``resize(..., reset=True)``), never
    through garbage collection.

    ``limit`` of ``None`` or 0 means unlimited (idle resources are kept;
    the kombu connection, channel and producer pools close each one on
    release instead, as kombu does).  The keyword options have
    psycopg_pool's meanings and are fixed at construction; all are off by
    default, so a plain kombu-style pool pays for none of them.
    ``track_usage`` (implied by ``leak_timeout``) times every lease for
    the ``usage_ms`` statistic.

    ``keepalive`` (seconds) runs ``check`` on every idle resource that
    often, in the background, each one out of the idle stack meanwhile;
    one whose check raises is closed, counted in ``connections_lost`` and
    replaced.  kombu connection pools keep idle connections with a
    heartbeat alive without it.  ``leak_timeout`` logs a warning on the
    ``greenpools`` logger, once per lease, with the acquiring stack.
    :meth:`wait` blocks until ``min_size`` resources are ready.

    A bad option raises ``TypeError`` or ``ValueError`` naming the option
    and the value (``limit must be a non-negative int, got -1``),
    as does a ``min_size`` or ``preload`` above ``limit``; an unknown
    keyword, a ``TypeError`` naming the class called and the option meant.
    """

    #: Raised, specialised, when no resource is free and the caller would
    #: not wait; kombu subclasses override it (``ConnectionLimitExceeded``).
    LimitExceeded: type[Exception] = LimitExceeded

    #: Errors that, raised inside ``with pool.acquired()``, mean the
    #: resource is broken: it is replaced instead of returned.
    connection_errors: tuple[type[BaseException], ...] = ()

    #: Drop (never use, never protocol-close) inherited resources in a
    #: forked child.
    close_after_fork = True

    #: What makes the resources, as the error of one that returned a
    #: resource the pool holds already names it (see :meth:`_not_new`).
    _creator = "new()"

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` checked and converted as this class's constructor does
        (:func:`~greenpools.core.options.check_options`): the groups use it."""
        return check_options(options, keeps_alive=cls._keep_alive is not Resource._keep_alive)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in HOOK_NAMES:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method):
                setattr(cls, name, Hook(method))

    def __init__(
        self,
        limit: int | None = None,
        preload: int | None = None,
        close_after_fork: bool | None = None,
        *,
        min_size: int = 0,
        max_idle: float | None = None,
        max_lifetime: float | None = None,
        timeout: float | None = None,
        max_waiting: int = 0,
        check: Callable[[T], object] | None = None,
        reset: Callable[[T], object] | None = None,
        configure: Callable[[T], object] | None = None,
        reconnect_timeout: float | None = None,
        reconnect_failed: Callable[[Resource[T]], object] | None = None,
        leak_timeout: float | None = None,
        keepalive: float | None = None,
        track_usage: bool = False,
        name: str | None = None,
        connection_errors: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        options = type(self)._check_options({
            "name": name, "limit": limit, "preload": preload, "min_size": min_size,
            "max_idle": max_idle, "max_lifetime": max_lifetime, "timeout": timeout,
            "max_waiting": max_waiting, "check": check, "reset": reset, "configure": configure,
            "reconnect_timeout": reconnect_timeout, "reconnect_failed": reconnect_failed,
            "leak_timeout": leak_timeout, "keepalive": keepalive,
            "connection_errors": connection_errors,
        })
        SlotPool.__init__(self, options.pop("name") or f"pool-{next(_pool_names)}",
                          options.pop("limit"))
        if options["connection_errors"] is None:
            del options["connection_errors"]  # the class's own
        for option, value in options.items():
            setattr(self, option, value)
        if close_after_fork is not None:
            self.close_after_fork = bool(close_after_fork)

        cls = type(self)
        self._track_usage = bool(track_usage) or self.leak_timeout is not None
        self._set_hook_flags()
        self._settle_locked()  # the lock-free paths only for bare leases
        self._limit_exceeded = specialise(LimitExceeded, cls.LimitExceeded)
        self._pool_timeout = specialise(PoolTimeout, cls.LimitExceeded)
        self._too_many_requests = specialise(TooManyRequests, cls.LimitExceeded)
        self._connection_blocked = specialise(ConnectionBlocked, cls.LimitExceeded)

        self._needs_upkeep = lifecycle.needs_upkeep(self)  # the options are fixed: ask once
        self._ready_waiters: list[backends.Waiter] = []  # callers of wait()
        self._reset_counters()
        self._backend = backends.current()
        self._new_waiter = backends.waiter_factory()
        self._stall_watcher = lifecycle.stall_watch
        self._listener_failed = events.listener_failed
        forking.fork_guard.track(self)
        registry.add(self)

        self.setup()
        for _ in range(self.preload):
            if not self._create_idle():
                break
        if self._wants_upkeep():
            self._start_upkeep()

    def _set_hook_flags(self) -> None:
        """Which hooks run, and whether leases are bare (none at all)."""
        # A watched pool emits events (greenpools.core.events) from the slow paths only.
        self._event_listeners = events.listeners_for(self)
        self._watched = bool(self._event_listeners) or events.metrics_on()
        self._track_lending = self._track_usage or self._watched
        self._prepare_hook = self._core_hook("prepare")
        self._release_hook = self._core_hook("release_resource")
        self._bare_hand_out = (
            self.check is None and self._prepare_hook is None and not self._track_lending
        )
        self._bare_leases = bool(self._bare_hand_out and (
            self._release_hook is None and self.reset is None
            and self.max_lifetime is None and self.max_idle is None
        ))

    def _core_hook(self, name: str) -> Callable[[T], Any] | None:
        """The hook ``name`` the core runs; None, which costs nothing on the
        hot path, for one left at the default."""
        if getattr(type(self), name) is getattr(Resource, name) and name not in self.__dict__:
            return None
        return getattr(self, name)  # type: ignore[no-any-return]

    def _hooks_changed(self) -> None:
        """A hook was set or deleted on this pool: route calls accordingly."""
        if getattr(self, "_track_usage", None) is None:  # still in __init__, which sets the flags
            return
        with self._mutex:
            self._set_hook_flags()
            self._settle_locked()

    def _watch_changed(self) -> None:
        """A listener or the metrics came or went (see greenpools.core.events)."""
        self._hooks_changed()

    if TYPE_CHECKING:  # implemented by SlotPool (greenpools.core.slotpool)

        def acquire(self, block: bool = False, timeout: float | None = None) -> T: ...
        def release(self, resource: T, /) -> None: ...

    # -- hooks ------------------------------------------------------------

    def new(self) -> T:
        """Create a resource (subclasses must implement this)."""
        raise NotImplementedError("subclass responsibility: Resource.new()")

    def setup(self) -> None:
        """Called at the end of ``__init__``; does nothing by default."""

    def prepare(self, resource: T) -> T:
        """Called on every hand-out; returns the object handed out."""
        return resource

    def release_resource(self, resource: T) -> None:
        """Called on every return to the pool."""

    def close_resource(self, resource: T) -> None:
        """Close a resource for good (default: its ``close()``, if any)."""
        close = getattr(resource, "close", None)
        if callable(close):
            close()

    def collect_resource(self, resource: T) -> None:
        """Close a resource quickly, from ``force_close_all``."""
        self.close_resource(resource)

    def forget_resource(self, resource: T) -> None:
        """Drop a resource inherited across ``fork()`` without closing it.

        The parent still uses it, so nothing may be sent on it; subclasses
        that hold file descriptors close the child's copies here.  Runs in
        the child's at-fork callback: it must not block or yield.
        """

    # -- properties -------------------------------------------------------

    @property
    def limit(self) -> int:
        """How many resources may be lent and idle at once; 0 means no limit.

        Setting it is :meth:`resize` with the new limit, and raises what
        that raises.
        """
        return self._limit

    @limit.setter
    def limit(self, limit: int | None) -> None:
        self.resize(limit)

    @property
    def closed(self) -> bool:
        """Whether the pool was closed (:meth:`close`, :meth:`force_close_all`,
        or the exit of ``with pool:``); a closed pool lends nothing."""
        return self._closed

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} limit={self._limit} size={self._size} "
            f"idle={len(self._idle)} waiting={self._n_waiting()}"
            f"{' closed' if self._closed else ''}>"
        )

    # -- creating ---------------------------------------------------------

    def _new_slot(self, ready: bool = False) -> Slot:
        """Create a resource for a unit of capacity already counted in _size;
        ``ready`` also connects it (see :meth:`_make_ready`).

        Raises ``AcquireAgain`` in a forked child when the process forked
        while this task was creating (also when the creation then failed):
        the child's books never counted that capacity, and what was made is
        half the parent's, so it is forgotten, never closed.
        """
        forks = self._forks
        started = _monotonic()
        try:
            resource = self.new()
            self._refuse_held(resource)  # another slot's: not to be configured or connected
            if ready or self.configure is not None:
                try:
                    if ready:
                        self._make_ready(resource)
                    if self.configure is not None:
                        self.configure(resource)
                except BaseException:
                    self._unmake(resource, forks)
                    raise
        except BaseException as exc:
            self._creation_failed(forks, exc)
            raise
        return self._creation_done(resource, forks, started)

    # The steps of _new_slot apart, for front ends that make resources their
    # own way (greenpools.aio awaits the hooks).

    def _unmake(self, resource: T, forks: int) -> None:
        """Let go of a resource whose creation failed after it was made."""
        if forks == self._forks:
            self._close_quietly(resource)
        else:  # made across a fork: closing it would close the parent's
            self._drop_inherited(resource)

    def _creation_failed(self, forks: int, exc: BaseException) -> None:
        """A creation begun when the pool had forked ``forks`` times raised
        ``exc``: pass its place on (the caller re-raises), or ask again in a
        forked child, whose books never counted it."""
        if self._create_failed(forks) and isinstance(exc, Exception):
            raise AcquireAgain from exc

    def _creation_done(self, resource: T, forks: int, started: float) -> Slot:
        """Book a resource made (from ``started`` on) in a place already counted."""
        expires = _INF
        if self.max_lifetime is not None:
            # Up to 10% shorter, so that resources made together expire apart.
            expires = _monotonic() + self.max_lifetime * (1.0 - 0.1 * random.random())
        slot = self._created(resource, forks, started, expires, forking.fork_guard.pid)
        if slot is None:  # made across a fork: the parent's half
            self._drop_inherited(resource)
            raise AcquireAgain
        return slot

    def _not_new(self, resource: T) -> Exception:
        """The error of a creation that returned ``resource``, which the pool
        holds already (the core refused it, and passed its place on)."""
        return ValueError(
            f"{self._creator} returned {resource!r}, which pool {self.name!r} already "
            f"holds: {self._creator} must return a new object each call"
        )

    def _drop_inherited(self, resource: T) -> None:
        """Let go of a resource the parent process may be using too.  Runs in
        the fork hook too, which must not block or yield: no logging here."""
        if self.close_after_fork:
            try:
                self.forget_resource(resource)
            except Exception:  # pragma: no cover - must not kill the child
                pass

    def _create_idle(self, ready: bool = False) -> bool:
        """Add one idle resource if below the limit; False if there was no room.

        ``ready``: connected too, for upkeep (``preload`` stays lazy, as in kombu).
        """
        if not self._reserve_idle():
            return False
        try:
            slot = self._new_slot(ready)
        except AcquireAgain:  # the process forked meanwhile: the child's upkeep starts anew
            return False
        self._add_idle(slot)
        return True

    # -- readiness and idle upkeep (called by greenpools.core.lifecycle) ---------

    def _make_ready(self, resource: T) -> None:
        """Make a new resource usable before upkeep counts it (kombu: connect)."""

    def _is_ready(self, resource: T) -> bool:
        """Whether ``resource`` counts towards ``min_size`` (kombu: connected)."""
        return True

    def _keepalive_interval(self) -> float | None:
        """How often upkeep runs :meth:`_keep_alive` on idle resources."""
        return self.keepalive

    def _keep_alive(self, resource: T) -> None:
        """Keep an idle resource alive, or raise if it is dead: runs ``check``."""
        if self.check is not None:
            self.check(resource)

    def _current_slots(self) -> list[Slot]:
        """The slots of the current generation (a drain leaves older ones
        lent, to close when they come back)."""
        with self._mutex:
            generation = self._generation
            return [s for s in self._slots.values() if s.generation == generation]

    def _ready_count(self) -> int:
        """How many resources of the current generation are ready."""
        slots = self._current_slots()
        if type(self)._is_ready is Resource._is_ready:
            return len(slots)
        return sum(1 for slot in slots if self._is_ready(slot.resource))

    def _below_min_size(self) -> bool:
        """Whether upkeep should add (or connect) a resource for ``min_size``."""
        return self._size < self.min_size or self._ready_count() < self.min_size

    def _add_ready(self) -> bool:
        """One more ready resource for ``min_size``: a new one, or an idle
        unready one readied.  False when there is nothing to do it with."""
        if self._size < self.min_size or len(self._current_slots()) < self.min_size:
            return self._create_idle(ready=True)
        slot = self._take_idle(lambda r: not self._is_ready(r))
        if slot is None:
            return False
        started = _monotonic()
        try:
            self._make_ready(slot.resource)
        except BaseException:
            with self._mutex:
                self._n_connection_errors += 1
            self._put_back_idle(slot)
            raise
        self._connect_s += _monotonic() - started
        self._put_back_idle(slot)
        # A resource that still is not ready would make upkeep loop: stop.
        return self._is_ready(slot.resource)

    def _idle_resources(self) -> list[Any]:
        """The idle resources now, warmest last (a snapshot)."""
        return [slot.resource for slot in list(self._idle)]

    # What greenpools.core.lifecycle sees of a pool (lifecycle.UpkeepPool), beside
    # the methods above: the upkeep tasks call these and never touch the
    # pool's lists themselves.

    def _has_upkeep(self, upkeep: object) -> bool:
        """Whether ``upkeep`` is this pool's upkeep task now."""
        return self._upkeep is upkeep

    def _join_stall_watch(self, token: object) -> bool:
        """Record that the stall watch ``token`` watches this pool (the C
        fast path reads it too); False if it already did."""
        if self._stall_watch is token:
            return False
        self._stall_watch = token
        return True

    def _keep_idle_alive(self, resource: T) -> bool:
        """Run :meth:`_keep_alive` on ``resource`` if it is still idle, out of
        the idle stack meanwhile; False if it died (it is closed and counted
        in ``connections_lost``), True otherwise."""
        slot = self._take_idle_resource(resource)
        if slot is None:  # acquired (or closed) meanwhile
            return True
        try:
            self._keep_alive(resource)
        except Exception:
            logger.info("greenpools: pool %r replaces an idle resource that died",
                        self.name, exc_info=True)
            self._drop_dead_idle(slot)
            return False
        self._put_back_idle(slot)
        return True

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until ``min_size`` resources are ready (connected, for kombu pools).

        Raises :class:`PoolTimeout` saying how many are ready when
        ``timeout`` seconds pass first (``None``: wait for ever); the pool
        stays open and upkeep keeps trying.  Raises :class:`PoolClosed` on
        a closed pool (also one closed while waiting), and ``TypeError`` or
        ``ValueError`` for a ``timeout`` that is not a non-negative number
        or ``None``.  For a readiness probe that must not block, read
        :meth:`get_stats` instead.
        """
        timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else _monotonic() + timeout
        if self._upkeep is None and self._wants_upkeep():
            self._start_upkeep()
        while True:
            waiter = self._watch_readiness()
            try:
                ready = self._ready_count()
                if ready >= self.min_size:
                    return
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._not_ready(ready, timeout)
                waiter.wait(remaining)
            finally:
                self._unwatch_readiness(waiter)

    def _watch_readiness(self) -> Any:
        """A new waiter that upkeep wakes when resources may have become ready."""
        with self._mutex:
            if self._closed:
                raise PoolClosed(f"wait on closed pool {self.name!r}")
            waiter = self._new_waiter()
            self._ready_waiters.append(waiter)  # before counting: no wake is lost
        return waiter

    def _unwatch_readiness(self, waiter: Any) -> None:
        with self._mutex:
            if waiter in self._ready_waiters:
                self._ready_waiters.remove(waiter)

    def _not_ready(self, ready: int, timeout: float | None) -> Exception:
        """The error of a :meth:`wait` that ran out with ``ready`` resources ready."""
        return self._pool_timeout(
            f"pool {self.name!r}: {ready} of min_size {self.min_size} resources "
            f"ready after {timeout} seconds"
        )

    def _wake_ready_waiters(self) -> None:
        """Let the callers of :meth:`wait` count again."""
        if not self._ready_waiters:
            return
        with self._mutex:
            waiters = self._ready_waiters[:]
            del self._ready_waiters[:]
        for waiter in waiters:
            waiter.wake()

    # -- discarding and closing ------------------------------------------

    def _close_slots(self, slots: list[Slot], ignore_errors: bool, collect: bool = False) -> None:
        first_error: Exception | None = None
        for slot in slots:
            self._emit("close", slot.resource)
            try:
                if slot.pid != forking.fork_guard.pid:
                    self.forget_resource(slot.resource)
                elif collect:
                    self.collect_resource(slot.resource)
                else:
                    self.close_resource(slot.resource)
            except Exception as exc:
                if first_error is None:
                    first_error = exc
                logger.debug("greenpools: pool %r failed to close %r", self.name,
                             slot.resource, exc_info=True)
        if first_error is not None and not ignore_errors:
            raise first_error

    def _close_quietly(self, resource: Any) -> None:
        try:
            self.close_resource(resource)
        except Exception:
            logger.debug("greenpools: pool %r failed to close %r", self.name, resource,
                         exc_info=True)

    def replace(self, resource: T) -> None:
        """Close a broken lent resource instead of returning it.

        Its place goes to the oldest waiter (who creates a fresh one) or
        back to the pool's free capacity; it counts in ``connections_lost``.
        Raises ``ValueError`` (and changes nothing) when ``resource`` is not
        lent by this pool now.
        """
        self._discard_lent_resource(resource, True)

    def force_close_all(self, close_pool: bool = True) -> None:
        """Close every resource, idle and lent alike, each exactly once.

        A lent resource released afterwards is dropped silently.  With
        ``close_pool`` true (the default) the pool is closed too, as by
        :meth:`close`; with ``close_pool`` false it stays usable and makes
        new ones.  Errors from closing are logged at ``DEBUG``, never
        raised; on a closed pool it does nothing.
        """
        slots = self._retire_all(close_pool)
        if slots is None:
            return
        if close_pool:
            registry.discard(self)
        self._dispose(slots, True, True)

    def drain(self) -> None:
        """Replace every resource: idle ones close now, lent ones when they
        come back (never lent again); later acquires get new ones, and
        upkeep refills ``min_size``.

        For rotated credentials, a moved broker, or rebalancing across a
        cluster now rather than at ``max_lifetime``.  Lent resources still
        count against ``limit`` until they come back.  Raises
        :class:`PoolClosed` on a closed pool.
        """
        self._dispose(self._drain(), True, False)
        if self._upkeep is None and self._wants_upkeep():
            self._start_upkeep()

    def close(self) -> None:
        """Close the pool: idle resources now, lent ones when returned.

        Waiting and future callers get :class:`PoolClosed`.  Errors from
        closing are logged at ``DEBUG``, never raised, and a second call
        does nothing.  A pool is also a context manager that closes it on
        exit.
        """
        slots = self._close_pool()
        if slots is None:
            return
        registry.discard(self)
        self._dispose(slots, True, False)
        self._wake_ready_waiters()  # they raise PoolClosed

    def __enter__(self) -> Resource[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- resizing ---------------------------------------------------------

    def resize(
        self, limit: int | None, force: bool = False, ignore_errors: bool = False,
        reset: bool = False,
    ) -> None:
        """Change ``limit`` at any time, growing or shrinking.

        Shrinking closes idle resources over the new limit now (the least
        recently used first) and lent ones as they come back.  ``reset``
        also retires every existing resource: idle ones close now, lent
        ones on return, and the lent ones stop counting against the limit
        at once, so a holder that drops one without releasing it (as
        kombu's own tests do) costs no capacity.  ``force`` (the meaning
        ``greenpools.pools.set_limit`` gives it too) makes the limit hold at
        once: when it is below the number of resources in use, they are
        all retired as by ``reset``, as kombu's ``resize(force=True)``
        does.  Closing errors propagate unless ``ignore_errors``; the new
        limit is in force either way.

        Raises ``TypeError`` or ``ValueError`` for a ``limit`` that is not a
        non-negative int or ``None``, and ``ValueError`` for one below
        ``min_size`` (then nothing changes).
        """
        new_limit = check_limit("limit", limit)
        if self.min_size and new_limit and new_limit < self.min_size:
            raise ValueError(f"limit must not be below min_size {self.min_size}, got {limit!r}")
        self._dispose(self._resize(new_limit, force, reset), ignore_errors, False)

    # -- context manager for any pool --------------------------------------

    def acquired(self, block: bool = True, timeout: float | None = None) -> Lease[T]:
        """``with pool.acquired() as r:`` returns ``r`` on exit, or replaces
        it when the block raised one of ``connection_errors``.

        ``block`` and ``timeout`` are those of :meth:`acquire`, which the
        ``with`` statement calls (and whose errors it raises).  A release
        inside the block ends the lease: the exit then does nothing.
        """
        return Lease(self, block, timeout)

    # -- statistics -------------------------------------------------------

    def _n_waiting(self) -> int:
        """Callers waiting now: queued, or held while the broker blocks."""
        return len(self._waiting) + len(self._held)

    def get_stats(self) -> dict[str, int]:
        """Gauges and counters under psycopg_pool's key names."""
        return self._stats(reset=False)

    def pop_stats(self) -> dict[str, int]:
        """Like :meth:`get_stats`, then zero the counters."""
        return self._stats(reset=True)

    def _stats(self, reset: bool) -> dict[str, int]:
        with self._mutex:
            requests = self._n_requests
            if reset:
                self._n_requests = 0
            stats: dict[str, int] = {
                "pool_min": self.min_size,
                "pool_max": self._limit,
                "pool_size": self._size,
                "pool_available": len(self._idle),
                "requests_waiting": self._n_waiting(),
                "requests_num": requests,
                "connections_blocked": self._n_blocked,
            }
            stats.update(self._read_counters(reset))
        return stats

    # -- upkeep, fork and backend switches ---------------------------------

    def _wants_upkeep(self) -> bool:
        return self._needs_upkeep and not self._closed

    def _start_upkeep(self) -> None:
        upkeep = lifecycle.Upkeep(self, self._backend)
        self._upkeep = upkeep  # before it runs: it ends at once if not the pool's upkeep
        upkeep.start()

    def _replan_upkeep(self) -> None:
        """The jobs the options ask of upkeep changed (kombu: a blocked
        connection to read until the unblock): run the ones asked for now,
        in a task of their own, or none."""
        planned = [task for task in lifecycle.TASKS if task.wanted(self)]
        upkeep = self._upkeep
        if upkeep is not None and [type(task) for task in upkeep.tasks] == planned:
            return
        self._needs_upkeep = bool(planned)
        if upkeep is not None:
            upkeep.stop()
            self._upkeep = None
        if self._wants_upkeep():
            self._start_upkeep()

    def _after_fork_in_child(self) -> None:
        # Never blocks or yields: see greenpools.forking.
        inherited = self._reset_after_fork()
        self._ready_waiters = []
        for slot in inherited:
            self._drop_inherited(slot.resource)
        self._emit("fork")

    def _on_backend_switch(self, backend: backends.Backend) -> None:
        self._backend = backend
        self._new_waiter = backends.waiter_factory()
        if self._upkeep is not None:
            self._upkeep.stop()
            self._upkeep = None
            # Restart it now: a pool served by the lock-free fast path may
            # not reach the slow path (which restarts it) for a long time.
            if self._wants_upkeep():
                self._start_upkeep()

    # -- warnings (called by background tasks) ---------------------------------

    def _warn_stalled(self, now: float, after: float) -> None:
        """Log once for each caller that has waited forever for ``after`` seconds."""
        with self._mutex:
            stalled = [c for c in [*self._waiting, *self._held]
                       if not c.stall_warned and now - c.since >= after]
            for client in stalled:
                client.stall_warned = True
            lent = len(self._lent_slots())
            blocked = self._blocked
        for client in stalled:
            if blocked is not None:
                logger.warning(
                    "greenpools: a caller has waited %.0fs for pool %r (no timeout): the "
                    "broker has blocked the pool's connections (%s)",
                    now - client.since, self.name, blocked,
                )
                continue
            logger.warning(
                "greenpools: a caller has waited %.0fs for pool %r (%d of %d in use, "
                "no timeout); is a task holding one while it waits for another?",
                now - client.since, self.name, lent, self._limit,
            )

    def _warn_leaks(self, now: float) -> None:
        leak_timeout = self.leak_timeout
        if leak_timeout is None:
            return
        with self._mutex:
            overdue = [s for s in self._lent_slots()
                       if not s.leak_warned and now - s.lent_at > leak_timeout]
            for slot in overdue:
                slot.leak_warned = True
        for slot in overdue:
            stack = "".join(traceback.format_list(slot.stack or []))
            logger.warning(
                "greenpools: pool %r: %r held for more than %ss by %r; acquired at:\n%s",
                self.name, slot.resource, leak_timeout, slot.holder, stack.rstrip("\n"),
            )


# Resource's own hooks too, so that ``pool.prepare = f`` works on any pool.
for _name in HOOK_NAMES:
    setattr(Resource, _name, Hook(getattr(Resource, _name)))


def live_pools() -> list[Resource[Any]]:
    """Every open pool of this process (a snapshot)."""
    return registry.live_pools()


def _switch_all(backend: backends.Backend) -> None:
    for pool in registry.live_pools():
        pool._on_backend_switch(backend)


events.accept_pool_type(Resource)
backends.on_switch(_switch_all)
