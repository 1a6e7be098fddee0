"""greenpools.pools against the real RabbitMQ: concurrency, confirms, broken
connections, and fork without harming the parent."""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import gc
import os
import socket
import threading
from typing import Any

import pytest
from brokers import (  # noqa: F401  (fixtures)
    QUEUE_EXPIRES_MS,
    amqp_url,
    clean_global_pools,
    delete_queue,
    drain,
    make_queue,
    run_in_child,
    unique_name,
)
from helpers import BACKEND, assert_balanced, join_all, spawn
from kombu import Connection, Exchange, Queue

from greenpools import pools

pytestmark = pytest.mark.broker

#: Many green threads on a small pool; fewer OS threads.
TASKS = 16 if BACKEND == "threading" else 120
PER_TASK = 25 if BACKEND == "threading" else 5
LIMIT = 5


def confirming(url: str) -> Connection:
    return Connection(url, transport_options={"confirm_publish": True})


def assert_exactly_once(payloads: list[Any], expected: set[str]) -> None:
    ids = [payload["id"] for payload in payloads]
    assert len(ids) == len(expected), f"{len(ids)} messages arrived, {len(expected)} sent"
    assert set(ids) == expected


def test_many_tasks_publish_through_producers_exactly_once(
    amqp_url: str, make_queue: Any
) -> None:
    queue: Queue = make_queue(amqp_url)
    pools.set_limit(LIMIT)
    connection = confirming(amqp_url)
    in_use = [0]
    peak = [0]
    lock = threading.Lock()
    confirmed: list[bool] = []

    def publish(task: int) -> None:
        for n in range(PER_TASK):
            with pools.producers[connection].acquire(block=True, timeout=60) as producer:
                with lock:
                    in_use[0] += 1
                    peak[0] = max(peak[0], in_use[0])
                producer.publish({"id": f"{task}-{n}"}, exchange=queue.exchange,
                                 routing_key=queue.routing_key, serializer="json")
                if n == 0 and task == 0:
                    confirmed.append(bool(producer.channel.connection.confirm_publish))
                with lock:
                    in_use[0] -= 1

    join_all([spawn(publish, task) for task in range(TASKS)], timeout=180)
    producer_pool = pools.producers[connection]
    assert_balanced(producer_pool)
    assert_balanced(producer_pool.connections)
    assert producer_pool.connections.get_stats()["pool_size"] <= LIMIT
    assert 1 <= peak[0] <= LIMIT
    assert confirmed == [True]
    expected = {f"{task}-{n}" for task in range(TASKS) for n in range(PER_TASK)}
    assert_exactly_once(drain(amqp_url, queue, len(expected)), expected)


def test_many_tasks_publish_through_pooled_connections_exactly_once(
    amqp_url: str, make_queue: Any
) -> None:
    queue: Queue = make_queue(amqp_url)
    group = pools.Connections(limit=LIMIT)
    connection = confirming(amqp_url)

    def publish(task: int) -> None:
        for n in range(PER_TASK):
            with group[connection].acquire(block=True, timeout=60) as conn:
                conn.Producer().publish({"id": f"{task}-{n}"}, exchange=queue.exchange,
                                        routing_key=queue.routing_key, serializer="json")

    join_all([spawn(publish, task) for task in range(TASKS)], timeout=180)
    pool = group[connection]
    assert_balanced(pool)
    assert pool.get_stats()["pool_size"] <= LIMIT
    expected = {f"{task}-{n}" for task in range(TASKS) for n in range(PER_TASK)}
    # Consume through the pool as well.
    got: list[Any] = []
    with pool.acquire(block=True) as conn:
        with conn.Consumer(queue, accept=["json"],
                           callbacks=[lambda body, message: (got.append(body), message.ack())]):
            while len(got) < len(expected):
                conn.drain_events(timeout=20)
    assert_exactly_once(got, expected)
    assert drain(amqp_url, queue, 0) == []  # nothing left, nothing twice


def test_channel_pool_on_a_real_connection(amqp_url: str, make_queue: Any) -> None:
    queue: Queue = make_queue(amqp_url)
    with Connection(amqp_url) as connection:
        channels = pools.ChannelPool(connection, limit=3)

        def publish(task: int) -> None:
            with channels.acquire(block=True, timeout=60) as channel:
                connection.Producer(channel).publish(
                    {"id": str(task)}, exchange=queue.exchange, routing_key=queue.routing_key,
                    serializer="json")

        # One connection is not safe for concurrent writers: one at a time.
        for task in range(10):
            publish(task)
        assert channels.get_stats()["pool_size"] == 1  # the same channel came back
        assert_exactly_once(drain(amqp_url, queue, 10), {str(t) for t in range(10)})


def _break_socket(conn: Any) -> None:
    """The broker side goes away: shut the socket down under the connection."""
    conn.connection.transport.sock.shutdown(socket.SHUT_RDWR)


def test_broken_connection_is_replaced_not_returned(amqp_url: str, make_queue: Any) -> None:
    """celery #9259: a connection that failed must not hang the next publish."""
    queue: Queue = make_queue(amqp_url)
    pool = pools.connections[confirming(amqp_url)]
    with pool.acquire(block=True) as conn:
        conn.default_channel  # noqa: B018  (connects)
    with pytest.raises(tuple(conn.connection_errors)):
        with pool.acquire(block=True) as again:
            assert again is conn
            _break_socket(again)
            again.Producer().publish({"id": "lost"}, exchange=queue.exchange,
                                     routing_key=queue.routing_key)
    with pool.acquire(block=True, timeout=10) as fresh:
        assert fresh is not conn
        fresh.Producer().publish({"id": "kept"}, exchange=queue.exchange,
                                 routing_key=queue.routing_key, serializer="json")
    assert_balanced(pool)
    assert [m["id"] for m in drain(amqp_url, queue, 1)] == ["kept"]


def test_broken_producer_connection_is_replaced(amqp_url: str, make_queue: Any) -> None:
    queue: Queue = make_queue(amqp_url)
    connection = confirming(amqp_url)
    with pools.producers[connection].acquire(block=True) as producer:
        producer.publish({"id": "first"}, exchange=queue.exchange,
                         routing_key=queue.routing_key, serializer="json")
        broken = producer.__connection__
    with pytest.raises(tuple(broken.connection_errors)):
        with pools.producers[connection].acquire(block=True) as producer:
            assert producer.__connection__ is broken
            _break_socket(broken)
            producer.publish({"id": "lost"}, exchange=queue.exchange,
                             routing_key=queue.routing_key, serializer="json")
    with pools.producers[connection].acquire(block=True, timeout=10) as producer:
        assert producer.__connection__ is not broken
        producer.publish({"id": "second"}, exchange=queue.exchange,
                         routing_key=queue.routing_key, serializer="json")
    assert_balanced(pools.producers[connection])
    assert_balanced(pools.connections[connection])
    assert sorted(m["id"] for m in drain(amqp_url, queue, 2)) == ["first", "second"]


def test_a_subclass_prepare_declares_on_the_producers_connection(amqp_url: str) -> None:
    """kombu code declares its queue in ``prepare`` once ``super().prepare``
    has bound the producer: the queue exists on the broker before the publish."""
    name = unique_name()
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name,
                  queue_arguments={"x-expires": QUEUE_EXPIRES_MS})

    class Declaring(pools.ProducerPool):
        def prepare(self, p: Any) -> Any:
            p = super().prepare(p)
            p.maybe_declare(queue)  # the exchange, the queue and the binding
            return p

    pool = Declaring(pools.connections[confirming(amqp_url)], limit=2)
    try:
        with pool.acquire(block=True, timeout=10) as producer:
            producer.publish({"id": "declared"}, exchange=queue.exchange,
                             routing_key=queue.routing_key, serializer="json")
        assert [m["id"] for m in drain(amqp_url, queue, 1)] == ["declared"]
        assert_balanced(pool)
        assert_balanced(pool.connections)
    finally:
        delete_queue(amqp_url, queue)


def test_forked_child_forgets_inherited_connections_and_parent_keeps_them(
    amqp_url: str, make_queue: Any
) -> None:
    queue: Queue = make_queue(amqp_url)
    connection = confirming(amqp_url)
    pool = pools.connections[connection]
    producer_pool = pools.producers[connection]
    lent = pool.acquire(block=True)
    lent.Producer().publish({"id": "parent-before"}, exchange=queue.exchange,
                            routing_key=queue.routing_key, serializer="json")
    producer = producer_pool.acquire(block=True)
    producer.publish({"id": "producer-before"}, exchange=queue.exchange,
                     routing_key=queue.routing_key, serializer="json")
    inherited_fds = [c.connection.transport.sock.fileno() for c in (lent, producer.__connection__)]
    inherited_channel = lent.default_channel

    def child() -> None:
        assert len(pools.connections) == 0 and len(pools.producers) == 0
        assert pool.get_stats()["pool_size"] == 0
        for fd in inherited_fds:  # the child's copies are closed...
            with pytest.raises(OSError):
                os.fstat(fd)
        assert lent._connection is None  # ...and the connection would start afresh
        # What user code might still do with what it holds must send nothing.
        with pytest.raises(Exception, match="closed"):
            inherited_channel.basic_publish(b"x", exchange="", routing_key=queue.name)
        lent.close()
        producer.release()
        lent.release()
        gc.collect()

    run_in_child(child)
    # The parent's connections still work (with confirms: the broker answered).
    lent.Producer().publish({"id": "parent-after"}, exchange=queue.exchange,
                            routing_key=queue.routing_key, serializer="json")
    producer.publish({"id": "producer-after"}, exchange=queue.exchange,
                     routing_key=queue.routing_key, serializer="json")
    lent.release()
    producer.release()
    expected = {"parent-before", "producer-before", "parent-after", "producer-after"}
    assert_exactly_once(drain(amqp_url, queue, len(expected)), expected)


def test_forked_child_drops_the_channel_pools_connection(amqp_url: str, make_queue: Any) -> None:
    queue: Queue = make_queue(amqp_url)
    with confirming(amqp_url) as connection:
        channels = pools.ChannelPool(connection, limit=2)
        channel = channels.acquire(block=True)
        connection.Producer(channel).publish({"id": "before"}, exchange=queue.exchange,
                                             routing_key=queue.routing_key, serializer="json")
        fd = connection.connection.transport.sock.fileno()

        def child() -> None:
            with pytest.raises(OSError):
                os.fstat(fd)
            assert connection._connection is None
            assert channels.get_stats()["pool_size"] == 0
            channel.release()  # inherited: dropped silently
            connection.close()  # sends nothing: there is nothing left to send on
            gc.collect()

        run_in_child(child)
        connection.Producer(channel).publish({"id": "after"}, exchange=queue.exchange,
                                             routing_key=queue.routing_key, serializer="json")
        channel.release()
    assert sorted(m["id"] for m in drain(amqp_url, queue, 2)) == ["after", "before"]
