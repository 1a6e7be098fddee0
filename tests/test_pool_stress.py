"""Concurrency stress: many tasks, few resources, nothing ever shared or lost.

200 green threads x 50 cycles on limit 5 under gevent and eventlet; 16 OS
threads x a few thousand cycles under threading, with a short switch
interval so that threads are preempted inside the pool's fast paths.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import BACKEND, Factory, assert_balanced, assert_can_take_limit, join_all, spawn

from greenpools import LimitExceeded, PoolTimeout

GREEN = BACKEND != "threading"
TASKS, CYCLES = (200, 50) if GREEN else (16, 4000)
LIMIT = 5


@pytest.fixture(autouse=True)
def _preempt_often() -> Iterator[None]:
    """Make OS threads switch every few bytecodes (no effect on green threads)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


class Exclusive:
    """Records who holds what; any resource held by two tasks at once is an overlap."""

    def __init__(self) -> None:
        self.holders: dict[int, int] = {}
        self.overlaps: list[Any] = []
        self.most_out = 0

    def take(self, resource: Any, me: int) -> None:
        if self.holders.setdefault(id(resource), me) != me:
            self.overlaps.append(resource)
        self.most_out = max(self.most_out, len(self.holders))

    def give(self, resource: Any, me: int) -> None:
        if self.holders.get(id(resource)) == me:
            del self.holders[id(resource)]


def _hold() -> None:
    if GREEN:
        time.sleep(0)  # let the others run while we hold it


def _cycles(pool: Any, exclusive: Exclusive, me: int, cycles: int) -> int:
    for _ in range(cycles):
        resource = pool.acquire(block=True, timeout=60)
        exclusive.take(resource, me)
        _hold()
        exclusive.give(resource, me)
        pool.release(resource)
    return cycles


def _check_end_state(pool: Any, factory: Factory, exclusive: Exclusive, limit: int) -> None:
    assert not exclusive.overlaps, exclusive.overlaps[:5]
    assert exclusive.most_out <= limit
    stats = pool.get_stats()
    assert len(factory.made) - sum(factory.closed_counts()) == stats["pool_size"] <= limit
    assert all(count <= 1 for count in factory.closed_counts())
    assert_balanced(pool)
    assert_can_take_limit(pool)


def test_many_tasks_few_resources(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, LIMIT)
    exclusive = Exclusive()
    results = join_all([spawn(_cycles, pool, exclusive, i, CYCLES) for i in range(TASKS)],
                       timeout=120)
    assert results == [CYCLES] * TASKS
    assert pool.get_stats()["requests_num"] >= TASKS * CYCLES
    _check_end_state(pool, factory, exclusive, LIMIT)


def test_many_tasks_with_hooks(make_pool: Any) -> None:
    """The slow paths (check, reset, usage tracking) under the same load."""
    factory = Factory()
    checks = itertools.count()  # next() is atomic, unlike += on OS threads
    pool = make_pool(factory, LIMIT, check=lambda r: next(checks),
                     reset=lambda r: None, track_usage=True)
    exclusive = Exclusive()
    cycles = CYCLES // 2
    results = join_all([spawn(_cycles, pool, exclusive, i, cycles) for i in range(TASKS)],
                       timeout=120)
    assert results == [cycles] * TASKS
    # every hand-out but the first of each resource (made for its caller) is checked
    assert next(checks) == TASKS * cycles - len(factory.made)
    _check_end_state(pool, factory, exclusive, LIMIT)


def test_mixed_operations_under_load(make_pool: Any) -> None:
    """Blocking, non-blocking, timing-out, replacing and resizing all at once."""
    factory = Factory()
    pool = make_pool(factory, LIMIT)
    exclusive = Exclusive()
    stop = threading.Event()
    high_limit = LIMIT + 3
    cycles = CYCLES // 2

    def worker(me: int) -> int:
        rng = random.Random(me)
        done = 0
        for _ in range(cycles):
            try:
                roll = rng.random()
                if roll < 0.2:
                    resource = pool.acquire(block=False)
                elif roll < 0.4:
                    resource = pool.acquire(block=True, timeout=0.001)
                else:
                    resource = pool.acquire(block=True, timeout=60)
            except (LimitExceeded, PoolTimeout):
                _hold()
                continue
            exclusive.take(resource, me)
            _hold()
            exclusive.give(resource, me)
            if rng.random() < 0.05:
                pool.replace(resource)
            else:
                pool.release(resource)
            done += 1
        return done

    def resizer() -> None:
        rng = random.Random(0)
        while not stop.is_set():
            pool.resize(rng.choice([2, LIMIT, high_limit]))
            time.sleep(0.001)

    resizing = spawn(resizer)
    try:
        results = join_all([spawn(worker, i) for i in range(TASKS)], timeout=120)
    finally:
        stop.set()
        resizing.join()
    assert sum(results) > 0
    pool.resize(LIMIT)
    assert not exclusive.overlaps
    assert exclusive.most_out <= high_limit
    stats = pool.get_stats()
    assert len(factory.made) - sum(factory.closed_counts()) == stats["pool_size"] <= LIMIT
    assert all(count <= 1 for count in factory.closed_counts())
    assert_balanced(pool)
    assert_can_take_limit(pool)
    pool.close()
    assert factory.closed_counts() == [1] * len(factory.made)


@pytest.mark.skipif(GREEN, reason="needs preemptive threads (green threads run each release whole)")
def test_racing_double_releases_accept_exactly_one(make_pool: Any) -> None:
    """Threads release the same resource at the same moment: one return is
    accepted, the others refused, and the pool never holds it twice."""
    pool = make_pool(Factory(), limit=2)
    rounds, racers = 2000, 3
    sys.setswitchinterval(1e-6)  # the fixture restores it
    held: list[Any] = []
    started = [-1]  # the round the racers may start
    finished: list[int] = []  # one entry per racer and round (append is atomic)
    outcomes: list[str] = []
    deadline = time.monotonic() + 60

    def racer(index: int) -> None:
        for round_ in range(rounds):
            if index == 0:
                held.append(pool.acquire())
                started[0] = round_
            while started[0] != round_ and time.monotonic() < deadline:
                pass  # spinning, not sleeping: every racer is runnable when the round starts
            try:
                pool.release(held[round_])
            except ValueError:
                outcomes.append("refused")
            else:
                outcomes.append("accepted")
            finished.append(index)
            if index == 0:  # the next round once everyone is done with this one
                while len(finished) < racers * (round_ + 1) and time.monotonic() < deadline:
                    pass

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert time.monotonic() < deadline, "the racers did not finish"
    assert outcomes.count("accepted") == rounds  # exactly one per round
    assert outcomes.count("refused") == rounds * (racers - 1)
    assert_balanced(pool)
    assert len({id(slot) for slot in pool._idle}) == len(pool._idle) == 1
