"""Release belongs to the lease: kombu code releases inside ``with``.

``with pool.acquire() as conn: ... conn.release()`` is common kombu code.
The exit after such a release must do nothing (kombu itself queues the
connection twice: 11 queued for a limit of 10), even when the object was
lent again meanwhile to another task, whose lease the exit must leave
alone.  A release of a handle whose lease has ended is still the clear
``ValueError``.  For connections, channels, producers and generic leases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from brokers import clean_global_pools, unique_name  # noqa: F401  (autouse)
from helpers import Factory, join_all, spawn, wait_until
from kombu import Connection, Producer

import greenpools
from greenpools import LimitExceeded, pools


def memory_url() -> str:
    return f"memory://localhost/{unique_name('vhost')}"


class Kind:
    """One kind of pool, and how a holder enters a ``with`` on what it lends."""

    def __init__(self, name: str, make: Callable[[int], Any],
                 lease: Callable[[Any], Any]) -> None:
        self.name = name
        self.make = make
        self.lease = lease  # pool -> context manager whose __enter__ lends

    def __repr__(self) -> str:
        return self.name


def _generic(limit: int) -> Any:
    return greenpools.Pool(Factory(), limit)


def _connections(limit: int) -> Any:
    return pools.ConnectionPool(Connection(memory_url()), limit=limit)


def _channels(limit: int) -> Any:
    return pools.ChannelPool(Connection(memory_url()), limit=limit)


def _producers(limit: int) -> Any:
    return pools.ProducerPool(_connections(limit), limit=limit)


KINDS = [
    Kind("generic", _generic, lambda pool: pool.acquired()),
    Kind("connections", _connections, lambda pool: pool.acquire(block=True)),
    Kind("channels", _channels, lambda pool: pool.acquire(block=True)),
    Kind("producers", _producers, lambda pool: pool.acquire(block=True)),
]


@pytest.fixture(params=KINDS, ids=repr)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def made() -> Iterator[list[Any]]:
    pools_made: list[Any] = []
    yield pools_made
    for pool in pools_made:
        pool.force_close_all()


def _release(kind: Kind, pool: Any, held: Any) -> None:
    """What the holder's code calls: ``obj.release()``, or the pool's for generic ones."""
    if kind.name == "generic":
        pool.release(held)
    else:
        held.release()


def test_a_release_inside_with_makes_the_exit_a_no_op(kind: Kind, made: list[Any]) -> None:
    pool = kind.make(10)
    made.append(pool)
    for _ in range(3):
        with kind.lease(pool) as held:
            _release(kind, pool, held)
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1)
    # Queued once, not twice: the limit still holds exactly.
    taken = [pool.acquire() for _ in range(10)]
    assert len({id(t) for t in taken}) == 10
    with pytest.raises(LimitExceeded):
        pool.acquire()
    for held in taken:
        _release(kind, pool, held)


def test_the_exit_leaves_alone_a_lease_another_task_took_since(
        kind: Kind, made: list[Any]) -> None:
    pool = kind.make(1)
    made.append(pool)
    entered, leave = threading.Event(), threading.Event()
    second: list[Any] = []

    def take_it_in_a_block() -> None:
        with kind.lease(pool) as held:
            second.append(held)
            entered.set()
            assert leave.wait(30)

    with kind.lease(pool) as held:
        _release(kind, pool, held)
        task = spawn(take_it_in_a_block)
        wait_until(entered.is_set)
        assert second[0] is held  # the same object, lent again
    # Our exit ended nothing: the other task still holds it.
    assert pool.get_stats()["pool_available"] == 0
    with pytest.raises(LimitExceeded):
        pool.acquire()
    leave.set()
    join_all([task])
    assert pool.get_stats()["pool_available"] == 1


def test_releasing_a_handle_whose_lease_ended_is_still_an_error(
        kind: Kind, made: list[Any]) -> None:
    pool = kind.make(2)
    made.append(pool)
    with kind.lease(pool) as held:
        _release(kind, pool, held)
        with pytest.raises(ValueError, match="released twice"):
            _release(kind, pool, held)
    with kind.lease(pool) as held:
        pass
    with pytest.raises(ValueError, match="released twice"):
        _release(kind, pool, held)
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["pool_available"]) == (1, 1)


def test_a_global_producer_released_inside_with_returns_its_connection_once() -> None:
    url = memory_url()
    with Connection(url) as conn:
        with pools.producers[conn].acquire(block=True) as producer:
            producer.release()
        with pools.connections[conn].acquire(block=True) as pooled:
            pooled.release()
    for group in (pools.producers, pools.connections):
        stats = group[Connection(url)].get_stats()
        assert stats["pool_size"] == stats["pool_available"] == 1


@pytest.mark.parametrize("ending", ["release", "replace"])
def test_the_pool_ending_the_lease_inside_with_leaves_the_exit_nothing_to_do(
        kind: Kind, made: list[Any], ending: str) -> None:
    """``pool.release(obj)`` or ``pool.replace(obj)`` in the block, as kombu allows."""
    pool = kind.make(2)
    made.append(pool)
    with kind.lease(pool) as held:
        getattr(pool, ending)(held)
    with pytest.raises(KeyError), kind.lease(pool) as held:  # the block's own error comes out
        getattr(pool, ending)(held)
        raise KeyError("the block's own")
    stats = pool.get_stats()
    assert stats["pool_size"] == stats["pool_available"] == (1 if ending == "release" else 0)
    with kind.lease(pool), kind.lease(pool):  # both places still there
        pass


def _publish_fails(conn: Any) -> None:
    raise OSError("the socket went away")


@pytest.mark.parametrize("make_producer", [
    lambda conn: conn.Producer(), lambda conn: Producer(conn),
], ids=["conn.Producer()", "Producer(conn)"])
def test_a_kombu_producer_failing_on_a_pooled_connection_raises_its_own_error(
        made: list[Any], make_producer: Callable[[Any], Any]) -> None:
    """kombu's ``Producer.__exit__`` replaces a pooled connection on any error;
    the connection's own exit, or a release in ``finally``, must not then
    hide that error with a ``NotCheckedOut``."""
    pool = _connections(2)
    made.append(pool)
    with pytest.raises(OSError, match="went away"), pool.acquire(block=True) as conn:
        with make_producer(conn):
            _publish_fails(conn)
    conn = pool.acquire(block=True)
    with pytest.raises(OSError, match="went away"):
        try:
            with make_producer(conn):
                _publish_fails(conn)
        finally:
            conn.release()
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["connections_lost"]) == (0, 2)  # both replaced
    with pool.acquire(block=True), pool.acquire(block=True):  # both places free again
        pass
