"""Background upkeep of pools: min_size, max_idle, max_lifetime, keepalive,
leak and stall warnings.

Each job is a small task object (:class:`FillToMinSize`, :class:`RetireIdle`,
:class:`KeepIdleAlive`, :class:`WarnLeaks`, :class:`WarnStalls`) that holds
only a weak reference to its pool and knows when it is next due.  One
background task per pool, :class:`Upkeep`, runs the jobs that pool's
options ask for; a plain kombu-style pool asks for none and starts no task
at all.  An abandoned pool is collected and its task ends; the task also
ends when the pool closes, after a fork (the child restarts it lazily) and
when the backend switches (the pool starts a new one on the new backend).
:class:`StallWatch`, one task per process, runs the stall warnings of the
pools that ever waited without a timeout.

Upkeep sees a pool only as an :class:`UpkeepPool`: its public options and a
few methods that do the work under the pool's own lock (``_retire_idle``,
``_keep_idle_alive``, ``_add_ready``, ...).  A resource upkeep works on is
out of the idle stack meanwhile, so no caller can acquire it.  This module
never imports :mod:`greenpools.core.resource`; that one imports this.
"""

from __future__ import annotations

import logging
import random
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import backends
from ..backends.base import native_lock
from ..forking import fork_guard

if TYPE_CHECKING:
    from ..backends import Backend

__all__ = [
    "FillToMinSize", "KeepIdleAlive", "RetireIdle", "StallWatch", "Upkeep", "UpkeepPool",
    "UpkeepTask", "WarnLeaks", "WarnStalls", "needs_upkeep", "stall_watch",
]

logger = logging.getLogger("greenpools")

#: Longest sleep of an upkeep task, and the first reconnection delay.
MAX_INTERVAL = 1.0
#: Shortest sleep, so that tiny options cannot make a task spin.
MIN_INTERVAL = 0.01
#: Longest reconnection delay (backing off, with jitter, from MAX_INTERVAL).
MAX_BACKOFF = 60.0


class UpkeepPool(Protocol):
    """What upkeep needs from a pool (:class:`greenpools.Resource` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def min_size(self) -> int: ...
    @property
    def max_idle(self) -> float | None: ...
    @property
    def max_lifetime(self) -> float | None: ...
    @property
    def leak_timeout(self) -> float | None: ...
    @property
    def reconnect_timeout(self) -> float | None: ...
    @property
    def reconnect_failed(self) -> Callable[[Any], object] | None: ...

    def _has_upkeep(self, upkeep: object) -> bool:
        """Whether ``upkeep`` is the pool's upkeep task now."""
    def _join_stall_watch(self, token: object) -> bool:
        """Record that the stall watch ``token`` watches the pool; False if it did."""
    def _keepalive_interval(self) -> float | None: ...
    def _below_min_size(self) -> bool: ...
    def _add_ready(self) -> bool: ...
    def _create_idle(self, ready: bool = False) -> bool: ...
    def _wake_ready_waiters(self) -> None: ...
    def _retire_idle(self, now: float) -> int: ...
    def _idle_resources(self) -> list[Any]: ...
    def _keep_idle_alive(self, resource: Any) -> bool: ...
    def _warn_leaks(self, now: float) -> None: ...
    def _warn_stalled(self, now: float, after: float) -> None: ...


class UpkeepTask:
    """One job of a pool's upkeep: run when due, it says when it is due again."""

    def __init__(self, pool: UpkeepPool) -> None:
        self._pool = weakref.ref(pool)
        #: Monotonic time of the next run (0: at once).
        self.due = 0.0

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        """Whether ``pool``'s options ask for this job."""
        raise NotImplementedError

    def run(self, now: float) -> None:
        """Do the job on the pool if it is still open; never raises."""
        pool = self._pool()
        if pool is None or pool.closed:
            return
        try:
            self.due = now + self.tend(pool, now)
        except Exception:
            self.due = now + MAX_INTERVAL
            logger.exception("greenpools: %s of pool %r failed", type(self).__name__, pool.name)

    def tend(self, pool: UpkeepPool, now: float) -> float:
        """Do the job; return the seconds until it is due again."""
        raise NotImplementedError


def _every(*options: float | None) -> float:
    """How often to look at options that are seconds of time: a quarter of
    the shortest, at most :data:`MAX_INTERVAL`."""
    return min([MAX_INTERVAL, *(option / 4 for option in options if option is not None)])


class FillToMinSize(UpkeepTask):
    """Add (or connect) resources up to ``min_size``; on failure back off
    with jitter, and call ``reconnect_failed`` after ``reconnect_timeout``."""

    def __init__(self, pool: UpkeepPool) -> None:
        super().__init__(pool)
        self._failing_since: float | None = None
        self._delay = MAX_INTERVAL

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        return pool.min_size > 0

    def tend(self, pool: UpkeepPool, now: float) -> float:
        while not pool.closed and pool._below_min_size():
            try:
                if not pool._add_ready():
                    break
            except Exception as error:
                return self._failed(pool, now, error)
            self._added(pool)
        # Resources may also have become ready outside upkeep (kombu: an
        # acquire connected one): let the callers of wait() count again.
        pool._wake_ready_waiters()
        return MAX_INTERVAL

    def _added(self, pool: UpkeepPool) -> None:
        """One more resource is ready: the back-off starts over, wait() counts again."""
        self._failing_since = None
        self._delay = MAX_INTERVAL
        pool._wake_ready_waiters()

    def _failed(self, pool: UpkeepPool, now: float, error: BaseException) -> float:
        """An attempt raised ``error``: log it in one line at ``WARNING`` (its
        traceback at ``DEBUG``), back off, and call ``reconnect_failed`` if
        it is due; returns the seconds until the next attempt."""
        if self._failing_since is None:
            self._failing_since = now
        retry_in = self._delay * (0.9 + 0.2 * random.random())
        self._delay = min(self._delay * 2, MAX_BACKOFF)
        # One line per attempt, as psycopg_pool and SQLAlchemy do: a broker
        # that stays down must not fill the log with tracebacks.
        logger.warning(
            "greenpools: pool %r could not reach min_size %d: %s; next attempt in %.3g s",
            pool.name, pool.min_size, _describe_error(error), retry_in,
        )
        logger.debug("greenpools: pool %r: the attempt to reach min_size failed",
                     pool.name, exc_info=error)
        limit = pool.reconnect_timeout
        if limit is not None and now - self._failing_since >= limit:
            self._failing_since = None
            self._delay = MAX_INTERVAL
            if pool.reconnect_failed is not None:
                try:
                    pool.reconnect_failed(pool)
                except Exception:
                    logger.exception("greenpools: reconnect_failed of %r raised", pool.name)
        return retry_in


def _describe_error(error: BaseException) -> str:
    """``error`` in one line, with its class and what caused it:
    ``OperationalError: [Errno 111] Connection refused (from
    ConnectionRefusedError)``."""
    said = " ".join(str(error).split())
    text = f"{type(error).__name__}: {said}" if said else type(error).__name__
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if cause is not None:
        why = " ".join(str(cause).split())
        text += f" (from {type(cause).__name__}{'' if why in text else f': {why}'})"
    return text


class RetireIdle(UpkeepTask):
    """Close idle resources past ``max_lifetime``, or idle for ``max_idle``
    beyond ``min_size``."""

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        return pool.max_idle is not None or pool.max_lifetime is not None

    def tend(self, pool: UpkeepPool, now: float) -> float:
        pool._retire_idle(now)
        return _every(pool.max_idle, pool.max_lifetime)


class KeepIdleAlive(UpkeepTask):
    """Every keepalive interval keep each idle resource alive (kombu: service
    its heartbeats), one at a time and out of the idle stack; a dead one is
    closed, counted in ``connections_lost`` and replaced at once."""

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        return pool._keepalive_interval() is not None

    def tend(self, pool: UpkeepPool, now: float) -> float:
        lost = 0
        for resource in pool._idle_resources():
            if not pool._keep_idle_alive(resource):
                lost += 1
        for _ in range(lost):  # before anyone asks for one: connected, not lazy
            try:
                if not pool._create_idle(ready=True):
                    break
            except Exception:
                self._replacing_failed(pool)
                break
        return pool._keepalive_interval() or MAX_INTERVAL

    @staticmethod
    def _replacing_failed(pool: UpkeepPool) -> None:
        """Log (from its ``except``) that a dead resource could not be replaced
        yet: a later round, or an acquire, makes it."""
        logger.info("greenpools: pool %r could not replace a dead resource yet",
                    pool.name, exc_info=True)


class WarnLeaks(UpkeepTask):
    """Log each resource held longer than ``leak_timeout``, once per lease."""

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        return pool.leak_timeout is not None

    def tend(self, pool: UpkeepPool, now: float) -> float:
        pool._warn_leaks(now)
        return _every(pool.leak_timeout)


#: The jobs an :class:`Upkeep` may run, in the order it runs those due.
TASKS: tuple[type[UpkeepTask], ...] = (WarnLeaks, RetireIdle, KeepIdleAlive, FillToMinSize)


def needs_upkeep(pool: UpkeepPool) -> bool:
    """Whether ``pool``'s options ask for any upkeep job (else it has no task)."""
    return any(task.wanted(pool) for task in TASKS)


class Upkeep:
    """The one background task of a pool: runs the pool's jobs as they fall due.

    The pool makes it, publishes it (see :meth:`UpkeepPool._has_upkeep`)
    and then calls :meth:`start`: a task of the pool's backend (an OS thread
    on threading, a green thread on gevent and eventlet) runs at once, and ends
    straight away if it is not (yet) the pool's upkeep.
    """

    def __init__(self, pool: UpkeepPool, backend: Backend) -> None:
        self._pool = weakref.ref(pool)
        self._backend = backend
        self._pid = fork_guard.pid
        self._stopped = False
        #: Set when the task has ended because its pool no longer needs it.
        self.ended = False
        self.tasks = [task(pool) for task in TASKS if task.wanted(pool)]

    def start(self) -> None:
        self._backend.spawn(self.run)

    def stop(self) -> None:
        self._stopped = True

    def _live_pool(self) -> UpkeepPool | None:
        pool = self._pool()
        if (
            pool is None or self._stopped or pool.closed or not pool._has_upkeep(self)
            or fork_guard.pid != self._pid
        ):
            return None
        return pool

    def run(self) -> None:
        backend = self._backend
        # Looked up afresh for every job, never kept: a sleeping task must
        # not keep its pool alive.
        while self._live_pool() is not None:
            now = backend.monotonic()
            for task in self.tasks:
                if now >= task.due:
                    if self._live_pool() is None:
                        break
                    task.run(now)
            next_due = min((task.due for task in self.tasks), default=now + MAX_INTERVAL)
            backend.sleep(min(max(next_due - backend.monotonic(), MIN_INTERVAL), MAX_INTERVAL))
        self.ended = True


class WarnStalls(UpkeepTask):
    """Log each caller of the pool that has waited without a timeout for
    ``watch.after`` seconds, once."""

    def __init__(self, pool: UpkeepPool, watch: StallWatch) -> None:
        super().__init__(pool)
        self._watch = watch

    @staticmethod
    def wanted(pool: UpkeepPool) -> bool:
        return True  # any pool, once a caller waits on it without a timeout

    def alive(self) -> bool:
        """Whether the pool still exists."""
        return self._pool() is not None

    def tend(self, pool: UpkeepPool, now: float) -> float:
        pool._warn_stalled(now, self._watch.after)
        return self._watch.interval()


class StallWatch:
    """One task per process that runs :class:`WarnStalls` for every pool
    that has had a caller waiting without a timeout.

    A pool whose every resource is held by the very task now waiting for
    one (nested acquires, py-amqp #267) would otherwise hang in silence.
    Pools join on their first wait without a timeout (so a plain pool pays
    nothing before); the task runs on the backend active at that moment and
    is restarted after a fork or switch.
    """

    #: A caller waiting this long without a timeout is reported, once.
    after = 30.0

    def __init__(self) -> None:
        self._lock = native_lock()  # never held across a yield
        self._tasks: list[WarnStalls] = []
        #: The task now running, as (pid, backend); a pool stores it once watched.
        self.running: tuple[int, Backend] | None = None

    def watch(self, pool: UpkeepPool) -> None:
        """Warn about ``pool``'s stalled callers from now on (called on a wait
        without a timeout while the pool does not hold :attr:`running`)."""
        backend = backends.current()
        start = False
        with self._lock:
            running = self.running
            if running is None or running[0] != fork_guard.pid or running[1] is not backend:
                running = self.running = (fork_guard.pid, backend)
                self._tasks = []
                start = True
            if pool._join_stall_watch(running):
                self._tasks.append(WarnStalls(pool, self))
        if start:  # outside the lock: starting a thread may block a moment
            backend.spawn(self._run, running)

    def interval(self) -> float:
        """How often the task looks for stalled callers."""
        return min(self.after / 4, MAX_INTERVAL * 5)

    def _live_tasks(self) -> list[WarnStalls]:
        with self._lock:
            self._tasks = tasks = [task for task in self._tasks if task.alive()]
        return tasks

    def _run(self, running: tuple[int, Backend]) -> None:
        backend = running[1]
        while self.running == running and fork_guard.pid == running[0]:
            backend.sleep(self.interval())
            now = backend.monotonic()
            for task in self._live_tasks():
                task.run(now)


stall_watch = StallWatch()


# Pools skip watch() while their token is the running one; after a fork or
# a switch no task runs for them any more, so the next wait starts one.
@fork_guard.after_fork_in_child
def _stall_watch_gone_in_child() -> None:
    stall_watch.running = None
    stall_watch._lock = native_lock()  # a parent's thread may have held it


def _stall_watch_gone_on_switch(backend: Backend) -> None:
    stall_watch.running = None


backends.on_switch(_stall_watch_gone_on_switch)
