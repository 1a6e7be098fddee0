"""Plain ``os.fork()`` with live pools, against the real RabbitMQ.

The parent publishes through ``greenpools.pools.producers`` with publisher
confirms, keeps pooled connections (one lent, one idle), forks, and then
parent and children publish at the same time.  kombu's pools hang here
(``tests/e2e/fork_storm_compare.py`` shows it); greenpools must deliver
every message exactly once and leave the parent's connections working.
Runs on every backend: plain threads, and under gevent's and eventlet's
monkey patching (tests/runner.py).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator

import kombu
import pytest
from brokers import clean_global_pools  # noqa: F401 - autouse: empty global pools
from e2e import storm, support
from helpers import BACKEND, require_amqp, require_redis, wait_until

from greenpools import pools

CHILDREN = 4
PER_PROCESS = 300
#: Concurrent publishing tasks per process; green tasks outnumber the
#: pool limit (10) so that some of them queue for producers.
TASKS = 6 if BACKEND == "threading" else 16
CHILD_TIMEOUT = 60.0


@pytest.fixture
def queue() -> Iterator[str]:
    require_amqp()
    with support.temporary_queue("fork") as name:
        yield name


def assert_delivered_exactly(queue: str, expected: list[str]) -> None:
    """The queue holds exactly ``expected`` (as a multiset of bodies)."""
    assert support.queue_count(queue) == len(expected)
    got = collections.Counter(
        body.decode() for body in support.drain_queue(queue, len(expected) + 50)
    )
    want = collections.Counter(expected)
    assert not want - got, f"lost: {sorted(want - got)[:10]}"
    assert not got - want, f"duplicated or unexpected: {sorted(got - want)[:10]}"


@pytest.mark.broker
@pytest.mark.slow
def test_fork_storm_parent_and_children_publish_concurrently(queue: str) -> None:
    result = storm.run_storm(
        pools, queue, children=CHILDREN, per_process=PER_PROCESS, tasks=TASKS,
        timeout=CHILD_TIMEOUT,
    )

    assert result.pre_fork_errors == []
    assert sorted(result.child_exit_codes.values()) == [0] * CHILDREN, (
        "children failed or hung; their tracebacks are in the captured stderr"
    )
    assert len(result.child_reports) == CHILDREN
    assert all(f"published={PER_PROCESS}" in line for line in result.child_reports)
    assert result.parent.errors == []
    assert result.parent.hung_tasks == 0
    assert result.parent.published == PER_PROCESS
    # The children never used nor shut down the parent's sockets: after they
    # exited, confirmed publishes still go through the same TCP connections.
    assert result.held_after == result.held_before
    assert result.idle_after == result.idle_before
    assert_delivered_exactly(queue, result.expected_bodies)


@support.threading_run_only(
    "green threads busy at fork go on running in the child (gevent, eventlet semantics); "
    "only native threads can be forked mid-publish"
)
@pytest.mark.slow
def test_fork_storm_forking_while_parent_threads_publish(queue: str) -> None:
    result = storm.run_storm(
        pools, queue, children=CHILDREN, per_process=PER_PROCESS, tasks=TASKS,
        timeout=CHILD_TIMEOUT, fork_while_publishing=True,
    )

    assert sorted(result.child_exit_codes.values()) == [0] * CHILDREN, (
        "children failed or hung; their tracebacks are in the captured stderr"
    )
    assert (result.parent.published, result.parent.errors, result.parent.hung_tasks) == (
        PER_PROCESS, [], 0)
    assert result.held_after == result.held_before
    assert result.idle_after == result.idle_before
    assert_delivered_exactly(queue, result.expected_bodies)


def _kept_pools_child(
    conn: object, kept_connections: pools.ConnectionPool, kept_producers: pools.ProducerPool,
    held: pools.PooledConnection, queue: str, parent_ports: set[int],
) -> str:
    """Child side of the kept-pool test: what the kept pools hand out here."""
    # A connection the parent had lent: releasing it here must not put the
    # parent's socket into the child's pool.
    held.release()
    fresh = kept_connections.acquire(block=True, timeout=10)
    support.publish_one(fresh.Producer(), queue, "child:connection")
    connection_port = support.socket_identity(fresh)["local_port"]
    fresh.release()
    with kept_producers.acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "child:producer")
        producer_port = support.socket_identity(producer.connection)["local_port"]
    # Closing everything in the child, the way kombu users clean up after a
    # fork, must still leave the parent's sockets alone.
    kept_connections.force_close_all()
    pools.reset()
    return json.dumps({
        "connection_port": connection_port,
        "producer_port": producer_port,
        "got_parent_object": fresh is held,
        "inherited_port_reused": bool({connection_port, producer_port} & parent_ports),
    })


@pytest.mark.broker
def test_pool_kept_by_user_code_hands_out_fresh_connections_in_child(queue: str) -> None:
    conn = support.confirming_connection()
    kept_connections = pools.connections[conn]
    kept_producers = pools.producers[conn]
    with kept_producers.acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "parent:before")
        producer_conn = producer.connection
    held = kept_connections.acquire(block=True, timeout=10)
    support.publish_one(held.Producer(), queue, "parent:held")
    parent_sockets = {
        "held": support.socket_identity(held),
        "producer": support.socket_identity(producer_conn),
    }
    parent_ports = {identity["local_port"] for identity in parent_sockets.values()}

    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            support.run_forked_child(
                lambda: _kept_pools_child(conn, kept_connections, kept_producers, held, queue,
                                          parent_ports),
                report_fd=write_fd, watchdog=int(CHILD_TIMEOUT),
            )
        os.close(write_fd)
        write_fd = -1
        assert support.wait_pid(pid, CHILD_TIMEOUT) == 0, "child failed: see captured stderr"
        reports = support.read_reports(read_fd)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)

    assert len(reports) == 1
    child = json.loads(reports[0])
    assert child["got_parent_object"] is False
    assert child["inherited_port_reused"] is False, (child, parent_sockets)

    # The parent's connections are the same TCP connections, and still work.
    support.publish_one(held.Producer(), queue, "parent:held-after")
    assert support.socket_identity(held) == parent_sockets["held"]
    held.release()
    with kept_producers.acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "parent:after")
        after_port = support.socket_identity(producer.connection)["local_port"]
    assert after_port in parent_ports
    assert_delivered_exactly(queue, [
        "parent:before", "parent:held", "child:connection", "child:producer",
        "parent:held-after", "parent:after",
    ])


@pytest.mark.redis
@pytest.mark.slow
def test_fork_children_publish_through_global_producers_on_redis() -> None:
    """The Redis transport too: children of a warm parent get clients of
    their own, and the parent's pooled connection keeps working."""
    url = require_redis()
    conn = kombu.Connection(url)
    per_process = 100
    with support.temporary_redis_queue("fork-redis", url) as queue:
        warm = storm.publish_concurrently(pools, conn, queue, "warm", 20, 4, CHILD_TIMEOUT)
        assert warm.published == 20, warm
        # Mark the parent's connections (one lent, one idle): a child must
        # never be handed one of them.
        held = pools.connections[conn].acquire(block=True, timeout=10)
        idle = pools.connections[conn].acquire(block=True, timeout=10)
        for parents in (held, idle):
            parents.default_channel  # noqa: B018 - connect it
            parents.e2e_made_in = os.getpid()
        idle.release()

        def child_body(tag: str) -> None:
            storm._child_body(pools, conn, queue, tag, per_process, TASKS, CHILD_TIMEOUT)
            # Everything the child's pool can hand out besides the lent one.
            pool = pools.connections[conn]
            taken = [pool.acquire(block=False) for _ in range(pool.limit - 1)]
            inherited = [c for c in taken if hasattr(c, "e2e_made_in")]
            assert not inherited, f"the child was handed the parent's {inherited}"

        pids = []
        try:
            for number in range(3):
                pid = os.fork()
                if pid == 0:
                    support.run_forked_child(lambda tag=f"child{number}": child_body(tag),
                                             watchdog=int(CHILD_TIMEOUT))
                pids.append(pid)
            parent = storm.publish_concurrently(pools, conn, queue, "parent", per_process,
                                                TASKS, CHILD_TIMEOUT)
            codes = [support.wait_pid(pid, CHILD_TIMEOUT) for pid in pids]
            pids = []
        finally:
            for pid in pids:
                support.kill_quietly(pid)
        assert codes == [0, 0, 0], "a child failed: see captured stderr"
        assert (parent.published, parent.errors, parent.hung_tasks) == (per_process, [], 0)
        support.publish_one(held.Producer(), queue, "held")
        held.release()
        expected = [f"warm:{i}" for i in range(20)] + ["held"]
        for tag in ("parent", "child0", "child1", "child2"):
            expected += [f"{tag}:{i}" for i in range(per_process)]
        got = collections.Counter(
            body.decode() for body in support.drain_redis_queue(queue, len(expected) + 50, url))
        assert got == collections.Counter(expected)


def _lent_ports(pool: pools.ConnectionPool, count: int) -> list[int]:
    """Local ports of ``count`` connections taken from ``pool`` together (then returned)."""
    taken = [pool.acquire(block=True, timeout=10) for _ in range(count)]
    try:
        for conn in taken:
            conn.default_channel  # noqa: B018 - connect it
        return [support.socket_identity(conn)["local_port"] for conn in taken]
    finally:
        for conn in taken:
            conn.release()


@pytest.mark.broker
def test_pool_with_min_size_refills_with_fresh_connections_in_child() -> None:
    """The upkeep task does not survive the fork; in the child it restarts
    and keeps ``min_size`` connections of the child's own."""
    require_amqp()
    pool = pools.ConnectionPool(support.confirming_connection(), limit=4, min_size=2)
    try:
        # Available, not just counted: upkeep counts one while it connects it.
        wait_until(lambda: pool.get_stats()["pool_available"] >= 2,
                   message="the parent's upkeep never reached min_size")
        parent_ports = _lent_ports(pool, 2)

        def child() -> str:
            inherited_size = pool.get_stats()["pool_size"]
            pool.release(pool.acquire(block=True, timeout=10))  # wakes the upkeep here
            wait_until(lambda: pool.get_stats()["pool_size"] >= 2,
                       message="the child's upkeep never reached min_size")
            return json.dumps({"inherited_size": inherited_size,
                               "ports": _lent_ports(pool, 2)})

        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                support.run_forked_child(child, report_fd=write_fd,
                                         watchdog=int(CHILD_TIMEOUT))
            os.close(write_fd)
            write_fd = -1
            assert support.wait_pid(pid, CHILD_TIMEOUT) == 0, "child failed: see stderr"
            reports = support.read_reports(read_fd)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        report = json.loads(reports[0])
        assert report["inherited_size"] == 0
        assert not set(report["ports"]) & set(parent_ports)
        # The parent's min_size connections are the same ones, still alive.
        assert sorted(_lent_ports(pool, 2)) == sorted(parent_ports)
    finally:
        pool.close()
