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
import errno
import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
from brokers import clean_global_pools, run_in_child  # noqa: F401 - autouse: empty global pools
from e2e import storm, support
from helpers import (
    BACKEND,
    assert_balanced,
    require_amqp,
    require_redis,
    spawn,
    wait_until,
)

import greenpools
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
    assert list(result.child_exit_codes.values()) == [0] * CHILDREN, (
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

    assert list(result.child_exit_codes.values()) == [0] * CHILDREN, (
        "children failed or hung; their tracebacks are in the captured stderr"
    )
    assert (result.parent.published, result.parent.errors, result.parent.hung_tasks) == (
        PER_PROCESS, [], 0)
    assert result.held_after == result.held_before
    assert result.idle_after == result.idle_before
    assert_delivered_exactly(queue, result.expected_bodies)


class BlockedReader:
    """A task blocked reading a pooled connection when the parent forks.

    It holds a connection of ``pools.connections[conn]``, consumes from a
    queue of its own and waits in ``drain_events`` until the test publishes
    the one message it waits for.  Under gevent and eventlet the task is
    copied into every child, still waiting on the inherited socket.
    """

    def __init__(self, conn: Any, queue: str, timeout: float) -> None:
        self.conn, self.queue, self.timeout = conn, queue, timeout
        self.reading = threading.Event()
        self.done = threading.Event()
        self.got: list[str] = []
        self.error: BaseException | None = None
        self.fd, self.inode = -1, -1

    def start(self) -> None:
        greenpools.get_backend().spawn(self._run)  # no threading.Thread: see child_report
        if not self.reading.wait(self.timeout):
            raise support.Overrun(f"the reader did not start reading in {self.timeout}s")
        # A green task gives way only when it blocks: from here on it waits on
        # its socket.  (A native thread may be a few instructions short of it.)

    def _run(self) -> None:
        try:
            with pools.connections[self.conn].acquire(block=True, timeout=self.timeout) as conn:
                channel = conn.default_channel
                self.fd = conn.connection.sock.fileno()
                self.inode = os.fstat(self.fd).st_ino
                tag = channel.basic_consume(
                    queue=self.queue, no_ack=True,
                    callback=lambda message: self.got.append(str(message.body)))
                self.reading.set()
                conn.drain_events(timeout=self.timeout)
                channel.basic_cancel(tag)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def child_report(self) -> str:
        """In a child: what became of the task copied from the parent, and
        whether the child still holds the parent's socket."""
        return f"reader_copy={self._copy()} inherited_socket={self._socket()}"

    def _copy(self) -> str:
        if BACKEND == "threading":
            return "none"  # threads do not exist in a forked child
        if BACKEND == "gevent":  # the copy is failed on the child's first hub turn
            self.done.wait(self.timeout / 2)
        if self.got:
            return "read-the-parents-message"
        if self.error is None:
            return "still-waiting"
        kind = ("connection-error" if isinstance(self.error, tuple(self.conn.connection_errors))
                else "other-error")
        return f"{kind}:{type(self.error).__name__}:{getattr(self.error, 'errno', None)}"

    def _socket(self) -> str:
        try:
            same = os.fstat(self.fd).st_ino == self.inode
        except OSError:
            same = False
        return "open" if same else "closed"


@pytest.mark.broker
def test_fork_with_a_task_blocked_reading_a_pooled_connection(queue: str) -> None:
    """Issue 9, bug 1: a child forked while a green task waits on a pooled
    socket was killed by libev (SIGABRT, "I/O watcher with invalid fd found
    in epoll_ctl"): the reset closed the descriptor under the hub's watcher."""
    per_process = 100
    conn = support.confirming_connection()
    with support.temporary_queue("fork-reader") as reader_queue:
        reader = BlockedReader(conn, reader_queue, CHILD_TIMEOUT)
        result = storm.run_storm(
            pools, queue, children=CHILDREN, per_process=per_process, tasks=TASKS,
            timeout=CHILD_TIMEOUT, before_fork=reader.start, child_report=reader.child_report,
        )
        assert list(result.child_exit_codes.values()) == [0] * CHILDREN, (
            "a child was killed by a signal (negative code), failed or hung; see its stderr"
        )
        # The parent's reader was not disturbed: it still waits on the same
        # socket and reads what comes now.
        assert not reader.done.is_set(), reader.error
        with support.admin_channel() as channel:
            support.publish_one(kombu.Producer(channel), reader_queue, "wake")
        assert reader.done.wait(CHILD_TIMEOUT), "the parent's reader never woke"
    assert (reader.got, reader.error) == (["wake"], None)
    assert len(result.child_reports) == CHILDREN
    assert all(f"published={per_process}" in line for line in result.child_reports)
    reports = [dict(item.split("=", 1) for item in line.split()[1:])
               for line in result.child_reports]
    # No child keeps the parent's socket open (the broker would not see the
    # parent close it), whatever the copied task was doing.
    assert [report["inherited_socket"] for report in reports] == ["closed"] * CHILDREN, reports
    copies = collections.Counter(report["reader_copy"] for report in reports)
    if BACKEND == "gevent":
        # gevent's own close of the socket cancels the copied wait at once.
        assert all(copy.startswith("connection-error:") and copy.endswith(f":{errno.EBADF}")
                   for copy in copies), copies
    elif BACKEND == "eventlet":
        # The child's hub, given an epoll of its own at the fork, fails the
        # wait on the closed descriptor on its next turn (eventlet's os-level
        # read sees an end of file): the copy has ended long before the
        # child reports, never reading the parent's data.
        assert all(copy.split(":")[0] in ("connection-error", "other-error")
                   for copy in copies), copies
    assert (result.parent.published, result.parent.errors, result.parent.hung_tasks) == (
        per_process, [], 0)
    assert result.held_after == result.held_before
    assert result.idle_after == result.idle_before
    assert_delivered_exactly(queue, result.expected_bodies)
    assert_balanced(pools.connections[conn])


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


@pytest.mark.skipif(BACKEND != "eventlet", reason="a fact about eventlet's epoll hub")
def test_eventlet_child_shares_the_parents_epoll_instance() -> None:
    """What the README says of eventlet after fork: its epoll hub makes no
    new epoll instance in the child, so the parent's registrations are
    polled there too, even for a socket the child closed (as greenpools
    closes inherited ones); green I/O in the child works all the same."""
    import eventlet.hubs

    hub = eventlet.hubs.get_hub()
    if not hasattr(hub.poll, "fileno"):
        pytest.skip(f"eventlet runs its {type(hub).__module__} hub here, not epolls")
    parent_end, other_end = socket.socketpair()
    blocked = spawn(parent_end.recv, 1)
    wait_until(lambda: parent_end.fileno() in hub.listeners[hub.READ],
               message="the task never waited on its socket")
    inode = os.fstat(parent_end.fileno()).st_ino

    def child() -> None:
        parent_end.close()
        with open(f"/proc/self/fdinfo/{hub.poll.fileno()}") as info:
            registered = [line for line in info if line.startswith("tfd:")]
        assert any(f"ino:{inode:x}" in line for line in registered), registered
        mine, peer = socket.socketpair()
        spawn(peer.sendall, b"x")
        assert mine.recv(1) == b"x"

    run_in_child(child)
    other_end.sendall(b"y")
    assert blocked.join() == b"y"  # the parent's task was not disturbed
    for sock in (parent_end, other_end):
        sock.close()
