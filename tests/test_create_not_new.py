"""A ``create`` that returns an object the pool holds already is refused.

Slots are found by the resource's identity, so a second slot for one
object (a shared singleton, a small cached int) would take the first
one's entry and its place would be lost for good.  The creating acquire
gets a ``ValueError`` naming ``create`` and the object, the place goes
back (to a waiter first), and the object is left alone: it is lent or
idle in the pool under its first slot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import pytest
from aiohelpers import run
from helpers import (
    Thing,
    assert_balanced,
    assert_can_take_limit,
    start_acquirer,
    wait_until,
)

from greenpools import Pool, Resource, aio, pools
from greenpools.core import lifecycle

NOT_NEW = r"create returned <Thing #\d+>, which pool 'dup' already holds: create must return"


def first_then_new(*objects: Any) -> Callable[[], Any]:
    """``create`` returning ``objects`` in turn, then new Things."""
    queue = list(objects)
    return lambda: queue.pop(0) if queue else Thing()


@pytest.fixture
def quick_upkeep(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lifecycle, "MAX_INTERVAL", 0.01)
    yield


def test_a_small_cached_int_is_refused_and_no_place_is_lost(make_pool: Any) -> None:
    pool = make_pool(lambda: 5, 2, name="five")
    assert pool.acquire() == 5
    with pytest.raises(ValueError) as info:
        pool.acquire()
    assert str(info.value) == (
        "create returned 5, which pool 'five' already holds: "
        "create must return a new object each call")
    stats = pool.get_stats()
    assert (stats["pool_size"], stats["connections_num"], stats["connections_errors"]) == (1, 1, 1)
    pool.release(5)
    assert_balanced(pool)
    assert pool.acquire() == 5  # the one place of 5 is still there, and 5 is idle in it


def test_a_lent_singleton_is_left_alone_and_its_holder_releases_it(make_pool: Any) -> None:
    shared = Thing()
    pool = make_pool(first_then_new(shared, shared), 2, name="dup")
    assert pool.acquire() is shared
    with pytest.raises(ValueError, match=NOT_NEW):
        pool.acquire()
    assert shared.closed == 0
    other = pool.acquire()  # the refused creation's place is free again
    assert other is not shared
    pool.release(shared)
    pool.release(other)
    assert_balanced(pool)
    assert_can_take_limit(pool)
    assert shared.closed == 0


def test_the_place_goes_to_a_waiter(make_pool: Any) -> None:
    shared = Thing()
    pool = make_pool(first_then_new(shared, Thing(), shared), 2, name="dup")
    held, broken = pool.acquire(), pool.acquire()
    creator = start_acquirer(pool, timeout=30)
    pool.replace(broken)  # its place goes to the waiter, who creates: shared again
    with pytest.raises(ValueError, match=NOT_NEW):
        creator.join()
    assert pool.get_stats()["pool_size"] == 1
    pool.release(held)
    assert_balanced(pool)
    assert_can_take_limit(pool)
    assert shared.closed == 0


def test_an_object_a_reset_retired_is_still_held_until_returned(make_pool: Any) -> None:
    shared = Thing()
    pool = make_pool(first_then_new(shared, shared), 2, name="dup")
    assert pool.acquire() is shared
    pool.resize(2, reset=True)  # shared closes when its holder gives it back
    with pytest.raises(ValueError, match=NOT_NEW):
        pool.acquire()
    assert shared.closed == 0
    pool.release(shared)
    assert shared.closed == 1
    assert_balanced(pool)
    assert_can_take_limit(pool)


def test_a_subclass_error_names_new() -> None:
    shared = Thing()

    class Singleton(Resource[Thing]):
        def new(self) -> Thing:
            return shared

    pool = Singleton(2, name="dup")
    try:
        pool.acquire()
        with pytest.raises(ValueError, match=r"^new\(\) returned <Thing #\d+>, which pool 'dup'"):
            pool.acquire()
    finally:
        pool.close()


def test_preload_raises_it_from_the_constructor() -> None:
    shared = Thing()
    with pytest.raises(ValueError, match=NOT_NEW):
        Pool(lambda: shared, 3, preload=2, name="dup")
    assert shared.closed == 0


def test_min_size_upkeep_logs_it_backs_off_and_keeps_the_books(
        make_pool: Any, quick_upkeep: None, caplog: pytest.LogCaptureFixture) -> None:
    shared = Thing()
    calls: list[int] = []
    making = threading.Lock()  # held by a creation in flight
    closing = False

    def create() -> Thing:
        with making:
            if closing:  # after close, shared would be new again: closed as such
                raise RuntimeError("the test is closing the pool")
            calls.append(1)
            return shared

    caplog.set_level(logging.WARNING, logger="greenpools")
    pool = make_pool(create, 3, min_size=2, name="dup")
    wait_until(lambda: len(calls) >= 4)
    assert "must return a new object each call" in caplog.text
    wait_until(lambda: (pool.get_stats()["pool_size"], pool.get_stats()["pool_available"])
               == (1, 1))
    assert len(pool._slots) == 1 and pool._idle[0].resource is shared
    # Backing off, as after any failed creation: not a loop at full speed.
    assert len(calls) < 50
    with making:  # no creation in flight, none to come
        closing = True
    pool.close()
    assert shared.closed == 1  # once, by the close of its own slot


def test_asyncio_pool() -> None:
    shared = Thing()

    async def create() -> Thing:
        return shared

    async def scenario() -> None:
        pool = aio.Pool(first_then_new(shared, shared), 2, name="dup")
        async with aio.Pool(create, 2, name="dup") as coroutine_pool:
            assert await coroutine_pool.acquire() is shared
            with pytest.raises(ValueError, match=NOT_NEW):
                await coroutine_pool.acquire()
            await coroutine_pool.release(shared)
            assert coroutine_pool.get_stats()["pool_size"] == 1
        shared.closed = 0
        async with pool:
            assert await pool.acquire() is shared
            with pytest.raises(ValueError, match=NOT_NEW):
                await pool.acquire()
            other = await pool.acquire()
            await pool.release(other)
            await pool.release(shared)
            stats = pool.get_stats()
            assert (stats["pool_size"], stats["pool_available"]) == (2, 2)
            assert not [s for s in pool._slots.values() if s.lent]
            assert shared.closed == 0

    run(scenario())


def test_producer_pool_names_producer() -> None:
    shared = kombu.Producer(None)
    connections = pools.ConnectionPool("memory://", limit=2)
    producers = pools.ProducerPool(connections, limit=2, Producer=lambda channel: shared)
    try:
        producers.acquire().release()
        held = producers.acquire()
        with pytest.raises(ValueError, match=r"^Producer returned <Producer: .*>, which pool"):
            producers.acquire()
        producers.release(held)
        assert_balanced(producers)
        assert_balanced(connections)
    finally:
        producers.close()
        connections.close()


def test_configure_never_runs_on_an_object_another_slot_holds(make_pool: Any) -> None:
    """Refused before ``configure``: a failing one would close it under its holder."""
    shared = Thing()
    configured: list[Any] = []

    def configure(thing: Thing) -> None:
        configured.append(thing)
        if len(configured) > 1:
            raise RuntimeError("configured twice")

    pool = make_pool(first_then_new(shared, shared), 2, name="dup", configure=configure)
    assert pool.acquire() is shared
    with pytest.raises(ValueError, match=NOT_NEW):
        pool.acquire()
    assert configured == [shared]
    assert shared.closed == 0
    pool.release(shared)
    assert_balanced(pool)


def test_configure_never_runs_on_it_in_the_asyncio_pool() -> None:
    shared = Thing()
    configured: list[Any] = []

    async def scenario() -> None:
        async with aio.Pool(first_then_new(shared, shared), 2, name="dup",
                            configure=configured.append) as pool:
            assert await pool.acquire() is shared
            with pytest.raises(ValueError, match=NOT_NEW):
                await pool.acquire()
            await pool.release(shared)
            assert_balanced(pool)

    run(scenario())
    assert configured == [shared]


class Lazy(Resource[Any]):
    """kombu's ChannelPool's pattern: ``new()`` makes a promise, ``prepare``
    turns it into the object lent."""

    def __init__(self, target: Callable[[], Any], limit: int) -> None:
        self.target = target
        super().__init__(limit=limit, name="lazy")

    def new(self) -> Any:
        return lambda: self.target()

    def prepare(self, resource: Any) -> Any:
        return resource() if callable(resource) else resource


def test_a_prepare_that_returns_an_object_another_slot_holds_is_refused() -> None:
    shared = Thing()
    pool = Lazy(first_then_new(shared, shared), 2)
    try:
        first = pool.acquire()
        assert first is shared
        with pytest.raises(ValueError, match=r"^prepare returned <Thing #\d+>, which pool "
                                             r"'lazy' already holds"):
            pool.acquire()
        assert len(pool._slots) == 2  # each object in its own slot still
        pool.release(first)
        assert_balanced(pool)
        taken = [pool.acquire(block=True, timeout=1) for _ in range(2)]  # both places work
        assert taken[0] is not taken[1]
        for thing in taken:
            pool.release(thing)
        assert_balanced(pool)
    finally:
        pool.close()
