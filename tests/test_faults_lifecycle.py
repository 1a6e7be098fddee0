"""Faults against the real RabbitMQ: min_size, reconnection, readiness, keepalive.

Every connection goes through ``tests/faultproxy.py`` (a loopback proxy in
a process of its own) so that a test can refuse, cut or count
connections.  Each scenario checks that nothing confirmed is lost, that
no waiter hangs past its timeout and that the pool's books balance.
"""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from brokers import amqp_url, drain, make_queue  # noqa: F401  (fixtures)
from faultproxy import FaultProxy
from helpers import HANG_TIMEOUT, assert_balanced, join_all, spawn, wait_until
from kombu import Connection, Queue
from kombu.exceptions import OperationalError

from greenpools import PoolTimeout, pools
from greenpools.core import lifecycle

pytestmark = pytest.mark.broker

HEARTBEAT = 2


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(amqp_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        yield proxy


@pytest.fixture
def quick_upkeep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnection back-off from 0.05s instead of 1s (it still doubles)."""
    monkeypatch.setattr(lifecycle, "MAX_INTERVAL", 0.05)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Pools to close after the test."""
    made: list[Any] = []
    yield made
    for pool in made:
        pool.close()


def confirming(url: str, **options: Any) -> Connection:
    return Connection(url, transport_options={"confirm_publish": True}, **options)


def publish(conn: Any, queue: Queue, body: Any) -> None:
    """Publish with a publisher confirm and no retry: a dead connection raises."""
    conn.Producer().publish(body, exchange=queue.exchange, routing_key=queue.routing_key,
                            serializer="json", retry=False)


def free_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_balanced_after_upkeep(pool: Any) -> None:
    """:func:`assert_balanced` once upkeep has stopped touching idle
    connections: while it keeps one alive or connects it for min_size,
    that one is out of the idle stack."""
    pool._heartbeat_interval = None  # no keepalive pass starts after this one
    pool.min_size = 0  # nor a connection attempt
    wait_until(lambda: pool.get_stats()["pool_available"] == pool.get_stats()["pool_size"])
    assert_balanced(pool)


def idle_connections_connected(pool: Any) -> bool:
    return all(slot.resource.connected for slot in list(pool._idle))


# -- bug 2: min_size means connected connections --------------------------------------


def test_min_size_connections_are_connected(amqp_url: str, proxy: FaultProxy,
                                            closing: list[Any]) -> None:
    pool = pools.ConnectionPool(proxy.url(amqp_url), limit=4, min_size=2)
    closing.append(pool)
    wait_until(lambda: pool.get_stats()["pool_available"] == 2)
    wait_until(lambda: proxy.stats()["open"] == 2, message="min_size did not connect")
    assert idle_connections_connected(pool)
    assert pool.get_stats()["connections_num"] == 2


def test_min_size_with_nothing_listening_fails_and_reports(
        closing: list[Any], quick_upkeep: None) -> None:
    failures: list[Any] = []
    pool = pools.ConnectionPool(
        f"amqp://guest:guest@127.0.0.1:{free_port()}//", limit=4, min_size=2,
        reconnect_timeout=0.3, reconnect_failed=failures.append)
    closing.append(pool)
    wait_until(lambda: failures, message="reconnect_failed was never called")
    assert failures[0] is pool
    stats = pool.get_stats()
    assert stats["connections_errors"] >= 2, stats
    assert stats["pool_available"] == 0 and stats["connections_num"] == 0, stats


def test_a_refused_first_use_counts_as_a_connection_error(closing: list[Any]) -> None:
    """Without min_size a connection connects in its holder's hands: a broker
    that refuses must still show in the pool's statistics."""
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    pool = pools.ConnectionPool(Connection(f"{dead};{dead}", connect_timeout=1), limit=2)
    closing.append(pool)
    with pytest.raises(OperationalError), pool.acquire(block=True) as conn:
        conn.default_channel  # noqa: B018  (connects)
    stats = pool.get_stats()
    assert stats["connections_errors"] == 1, stats  # one use, whatever its tries
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1), stats


def test_plain_acquire_still_connects_lazily(proxy: FaultProxy, amqp_url: str,
                                             closing: list[Any]) -> None:
    pool = pools.ConnectionPool(proxy.url(amqp_url), limit=2)
    closing.append(pool)
    conn = pool.acquire(block=True, timeout=5)
    assert not conn.connected and proxy.stats()["accepted"] == 0
    conn.release()


# -- readiness ---------------------------------------------------------------------------


def test_wait_returns_once_min_size_is_connected(amqp_url: str, proxy: FaultProxy,
                                                  closing: list[Any]) -> None:
    group = pools.Connections(limit=4, min_size=2)
    pool = group[proxy.url(amqp_url)]
    closing.append(pool)
    pool.wait(timeout=HANG_TIMEOUT)
    assert pool.get_stats()["pool_available"] == 2
    assert idle_connections_connected(pool)
    assert group[proxy.url(amqp_url)] is pool


def test_wait_times_out_with_the_count_then_succeeds_once_reachable(
        amqp_url: str, proxy: FaultProxy, closing: list[Any], quick_upkeep: None) -> None:
    proxy.refuse()
    group = pools.Connections(limit=4, min_size=2)
    pool = group[proxy.url(amqp_url)]
    closing.append(pool)
    started = time.monotonic()
    with pytest.raises(PoolTimeout, match="0 of min_size 2"):
        pool.wait(timeout=0.5)
    assert time.monotonic() - started < 10, "wait() overran its timeout"
    assert not pool.closed
    proxy.pass_through()
    group[proxy.url(amqp_url)].wait(timeout=HANG_TIMEOUT)
    assert idle_connections_connected(pool) and pool.get_stats()["pool_available"] == 2


def test_producer_pool_wait_covers_its_connections(amqp_url: str, proxy: FaultProxy,
                                                   closing: list[Any],
                                                   quick_upkeep: None) -> None:
    proxy.refuse()
    connections = pools.ConnectionPool(proxy.url(amqp_url), limit=2, min_size=1)
    producers = pools.ProducerPool(connections, limit=2, min_size=1)
    closing.extend([producers, connections])
    with pytest.raises(PoolTimeout, match="0 of min_size 1"):
        producers.wait(timeout=0.3)
    proxy.pass_through()
    producers.wait(timeout=HANG_TIMEOUT)
    assert connections.get_stats()["pool_available"] == 1


# -- the broker unreachable at start, or for good ---------------------------------------


def test_unreachable_at_start_refills_and_publishing_resumes(
        amqp_url: str, proxy: FaultProxy, make_queue: Any, closing: list[Any],
        quick_upkeep: None) -> None:
    queue = make_queue(amqp_url)
    proxy.refuse()
    connections = pools.ConnectionPool(confirming(proxy.url(amqp_url)), limit=4, min_size=2)
    producers = pools.ProducerPool(connections, limit=4)
    closing.extend([producers, connections])
    wait_until(lambda: connections.get_stats()["connections_errors"] >= 2)
    assert connections.get_stats()["pool_available"] == 0
    proxy.pass_through()  # the broker is back: nobody calls the pool, it refills itself
    wait_until(lambda: connections.get_stats()["pool_available"] == 2,
               message="the pool did not refill to min_size")
    assert idle_connections_connected(connections)
    confirmed: list[str] = []

    def send(task: int) -> None:
        for n in range(5):
            with producers.acquire(block=True, timeout=10) as producer:
                producer.publish({"id": f"{task}-{n}"}, exchange=queue.exchange,
                                 routing_key=queue.routing_key, serializer="json",
                                 retry=True)
            confirmed.append(f"{task}-{n}")

    join_all([spawn(send, task) for task in range(4)])
    received = drain(amqp_url, queue, expected=len(confirmed))
    assert sorted(body["id"] for body in received) == sorted(confirmed)
    assert len(confirmed) == 20
    assert_balanced(connections)
    assert_balanced(producers)


def test_never_reachable_calls_reconnect_failed_and_acquires_end_in_time(
        amqp_url: str, proxy: FaultProxy, closing: list[Any], quick_upkeep: None) -> None:
    proxy.refuse()
    failures: list[Any] = []
    connections = pools.ConnectionPool(
        confirming(proxy.url(amqp_url), connect_timeout=1), limit=1, min_size=1,
        reconnect_timeout=0.3, reconnect_failed=failures.append)
    producers = pools.ProducerPool(connections, limit=2)
    closing.extend([producers, connections])
    wait_until(lambda: failures, message="reconnect_failed was never called")
    assert failures[0] is connections
    failed_to_connect = (OperationalError, *connections.connection_errors)

    def publish_once() -> float:
        started = time.monotonic()
        with pytest.raises(failed_to_connect):
            with producers.acquire(block=True, timeout=1) as producer:
                producer.publish({"id": "never"}, routing_key="greenpools-nowhere",
                                 retry=True, retry_policy={"max_retries": 1,
                                                           "interval_start": 0})
        return time.monotonic() - started

    def wait_for_the_connection() -> float:
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            connections.acquire(block=True, timeout=0.5)
        return time.monotonic() - started

    held = connections.acquire(block=True, timeout=1)  # lazy, as in kombu: no I/O yet
    waited = spawn(wait_for_the_connection).join()  # the only one is lent
    with pytest.raises(failed_to_connect):
        with held:
            held.ensure_connection(max_retries=0)
    assert not connections._lent_slots()
    published = spawn(publish_once).join()
    assert waited < 10 and published < 20, (waited, published)  # bounded, not precise
    # The callers' lazy connection went back unconnected; upkeep made none.
    assert connections.get_stats()["connections_num"] == 1
    assert not any(slot.resource.connected for slot in connections._idle)
    assert_balanced_after_upkeep(connections)
    assert_balanced(producers)


# -- keepalive of idle connections -------------------------------------------------------


def test_idle_connection_with_heartbeat_stays_open(amqp_url: str, proxy: FaultProxy,
                                                   make_queue: Any,
                                                   closing: list[Any]) -> None:
    """Idle for five heartbeat intervals: the broker would close a connection
    that missed two; the pool's upkeep sends them while it sits idle."""
    queue = make_queue(amqp_url)
    pool = pools.ConnectionPool(confirming(proxy.url(amqp_url), heartbeat=HEARTBEAT), limit=2)
    closing.append(pool)
    conn = pool.acquire(block=True, timeout=5)
    publish(conn, queue, {"id": "before"})
    assert conn.get_heartbeat_interval() == HEARTBEAT
    conn.release()
    accepted = proxy.stats()["accepted"]
    time.sleep(5 * HEARTBEAT)  # the scenario itself: a quiet period
    again = pool.acquire(block=True, timeout=5)
    assert again is conn and again.connected
    publish(again, queue, {"id": "after"})
    again.release()
    assert proxy.stats()["accepted"] == accepted, "the connection was re-made"
    assert pool.get_stats()["connections_lost"] == 0
    assert sorted(b["id"] for b in drain(amqp_url, queue, expected=2)) == ["after", "before"]
    assert_balanced_after_upkeep(pool)


def test_idle_connection_cut_is_replaced_before_the_next_acquire(
        amqp_url: str, proxy: FaultProxy, make_queue: Any, closing: list[Any]) -> None:
    queue = make_queue(amqp_url)
    pool = pools.ConnectionPool(confirming(proxy.url(amqp_url), heartbeat=HEARTBEAT), limit=2)
    closing.append(pool)
    conn = pool.acquire(block=True, timeout=5)
    publish(conn, queue, {"id": "before"})
    conn.release()
    proxy.cut()
    wait_until(lambda: pool.get_stats()["connections_lost"] == 1, timeout=5 * HEARTBEAT,
               message="the dead idle connection was not noticed")
    wait_until(lambda: pool.get_stats()["pool_available"] == 1, timeout=5 * HEARTBEAT,
               message="the dead idle connection was not replaced")
    fresh = pool.acquire(block=True, timeout=5)
    assert fresh is not conn and fresh.connected
    publish(fresh, queue, {"id": "after"})
    fresh.release()
    assert proxy.stats()["accepted"] == 2
    assert sorted(b["id"] for b in drain(amqp_url, queue, expected=2)) == ["after", "before"]
    assert_balanced_after_upkeep(pool)


def test_lent_connections_are_never_touched_by_keepalive(
        amqp_url: str, proxy: FaultProxy, closing: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    serviced: list[Any] = []
    keep_alive = pools.ConnectionPool._keep_alive

    def spy(pool: Any, conn: Any) -> None:
        serviced.append(conn)
        keep_alive(pool, conn)

    monkeypatch.setattr(pools.ConnectionPool, "_keep_alive", spy)
    pool = pools.ConnectionPool(confirming(proxy.url(amqp_url), heartbeat=HEARTBEAT), limit=2)
    closing.append(pool)
    lent = pool.acquire(block=True, timeout=5)
    idle = pool.acquire(block=True, timeout=5)
    lent.connect()
    idle.connect()
    idle.release()
    wait_until(lambda: serviced.count(idle) >= 2)
    assert lent not in serviced
    lent.release()
