"""Blocking acquires: FIFO hand-off, resizing, replacing and closing with waiters."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import kombu.exceptions
import pytest
from helpers import (
    BACKEND,
    HANG_TIMEOUT,
    Factory,
    assert_balanced,
    assert_can_take_limit,
    join_all,
    passed_over_past_the_bound,
    queue_acquirers,
    spawn,
    start_acquirer,
    wait_for_child,
    wait_until,
    waiting,
)

from greenpools import LimitExceeded, PoolClosed, PoolTimeout, TooManyRequests, get_backend
from greenpools.backends.base import Waiter
from greenpools.core.slotpool import Slot, SlotPool

INF = float("inf")
WAITING, GRANTED, WOKEN = 0, 1, 4  # a waiter's states (compiled, C constants only)


class Granted:
    """Per-waiter record of who got what, in grant order."""

    def __init__(self) -> None:
        self.order: list[tuple[int, Any]] = []
        self.events: dict[int, threading.Event] = {}

    def recorder(self, index: int) -> Any:
        self.events[index] = threading.Event()

        def on_grant(resource: Any) -> None:
            self.order.append((index, resource))
            self.events[index].set()

        return on_grant


@pytest.mark.parametrize("limit", [1, 3])
def test_grants_follow_request_order(make_pool: Any, limit: int) -> None:
    pool = make_pool(Factory(), limit)
    held = [pool.acquire() for _ in range(limit)]
    granted = Granted()
    releases = [threading.Event() for _ in range(8)]
    tasks = [start_acquirer(pool, on_grant=granted.recorder(i), release=releases[i])
             for i in range(8)]
    assert pool.get_stats()["requests_waiting"] == 8
    # Free one resource at a time and see who gets it: always the oldest waiter.
    freed = 0
    for i in range(8):
        if held:
            pool.release(held.pop())
        else:
            releases[freed].set()  # a served waiter gives its resource back
            freed += 1
        assert granted.events[i].wait(30), f"waiter {i} never served"
        assert [index for index, _ in granted.order] == list(range(i + 1))
    for event in releases:
        event.set()
    join_all(tasks)
    assert_balanced(pool)


def test_no_barging_past_a_waiter_passed_over_for_the_bound(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    task = start_acquirer(pool)
    passed_over_past_the_bound(pool._waiting.oldest())
    pool.release(held)  # handed to the waiter before it even runs again
    with pytest.raises(LimitExceeded):
        pool.acquire(block=False)
    assert task.join() is held
    pool.release(held)
    assert_balanced(pool)


# -- bounded barging (Backend.barging_bound; the threading backend's is 1 ms) ----------
# The test plays the waiting task (its client is queued, nobody waits on it),
# so that nothing races; the pool's barging bound is set to an hour, or the
# client's first chance (passed_since) moved back past it, to be within or
# beyond it.


def _queued(pool: Any) -> Any:
    client = SlotPool._take_or_enqueue(pool, True, None, None)
    assert isinstance(client, Waiter), "the pool had a free resource"
    return client


def _handed_off(pool: Any, client: Any, held: Any) -> None:
    """``held`` went straight to ``client``: nobody else can take it, it claims it."""
    assert client.state == GRANTED
    with pytest.raises(LimitExceeded):
        pool.acquire(block=False)
    assert SlotPool._outcome(pool, client, None).resource is held
    pool.release(held)
    assert_balanced(pool)


def test_a_caller_barges_only_while_the_first_was_passed_over_for_less_than_the_bound(
        make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    client = _queued(pool)
    barging = get_backend().barging_bound > 0
    assert pool._barging_bound == get_backend().barging_bound
    if barging:
        pool._barging_bound = 3600.0  # within the bound until the test moves past it
    client.since -= 7200.0  # queued long ago: the bound counts from its first chance
    pool.release(held)
    if not barging:  # strict FIFO: handed to the waiter, nobody takes it first
        _handed_off(pool, client, held)
        return
    # Its first chance: left idle, the first woken to compete, the releaser takes it back.
    assert client.state == WOKEN and [s.resource for s in pool._idle] == [held]
    assert 0 < time.monotonic() - client.passed_since < 60
    assert pool.acquire(block=False) is held
    successor = SlotPool._compete(pool, client, True, INF, None)  # it lost: waits on
    assert isinstance(successor, Waiter) and successor.since == client.since
    assert successor.passed_since == client.passed_since
    assert pool._waiting.snapshot() == [successor]
    # Beyond the bound: handed straight to the first, nobody barges.
    passed_over_past_the_bound(successor)
    pool.release(held)
    _handed_off(pool, successor, held)


def _lost_a_contest(pool: Any, held: Any) -> Any:
    """A client queues (the pool's bound then an hour), is woken for
    ``held``, the caller takes it back first, the client loses: its
    successor, first in the queue."""
    client = _queued(pool)
    pool._barging_bound = 3600.0
    pool.release(held)
    assert client.state == WOKEN
    assert pool.acquire(block=False) is held
    successor = SlotPool._compete(pool, client, True, INF, None)
    assert isinstance(successor, Waiter) and successor.state == WAITING
    return successor


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_client_that_lost_looks_again_by_itself_within_the_bound(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    successor = _lost_a_contest(pool, held)
    # Half the bound later at most.
    assert time.monotonic() < successor.recheck_at <= time.monotonic() + 1800.0
    # Never past the bound: a client that lost near its end looks again at its end.
    pool.release(held)
    SlotPool._recheck(pool, successor)
    assert pool.acquire(block=False) is held
    successor.passed_since = time.monotonic() - 3599.0
    late = SlotPool._compete(pool, successor, True, INF, None)
    assert isinstance(late, Waiter)
    assert late.recheck_at == pytest.approx(late.passed_since + 3600.0)
    # Lost past the bound: it looks no more, the next release is its.
    pool.release(held)
    SlotPool._recheck(pool, late)
    assert pool.acquire(block=False) is held
    passed_over_past_the_bound(late)
    last = SlotPool._compete(pool, late, True, INF, None)
    assert isinstance(last, Waiter) and last.recheck_at == 0
    pool.release(held)
    _handed_off(pool, last, held)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_the_barger_gives_back_without_waking_the_client_it_beat(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    successor = _lost_a_contest(pool, held)
    pool.release(held)  # the thread that beat it: it is likely to ask again
    assert successor.state == WAITING and [s.resource for s in pool._idle] == [held]
    # Nobody asked: the client looks again by itself and takes it.
    SlotPool._recheck(pool, successor)
    assert successor.state == WOKEN
    won = SlotPool._compete(pool, successor, True, INF, None)
    assert isinstance(won, Slot) and won.resource is held
    assert pool._waiting.length == 0
    pool.release(held)
    assert_balanced(pool)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_the_end_of_the_bargers_task_wakes_the_client_it_beat(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    successor = _lost_a_contest(pool, held)
    pool.release(held)
    assert successor.state == WAITING
    pool._task_ended()  # what the backend calls when the releaser's task ends
    assert successor.state == WOKEN
    won = SlotPool._compete(pool, successor, True, INF, None)
    assert isinstance(won, Slot) and won.resource is held
    pool.release(held)
    pool._task_ended()  # nothing idle, nobody waits: nothing to do
    assert_balanced(pool)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_resource_lent_in_turn_wakes_the_client_that_lost(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    in_turn = pool.acquire()  # lent while nobody waited
    held = pool.acquire()
    successor = _lost_a_contest(pool, held)
    pool.release(in_turn)  # its holder took it ahead of nobody: the client is woken
    assert successor.state == WOKEN and [s.resource for s in pool._idle] == [in_turn]
    assert SlotPool._compete(pool, successor, True, INF, None).resource is in_turn
    # Given back through the lock-free path, then lent in turn again: not a barge.
    for resource in (in_turn, held):
        pool.release(resource)
    assert pool._lock_free
    again = [pool.acquire(), pool.acquire()]
    successor = _lost_a_contest(pool, held)
    other = again[0] if again[1] is held else again[1]
    pool.release(other)
    assert successor.state == WOKEN
    assert SlotPool._compete(pool, successor, True, INF, None).resource is other
    pool.release(other)
    pool.release(held)
    assert_balanced(pool)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_barging_keeps_the_queue_in_order_and_one_client_woken(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    held = [pool.acquire(), pool.acquire()]
    first, second, third = (_queued(pool) for _ in range(3))
    pool._barging_bound = 3600.0
    pool.release(held[0])
    pool.release(held[1])  # two idle, one client woken: the oldest
    assert [c.state for c in (first, second, third)] == [WOKEN, WAITING, WAITING]
    assert pool.acquire(block=False) in held  # a caller barges
    won = SlotPool._compete(pool, first, True, INF, None)
    assert isinstance(won, Slot) and won.resource in held
    # One resource went to a barger, one to the oldest: the next is woken for neither.
    assert pool._waiting.snapshot() == [second, third]
    assert [second.state, third.state] == [WAITING, WAITING]
    pool.release(won.resource)
    assert [second.state, third.state] == [WOKEN, WAITING]
    assert SlotPool._compete(pool, second, True, INF, None).resource is won.resource
    assert pool._waiting.snapshot() == [third]


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_woken_client_that_leaves_wakes_the_next(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    first, second = _queued(pool), _queued(pool)
    pool._barging_bound = 3600.0
    pool.release(held)
    assert (first.state, second.state) == (WOKEN, WAITING)
    pool._abandon(first)  # cancelled while woken: the idle resource is not stranded
    assert second.state == WOKEN
    assert pool.acquire(block=False) is held  # a caller barges meanwhile
    with pytest.raises(PoolTimeout):  # and the woken one's wait ran out: it waits no longer
        SlotPool._compete(pool, second, False, 0.0, 1.0)
    assert pool._waiting.length == 0 and second.state != WOKEN
    pool.release(held)
    assert_balanced(pool)


def test_waiter_times_out(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    with pytest.raises(PoolTimeout) as info:
        pool.acquire(block=True, timeout=0.01)
    assert isinstance(info.value, kombu.exceptions.LimitExceeded)
    stats = pool.get_stats()
    assert stats["requests_waiting"] == 0 and stats["requests_queued"] == 1
    assert stats["requests_errors"] == 1
    pool.release(held)
    assert pool.acquire(block=True, timeout=0.01) is held


def test_zero_timeout_does_not_queue(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire(block=True, timeout=0)
    assert pool.get_stats()["requests_queued"] == 0


def test_max_waiting(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1, max_waiting=2)
    held = pool.acquire()
    tasks = queue_acquirers(pool, 2)
    with pytest.raises(TooManyRequests) as info:
        pool.acquire(block=True, timeout=5)
    assert isinstance(info.value, LimitExceeded)
    assert isinstance(info.value, kombu.exceptions.LimitExceeded)
    assert "2" in str(info.value)
    with pytest.raises(LimitExceeded) as plain:
        pool.acquire(block=False)
    assert not isinstance(plain.value, TooManyRequests)
    assert waiting(pool) == 2
    pool.release(held)
    first = tasks[0].join()
    pool.release(first)
    pool.release(tasks[1].join())
    assert_balanced(pool)


def test_stats_while_waiting(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    tasks = queue_acquirers(pool, 3)
    stats = pool.get_stats()
    assert stats["requests_waiting"] == 3 and stats["requests_queued"] == 3
    for task in tasks:
        pool.release(held)
        held = task.join()
    pool.release(held)
    assert pool.get_stats()["requests_waiting"] == 0


# -- resize with waiters --------------------------------------------------------------


def test_grow_serves_waiters(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    held = pool.acquire()
    tasks = queue_acquirers(pool, 3)
    pool.resize(4)
    got = join_all(tasks)
    assert len({id(r) for r in [held, *got]}) == 4 == len(factory.made)
    for resource in [held, *got]:
        pool.release(resource)
    assert_balanced(pool)


def test_grow_partly_serves_the_oldest(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    granted = Granted()
    tasks = [start_acquirer(pool, on_grant=granted.recorder(i)) for i in range(3)]
    pool.resize(2)
    assert granted.events[0].wait(30)
    assert waiting(pool) == 2
    pool.resize(3)
    assert granted.events[1].wait(30)
    pool.release(held)
    assert granted.events[2].wait(30)
    assert [i for i, _ in granted.order] == [0, 1, 2]
    for resource in join_all(tasks):
        pool.release(resource)
    assert_balanced(pool)


def test_shrink_closes_idle_now_and_busy_on_release(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 4)
    taken = [pool.acquire() for _ in range(4)]
    pool.release(taken[0])
    pool.release(taken[1])
    pool.resize(1)
    assert pool.limit == 1
    assert factory.closed_counts() == [1, 1, 0, 0]
    assert pool.get_stats()["pool_size"] == 2
    pool.release(taken[2])  # still one too many: closed
    assert taken[2].closed == 1
    pool.release(taken[3])  # within the limit: kept
    assert taken[3].closed == 0
    assert pool.get_stats()["pool_size"] == 1
    assert pool.acquire() is taken[3]
    with pytest.raises(LimitExceeded):
        pool.acquire()


def test_shrink_with_waiters_keeps_them_waiting(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 3)
    taken = [pool.acquire() for _ in range(3)]
    task = start_acquirer(pool)
    pool.resize(1)
    pool.release(taken[0])  # closed: the pool is over its new limit
    pool.release(taken[1])
    assert waiting(pool) == 1 and not task.done.is_set()
    pool.release(taken[2])  # now within the limit: the waiter gets it
    assert task.join() is taken[2]
    assert [t.closed for t in taken] == [1, 1, 0]
    pool.release(taken[2])
    assert_balanced(pool)


@pytest.mark.parametrize("how", ["reset", "force below the number in use"])
def test_resize_reset_retires_everything(make_pool: Any, how: str) -> None:
    factory = Factory()
    pool = make_pool(factory, 3)
    taken = [pool.acquire() for _ in range(3)]
    pool.release(taken[0])
    if how == "reset":
        pool.resize(3, reset=True)
    else:
        pool.resize(1, force=True)  # 2 in use
        pool.resize(3)
    assert factory.closed_counts() == [1, 0, 0]
    for resource in taken[1:]:
        pool.release(resource)
    assert factory.closed_counts() == [1, 1, 1]
    fresh = [pool.acquire() for _ in range(3)]
    assert not {id(r) for r in fresh} & {id(r) for r in taken}
    for resource in fresh:
        pool.release(resource)
    assert_balanced(pool)


def test_resize_force_retires_nothing_while_the_limit_holds(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 3)
    taken = [pool.acquire() for _ in range(2)]
    pool.resize(2, force=True)  # 2 in use, limit 2: it holds without retiring
    for resource in taken:
        pool.release(resource)
    assert factory.closed_counts() == [0, 0]
    assert {id(pool.acquire()) for _ in range(2)} == {id(r) for r in taken}


def test_resize_reset_with_waiters(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    held = pool.acquire()
    task = start_acquirer(pool)
    pool.resize(1, reset=True)
    pool.release(held)  # retired: closed, and its slot goes to the waiter
    fresh = task.join()
    assert held.closed == 1 and fresh is not held
    pool.release(fresh)
    assert_balanced(pool)


def test_resize_close_errors(make_pool: Any) -> None:
    def bad_close(thing: Any) -> None:
        thing.closed += 1
        raise OSError("close failed")

    factory = Factory()
    pool = make_pool(factory, 2, close=bad_close)
    for resource in [pool.acquire(), pool.acquire()]:
        pool.release(resource)
    with pytest.raises(OSError, match="close failed"):
        pool.resize(1)
    assert pool.limit == 1 and pool.get_stats()["pool_size"] == 1
    pool.resize(0, reset=True, ignore_errors=True)
    assert pool.limit == 0 and factory.closed_counts() == [1, 1]


def test_resize_below_min_size_is_refused(make_pool: Any) -> None:
    pool = make_pool(Factory(), 4, min_size=2)
    with pytest.raises(ValueError, match="min_size"):
        pool.resize(1)
    assert pool.limit == 4


# -- replace and close with waiters ----------------------------------------------------


def test_replace_lets_the_next_waiter_create(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    broken = pool.acquire()
    task = start_acquirer(pool)
    pool.replace(broken)
    fresh = task.join()
    assert fresh is not broken and broken.closed == 1 and len(factory.made) == 2
    pool.release(fresh)
    assert_balanced(pool)


def test_failed_creation_passes_the_slot_on(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    broken = pool.acquire()
    first = start_acquirer(pool)
    second = start_acquirer(pool)
    factory.fail_next = 1
    pool.replace(broken)  # the first waiter may create, and fails
    with pytest.raises(ConnectionError):
        first.join()
    fresh = second.join()  # so the second one may create
    assert fresh is factory.made[-1] and len(factory.made) == 2
    assert pool.get_stats()["connections_errors"] == 1
    pool.release(fresh)
    assert_balanced(pool)
    assert_can_take_limit(pool)


def test_close_wakes_waiters_with_pool_closed(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    held = pool.acquire()
    tasks = queue_acquirers(pool, 3)
    pool.close()
    for task in tasks:
        with pytest.raises(PoolClosed):
            task.join()
    pool.release(held)
    assert factory.closed_counts() == [1]


def test_force_close_all_keeps_waiters_served(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    held = pool.acquire()
    task = start_acquirer(pool)
    pool.force_close_all(close_pool=False)
    fresh = task.join()
    assert held.closed == 1 and fresh is not held
    pool.release(held)
    pool.release(fresh)
    assert_balanced(pool)


def test_many_tasks_take_turns(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)

    def cycle() -> int:
        for _ in range(20):
            with pool.acquired(timeout=30):
                pass
        return 20

    assert join_all([spawn(cycle) for _ in range(10)]) == [20] * 10
    assert_balanced(pool)
    assert_can_take_limit(pool)


@pytest.mark.skipif(BACKEND == "threading", reason="about green threads: the OS preempts threads")
def test_green_hand_offs_that_never_yield_still_let_the_hub_run(make_pool: Any) -> None:
    """Two green threads pass one resource back and forth without ever yielding
    otherwise.  Each hand-off switches straight to the waiter it woke (the
    hub's run-next slot), but only so many times in a row: a third green
    thread, ready all along, gets to run while they are at it."""
    pool = make_pool(Factory(), 1)
    rounds = 500
    progress = [0]
    seen: list[int] = []
    done = threading.Event()

    def ping_pong() -> None:
        for _ in range(rounds):
            resource = pool.acquire(block=True)
            progress[0] += 1
            pool.release(resource)

    def ticker() -> None:
        while not done.is_set():
            seen.append(progress[0])
            time.sleep(0)

    held = pool.acquire()
    watcher = spawn(ticker)
    players = [spawn(ping_pong) for _ in range(2)]
    wait_until(lambda: waiting(pool) == 2)  # both queued behind `held`
    pool.release(held)
    join_all(players)
    done.set()
    watcher.join()
    assert progress[0] == 2 * rounds
    assert any(0 < p < rounds for p in seen), sorted(set(seen))[:5]
    assert_balanced(pool)


def test_pool_timeout_says_the_timeout_that_was_asked_for(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    with pytest.raises(PoolTimeout) as caught:
        pool.acquire(block=True, timeout=0.05)
    assert str(caught.value).endswith("no resource became free within 0.05 s"), caught.value
    pool.release(held)


def _beat_and_hold(pool: Any, held: Any, bound: float) -> Any:
    """In the calling thread, which holds ``held`` with a waiting thread
    queued behind it: give it back and take it again before the woken
    waiter can (the pool's bound then ``bound``), and return the waiter's
    successor once it has lost the contest, waiting on, first."""
    first = pool._waiting.oldest()
    pool._barging_bound = bound
    switching = sys.getswitchinterval()
    sys.setswitchinterval(60.0)  # the woken thread runs only once this one blocks
    try:
        pool.release(held)
        assert pool.acquire(block=False) is held
    finally:
        sys.setswitchinterval(switching)
    wait_until(lambda: pool._waiting.oldest() is not first)  # it ran, lost, waits on
    lost = pool._waiting.oldest()
    assert lost.recheck_at
    return lost


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_waiter_the_barger_left_behind_takes_the_resource_by_itself(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    task = start_acquirer(pool)  # a real thread, queued
    lost = _beat_and_hold(pool, held, 1.0)  # it looks again half a second after losing
    pool.release(held)  # this thread goes away: nobody wakes the waiter
    assert lost.state == WAITING and pool.get_stats()["pool_available"] == 1
    assert task.join() is held  # it looked again by itself
    pool.release(held)
    assert_balanced(pool)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_barger_whose_thread_ends_wakes_the_waiter_it_left_behind(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = spawn(pool.acquire).join()  # lent to a thread that has ended: now this one's
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT / 2)

    def barge_then_end() -> None:
        lost = _beat_and_hold(pool, held, 3600.0)
        assert lost.state == WAITING and lost.recheck_at > time.monotonic() + 900.0
        pool.release(held)  # likely to ask again, so the waiter is left asleep...
        assert lost.state == WAITING and pool.get_stats()["pool_available"] == 1

    spawn(barge_then_end).join()  # ...but this thread ends instead, and its end wakes it
    assert waiter.join() is held
    pool.release(held)
    assert_balanced(pool)


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_forked_child_leaves_alone_the_pools_of_the_parents_other_threads(
        make_pool: Any) -> None:
    """A forked child ends its copies of the parent's other threads before
    its resets run: a watch copied with one of them must not take the
    pool's lock, which the thread that forked holds there for good."""
    pool = make_pool(Factory(), 1)
    held = spawn(pool.acquire).join()
    waiter = start_acquirer(pool, timeout=HANG_TIMEOUT)
    barged, end = threading.Event(), threading.Event()

    def barge_then_wait() -> None:
        _beat_and_hold(pool, held, 3600.0)
        pool.release(held)  # its end is to wake the waiter: watched from now on
        barged.set()
        assert end.wait(HANG_TIMEOUT)

    barger = spawn(barge_then_wait)
    assert barged.wait(HANG_TIMEOUT)
    with pool._mutex:  # held at the fork: the child's copy stays locked
        pid = os.fork()
        if pid == 0:
            os._exit(0)  # reached only if the child did not block on the copy
    try:
        status = wait_for_child(pid, 20.0)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_for_child(pid)
        raise
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    end.set()
    barger.join()
    assert waiter.join() is held  # in the parent, its end still wakes the waiter
    pool.release(held)
    assert_balanced(pool)


_EXIT_WITH_A_WATCHED_DAEMON = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from helpers import Factory
from greenpools import Pool, use_backend
use_backend("threading")
pool = Pool(Factory(), 1)
watched, holding = threading.Event(), threading.Event()

def barge():
    pool._backend.watch_task_end(pool)  # as a barged release does
    watched.set()
    threading.Event().wait()

def hold(pool=pool):  # the frozen frame keeps the pool alive through exit
    pool._mutex.acquire()  # frozen with it at exit
    holding.set()
    threading.Event().wait()

threading.Thread(target=barge, daemon=True).start()
threading.Thread(target=hold, daemon=True).start()
assert watched.wait(30) and holding.wait(30)
print("exiting", flush=True)
"""


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_the_interpreter_exits_past_a_watched_daemon_thread() -> None:
    """At exit the main thread clears the daemon threads' values: a watch
    there must not call its pool, whose lock a frozen thread may hold."""
    import subprocess

    tests = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-c", _EXIT_WITH_A_WATCHED_DAEMON, tests],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "exiting\n"), result.stderr


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_thread_watches_a_pool_once_and_forgets_the_pools_that_are_gone() -> None:
    import gc
    import weakref

    from greenpools import Pool
    from greenpools.backends import threading as threading_backend

    def in_a_thread() -> None:
        backend = threading_backend.backend
        kept = Pool(Factory(), 1)
        backend.watch_task_end(kept)
        pools, end = threading_backend._thread_end.pools, threading_backend._thread_end.end
        # A reference with a callback is never shared, so it tells a new watch apart.
        pools[id(kept)] = marker = weakref.ref(kept, lambda _ref: None)
        backend.watch_task_end(kept)
        assert pools[id(kept)] is marker and threading_backend._thread_end.end is end  # once
        gone = [Pool(Factory(), 1) for _ in range(8)]
        for pool in gone:
            backend.watch_task_end(pool)
        del gone, pool
        gc.collect()
        fresh = Pool(Factory(), 1)
        # A pool at the id of one that is gone is watched anew.
        pools[id(fresh)] = weakref.ref(Factory())  # dead at once: stands for a gone pool
        backend.watch_task_end(fresh)
        assert pools[id(fresh)]() is fresh
        assert set(pools) == {id(kept), id(fresh)}, "gone pools were not forgotten"

    spawn(in_a_thread).join()


@pytest.mark.skipif(get_backend().barging_bound == 0, reason="the backend hands off strictly")
def test_a_thread_that_forked_watches_for_the_child(make_pool: Any) -> None:
    """The thread that forks goes on in the child: its watch is the child's,
    without the parent's pools."""
    from greenpools.backends import threading as threading_backend

    pool = make_pool(Factory(), 1)

    def fork_in_a_thread() -> tuple[int, int, int]:
        threading_backend.backend.watch_task_end(pool)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            watch = threading_backend._thread_end.end
            os.write(write_fd, b"%d %d" % (watch.pid, len(watch.pools)))
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            child_pid, watched = map(int, inp.read().split())
        assert os.WIFEXITED(wait_for_child(pid))
        return pid, child_pid, watched

    pid, child_pid, watched = spawn(fork_in_a_thread).join()
    assert (child_pid, watched) == (pid, 0)
