"""A hypothesis state machine against the pool's invariants.

Random sequences of acquire, release, replace, resize, force_close_all and
wrong releases; after every step the pool must agree with a simple model:
never more than ``limit`` lent, never one object to two holders, a wrong
release changes nothing, and every resource ever created is closed exactly
once after ``close()``.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Factory, Thing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import greenpools
from greenpools import LimitExceeded, PoolTimeout

SETTINGS = settings(
    max_examples=60, stateful_step_count=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class PoolMachine(RuleBasedStateMachine):
    """Model: which resources we hold, and which were force-closed while held."""

    #: Extra options for the pool (subclasses exercise the slow paths).
    options: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        self.factory = Factory()
        self.limit = 3
        self.pool = greenpools.Pool(self.factory, self.limit, **self.options)
        self.held: list[Thing] = []
        self.retired: list[Thing] = []  # force-closed while we held them
        self.retiring: list[Thing] = []  # held across a reset: closed when given back
        self.returned: list[Thing] = []  # released at some point

    # -- helpers ---------------------------------------------------------

    def _is_held(self, thing: Thing) -> bool:
        return any(h is thing for h in self.held + self.retired + self.retiring)

    def _took(self, thing: Thing) -> None:
        assert not self._is_held(thing), f"{thing} handed to two holders"
        assert not thing.closed, f"closed {thing} handed out"
        self.held.append(thing)
        if self.limit:
            assert len(self.held) <= self.limit

    # -- rules -----------------------------------------------------------

    @rule()
    def acquire(self) -> None:
        full = self.limit and len(self.held) >= self.limit
        try:
            thing = self.pool.acquire()
        except LimitExceeded:
            assert self.limit and self.pool.get_stats()["pool_available"] == 0
            return
        assert not full
        self._took(thing)

    @rule()
    def acquire_blocking_without_time(self) -> None:
        try:
            thing = self.pool.acquire(block=True, timeout=0)
        except PoolTimeout:
            assert self.limit and self.pool.get_stats()["pool_available"] == 0
            return
        self._took(thing)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0, max_value=100))
    def release(self, index: int) -> None:
        thing = self.held.pop(index % len(self.held))
        self.pool.release(thing)
        self.returned.append(thing)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0, max_value=100))
    def replace(self, index: int) -> None:
        thing = self.held.pop(index % len(self.held))
        self.pool.replace(thing)
        assert thing.closed == 1

    @precondition(lambda self: self.retired)
    @rule()
    def release_retired(self) -> None:
        thing = self.retired.pop()
        self.pool.release(thing)  # silently dropped: it was force-closed
        assert thing.closed == 1

    @precondition(lambda self: self.retiring)
    @rule(replace=st.booleans())
    def give_back_retiring(self, replace: bool) -> None:
        thing = self.retiring.pop()
        assert thing.closed == 0  # a reset does not close what is in use
        if replace:
            self.pool.replace(thing)
        else:
            self.pool.release(thing)
        assert thing.closed == 1  # retired by the reset: closed, not pooled

    @precondition(lambda self: any(not self._is_held(t) for t in self.returned))
    @rule()
    def release_twice(self) -> None:
        thing = next(t for t in reversed(self.returned) if not self._is_held(t))
        before = self.pool.get_stats()
        with pytest.raises(ValueError):
            self.pool.release(thing)
        assert self.pool.get_stats() == before

    @rule()
    def release_stranger(self) -> None:
        before = self.pool.get_stats()
        with pytest.raises(ValueError):
            self.pool.release(Thing())
        assert self.pool.get_stats() == before

    @rule(limit=st.integers(min_value=0, max_value=5), reset=st.booleans())
    def resize(self, limit: int, reset: bool) -> None:
        self.pool.resize(limit, reset=reset)
        self.limit = limit
        if reset:  # what we hold stops counting against the limit
            self.retiring.extend(self.held)
            self.held.clear()

    @rule()
    def force_close_all(self) -> None:
        self.pool.force_close_all(close_pool=False)
        for thing in self.held:
            assert thing.closed == 1
        self.retired.extend(self.held + self.retiring)
        for thing in self.retiring:
            assert thing.closed == 1
        self.held.clear()
        self.retiring.clear()

    # -- invariants ------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        stats = self.pool.get_stats()
        assert len(self.pool._lent_slots()) == len(self.held)
        # Every resource that exists, and no closed one, can be found by id.
        assert len(self.pool._slots) == stats["pool_size"]
        assert stats["pool_size"] == len(self.held) + stats["pool_available"]
        if self.limit and stats["pool_available"]:
            assert stats["pool_size"] <= self.limit  # only lent ones may be over
        counts = self.factory.closed_counts()
        assert all(count <= 1 for count in counts)
        assert len(counts) - sum(counts) == stats["pool_size"] + len(self.retiring)
        assert stats["requests_waiting"] == 0

    def teardown(self) -> None:
        self.pool.close()
        for thing in self.held + self.retired + self.retiring:
            self.pool.release(thing)
        assert self.factory.closed_counts() == [1] * len(self.factory.made)
        assert self.pool.get_stats()["pool_size"] == 0


class HookedPoolMachine(PoolMachine):
    """The same with hooks on, so every release takes the slow path."""

    options = {"reset": lambda thing: None, "check": lambda thing: None,
               "max_lifetime": 3600.0, "track_usage": True}


TestPool = PoolMachine.TestCase
TestPool.settings = SETTINGS
TestHookedPool = HookedPoolMachine.TestCase
TestHookedPool.settings = SETTINGS
