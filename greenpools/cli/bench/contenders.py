"""The pools (and floors) the scenarios measure, each built fresh per measurement.

Each contender imports its library when it is built, after the worker
process has been monkey-patched.
"""

from __future__ import annotations

import importlib
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .environment import BACKENDS, running_backend


def _nothing(*args: Any) -> None:
    return None


class WaitTimedOut(Exception):
    """A floor's acquire with a timeout ran out (pools raise their own)."""


@dataclass
class Subject:
    """One pool (or floor) under test, built fresh for each measurement.

    ``acquire()`` blocks without a timeout (the hot path); ``acquire_for(s)``
    blocks at most ``s`` seconds and raises when it runs out; ``waiting()``
    counts the callers queued (used to queue S3's waiters in a known
    order).  ``loop(n)``, when given, runs ``n`` uncontended cycles in the
    subject's own tightest form (the floors: ``a(); r()`` with no value).
    ``identify(r)`` is the same each time one resource is lent (``None``:
    the subject lends no distinct objects, like a semaphore's permits).
    """

    acquire: Callable[[], Any]
    release: Callable[[Any], object]
    acquire_for: Callable[[float], Any]
    waiting: Callable[[], int] | None = None
    close: Callable[[], object] = _nothing
    loop: Callable[[int], None] | None = None
    identify: Callable[[Any], int] | None = id


@dataclass
class Contender:
    """A pool implementation that the scenarios measure."""

    id: str
    label: str
    library: str  # "greenpools", "kombu", "floor", ...
    kind: str  # "connection", "producer", "generic", "floor"
    make: Callable[[int], Subject] = field(repr=False)
    backends: tuple[str, ...] = BACKENDS
    scenarios: tuple[str, ...] = ("s1", "s2", "s3")


def _module(name: str) -> Any:
    """``import name``, typed loosely (kombu has no type hints)."""
    return importlib.import_module(name)


def _memory_connection() -> Any:
    return _module("kombu").Connection("memory://")


def _timed_out(acquire: Callable[..., bool]) -> Callable[[float], bool]:
    def acquire_for(timeout: float) -> bool:
        if not acquire(True, timeout):
            raise WaitTimedOut(f"no permit within {timeout} seconds")
        return True

    return acquire_for


def _pair_loop(
    acquire: Callable[[], object], release: Callable[[], object]
) -> Callable[[int], None]:
    def loop(n: int) -> None:
        a, r = acquire, release
        for _ in itertools.repeat(None, n):
            a()
            r()

    return loop


def make_native_lock(limit: int) -> Subject:
    from greenpools.backends.base import native_lock

    lock = native_lock()
    return Subject(lock.acquire, lambda _: lock.release(), _timed_out(lock.acquire),
                   loop=_pair_loop(lock.acquire, lock.release), identify=None)


def make_deque(limit: int) -> Subject:
    items = deque([object()])

    def loop(n: int) -> None:
        pop, append = items.pop, items.append
        for _ in itertools.repeat(None, n):
            append(pop())

    return Subject(items.pop, items.append, lambda timeout: items.pop(), loop=loop,
                   identify=None)


def backend_semaphore(limit: int) -> Any:
    """The semaphore of the library the process is patched for."""
    name = running_backend()
    if name == "gevent":
        from gevent.lock import Semaphore

        return Semaphore(limit)
    if name == "eventlet":
        from eventlet.semaphore import Semaphore as EventletSemaphore

        return EventletSemaphore(limit)
    return threading.Semaphore(limit)


def _semaphore_waiting(sem: Any) -> Callable[[], int] | None:
    name = running_backend()
    if name == "gevent":
        return lambda: int(sem.linkcount())
    if name == "eventlet":
        return lambda: len(sem._waiters)
    return lambda: len(sem._cond._waiters)


def make_semaphore(limit: int) -> Subject:
    sem = backend_semaphore(limit)
    return Subject(sem.acquire, lambda _: sem.release(), _timed_out(sem.acquire),
                   _semaphore_waiting(sem), loop=_pair_loop(sem.acquire, sem.release),
                   identify=None)


def _gp_subject(pool: Any) -> Subject:
    return Subject(partial(pool.acquire, True), pool.release,
                   lambda timeout: pool.acquire(True, timeout),
                   lambda: len(pool._waiting), pool.close)


def queue_waiting(queue: Any) -> Callable[[], int] | None:
    """Count the callers blocked in ``queue.get()``, where the queue tells."""
    if hasattr(queue, "not_empty"):  # the standard library's
        return lambda: len(queue.not_empty._waiters)
    if hasattr(queue, "getting"):  # eventlet's
        return lambda: int(queue.getting())
    return None  # gevent's (compiled) keeps it to itself


def kombu_subject(pool: Any) -> Subject:
    """A kombu ``Resource`` (or pool) as a benchmark :class:`Subject`."""
    return Subject(partial(pool.acquire, True), pool.release,
                   lambda timeout: pool.acquire(True, timeout),
                   queue_waiting(pool._resource), pool.force_close_all)


def make_gp_generic(limit: int) -> Subject:
    import greenpools

    return _gp_subject(greenpools.Pool(object, limit))


def make_gp_connection_pool(limit: int, connection: Any = None) -> Any:
    """A greenpools connection pool (default: on the in-memory transport)."""
    pools = _module("greenpools.pools")
    return pools.ConnectionPool(connection or _memory_connection(), limit=limit)


def make_gp_connection(limit: int) -> Subject:
    return _gp_subject(make_gp_connection_pool(limit))


def make_gp_producer_pool(limit: int, connection: Any = None) -> Any:
    """What ``greenpools.pools.producers[conn]`` builds, with an explicit limit."""
    pools = _module("greenpools.pools")
    return pools.ProducerPool(make_gp_connection_pool(limit, connection), limit=limit)


def make_gp_producer(limit: int) -> Subject:
    return _gp_subject(make_gp_producer_pool(limit))


def make_kombu_connection_pool(limit: int, connection: Any = None) -> Any:
    """What ``kombu.pools.connections[conn]`` builds, with an explicit limit."""
    return (connection or _memory_connection()).Pool(limit)


def make_kombu_connection(limit: int) -> Subject:
    return kombu_subject(make_kombu_connection_pool(limit))


def make_kombu_producer_pool(limit: int, connection: Any = None) -> Any:
    """What ``kombu.pools.producers[conn]`` builds, with an explicit limit."""
    producer_pool = _module("kombu.pools").ProducerPool
    return producer_pool(make_kombu_connection_pool(limit, connection), limit=limit)


def make_kombu_producer(limit: int) -> Subject:
    return kombu_subject(make_kombu_producer_pool(limit))


CONTENDERS: list[Contender] = [
    Contender("gp-conn", "greenpools connection pool", "greenpools", "connection",
              make_gp_connection),
    Contender("kombu-conn", "kombu connection pool", "kombu", "connection",
              make_kombu_connection),
    Contender("gp-producer", "greenpools producer pool", "greenpools", "producer",
              make_gp_producer, scenarios=("s1",)),
    Contender("kombu-producer", "kombu producer pool", "kombu", "producer",
              make_kombu_producer, scenarios=("s1",)),
    Contender("gp-generic", "greenpools.Pool (generic)", "greenpools", "generic",
              make_gp_generic),
    Contender("floor-lock", "floor: native lock pair", "floor", "floor", make_native_lock,
              scenarios=("s1",)),
    Contender("floor-deque", "floor: deque pop+append", "floor", "floor", make_deque,
              scenarios=("s1",)),
    Contender("floor-semaphore", "floor: backend semaphore pair", "floor", "floor",
              make_semaphore),
]
