"""``drain()``: every resource replaced now, without waiting for ``max_lifetime``.

Idle resources close at once; lent ones close when they come back and are
never lent again; later acquires get new ones; upkeep refills
``min_size``.  On generic pools, and on kombu's pools and groups over the
real broker, where "new" means new connection objects on new sockets.
"""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import threading
from typing import Any

import pytest
from brokers import amqp_url, clean_global_pools, drain, make_queue  # noqa: F401  (fixtures)
from helpers import Factory, join_all, spawn, wait_until
from kombu import Connection, Queue

import greenpools
from greenpools import PoolClosed, pools


def test_idle_resources_close_at_once_and_lent_ones_when_back() -> None:
    factory = Factory()
    pool = greenpools.Pool(factory, 3)
    idle, lent = pool.acquire(), pool.acquire()
    pool.release(idle)
    pool.drain()
    assert (idle.closed, lent.closed) == (1, 0)
    fresh = pool.acquire()  # a new one, not the one still lent
    assert fresh not in (idle, lent) and fresh is factory.made[-1]
    pool.release(lent)
    assert lent.closed == 1  # closed on return, never pooled again
    pool.release(fresh)
    assert [pool.acquire() for _ in range(3)].count(lent) == 0
    assert pool.get_stats()["pool_size"] == 3


def test_a_waiter_gets_the_place_of_a_drained_resource() -> None:
    pool = greenpools.Pool(Factory(), 1)
    old = pool.acquire()
    pool.drain()
    task = spawn(pool.acquire, True, 30)
    wait_until(lambda: pool.get_stats()["requests_waiting"] == 1)
    pool.release(old)  # closes it: its place goes to the waiter, who makes a new one
    [new] = join_all([task])
    assert old.closed == 1 and new is not old and not new.closed


def test_upkeep_refills_min_size_with_new_resources() -> None:
    factory = Factory()
    with greenpools.Pool(factory, 4, min_size=2) as pool:
        pool.wait(10)
        before = list(factory.made)
        held = pool.acquire()
        pool.drain()  # one idle closes now, the lent one on return
        pool.wait(10)  # two of the new generation, though the old one still counts
        assert len(factory.made) == len(before) + 2
        assert all(thing.closed for thing in before if thing is not held)
        pool.release(held)
        assert held.closed == 1


def test_drain_on_a_closed_pool_is_a_clear_error() -> None:
    pool = greenpools.Pool(Factory(), 2)
    pool.close()
    with pytest.raises(PoolClosed, match="drain on closed pool"):
        pool.drain()


def _socket_name(conn: Any) -> Any:
    return conn.connection.sock.getsockname()


@pytest.mark.broker
def test_connections_after_a_drain_are_new_objects_on_new_sockets(amqp_url: str) -> None:
    pool = pools.ConnectionPool(Connection(amqp_url), limit=4)
    try:
        idle, lent = pool.acquire(), pool.acquire()
        idle.connect()
        lent.connect()
        old_sockets = {_socket_name(idle), _socket_name(lent)}
        pool.release(idle)
        pool.drain()
        assert idle.connection is None  # closed at once
        fresh = pool.acquire()
        fresh.connect()
        assert fresh not in (idle, lent) and _socket_name(fresh) not in old_sockets
        lent.release()
        assert lent.connection is None  # closed on return
        fresh.release()
        again = pool.acquire()
        assert again is fresh  # the new one is pooled as usual
        again.release()
    finally:
        pool.force_close_all()


@pytest.mark.broker
def test_draining_the_global_groups_replaces_every_publisher_connection(
    amqp_url: str, make_queue: Any
) -> None:
    queue: Queue = make_queue(amqp_url)
    connection = Connection(amqp_url, transport_options={"confirm_publish": True})
    publishing, drained = threading.Event(), threading.Event()
    seen: list[Any] = []

    def publish_across_the_drain() -> None:
        with pools.producers[connection].acquire(block=True, timeout=30) as producer:
            seen.append(producer.connection)
            publishing.set()
            assert drained.wait(30)
            producer.publish({"n": 1}, routing_key=queue.name, retry=True)

    task = spawn(publish_across_the_drain)
    wait_until(publishing.is_set)
    pools.connections.drain()
    pools.producers.drain()
    drained.set()
    join_all([task])
    assert seen[0].connection is None  # closed when it came back
    with pools.producers[connection].acquire(block=True, timeout=30) as producer:
        assert producer.connection is not seen[0]
        producer.publish({"n": 2}, routing_key=queue.name, retry=True)
    assert sorted(m["n"] for m in drain(amqp_url, queue, 2)) == [1, 2]
