"""greenpools.pools on kombu's Redis transport: the pools are not AMQP-only."""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import os
from typing import Any

import pytest
from brokers import (  # noqa: F401  (fixtures)
    clean_global_pools,
    declare_queue,
    delete_queue,
    drain,
    make_queue,
    redis_url,
    run_in_child,
)
from helpers import BACKEND, assert_balanced, join_all, spawn
from kombu import Connection, Queue

from greenpools import pools

pytestmark = pytest.mark.redis

TASKS = 8 if BACKEND == "threading" else 40
PER_TASK = 5


def test_publish_and_consume_through_the_pools(redis_url: str, make_queue: Any) -> None:
    queue: Queue = make_queue(redis_url)
    pools.set_limit(4)

    def publish(task: int) -> None:
        for n in range(PER_TASK):
            with pools.producers[redis_url].acquire(block=True, timeout=60) as producer:
                producer.publish({"id": f"{task}-{n}"}, exchange=queue.exchange,
                                 routing_key=queue.routing_key, serializer="json")

    join_all([spawn(publish, task) for task in range(TASKS)], timeout=120)
    producer_pool = pools.producers[redis_url]
    assert_balanced(producer_pool)
    assert_balanced(producer_pool.connections)
    assert producer_pool.connections.get_stats()["pool_size"] <= 4
    expected = {f"{task}-{n}" for task in range(TASKS) for n in range(PER_TASK)}
    got: list[Any] = []
    with pools.connections[redis_url].acquire(block=True) as conn:
        with conn.Consumer(queue, accept=["json"],
                           callbacks=[lambda body, message: (got.append(body), message.ack())]):
            while len(got) < len(expected):
                conn.drain_events(timeout=20)
    ids = [body["id"] for body in got]
    assert len(ids) == len(expected) and set(ids) == expected
    assert drain(redis_url, queue, 0) == []


def test_forked_child_forgets_redis_connections_and_parent_keeps_them(
    redis_url: str, make_queue: Any
) -> None:
    queue: Queue = make_queue(redis_url)
    pool = pools.connections[redis_url]
    lent = pool.acquire(block=True)
    lent.Producer().publish({"id": "before"}, exchange=queue.exchange,
                            routing_key=queue.routing_key, serializer="json")
    transport = lent.transport
    redis_sockets = [
        c._sock for ch in transport.channels for c in
        list(ch.client.connection_pool._available_connections)
        + list(ch.client.connection_pool._in_use_connections)
        if c._sock is not None
    ]
    assert redis_sockets
    fds = [s.fileno() for s in redis_sockets]

    def child() -> None:
        assert pool.get_stats()["pool_size"] == 0
        assert lent._transport is None and lent._connection is None
        assert all(_closed(fd) for fd in fds)  # the child's copies only
        assert all(s.fileno() == -1 for s in redis_sockets)  # detached: GC closes nothing
        lent.close()
        lent.release()

    run_in_child(child)
    lent.Producer().publish({"id": "after"}, exchange=queue.exchange,
                            routing_key=queue.routing_key, serializer="json")
    lent.release()
    assert sorted(m["id"] for m in drain(redis_url, queue, 2)) == ["after", "before"]


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_same_url_and_connection_share_a_pool(redis_url: str) -> None:
    assert pools.connections[redis_url] is pools.connections[Connection(redis_url)]
    assert pools.producers[redis_url].connections is pools.connections[redis_url]


def test_deleting_a_test_queue_leaves_nothing_on_redis(redis_url: str) -> None:
    import redis

    queue = declare_queue(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys(f"*{queue.name}*")  # the binding keys exist
        delete_queue(redis_url, queue)
        assert client.keys(f"*{queue.name}*") == []  # _kombu.binding.* included
    finally:
        client.close()
