"""Contenders of the full suite beyond the short run's (greenpools.cli.bench).

kombu's generic ``Resource``, eventlet's own ``eventlet.pools.Pool``
(eventlet backend only), SQLAlchemy's ``QueuePool`` over a dummy DBAPI
connection (threading only), and a floor for fair pools: the least a
strict first-come-first-served hand-off can cost on each backend.  Each
library is imported when its pool is built, after the worker process has
been patched.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from greenlet import getcurrent

from greenpools.cli.bench import Contender, Subject, kombu_subject, running_backend


class Thing:
    """A pooled object with a ``__dict__`` (kombu sets ``release`` on it)."""


def make_kombu_generic_pool(limit: int, create: Any = Thing) -> Any:
    """kombu's generic ``Resource`` made from a callable, like greenpools.Pool.

    Shaped like kombu's own ``ConnectionPool``: ``setup`` fills the queue
    with lazy placeholders (a blocking acquire on an empty queue would wait
    forever) and ``prepare`` evaluates them.
    """
    from kombu.resource import Resource
    from kombu.utils.functional import lazy

    class Things(Resource):  # type: ignore[misc]
        def setup(self) -> None:
            if self.limit:
                queue = self._resource.queue
                while len(queue) < self.limit - len(self._dirty):
                    self._resource.put_nowait(lazy(self.new))

        def new(self) -> Any:
            return create()

        def prepare(self, resource: Any) -> Any:
            return resource() if isinstance(resource, lazy) else resource

        def close_resource(self, resource: Any) -> None:
            pass

    return Things(limit)


def make_kombu_generic(limit: int) -> Subject:
    return kombu_subject(make_kombu_generic_pool(limit))


def make_eventlet_pool(limit: int) -> Subject:
    from eventlet import Timeout, pools

    pool = pools.Pool(max_size=limit, create=Thing)

    def acquire_for(timeout: float) -> Any:
        with Timeout(timeout):
            return pool.get()

    return Subject(pool.get, pool.put, acquire_for, pool.waiting)


class DummyDBAPIConnection:
    """Just enough of a DBAPI connection for SQLAlchemy's pool."""

    def cursor(self) -> Any:
        raise NotImplementedError("the benchmark never queries")

    def rollback(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


def make_sqlalchemy_pool(limit: int) -> Subject:
    from sqlalchemy.pool import QueuePool

    pool = QueuePool(DummyDBAPIConnection, pool_size=limit, max_overflow=0, timeout=30)

    def acquire_for(timeout: float) -> Any:
        pool._timeout = timeout  # QueuePool takes its timeout only at construction
        return pool.connect()

    def release(fairy: Any) -> None:
        fairy.close()

    queue = pool._pool
    return Subject(pool.connect, release, acquire_for,
                   lambda: len(queue.not_empty._waiters), pool.dispose,
                   identify=lambda fairy: id(fairy.dbapi_connection))


def _hub_and_call_soon(backend: str) -> tuple[Any, Any]:
    """The running green backend's hub and its ``soon(func, *args)``: run
    ``func(*args)`` from the hub's loop as soon as it gets there."""
    if backend == "gevent":
        from gevent import get_hub

        hub = get_hub()
        return hub, hub.loop.run_callback
    from eventlet import hubs

    eventlet_hub = hubs.get_hub()

    def soon(func: Any, *args: Any) -> Any:
        return eventlet_hub.schedule_call_global(0, func, *args)

    return eventlet_hub, soon


def make_fifo_floor(limit: int) -> Subject:
    """The least a strict FIFO hand-off can do: no timeouts, no checks, no stats.

    Green backends park the waiter with a bare ``hub.switch()`` and resume
    it from a hub callback; threads park on a lock of their own.  Whoever
    releases while someone waits hands the resource straight to the
    oldest waiter, so the releaser, asking again, must wait its turn: the
    park and wake-up that a barging pool (kombu) skips.
    """
    backend = running_backend()
    idle = [Thing() for _ in range(limit)]
    if backend == "threading":
        return _thread_fifo(idle)
    hub, soon = _hub_and_call_soon(backend)

    waiters: deque[Any] = deque()

    def acquire() -> Any:
        if idle and not waiters:
            return idle.pop()
        waiters.append(getcurrent())
        return hub.switch()

    def release(resource: Any) -> None:
        if waiters:
            soon(waiters.popleft().switch, resource)
        else:
            idle.append(resource)

    return Subject(acquire, release, lambda timeout: acquire(), lambda: len(waiters))


def make_run_next_floor(limit: int) -> Subject:
    """The minimal FIFO hand-off plus a run-next slot (green backends only).

    As :func:`make_fifo_floor`, except that a releaser's wake-up goes into
    a one-waiter slot that the next task to park switches straight into
    (a callback still covers the slot if nobody parks; 16 direct switches
    at most between hub visits): the least greenpools' own green
    hand-off can cost.
    """
    hub, soon = _hub_and_call_soon(running_backend())
    idle = [Thing() for _ in range(limit)]
    waiters: deque[Any] = deque()
    slot: list[Any] = [None, False, 0]  # (greenlet, resource) due next, flush due, direct

    def flush() -> None:
        due = slot[0]
        slot[0], slot[1], slot[2] = None, False, 0
        if due is not None:
            due[0].switch(due[1])

    def acquire() -> Any:
        if idle and not waiters:
            return idle.pop()
        waiters.append(getcurrent())
        due = slot[0]
        if due is not None and slot[2] < 16:
            slot[0] = None
            slot[2] += 1
            return due[0].switch(due[1])
        return hub.switch()

    def release(resource: Any) -> None:
        if not waiters:
            idle.append(resource)
        elif slot[0] is None:
            slot[0] = (waiters.popleft(), resource)
            if not slot[1]:
                slot[1] = True
                soon(flush)
        else:
            soon(waiters.popleft().switch, resource)

    return Subject(acquire, release, lambda timeout: acquire(), lambda: len(waiters))


def _thread_fifo(idle: list[Any]) -> Subject:
    from greenpools.backends.base import native_lock

    mutex = native_lock()
    waiters: deque[list[Any]] = deque()

    def acquire() -> Any:
        with mutex:
            if idle and not waiters:
                return idle.pop()
            parked = [native_lock(), None]
            parked[0].acquire()
            waiters.append(parked)
        parked[0].acquire()
        return parked[1]

    def release(resource: Any) -> None:
        with mutex:
            if waiters:
                parked = waiters.popleft()
                parked[1] = resource
                parked[0].release()
            else:
                idle.append(resource)

    return Subject(acquire, release, lambda timeout: acquire(), lambda: len(waiters))


EXTRA_CONTENDERS: list[Contender] = [
    Contender("kombu-generic", "kombu Resource (generic)", "kombu", "generic",
              make_kombu_generic),
    Contender("eventlet-pool", "eventlet.pools.Pool", "eventlet", "generic",
              make_eventlet_pool, backends=("eventlet",)),
    Contender("sqlalchemy", "SQLAlchemy QueuePool", "sqlalchemy", "generic",
              make_sqlalchemy_pool, backends=("threading",)),
    Contender("floor-fifo", "floor: minimal FIFO hand-off", "floor", "floor",
              make_fifo_floor, scenarios=("s2", "s3")),
    Contender("floor-run-next", "floor: FIFO hand-off with run-next", "floor", "floor",
              make_run_next_floor, backends=("gevent", "eventlet"), scenarios=("s2",)),
]
