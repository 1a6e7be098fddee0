"""greenpools.aio.Pool and event loops: binding, a second loop, upkeep as tasks of the loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohelpers import Thing, assert_balanced, run, until

from greenpools import aio
from greenpools.aio.upkeep import AsyncUpkeep
from greenpools.backends.base import unpatched


async def make_thing() -> Thing:
    await asyncio.sleep(0)
    return Thing()


@pytest.fixture
def quiet() -> Any:
    """Silence the failures upkeep logs (a scenario provokes them)."""
    logger = logging.getLogger("greenpools")
    logger.disabled = True
    yield
    logger.disabled = False


def upkeep_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "greenpools upkeep"]


def test_a_pool_made_outside_a_loop_binds_to_the_first_that_uses_it() -> None:
    pool = aio.Pool(make_thing, 2, min_size=1)  # upkeep wanted, but no loop yet

    async def scenario() -> None:
        assert upkeep_tasks() == []
        async with pool.acquired():
            assert len(upkeep_tasks()) == 1
        await pool.close()

    run(scenario())


def test_a_pool_serves_a_new_loop_once_the_first_has_ended() -> None:
    pool = aio.Pool(make_thing, 1)

    async def use() -> None:
        async with pool.acquired():
            pass

    run(use())
    run(use())
    assert pool.get_stats()["requests_num"] == 2


def test_a_second_loop_at_the_same_time_gets_a_clear_runtime_error() -> None:
    pool = aio.Pool(make_thing, 1)
    start_new_thread = unpatched("_thread", "start_new_thread")

    async def scenario() -> None:
        async with pool.acquired():  # bound to this loop, which runs
            loop = asyncio.get_running_loop()
            outcome: asyncio.Future[BaseException | None] = loop.create_future()

            def other_thread() -> None:
                try:
                    asyncio.run(pool.acquire())
                except BaseException as exc:
                    loop.call_soon_threadsafe(outcome.set_result, exc)
                else:
                    loop.call_soon_threadsafe(outcome.set_result, None)

            start_new_thread(other_thread, ())
            error = await outcome
        assert isinstance(error, RuntimeError)
        assert "cannot be used from a second loop" in str(error)
        assert_balanced(pool)

    run(scenario())


def test_min_size_fills_on_the_loop_and_close_cancels_upkeep() -> None:
    async def scenario() -> None:
        pool = aio.Pool(make_thing, 4, min_size=3)
        await pool.wait(timeout=10)
        assert pool.get_stats()["pool_available"] == 3
        [task] = upkeep_tasks()
        await pool.close()
        await asyncio.wait([task])
        assert task.cancelled()
        assert upkeep_tasks() == []

    run(scenario())


def test_wait_times_out_saying_how_many_are_ready(quiet: None) -> None:
    async def never() -> Thing:
        raise ConnectionError("refused")

    async def scenario() -> None:
        async with aio.Pool(never, 2, min_size=1) as pool:
            with pytest.raises(aio.PoolTimeout, match="0 of min_size 1 resources ready"):
                await pool.wait(timeout=0.05)

    run(scenario())


def test_upkeep_backs_off_and_reconnects_after_failures(quiet: None) -> None:
    failures = 1
    gave_up: list[Any] = []

    async def flaky() -> Thing:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("refused")
        return await make_thing()

    async def scenario() -> None:
        async with aio.Pool(flaky, 2, min_size=1, reconnect_timeout=0,
                            reconnect_failed=gave_up.append) as pool:
            await pool.wait(timeout=10)
            stats = pool.get_stats()
            assert (stats["connections_errors"], stats["pool_available"]) == (1, 1)
            assert gave_up == [pool]

    run(scenario())


def test_max_idle_retires_idle_resources_beyond_min_size() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 3, min_size=1, max_idle=0.01) as pool:
            things = [await pool.acquire() for _ in range(3)]
            for thing in things:
                await pool.release(thing)
            await until(lambda: pool.get_stats()["pool_size"] == 1, "max_idle retired two")
            assert [t.closed for t in things].count(True) == 2

    run(scenario())


def test_keepalive_replaces_a_dead_idle_resource_with_an_awaited_check(quiet: None) -> None:
    dead: set[int] = set()

    async def check(thing: Thing) -> None:
        await asyncio.sleep(0)
        if thing.id in dead:
            raise ConnectionError("dead")

    async def scenario() -> None:
        async with aio.Pool(make_thing, 2, min_size=1, keepalive=0.01, check=check) as pool:
            await pool.wait(timeout=10)
            first = await pool.acquire()
            await pool.release(first)
            dead.add(first.id)
            await until(lambda: pool.get_stats()["connections_lost"] == 1, "keepalive ran")
            await until(lambda: pool.get_stats()["pool_available"] == 1, "replaced")
            assert first.closed
            async with pool.acquired() as fresh:
                assert fresh is not first

    run(scenario())


def test_upkeep_is_a_task_of_the_pools_loop() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, max_idle=60) as pool:
            async with pool.acquired():
                pass
            assert isinstance(pool._upkeep, AsyncUpkeep)
            [task] = upkeep_tasks()
            assert task.get_loop() is asyncio.get_running_loop()

    run(scenario())
