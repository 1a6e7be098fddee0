"""Memory: bytes per idle pool, per pooled resource, per waiting task.

Measured with tracemalloc as the growth of traced memory while the thing
measured is built, with everything it is built from (kombu connections,
the pooled objects of the generic pools) made before tracing starts:

- per idle pool: ``mem_pools`` pools, nothing acquired yet;
- per pooled resource: a pool whose ``mem_resources`` resources are all
  created and released (idle).  Generic pools pool premade objects, so
  only the pool's own book-keeping counts; connection pools count the
  connection objects they make too (both make one per resource);
- per waiting task: ``mem_waiters`` tasks queued on a pool of one held
  resource, the tasks themselves included (the same for every pool).
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from contenders import Thing, make_kombu_generic_pool

from greenpools.cli import bench


def traced_growth(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes traced while ``build()`` runs and stay allocated; its result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, kept


def _memory_connections(count: int) -> list[Any]:
    import kombu

    return [kombu.Connection("memory://") for _ in range(count)]


def _greenpools_generic(limit: int, create: Callable[[], Any]) -> Any:
    import greenpools

    return greenpools.Pool(create, limit)


#: contender id -> builder of an idle pool over a given kombu connection
IDLE_POOLS: dict[str, Callable[[Any], Any]] = {
    "gp-conn": lambda conn: bench.make_gp_connection_pool(10, conn),
    "kombu-conn": lambda conn: bench.make_kombu_connection_pool(10, conn),
    "gp-producer": lambda conn: bench.make_gp_producer_pool(10, conn),
    "kombu-producer": lambda conn: bench.make_kombu_producer_pool(10, conn),
}

#: contender id -> builder of a pool of ``limit`` from a ``create`` callable
GENERIC_POOLS: dict[str, Callable[[int, Callable[[], Any]], Any]] = {
    "gp-generic": _greenpools_generic,
    "kombu-generic": make_kombu_generic_pool,
}

#: contender id -> builder of a connection pool of ``limit``
CONNECTION_POOLS: dict[str, Callable[[int], Any]] = {
    "gp-conn": bench.make_gp_connection_pool,
    "kombu-conn": bench.make_kombu_connection_pool,
}


def idle_pool_bytes(make: Callable[[Any], Any], count: int) -> float:
    connections = _memory_connections(count)
    grown, pools = traced_growth(lambda: [make(conn) for conn in connections])
    del pools
    return grown / count


def _fill(pool: Any, count: int) -> None:
    lent = [pool.acquire(True) for _ in range(count)]
    for resource in lent:
        pool.release(resource)


def generic_resource_bytes(make: Callable[[int, Callable[[], Any]], Any], count: int) -> float:
    premade = [Thing() for _ in range(count)]
    pool = make(count, premade.pop)
    _fill(pool, 1)  # first-use allocations are not per resource
    grown, _ = traced_growth(lambda: _fill(pool, count - 1))
    return grown / (count - 1)


def connection_resource_bytes(make: Callable[[int], Any], count: int) -> float:
    pool = make(count)
    _fill(pool, 1)
    grown, _ = traced_growth(lambda: _fill(pool, count - 1))
    return grown / (count - 1)


def _park(
    count: int, wait: Callable[[], Any], queued: Callable[[], bool]
) -> list[threading.Thread]:
    tasks = [threading.Thread(target=wait, daemon=True) for _ in range(count)]
    for task in tasks:
        task.start()
    deadline = time.monotonic() + 5.0
    while not queued() and time.monotonic() < deadline:
        time.sleep(0.001)
    return tasks


def waiter_bytes(subject: bench.Subject, count: int) -> float:
    """Bytes per task queued on a pool whose one resource is held.

    The task itself (its thread or greenlet, its stack) is counted too:
    it is the same task for every pool, so the difference between two
    pools is the difference in what their waits cost.
    """
    held = subject.acquire_for(5.0)

    def wait_on_pool() -> None:
        try:
            resource = subject.acquire_for(30.0)
        except Exception:
            return
        subject.release(resource)

    def all_queued() -> bool:
        if subject.waiting is None:
            time.sleep(0.2)
            return True
        return subject.waiting() >= count

    grown, tasks = traced_growth(lambda: _park(count, wait_on_pool, all_queued))
    subject.release(held)
    bench.join_tasks(tasks, 30.0)
    return grown / count


def run_memory(contender: bench.Contender, settings: bench.Settings) -> dict[str, float]:
    """Every memory figure that applies to ``contender``."""
    found: dict[str, float] = {}
    if contender.id in IDLE_POOLS:
        found["pool_bytes"] = idle_pool_bytes(IDLE_POOLS[contender.id], settings["mem_pools"])
    if contender.id in GENERIC_POOLS:
        found["resource_bytes"] = generic_resource_bytes(
            GENERIC_POOLS[contender.id], settings["mem_resources"])
    if contender.id in CONNECTION_POOLS:
        found["connection_bytes"] = connection_resource_bytes(
            CONNECTION_POOLS[contender.id], settings["mem_resources"])
        subject = contender.make(1)
        try:
            found["waiter_bytes"] = waiter_bytes(subject, settings["mem_waiters"])
        finally:
            subject.close()
    return found


MEMORY_CONTENDERS = ("gp-conn", "kombu-conn", "gp-producer", "kombu-producer",
                     "gp-generic", "kombu-generic")
