"""The pool algorithm while the broker blocks its connections: the SlotPool
transitions ``_block`` / ``_unblock`` (which the kombu layer calls when a
connection hears ``connection.blocked`` / ``connection.unblocked``) and
``_retire_lent_resource``, on plain pools, every backend and both builds.

The real broker's side is in test_blocked.py; here the scenarios spell out
who waits and who releases, synchronised on the pool's own counters.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import pytest
from helpers import (
    HANG_TIMEOUT,
    Factory,
    assert_balanced,
    queue_acquirers,
    start_acquirer,
)

import greenpools
import greenpools.exceptions
from greenpools import ConnectionBlocked, Pool, PoolClosed, PoolTimeout
from greenpools.kombu.connections import ConnectionPool
from greenpools.kombu.producers import ProducerPool

REASON = "connection blocked, see broker logs"


def blocked_pool(limit: int = 2, **options: Any) -> tuple[Pool[Any], Factory, list[Any]]:
    """A pool with one idle resource, blocked by it."""
    factory = Factory()
    pool: Pool[Any] = Pool(factory, limit, **options)
    first = pool.acquire()
    pool.release(first)
    pool._block(first, REASON)
    return pool, factory, [first]


def test_connection_blocked_is_a_pool_timeout_and_a_kombu_limit_exceeded() -> None:
    assert greenpools.ConnectionBlocked is greenpools.exceptions.ConnectionBlocked
    assert issubclass(ConnectionBlocked, PoolTimeout)
    assert issubclass(ConnectionBlocked, kombu.exceptions.LimitExceeded)
    pool = ConnectionPool("memory://", limit=1)
    pool._block(None, REASON)
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded) as raised:
        pool.acquire(block=False)
    assert isinstance(raised.value, ConnectionBlocked)
    assert pool.name in str(raised.value) and REASON in str(raised.value)
    pool.close()


def test_a_blocked_pool_lends_nothing_and_makes_nothing() -> None:
    pool, factory, (idle,) = blocked_pool()
    with pytest.raises(ConnectionBlocked):
        pool.acquire(block=False)
    with pytest.raises(ConnectionBlocked, match=r"within 0\.05 s"):
        pool.acquire(block=True, timeout=0.05)
    # The wait that ran out settled the pool: the lock-free path must stay off.
    with pytest.raises(ConnectionBlocked):
        pool.acquire(block=False)
    assert len(factory.made) == 1
    stats = pool.get_stats()
    assert stats["connections_blocked"] == 1 and stats["requests_timeouts"] == 1
    pool._unblock(idle)
    assert pool.acquire(block=False) is idle  # lent again, the lock-free way
    pool.release(idle)
    assert_balanced(pool)
    pool.close()


def test_waiters_are_held_through_the_block_and_served_in_order_after_it() -> None:
    pool, factory, (idle,) = blocked_pool(limit=2)
    pool._unblock(idle)
    held = pool.acquire()
    other = pool.acquire()  # the pool is at its limit
    queued = queue_acquirers(pool, 2, timeout=HANG_TIMEOUT)
    pool._block(held, REASON)
    later = start_acquirer(pool, timeout=HANG_TIMEOUT)
    pool.release(other)  # not handed to a waiter while blocked: it goes idle
    assert pool.get_stats()["pool_available"] == 1
    assert pool.get_stats()["requests_waiting"] == 3
    assert not any(task.done.is_set() for task in [*queued, later])

    pool._unblock(held)  # the idle one goes to the oldest
    assert queued[0].join() is other
    assert not queued[1].done.is_set() and not later.done.is_set()
    pool.release(held)
    assert queued[1].join() is held
    assert not later.done.is_set()
    pool.release(other)
    assert later.join() is other
    pool.release(other)
    pool.release(held)
    assert len(factory.made) == 2
    assert_balanced(pool)
    pool.close()


def test_the_pool_lends_again_only_when_every_blocked_connection_is_unblocked() -> None:
    pool, _, (first,) = blocked_pool()
    second = object()
    pool._block(second, REASON)
    assert pool.get_stats()["connections_blocked"] == 2
    pool._unblock(first)
    with pytest.raises(ConnectionBlocked):
        pool.acquire(block=False)
    pool._unblock(second)
    pool._unblock(second)  # more unblocks than blocks change nothing
    assert pool.get_stats()["connections_blocked"] == 0
    pool.release(pool.acquire(block=False))
    pool.close()


def test_a_held_waiter_times_out_with_connection_blocked() -> None:
    pool, _, _ = blocked_pool(limit=1)
    waiter = start_acquirer(pool, timeout=0.2)
    with pytest.raises(ConnectionBlocked, match=r"within 0\.2 s"):
        waiter.join()
    assert pool.get_stats()["requests_waiting"] == 0
    pool.close()


def test_closing_a_blocked_pool_refuses_the_held_waiters() -> None:
    pool, _, _ = blocked_pool(limit=1)
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT)
    pool.close()
    with pytest.raises(PoolClosed):
        waiter.join()


def test_max_waiting_counts_the_held_callers() -> None:
    pool, _, _ = blocked_pool(limit=1, max_waiting=1)
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT)
    with pytest.raises(greenpools.TooManyRequests):
        pool.acquire(block=True, timeout=HANG_TIMEOUT)
    pool.close()
    with pytest.raises(PoolClosed):
        waiter.join()


def test_blocked_and_unblocked_events_reach_the_listeners() -> None:
    factory = Factory()
    pool: Pool[Any] = Pool(factory, 1)
    heard: list[tuple[str, Any, Any]] = []
    for event in ("blocked", "unblocked"):
        greenpools.listen(pool, event, lambda p, r, s, event=event: heard.append((event, r, s)))
    thing = pool.acquire()
    pool._block(thing, REASON)
    pool._block(thing, REASON)  # a second connection told: the pool was blocked already
    pool._unblock(thing)
    pool._unblock(thing)
    assert [(event, resource) for event, resource, _ in heard] == [
        ("blocked", thing), ("unblocked", thing)]
    assert heard[0][2] is None and heard[1][2] >= 0
    pool.release(thing)
    pool.close()


def test_the_stall_warning_says_the_broker_blocked_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool, _, (idle,) = blocked_pool(limit=1)
    waiter = start_acquirer(pool)  # no timeout
    with caplog.at_level(logging.WARNING, logger="greenpools"):
        pool._warn_stalled(pool._held[0].since + 60, 30)
    assert "the broker has blocked the pool's connections" in caplog.text
    assert REASON in caplog.text
    pool._unblock(idle)
    pool.release(waiter.join())
    pool.close()


def test_a_resource_retired_in_doubt_is_never_lent_again() -> None:
    factory = Factory()
    pool: Pool[Any] = Pool(factory, 1)
    doubtful = pool.acquire()
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT)
    pool._retire_lent_resource(doubtful)  # its place goes to the waiter at once
    fresh = waiter.join()
    assert fresh is not doubtful and not doubtful.closed
    pool.replace(doubtful)  # its holder gives it back as broken: closed, counted once
    assert doubtful.closed == 1
    assert pool.get_stats()["connections_lost"] == 1
    pool.release(fresh)
    assert pool.acquire(block=False) is fresh
    pool.release(fresh)
    assert_balanced(pool)
    pool.close()


def test_a_resource_retired_in_doubt_and_released_closes() -> None:
    pool: Pool[Any] = Pool(Factory(), 1)
    doubtful = pool.acquire()
    pool._retire_lent_resource(doubtful)
    pool.release(doubtful)
    assert doubtful.closed == 1
    assert pool.get_stats()["connections_lost"] == 1
    with pytest.raises(ValueError, match="released twice"):
        pool.release(doubtful)
    assert pool.acquire(block=False) is not doubtful
    pool.close()


def test_an_unblocked_pool_wakes_callers_to_create() -> None:
    pool, factory, (idle,) = blocked_pool(limit=2)
    pool._unblock(idle)
    held = pool.acquire()
    pool._block(held, REASON)
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT)
    pool._unblock(held)  # a free place: the waiter creates
    made = waiter.join()
    assert made is not held and len(factory.made) == 2
    pool.release(made)
    pool.release(held)
    pool.close()


def test_plain_timeouts_are_pool_timeouts_again_after_the_unblock() -> None:
    pool, _, (idle,) = blocked_pool(limit=1)
    pool._unblock(idle)
    lent = pool.acquire()
    with pytest.raises(PoolTimeout) as raised:
        pool.acquire(block=True, timeout=0.01)
    assert not isinstance(raised.value, ConnectionBlocked)
    pool.release(lent)
    pool.close()


def test_a_producer_wait_that_runs_out_while_the_connections_are_blocked_says_so() -> None:
    connections = ConnectionPool("memory://", limit=2)
    producers = ProducerPool(connections, limit=1)
    held = producers.acquire(block=True, timeout=1)
    connections._block(held.connection, REASON)
    # Waiting for the one producer, behind the blocked connections.
    with pytest.raises(ConnectionBlocked) as raised:
        producers.acquire(block=True, timeout=0.05)
    assert isinstance(raised.value, kombu.exceptions.LimitExceeded)
    assert producers.name in str(raised.value) and REASON in str(raised.value)
    held.release()
    # A free producer, then the wait for a connection: the connection pool says so.
    with pytest.raises(ConnectionBlocked, match=connections.name):
        producers.acquire(block=True, timeout=0.05)
    connections._unblock(held.connection)
    producers.acquire(block=True, timeout=1).release()
    producers.close()
    connections.close()
