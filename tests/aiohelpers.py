"""Helpers for the asyncio pool's tests: run a scenario, wait on a condition.

Scenarios synchronise on the pool's own state (``requests_waiting``,
``pool_size``), polled one loop turn at a time: never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from helpers import HANG_TIMEOUT

T = TypeVar("T")

_ids = itertools.count(1)


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run ``scenario`` in a new loop; a hang fails after HANG_TIMEOUT."""
    return asyncio.run(asyncio.wait_for(scenario, HANG_TIMEOUT))


async def until(condition: Callable[[], object], what: str = "the condition") -> None:
    """Yield to the loop until ``condition()`` holds (or fail as hung)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_TIMEOUT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {HANG_TIMEOUT}s")
        await asyncio.sleep(0)


async def settle(turns: int = 5) -> None:
    """Let every task that can run now run (a few loop turns)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Thing:
    """A pooled resource that records whether it was closed."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<Thing {self.id}>"


class RecordedCloses:
    """An awaitable ``close`` hook: closes after one loop turn, as a real
    client's would, and records in ``closed`` what it closed, in order."""

    def __init__(self) -> None:
        self.closed: list[Thing] = []

    async def __call__(self, thing: Thing) -> None:
        await asyncio.sleep(0)
        self.closed.append(thing)


def waiting(pool: Any) -> int:
    return int(pool.get_stats()["requests_waiting"])


def assert_balanced(pool: Any) -> None:
    """Nothing lent, nobody waiting, every place accounted for."""
    stats = pool.get_stats()
    assert stats["requests_waiting"] == 0, stats
    assert stats["pool_size"] == stats["pool_available"], stats
    assert not [s for s in pool._slots.values() if s.lent], "a slot is still lent"
