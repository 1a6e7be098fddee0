"""Children made by multiprocessing (fork start method) and billiard.

The same guarantee as the plain-fork storm, through the libraries that
fork for users: a child publishing through the global
``greenpools.pools.producers`` gets connections of its own, the parent's
keep working, and every message arrives exactly once.  billiard is what
Celery's prefork pool forks with; its ``Pool`` is the Celery-style case
(long-lived workers fed tasks over pipes).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

import billiard
import pytest
from brokers import clean_global_pools  # noqa: F401 - autouse: empty global pools
from e2e import storm, support
from helpers import BACKEND, require_amqp

from greenpools import pools

pytestmark = pytest.mark.broker

CHILDREN = 3
PER_PROCESS = 200
TASKS = 4 if BACKEND == "threading" else 12
TIMEOUT = 60.0

#: The connection the parent warmed up; forked children inherit it (and the
#: pools keyed by it) through memory, not pickling.
_inherited: dict[str, Any] = {}


@pytest.fixture
def queue() -> Iterator[str]:
    require_amqp()
    with support.temporary_queue("mp") as name:
        yield name


def warm_parent(queue: str) -> tuple[Any, Any, dict[str, Any]]:
    """Publish from the parent and keep a connection lent: live pre-fork state."""
    conn = support.confirming_connection()
    outcome = storm.publish_concurrently(pools, conn, queue, "warm", 10, 3, TIMEOUT)
    assert outcome.published == 10, outcome
    held = pools.connections[conn].acquire(block=True, timeout=10)
    held.default_channel  # noqa: B018 - connect it
    _inherited["conn"] = conn
    return conn, held, support.socket_identity(held)


def publish_in_child(queue: str, tag: str) -> int:
    """Target run in each child: publish through the inherited global pools."""
    outcome = storm.publish_concurrently(
        pools, _inherited["conn"], queue, tag, PER_PROCESS, TASKS, TIMEOUT,
    )
    if outcome.errors or outcome.hung_tasks or outcome.published != PER_PROCESS:
        raise AssertionError(
            f"{tag} in pid {os.getpid()}: published {outcome.published}/{PER_PROCESS}, "
            f"{outcome.hung_tasks} hung, errors {outcome.errors[:5]}"
        )
    return outcome.published


def finish_parent(queue: str, held: Any, held_before: dict[str, Any],
                  expected: list[str]) -> None:
    """The parent's lent connection survived; the queue holds exactly ``expected``."""
    support.publish_one(held.Producer(), queue, "held")
    assert support.socket_identity(held) == held_before
    held.release()
    expected = [*expected, "held"]
    assert support.queue_count(queue) == len(expected)
    got = collections.Counter(b.decode() for b in support.drain_queue(queue, len(expected) + 50))
    assert got == collections.Counter(expected)


def bodies(tag: str, count: int) -> list[str]:
    return [f"{tag}:{i}" for i in range(count)]


def run_process_children(context: Any, queue: str) -> None:
    """Start CHILDREN processes from ``context`` while the parent publishes too."""
    conn, held, held_before = warm_parent(queue)
    children = [context.Process(target=publish_in_child, args=(queue, f"child{n}"),
                                name=f"publisher-{n}", daemon=True)
                for n in range(CHILDREN)]
    try:
        for child in children:
            child.start()
        parent = storm.publish_concurrently(pools, conn, queue, "parent", PER_PROCESS, TASKS,
                                            TIMEOUT)
        for child in children:
            child.join(TIMEOUT)
        hung = [child.name for child in children if child.is_alive()]
        assert not hung, f"children still running after {TIMEOUT}s: {hung}"
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)
    assert [child.exitcode for child in children] == [0] * CHILDREN, (
        "a child failed: its traceback is in the captured stderr"
    )
    assert (parent.published, parent.errors, parent.hung_tasks) == (PER_PROCESS, [], 0)
    expected = bodies("warm", 10) + bodies("parent", PER_PROCESS)
    for n in range(CHILDREN):
        expected += bodies(f"child{n}", PER_PROCESS)
    finish_parent(queue, held, held_before, expected)


@pytest.mark.slow
def test_multiprocessing_fork_children_publish_through_global_producers(queue: str) -> None:
    run_process_children(multiprocessing.get_context("fork"), queue)


@pytest.mark.slow
def test_billiard_fork_children_publish_through_global_producers(queue: str) -> None:
    run_process_children(billiard.get_context("fork"), queue)


def publish_batch(queue: str, tag: str, count: int) -> tuple[int, int]:
    """A billiard pool task: publish ``count`` messages; (pid, published)."""
    conn = _inherited["conn"]
    for number in range(count):
        with pools.producers[conn].acquire(block=True, timeout=TIMEOUT) as producer:
            support.publish_one(producer, queue, f"{tag}:{number}")
    return os.getpid(), count


@pytest.mark.slow
def test_billiard_pool_workers_publish_like_celery_prefork(queue: str) -> None:
    conn, held, held_before = warm_parent(queue)
    batches, per_batch = 12, 25
    pool = billiard.get_context("fork").Pool(processes=2, maxtasksperchild=4)
    try:
        results = [pool.apply_async(publish_batch, (queue, f"batch{n}", per_batch))
                   for n in range(batches)]
        parent = storm.publish_concurrently(pools, conn, queue, "parent", 100, TASKS, TIMEOUT)
        outcomes = [result.get(timeout=TIMEOUT) for result in results]
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    assert sum(count for _, count in outcomes) == batches * per_batch
    # maxtasksperchild made billiard fork fresh workers mid-run.
    assert len({pid for pid, _ in outcomes}) > 2
    assert os.getpid() not in {pid for pid, _ in outcomes}
    assert (parent.published, parent.errors, parent.hung_tasks) == (100, [], 0)
    expected = bodies("warm", 10) + bodies("parent", 100)
    for n in range(batches):
        expected += bodies(f"batch{n}", per_batch)
    finish_parent(queue, held, held_before, expected)
