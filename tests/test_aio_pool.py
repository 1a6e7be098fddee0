"""greenpools.aio.Pool: the API, its options and errors, fairness, events and statistics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohelpers import RecordedCloses, Thing, assert_balanced, run, settle, until, waiting
from helpers import RecordsSeen, passed_over_past_the_bound
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from test_lifecycle import attempt_traceback, failed_attempt
from test_observability import reader  # noqa: F401  (fixture)

import greenpools
from greenpools import aio
from greenpools.core import lifecycle
from greenpools.core.slotpool import SlotPool


async def make_thing() -> Thing:
    await asyncio.sleep(0)  # a real suspension, as a connect would
    return Thing()


# -- options and validation -------------------------------------------------------


BAD_OPTIONS = [
    {"limit": -1},
    {"limit": "3"},
    {"timeout": "soon"},
    {"timeout": -1},
    {"max_waiting": -2},
    {"min_size": 5, "limit": 2},
    {"keepalive": 0, "check": print},
    {"keepalive": 5},
    {"check": 5},
    {"reset": "no"},
    {"configure": 1.5},
    {"connection_errors": [1]},
    {"name": 7},
    {"max_idle": float("nan")},
    {"reconnect_timeout": True},
    {"close": "x"},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: ",".join(o))
def test_bad_options_get_the_sync_pools_errors(options: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)) as sync_error:
        greenpools.Pool(Thing, **options)
    with pytest.raises(type(sync_error.value)) as async_error:
        aio.Pool(make_thing, **options)
    assert str(async_error.value) == str(sync_error.value)


def test_create_must_be_callable() -> None:
    with pytest.raises(TypeError, match="create must be callable, got 3"):
        aio.Pool(3)  # type: ignore[arg-type]


def test_preload_is_refused_with_a_pointer_to_min_size() -> None:
    with pytest.raises(TypeError, match=r"preload=2.*use min_size"):
        aio.Pool(make_thing, 3, preload=2)


def test_takes_every_option_of_the_sync_pool() -> None:
    async def check(r: Thing) -> None: ...

    pool = aio.Pool(
        make_thing, 4, min_size=1, max_idle=60, max_lifetime=600, timeout=5, max_waiting=10,
        check=check, reset=check, configure=check, reconnect_timeout=30,
        reconnect_failed=print, leak_timeout=60, keepalive=30, track_usage=True, name="opts",
        connection_errors=(OSError,), close=lambda r: None,
    )
    assert (pool.name, pool.limit, pool.min_size, pool.timeout) == ("opts", 4, 1, 5.0)
    assert isinstance(pool, SlotPool)


def test_sync_with_and_limit_assignment_point_to_the_async_api() -> None:
    pool = aio.Pool(make_thing, 1)
    with pytest.raises(TypeError, match="async with"), pool:
        pass
    with pytest.raises(AttributeError, match=r"await pool.resize\(limit\)"):
        pool.limit = 3


# -- hooks: coroutine functions or plain callables ------------------------------------------


@pytest.mark.parametrize("kind", ["coroutine", "plain"])
def test_hooks_may_be_coroutines_or_plain_callables(kind: str) -> None:
    calls: list[tuple[str, int]] = []

    def hook(name: str) -> Any:
        async def coroutine(r: Thing) -> None:
            await asyncio.sleep(0)
            calls.append((name, r.id))
            if name == "close":
                r.close()

        def plain(r: Thing) -> None:
            calls.append((name, r.id))
            if name == "close":
                r.close()

        return coroutine if kind == "coroutine" else plain

    def create_plain() -> Thing:
        return Thing()

    async def scenario() -> None:
        pool = aio.Pool(
            make_thing if kind == "coroutine" else create_plain, 1,
            close=hook("close"), check=hook("check"), reset=hook("reset"),
            configure=hook("configure"),
        )
        async with pool:
            async with pool.acquired() as first:
                pass
            async with pool.acquired() as again:
                assert again is first
        assert first.closed
        assert [name for name, _ in calls] == ["configure", "reset", "check", "reset", "close"]

    run(scenario())


def test_an_awaitable_returned_by_a_plain_create_is_awaited() -> None:
    """aio-pika's ``connection.channel()`` is a plain method returning an awaitable."""

    class Opening:
        def __await__(self) -> Any:
            return make_thing().__await__()

    async def scenario() -> None:
        async with aio.Pool(Opening, 1) as pool:
            assert isinstance(await pool.acquire(), Thing)

    run(scenario())


# -- acquire and release ----------------------------------------------------------------


def test_grants_follow_request_order() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            order: list[int] = []

            async def take(i: int) -> None:
                async with pool.acquired():
                    order.append(i)

            tasks = []
            for i in range(8):
                tasks.append(asyncio.create_task(take(i)))
                await until(lambda i=i: waiting(pool) == i + 1, "the task queued")
            await pool.release(held)
            await asyncio.gather(*tasks)
            assert order == list(range(8))
            assert_balanced(pool)

    run(scenario())


# -- bounded barging: a task asking again takes an idle resource first -----------------


def test_a_task_asking_again_takes_the_resource_ahead_of_the_queue() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            order: list[str] = []

            async def waiter() -> None:
                async with pool.acquired() as thing:
                    assert thing is held
                    order.append("queued task")

            task = asyncio.create_task(waiter())
            await until(lambda: waiting(pool) == 1, "the task queued")
            # A bound of a second: the loser looks again half a second after
            # losing, long after the checks below, however slow the machine.
            pool._barging_bound = 1.0
            await pool.release(held)
            # In the same turn: no suspension on a future, no hand-off.
            again = await pool.acquire()
            assert again is held
            order.append("releaser")
            await settle()  # the queued task was woken, lost, and waits on, first
            assert waiting(pool) == 1 and pool._waiting.oldest().recheck_at
            await pool.release(again)  # taken ahead of it: it is not woken...
            assert pool._waiting.oldest().state == 0  # WAITING
            await asyncio.wait_for(task, 10)  # ...and looks again by itself
            assert order == ["releaser", "queued task"]
            assert_balanced(pool)

    run(scenario())


def test_the_first_task_passed_over_for_the_bound_gets_the_next_resource() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            task = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 1, "the task queued")
            passed_over_past_the_bound(pool._waiting.oldest())
            await pool.release(held)
            with pytest.raises(greenpools.PoolTimeout):  # handed to it: none idle
                await pool.acquire(timeout=0)
            assert await task is held
            await pool.release(held)
            assert_balanced(pool)

    run(scenario())


def test_a_woken_task_cancelled_before_it_competes_wakes_the_next() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            first = asyncio.create_task(pool.acquire())
            second = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 2, "both queued")
            await pool.release(held)  # idle; the first woken to compete
            first.cancel()  # before it runs
            assert await second is held  # the idle resource is not stranded
            with pytest.raises(asyncio.CancelledError):
                await first
            await pool.release(held)
            assert_balanced(pool)

    run(scenario())


def test_a_task_that_keeps_losing_times_out_at_its_deadline() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = await pool.acquire()
            task = asyncio.create_task(pool.acquire(timeout=0.05))
            await until(lambda: waiting(pool) == 1, "the task queued")
            await pool.release(held)
            held = await pool.acquire()  # ahead of it
            with pytest.raises(greenpools.PoolTimeout):
                await task  # it looked again while this task held on, and gave up
            assert waiting(pool) == 0
            await pool.release(held)
            assert_balanced(pool)

    run(scenario())


def test_a_timeout_raises_pool_timeout_and_counts() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, timeout=30) as pool:
            held = await pool.acquire()
            with pytest.raises(greenpools.PoolTimeout,
                               match=r"no resource became free within 0\.01 s"):
                await pool.acquire(timeout=0.01)
            stats = pool.get_stats()
            assert (stats["requests_timeouts"], stats["requests_waiting"]) == (1, 0)
            await pool.release(held)
            assert_balanced(pool)

    run(scenario())


def test_a_bad_timeout_is_refused() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            with pytest.raises(ValueError, match=r"timeout must be a non-negative .* got -1"):
                await pool.acquire(timeout=-1)
            await pool.release(await pool.acquire())  # idle now: the lock-free path
            with pytest.raises(ValueError, match=r"timeout must be a non-negative .* got -1"):
                await pool.acquire(timeout=-1)
            with pytest.raises(TypeError, match=r"timeout must be a number .* got '1'"):
                await pool.acquire(timeout="1")  # type: ignore[arg-type]
            await pool.release(await pool.acquire(timeout=1))
            with pytest.raises(ValueError, match=r"timeout must be a non-negative .* got -1"):
                async with pool.acquired(timeout=-1):  # the lease's own lock-free enter
                    pass
            assert_balanced(pool)

    run(scenario())


def test_max_waiting_refuses_one_more_waiter() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, max_waiting=2) as pool:
            held = await pool.acquire()
            waiters = [asyncio.create_task(pool.acquire()) for _ in range(2)]
            await until(lambda: waiting(pool) == 2)
            with pytest.raises(greenpools.TooManyRequests,
                               match="2 requests are already waiting"):
                await pool.acquire()
            await pool.release(held)
            for task in waiters:
                await pool.release(await task)
            assert_balanced(pool)

    run(scenario())


def test_a_double_or_foreign_release_raises_value_error() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 2, reset=lambda r: None) as pool:
            thing = await pool.acquire()
            await pool.release(thing)
            with pytest.raises(ValueError, match="released twice, or never acquired"):
                await pool.release(thing)
            with pytest.raises(ValueError, match="released twice, or never acquired"):
                await pool.release(Thing())
            assert_balanced(pool)

    run(scenario())


def test_a_connection_error_inside_the_block_replaces_the_resource() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, connection_errors=(ConnectionError,)) as pool:
            with pytest.raises(ConnectionError):
                async with pool.acquired() as broken:
                    raise ConnectionError("gone")
            assert broken.closed
            async with pool.acquired() as fresh:
                assert fresh is not broken
            assert pool.get_stats()["connections_lost"] == 1
            with pytest.raises(KeyError):
                async with pool.acquired() as kept:
                    raise KeyError("not a connection error")
            assert not kept.closed and kept is fresh

    run(scenario())


def test_a_failed_check_replaces_the_resource_and_a_failed_reset_discards_it() -> None:
    async def scenario() -> None:
        dead: set[int] = set()

        async def check(r: Thing) -> None:
            if r.id in dead:
                raise ConnectionError("dead")

        async def reset(r: Thing) -> None:
            if r.id < 0:
                raise RuntimeError("cannot reset")

        async with aio.Pool(make_thing, 1, check=check, reset=reset) as pool:
            first = await pool.acquire()
            await pool.release(first)
            dead.add(first.id)
            second = await pool.acquire()
            assert second is not first and first.closed
            second.id = -second.id
            await pool.release(second)
            stats = pool.get_stats()
            assert (stats["connections_lost"], stats["returns_bad"], stats["pool_size"]) == (
                1, 1, 0)
            await until(lambda: second.closed)

    run(scenario())


def test_resize_grows_for_the_waiters_and_shrinks_as_resources_return() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            held = [await pool.acquire()]
            waiter = asyncio.create_task(pool.acquire())
            await until(lambda: waiting(pool) == 1)
            await pool.resize(2)
            held.append(await waiter)
            await pool.resize(1)
            for thing in held:
                await pool.release(thing)
            assert pool.get_stats()["pool_size"] == 1
            assert [t.closed for t in held].count(True) == 1

    run(scenario())


def test_close_refuses_waiters_and_closes_lent_resources_on_return() -> None:
    async def scenario() -> None:
        closes = RecordedCloses()
        closed = closes.closed

        pool = aio.Pool(make_thing, 2, close=closes)
        idle, lent = await pool.acquire(), await pool.acquire()
        await pool.release(idle)
        second = await pool.acquire()  # the idle one
        waiter = asyncio.create_task(pool.acquire())
        await until(lambda: waiting(pool) == 1)
        await pool.release(second)  # to the waiter
        taken = await waiter
        await pool.release(taken)  # idle now
        waiter = asyncio.create_task(pool.acquire())  # takes it
        other = asyncio.create_task(pool.acquire())
        await until(lambda: waiting(pool) == 1)
        await pool.close()
        assert closed == []  # nothing idle: both are lent
        with pytest.raises(greenpools.PoolClosed, match="closed while waiting"):
            await other
        with pytest.raises(greenpools.PoolClosed, match="acquire on closed pool"):
            await pool.acquire()
        await pool.release(await waiter)
        await pool.release(lent)
        await until(lambda: closed == [idle, lent])
        assert_balanced(pool)

    run(scenario())


def test_close_closes_idle_resources_and_awaits_their_close() -> None:
    async def scenario() -> None:
        closes = RecordedCloses()
        closed = closes.closed

        async with aio.Pool(make_thing, 2, close=closes) as pool:
            things = [await pool.acquire(), await pool.acquire()]
            for thing in things:
                await pool.release(thing)
        assert sorted(closed, key=id) == sorted(things, key=id)
        assert pool.get_stats()["pool_size"] == 0

    run(scenario())


def test_drain_closes_idle_resources_now_and_lent_ones_on_return() -> None:
    async def scenario() -> None:
        closes = RecordedCloses()
        closed = closes.closed

        async with aio.Pool(make_thing, 3, close=closes) as pool:
            idle, lent = await pool.acquire(), await pool.acquire()
            await pool.release(idle)
            await pool.drain()
            assert closed == [idle]  # awaited before drain returned
            fresh = await pool.acquire()
            assert fresh not in (idle, lent)
            await pool.release(lent)
            await until(lambda: closed == [idle, lent])
            await pool.release(fresh)
            again = [await pool.acquire() for _ in range(3)]
            assert lent not in again and idle not in again
            for thing in again:
                await pool.release(thing)
            assert_balanced(pool)

    run(scenario())


def test_a_waiter_gets_the_place_of_a_drained_resource() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 1) as pool:
            old = await pool.acquire()
            await pool.drain()
            waiter = asyncio.create_task(pool.acquire(timeout=30))
            await until(lambda: waiting(pool) == 1)
            await pool.release(old)  # closes it: its place goes to the waiter
            new = await waiter
            assert old.closed and new is not old and not new.closed

    run(scenario())


def test_drain_lets_upkeep_refill_min_size_with_new_resources() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 4, min_size=2) as pool:
            await pool.wait(timeout=10)
            before = []
            while pool.get_stats()["pool_available"]:
                before.append(await pool.acquire())
            for thing in before:
                await pool.release(thing)
            await pool.drain()
            assert all(thing.closed for thing in before)
            await pool.wait(timeout=10)
            assert pool.get_stats()["pool_available"] == 2
            now = [await pool.acquire(), await pool.acquire()]
            assert not set(map(id, now)) & set(map(id, before))

    run(scenario())


def test_a_failed_creation_for_min_size_is_one_warning_line_with_its_cause(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "MAX_INTERVAL", 0.01)  # back off from 10 ms
    caplog.set_level(logging.DEBUG, logger="greenpools")

    async def connect() -> asyncio.StreamWriter:
        _, writer = await asyncio.open_connection("127.0.0.1", 1)  # nothing listens there
        return writer

    async def scenario() -> None:
        seen = asyncio.Event()
        with RecordsSeen(failed_attempt, 3, seen):  # and two tracebacks before the third
            async with aio.Pool(connect, 2, min_size=1, name="refused") as pool:
                with pytest.raises(greenpools.PoolTimeout):  # it binds the pool to this
                    await pool.wait(timeout=0)                # loop: upkeep starts
                await seen.wait()

    run(scenario())
    warnings = [r for r in caplog.records if failed_attempt(r)]
    assert len(warnings) >= 2
    for record in warnings:
        message = record.getMessage()
        assert record.exc_info is None and "\n" not in message, message
        assert message.startswith(
            "greenpools: pool 'refused' could not reach min_size 1: ConnectionRefusedError: "
        ) and "127.0.0.1" in message and "; next attempt in " in message, message
    assert len([r for r in caplog.records if attempt_traceback(r)]) >= 2


@pytest.mark.parametrize("method", ["drain", "close"])
def test_cancelling_a_caller_of_awaited_closes_does_not_cancel_the_closes(method: str) -> None:
    async def scenario() -> None:
        closed: list[Thing] = []
        may_finish = asyncio.Event()

        async def close(r: Thing) -> None:
            await may_finish.wait()
            closed.append(r)

        pool = aio.Pool(make_thing, 2, close=close)
        thing = await pool.acquire()
        await pool.release(thing)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(getattr(pool, method)(), 0.01)
        may_finish.set()
        await until(lambda: closed == [thing], "the close to finish")
        await pool.close()

    run(scenario())


def test_drain_on_a_closed_pool_is_a_clear_error() -> None:
    async def scenario() -> None:
        pool = aio.Pool(make_thing, 2)
        await pool.close()
        with pytest.raises(greenpools.PoolClosed, match="drain on closed pool"):
            await pool.drain()

    run(scenario())


# -- statistics, listeners and metrics -----------------------------------------------


def test_stats_have_the_sync_pools_keys() -> None:
    async def scenario() -> None:
        async with aio.Pool(make_thing, 2, name="aio-stats") as pool:
            async with pool.acquired():
                stats = pool.get_stats()
            assert set(stats) == set(greenpools.Pool(Thing, 2).get_stats())
            assert (stats["requests_num"], stats["connections_num"], stats["pool_size"]) == (
                1, 1, 1)
            assert pool.pop_stats()["requests_num"] == 1
            assert pool.get_stats()["requests_num"] == 0

    run(scenario())


def test_listeners_and_metrics_see_the_asyncio_pool(
        reader: InMemoryMetricReader) -> None:  # noqa: F811
    seen: list[str] = []

    async def scenario() -> None:
        async with aio.Pool(make_thing, 1, name="aio-watched") as pool:
            for event in ("connect", "checkout", "checkin", "timeout", "close"):
                greenpools.listen(pool, event, lambda p, r, s, e=event: seen.append(e))
            async with pool.acquired():
                with pytest.raises(greenpools.PoolTimeout):
                    await pool.acquire(timeout=0)
            await settle()

    run(scenario())
    assert seen == ["connect", "checkout", "timeout", "checkin", "close"]
    names = set()
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    if point.attributes.get("db.client.connection.pool.name") == "aio-watched":
                        names.add(metric.name)
    assert {"db.client.connection.create_time", "db.client.connection.wait_time",
            "db.client.connection.use_time", "db.client.connection.timeouts"} <= names
