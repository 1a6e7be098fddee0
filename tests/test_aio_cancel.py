"""greenpools.aio.Pool under cancellation: a cancelled task never takes, and
never loses, a resource or a place.

The worst spot is a cancel that lands in the same loop turn as the grant:
the waiter's future already holds the resource when the cancel arrives,
and the task sees ``CancelledError``; the grant must pass on.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from aiohelpers import Thing, assert_balanced, run, settle, until, waiting

from greenpools import PoolTimeout, aio


async def make_thing() -> Thing:
    await asyncio.sleep(0)
    return Thing()


async def assert_can_take_limit(pool: aio.Pool[Thing]) -> None:
    """Every place is usable: ``limit`` acquires succeed without waiting."""
    held = [await pool.acquire(timeout=0) for _ in range(pool.limit)]
    for thing in held:
        await pool.release(thing)


def test_a_cancel_in_the_same_turn_as_the_grant_passes_the_grant_on() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            first = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 1)
            second = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 2)
            await pool.release(held)  # granted to first, which has not run yet
            first.cancel()  # the same turn: first's future already holds the grant
            with pytest.raises(asyncio.CancelledError):
                await first
            assert await second is held
            await pool.release(held)
            assert_balanced(pool)
            await assert_can_take_limit(pool)

    run(scenario())


def test_a_cancel_in_the_same_turn_as_a_permission_to_create_gives_the_place_back() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, connection_errors=(ConnectionError,)) as pool:
            held = await pool.acquire()
            first = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 1)
            pool.replace(held)  # its place goes to first, as a permission to create
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            assert pool.get_stats()["pool_size"] == 0
            await assert_can_take_limit(pool)

    run(scenario())


def test_a_task_cancelled_inside_async_with_returns_its_resource() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, reset=lambda r: None) as pool:
            inside = asyncio.Event()

            async def hold() -> None:
                async with pool.acquired():
                    inside.set()
                    await asyncio.Event().wait()  # until cancelled

            task = asyncio.create_task(hold())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert_balanced(pool)
            await assert_can_take_limit(pool)

    run(scenario())


def test_a_task_cancelled_while_creating_gives_its_place_back() -> None:
    async def scenario() -> None:
        started, never = asyncio.Event(), asyncio.Event()

        async def slow_create() -> Thing:
            started.set()
            await never.wait()
            return Thing()

        async with aio.Pool(slow_create, 1) as pool:
            task = asyncio.create_task(pool.acquire())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = pool.get_stats()
            assert (stats["pool_size"], stats["connections_errors"]) == (0, 1)

    run(scenario())


@pytest.mark.parametrize("how", ["wait_for", "timeout"])
def test_timeouts_around_acquire_never_leak(how: str) -> None:
    """``asyncio.wait_for`` and ``asyncio.timeout`` cancel the acquire; some
    of the cancels land while a grant is on its way."""

    async def scenario() -> None:
        async with aio.Pool(make_thing, 3) as pool:

            async def one(rng: random.Random) -> None:
                try:
                    if how == "wait_for":
                        thing = await asyncio.wait_for(pool.acquire(), rng.choice([0, 1e-4]))
                    else:
                        async with asyncio.timeout(rng.choice([0, 1e-4])):
                            thing = await pool.acquire()
                except (asyncio.TimeoutError, TimeoutError):
                    return
                await asyncio.sleep(0)
                await pool.release(thing)

            for round_ in range(20):
                rng = random.Random(round_)
                await asyncio.gather(*(one(rng) for _ in range(30)))
                assert_balanced(pool)
            await assert_can_take_limit(pool)

    run(scenario())


def test_a_cancellation_storm_leaves_every_place_usable() -> None:
    async def scenario() -> None:
        rng = random.Random(22)
        async with aio.Pool(make_thing, 4) as pool:

            async def user() -> None:
                for _ in range(20):
                    async with pool.acquired():
                        for _ in range(rng.randrange(3)):
                            await asyncio.sleep(0)

            for _ in range(10):
                tasks = [asyncio.create_task(user()) for _ in range(40)]
                for _ in range(30):
                    await asyncio.sleep(0)
                    rng.choice(tasks).cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                assert_balanced(pool)
                assert pool.get_stats()["pool_size"] <= 4
            await assert_can_take_limit(pool)

    run(scenario())


def test_a_timed_out_waiter_leaves_the_queue() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            with pytest.raises(PoolTimeout):
                await pool.acquire(timeout=0.001)
            assert waiting(pool) == 0
            await pool.release(held)
            await settle()
            assert_balanced(pool)

    run(scenario())
