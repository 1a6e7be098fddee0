"""Background upkeep of one pool: min_size, max_idle, max_lifetime, leaks, keepalive.

One small task per pool that asked for any of these (a plain kombu-style
pool starts none).  It holds only a weak reference to its pool, so an
abandoned pool is collected and its task ends; it also ends when the pool
closes, after a fork (the child restarts it lazily) and when the backend
switches (the pool starts a new one on the new backend).

The task works on the pool through its methods (``_take_idle``,
``_put_back_idle``, ``_add_ready``, ...): an idle resource it works on is
out of the idle stack meanwhile, so no caller can acquire it.
"""

from __future__ import annotations

import logging
import random
import weakref
from typing import TYPE_CHECKING, Any

from . import backends
from .forking import fork_guard

if TYPE_CHECKING:
    from .backends import Backend
    from .resource import Resource, Slot

logger = logging.getLogger("greenpools")

#: Longest sleep between two rounds, and the first reconnection delay.
MAX_INTERVAL = 1.0


class Upkeep:
    """The upkeep task of one pool."""

    def __init__(self, pool: Resource[Any], backend: Backend) -> None:
        self._pool = weakref.ref(pool)
        self._backend = backend
        self._pid = fork_guard.pid
        self._stopped = False
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._delay = MAX_INTERVAL
        self._keepalive_at = 0.0

    @classmethod
    def start(cls, pool: Resource[Any], backend: Backend) -> Upkeep:
        upkeep = cls(pool, backend)
        # Published before the task starts: an OS thread runs at once, and
        # ends straight away if it is not (yet) the pool's upkeep.
        pool._upkeep = upkeep
        backend.spawn(upkeep.run)
        return upkeep

    def stop(self) -> None:
        self._stopped = True

    def _live_pool(self) -> Resource[Any] | None:
        pool = self._pool()
        if (
            pool is None or self._stopped or pool._closed or pool._upkeep is not self
            or fork_guard.pid != self._pid
        ):
            return None
        return pool

    def run(self) -> None:
        while True:
            pool = self._live_pool()
            if pool is None:
                return
            try:
                self.tend(pool)
            except Exception:
                logger.exception("greenpools: upkeep of pool %r failed", pool.name)
            interval = interval_for(pool)
            del pool  # sleep without keeping the pool alive
            self._backend.sleep(interval)

    def tend(self, pool: Resource[Any]) -> None:
        now = self._backend.monotonic()
        pool._warn_leaks(now)
        self._retire_idle(pool, now)
        self._keep_idle_alive(pool, now)
        self._fill(pool, now)
        pool._wake_ready_waiters()

    @staticmethod
    def _retire_idle(pool: Resource[Any], now: float) -> None:
        """Close idle resources past their lifetime, or idle too long."""
        doomed: list[Slot] = []
        with pool._mutex:
            keep: list[Slot] = []
            spare = len(pool._idle) - pool.min_size  # idle ones max_idle may close
            for slot in pool._idle:  # the coldest first
                if now >= slot.expires:
                    doomed.append(slot)
                elif (
                    pool.max_idle is not None and spare > 0
                    and now - slot.idle_since >= pool.max_idle
                ):
                    doomed.append(slot)
                    spare -= 1
                else:
                    keep.append(slot)
            if doomed:
                pool._idle[:] = keep  # in place: the lock-free paths hold the list
                for _ in doomed:
                    pool._free_capacity_locked()
        if doomed:
            pool._close_slots(doomed, ignore_errors=True)

    def _keep_idle_alive(self, pool: Resource[Any], now: float) -> None:
        """Every keepalive interval, keep each idle resource alive (kombu:
        service its heartbeats) one at a time, out of the idle stack; a dead
        one is closed, counted in ``connections_lost`` and replaced."""
        interval = pool._keepalive_interval()
        # A tenth early: rounds are ``interval`` apart, and must not skip one.
        if interval is None or now < self._keepalive_at - interval / 10:
            return
        self._keepalive_at = now + interval
        lost = 0
        for resource in pool._idle_resources():
            slot = pool._take_idle_resource(resource)
            if slot is None:  # acquired (or closed) meanwhile
                continue
            try:
                pool._keep_alive(resource)
            except Exception:
                logger.info("greenpools: pool %r replaces an idle resource that died",
                            pool.name, exc_info=True)
                pool._drop_dead_idle(slot)
                lost += 1
            else:
                pool._put_back_idle(slot)
        for _ in range(lost):  # before anyone asks for one: connected, not lazy
            try:
                if not pool._create_idle(ready=True):
                    break
            except Exception:
                logger.info("greenpools: pool %r could not replace a dead resource yet",
                            pool.name, exc_info=True)
                break

    def _fill(self, pool: Resource[Any], now: float) -> None:
        """Add (or connect) resources up to min_size, backing off on failure."""
        if now < self._retry_at:
            return
        while not pool._closed and pool._below_min_size():
            try:
                if not pool._add_ready():
                    return
            except Exception:
                self._failed(pool, now)
                return
            self._failing_since = None
            self._delay = MAX_INTERVAL
            pool._wake_ready_waiters()

    def _failed(self, pool: Resource[Any], now: float) -> None:
        logger.warning("greenpools: pool %r could not reach min_size", pool.name, exc_info=True)
        if self._failing_since is None:
            self._failing_since = now
        self._retry_at = now + self._delay * (0.9 + 0.2 * random.random())
        self._delay = min(self._delay * 2, 60.0)
        limit = pool.reconnect_timeout
        if limit is not None and now - self._failing_since >= limit:
            self._failing_since = None
            self._delay = MAX_INTERVAL
            if pool.reconnect_failed is not None:
                try:
                    pool.reconnect_failed(pool)
                except Exception:
                    logger.exception("greenpools: reconnect_failed of %r raised", pool.name)


def interval_for(pool: Resource[Any]) -> float:
    """How long to sleep between rounds: often enough for the tightest option."""
    interval = MAX_INTERVAL
    for option in (pool.max_idle, pool.max_lifetime, pool.leak_timeout):
        if option is not None:
            interval = min(interval, option / 4)
    keepalive = pool._keepalive_interval()
    if keepalive is not None:
        interval = min(interval, keepalive)
    return max(interval, 0.01)


class StallWatch:
    """One task per process that warns about callers waiting forever.

    A pool whose every resource is held by the very task now waiting for
    one (nested acquires, py-amqp #267) would otherwise hang in silence.
    Pools join on their first wait without a timeout; the task runs on the
    backend active at that moment and is restarted after a fork or switch.
    """

    #: A caller waiting this long without a timeout is reported, once.
    after = 30.0

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Resource[Any]] = weakref.WeakSet()
        #: The task now running, as (pid, backend); a pool stores it once watched.
        self.running: tuple[int, Backend] | None = None

    def watch(self, pool: Resource[Any]) -> None:
        running = self.running
        if running is None or running[0] != fork_guard.pid or running[1] is not pool._backend:
            running = self.running = (fork_guard.pid, pool._backend)
            pool._backend.spawn(self._run, running)
        if pool._stall_watch is not running:
            pool._stall_watch = running
            self._pools.add(pool)

    def _run(self, running: tuple[int, Backend]) -> None:
        backend = running[1]
        while self.running == running and fork_guard.pid == running[0]:
            backend.sleep(min(self.after / 4, MAX_INTERVAL * 5))
            now = backend.monotonic()
            for pool in list(self._pools):
                pool._warn_stalled(now, self.after)


stall_watch = StallWatch()


# Pools skip watch() while their token is the running one; after a fork or
# a switch no task runs for them any more, so the next wait starts one.
@fork_guard.after_fork_in_child
def _stall_watch_gone() -> None:
    stall_watch.running = None


backends.on_switch(lambda backend: _stall_watch_gone())
