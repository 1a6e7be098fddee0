"""Pools over a real three-node RabbitMQ cluster: spread, node loss, rebalance,
rolling restart.

The cluster is our own (``tests/rabbit_cluster.py``), started once per run
and shared by the backends when ``tests/runner.py`` runs them.  Every
scenario publishes with confirms into a quorum queue and then checks that
every message the broker confirmed is consumed, that no publisher or waiter
outlived its timeout, and that the pools' books balance.  Each scenario
leaves the cluster whole for the next one.
"""

from __future__ import annotations

import collections
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from brokers import clean_global_pools  # noqa: F401  (fixtures)
from helpers import BACKEND, SERVICE_MISSING, assert_balanced, join_all, spawn
from kombu import Connection, Queue
from rabbit_cluster import RabbitCluster, missing_reason, session_nodes

from greenpools import pools

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

PUBLISHERS = 50
POOL_SIZE = 9
LIFETIME = 3.0  # max_lifetime of the rebalance scenario, seconds
ACQUIRE_TIMEOUT = 30.0
CONFIRM_TIMEOUT = 10.0
#: Bounded retries: a publish gives up (and is not counted) rather than hang.
RETRY_POLICY = {"max_retries": 20, "interval_start": 0, "interval_step": 0.2,
                "interval_max": 1.0}
PACE = 0.2  # each publisher's pause between messages, to bound the volume
#: "Did not hang": far above any failover seen here (a few seconds).
HANG = 60.0


@pytest.fixture(scope="module")
def cluster() -> RabbitCluster:
    reason = missing_reason()
    if reason:
        pytest.skip(f"{SERVICE_MISSING} {reason}")
    return session_nodes("cluster", 3)


@pytest.fixture
def whole(cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """The cluster with its three nodes running (a failed test may have left
    one down), held alone for one test: the runner's processes take turns."""
    with cluster.turn():
        running = cluster.running_nodes()
        for node in cluster.nodes:
            if node.name not in running:
                cluster.restart(node)
        yield cluster


@pytest.fixture
def quorum_queue(whole: RabbitCluster) -> Iterator[Queue]:
    name = f"greenpools-cluster-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, routing_key=name, durable=True,
                  queue_arguments={"x-queue-type": "quorum"})
    with Connection(whole.url) as conn:
        queue(conn.default_channel).declare()
    yield queue
    with Connection(whole.url) as conn:
        queue(conn.default_channel).delete()


def wait_until(predicate: Any, timeout: float, message: str) -> None:
    """Poll every 0.1s (what is polled is costly: a CLI call, a look at every socket)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (within {timeout}s)")
        time.sleep(0.1)


def confirming(cluster: RabbitCluster) -> Connection:
    return Connection(cluster.url, transport_options={"confirm_publish": True},
                      connect_timeout=5)


def peer_port(conn: Any) -> int | None:
    """The broker port a pooled connection's socket is connected to, if any."""
    try:
        return int(conn._connection.transport.sock.getpeername()[1])
    except Exception:
        return None


def placement(cluster: RabbitCluster, pool: pools.ConnectionPool) -> dict[str, int]:
    """How many of the pool's connected connections each node holds."""
    counts = {node.name: 0 for node in cluster.nodes}
    for slot in list(pool._slots.values()):
        port = peer_port(slot.resource)
        if port is not None:
            counts[cluster.node(port).name] += 1
    return counts


class Load:
    """``PUBLISHERS`` tasks publishing with confirms and retry through a producer pool.

    A message counts as confirmed only when ``publish`` returned: one whose
    publish raised is not counted (it may still arrive, like a retried
    one may arrive twice).
    """

    def __init__(self, producers: pools.ProducerPool, queue: Queue) -> None:
        self.producers = producers
        self.queue = queue
        self.running = True
        self.confirmed: list[str] = []
        self.confirm_times: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_error: dict[str, str] = {}
        self.longest = 0.0  # of a confirmed publish, acquire included
        self.longest_call = 0.0  # of any publish, also one that raised
        self.tasks = [spawn(self._publish, n) for n in range(PUBLISHERS)]

    def _publish(self, task: int) -> None:
        n = 0
        while self.running:
            n += 1
            ident = f"{task}-{n}"
            started = time.monotonic()
            try:
                with self.producers.acquire(block=True, timeout=ACQUIRE_TIMEOUT) as producer:
                    producer.publish(
                        {"id": ident}, routing_key=self.queue.name, serializer="json",
                        delivery_mode=2, retry=True, retry_policy=RETRY_POLICY,
                        timeout=CONFIRM_TIMEOUT,
                    )
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                self.first_error.setdefault(type(exc).__name__, str(exc)[:200])
            else:
                now = time.monotonic()
                self.confirmed.append(ident)
                self.confirm_times.append(now)
                self.longest = max(self.longest, now - started)
            self.longest_call = max(self.longest_call, time.monotonic() - started)
            time.sleep(PACE)

    def wait_for_confirms(self, more: int, timeout: float = HANG) -> None:
        target = len(self.confirmed) + more
        wait_until(lambda: len(self.confirmed) >= target, timeout=timeout,
                   message=f"publishing stalled: wanted {more} more confirms")

    def stop(self) -> None:
        self.running = False
        # Each publish is bounded (acquire timeout, confirm timeout, retries).
        join_all(self.tasks, timeout=HANG)

    def longest_gap(self, since: float) -> float:
        """The longest time without any confirm after ``since``."""
        times = sorted(t for t in self.confirm_times if t >= since)
        if not times:
            return float("inf")
        return max(b - a for a, b in zip([since, *times[:-1]], times, strict=True))


def drain(cluster: RabbitCluster, queue: Queue, want: set[str],
          timeout: float = 60.0) -> collections.Counter[str]:
    """Consume the queue until every id in ``want`` arrived and it is empty."""
    seen: collections.Counter[str] = collections.Counter()

    def on_message(body: Any, message: Any) -> None:
        seen[body["id"]] += 1
        message.ack()

    deadline = time.monotonic() + timeout
    with Connection(cluster.url) as conn:
        with conn.Consumer(queue, callbacks=[on_message], accept=["json"],
                           prefetch_count=500):
            idle = 0
            while time.monotonic() < deadline and (not want <= seen.keys() or idle < 2):
                try:
                    conn.drain_events(timeout=0.5)
                    idle = 0
                except TimeoutError:
                    idle += 1
    return seen


def check_outcome(cluster: RabbitCluster, queue: Queue, load: Load, label: str) -> None:
    confirmed = set(load.confirmed)
    assert len(confirmed) == len(load.confirmed), "an id was confirmed twice"
    seen = drain(cluster, queue, confirmed)
    lost = confirmed - seen.keys()
    duplicates = sum(count - 1 for count in seen.values())
    unconfirmed_arrived = len(seen.keys() - confirmed)
    print(f"[{BACKEND}] {label}: {len(confirmed)} confirmed, {len(lost)} lost, "
          f"{duplicates} duplicates, {unconfirmed_arrived} unconfirmed arrived, "
          f"publish errors {dict(load.errors)} {load.first_error}, "
          f"longest confirmed publish {load.longest:.2f}s, longest call {load.longest_call:.2f}s")
    assert load.longest_call < HANG, f"a publish took {load.longest_call:.1f}s"
    assert not lost, f"{len(lost)} confirmed messages never arrived, e.g. {sorted(lost)[:5]}"
    assert_balanced(load.producers)
    assert_balanced(load.producers.connections)


def make_pools(cluster: RabbitCluster, **options: Any) -> pools.ProducerPool:
    connections = pools.ConnectionPool(confirming(cluster), limit=POOL_SIZE, **options)
    return pools.ProducerPool(connections, limit=POOL_SIZE)


def close_pools(producers: pools.ProducerPool) -> None:
    producers.force_close_all()
    producers.connections.force_close_all()


def test_a_pool_of_nine_holds_three_connections_on_each_node(
    whole: RabbitCluster, quorum_queue: Queue
) -> None:
    pool = pools.ConnectionPool(confirming(whole), limit=POOL_SIZE)
    try:
        taken = [pool.acquire() for _ in range(POOL_SIZE)]
        for n, conn in enumerate(taken):
            conn.Producer().publish({"id": str(n)}, routing_key=quorum_queue.name,
                                    serializer="json", delivery_mode=2)
        on_node = placement(whole, pool)
        assert sorted(on_node.values()) == [3, 3, 3], on_node
        # The brokers agree (connections register asynchronously).
        wait_until(lambda: sorted(whole.connections_per_node().values()) == [3, 3, 3],
                   timeout=30, message="the nodes do not list 3 connections each")
        for conn in taken:
            conn.release()
        assert_balanced(pool)
    finally:
        pool.force_close_all()
    seen = drain(whole, quorum_queue, {str(n) for n in range(POOL_SIZE)})
    assert set(seen) == {str(n) for n in range(POOL_SIZE)}


def test_node_loss_then_return_rebalances_without_losing_confirmed_messages(
    whole: RabbitCluster, quorum_queue: Queue
) -> None:
    producers = make_pools(whole, max_lifetime=LIFETIME)
    load = Load(producers, quorum_queue)
    try:
        load.wait_for_confirms(200)
        wait_until(lambda: sum(placement(whole, producers.connections).values()) >= 6,
                   timeout=30, message="the pool never got its connections")
        before = placement(whole, producers.connections)
        victim = whole.node(max(before, key=before.__getitem__))
        killed_at = time.monotonic()
        whole.kill(victim)
        load.wait_for_confirms(200)  # publishing goes on over the other two
        resumed = load.longest_gap(killed_at)
        assert placement(whole, producers.connections)[victim.name] == 0
        whole.restart(victim)
        back_at = time.monotonic()
        wait_until(
            lambda: min(placement(whole, producers.connections).values()) >= 2,
            timeout=10 * LIFETIME + 30,
            message="the connections did not spread over the returned node",
        )
        rebalanced = time.monotonic() - back_at
        after = placement(whole, producers.connections)
        load.wait_for_confirms(100)
        load.stop()
        print(f"[{BACKEND}] killed {victim} holding {before[victim.name]} of {before}; "
              f"longest gap without a confirm {resumed:.2f}s; spread again {after} "
              f"{rebalanced:.1f}s after the node was back")
        check_outcome(whole, quorum_queue, load, "node loss and return")
    finally:
        load.running = False
        close_pools(producers)


def test_rolling_restart_under_load_loses_nothing_confirmed(
    whole: RabbitCluster, quorum_queue: Queue
) -> None:
    producers = make_pools(whole)
    load = Load(producers, quorum_queue)
    try:
        load.wait_for_confirms(200)
        started = time.monotonic()
        for node in whole.nodes:
            whole.await_quorum_plus_one(node)
            whole.stop_node(node)
            load.wait_for_confirms(50)  # the other two carry on
            whole.restart(node)
        load.wait_for_confirms(100)
        gap = load.longest_gap(started)
        load.stop()
        print(f"[{BACKEND}] rolling restart took {time.monotonic() - started:.1f}s; "
              f"longest gap without a confirm {gap:.2f}s")
        assert gap < HANG, f"publishing stopped for {gap:.1f}s"
        check_outcome(whole, quorum_queue, load, "rolling restart")
    finally:
        load.running = False
        close_pools(producers)
