"""Cancellation safety: an interrupted waiter never takes, and never loses, a resource.

Interruptions come while the caller waits, and in the worst spot: right
after a release handed the waiter a resource but before the waiter ran
again.  Each library's own interruptions are used where the run's backend
has them (``gevent.Timeout`` and ``Greenlet.kill``; eventlet's ``Timeout``
and ``GreenThread.kill``); on every backend a waiter stub raises a
``KeyboardInterrupt``-like ``BaseException`` at either point.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from helpers import (
    BACKEND,
    HANG_TIMEOUT,
    Factory,
    assert_balanced,
    assert_can_take_limit,
    join_all,
    passed_over_past_the_bound,
    queued_so_far,
    spawn,
    start_acquirer,
    wait_until,
    waiting,
)

from greenpools import PoolTimeout, backends
from greenpools.backends import Waiter

#: How long the interrupted callers are prepared to wait: every test runs once
#: with a timeout and once without (a wait without one is also watched for
#: stalls).
PATIENCE: float | None = HANG_TIMEOUT


@pytest.fixture(autouse=True, params=[HANG_TIMEOUT, None], ids=["timeout", "no-timeout"])
def _patience(request: pytest.FixtureRequest) -> Any:
    global PATIENCE
    PATIENCE = request.param
    yield
    PATIENCE = HANG_TIMEOUT


class Interrupted(BaseException):
    """Stands in for KeyboardInterrupt (which would stop pytest itself)."""


# -- a waiter stub that interrupts its task ---------------------------------------------


class InterruptingWaiter(Waiter):
    """Wraps the real waiter; raises ``Interrupted`` before waiting or once woken."""

    __slots__ = ("_real", "_when")

    def __init__(self, real: Waiter, when: str) -> None:
        super().__init__()  # the waiting client's fields: the pool queues this waiter
        self._real = real
        self._when = when

    def wait(self, timeout: float | None) -> bool:
        if self._when == "waiting":
            raise Interrupted("while waiting")
        if not self._real.wait(HANG_TIMEOUT if timeout is None else min(timeout, HANG_TIMEOUT)):
            if timeout is not None:  # its time ran out, or it is to look again: no wake
                return False
            raise AssertionError("never woken")
        raise Interrupted("right after the grant, before the waiter ran")

    def wake(self) -> None:
        self._real.wake()


class StubBackend:
    """The active backend, except that its next waiter interrupts its task."""

    def __init__(self, real: backends.Backend, when: str) -> None:
        self._real = real
        self._when: str | None = when

    def waiter(self) -> Waiter:
        real = self._real.waiter()
        when, self._when = self._when, None
        return real if when is None else InterruptingWaiter(real, when)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def spy_abandon(pool: Any) -> list[int]:
    """Record the state each abandoning waiter was in (1: it had been granted)."""
    states: list[int] = []
    original = pool._abandon

    def abandon(client: Any) -> None:
        states.append(client.state)
        original(client)

    pool._abandon = abandon
    return states


GRANTED = 1
WAITING = 0


# -- interruption kinds ---------------------------------------------------------------


class Kind:
    """How one kind of interruption reaches a waiting task."""

    name = ""
    exception: tuple[type[BaseException], ...] = ()

    def start(self, pool: Any, when: str) -> Any:
        raise NotImplementedError

    def interrupt(self, handle: Any) -> None:
        """Interrupt a task that is waiting."""
        raise NotImplementedError

    def release_then_interrupt(self, handle: Any, pool: Any, resource: Any) -> None:
        """Release ``resource`` (granting it to the task) and interrupt the task
        before it runs again."""
        raise NotImplementedError

    def outcome(self, handle: Any) -> Any:
        raise NotImplementedError


class StubKind(Kind):
    name = "stub-interrupt"
    exception = (Interrupted,)

    def start(self, pool: Any, when: str) -> Any:
        real = backends.current()
        stub = StubBackend(real, when)
        original = backends.current
        backends.current = lambda: stub  # type: ignore[assignment,return-value]
        pool._new_waiter = stub.waiter  # what a pool makes its waiters with
        try:
            before = queued_so_far(pool)
            task = spawn(pool.acquire, True, PATIENCE)
            if when == "waiting":
                task.done.wait(HANG_TIMEOUT)
            else:
                wait_until(lambda: queued_so_far(pool) > before or task.done.is_set())
        finally:
            backends.current = original  # type: ignore[assignment]
            pool._new_waiter = backends.waiter_factory()
        return task

    def interrupt(self, handle: Any) -> None:
        pass  # the stub already did it

    def release_then_interrupt(self, handle: Any, pool: Any, resource: Any) -> None:
        pool.release(resource)  # the stub raises as soon as it is woken

    def outcome(self, handle: Any) -> Any:
        try:
            return handle.join()
        except BaseException as exc:
            return exc


def _catching(pool: Any, timeout_cm: Any = None) -> Any:
    def body() -> Any:
        try:
            if timeout_cm is None:
                return pool.acquire(True, PATIENCE)
            with timeout_cm():
                return pool.acquire(True, PATIENCE)
        except BaseException as exc:
            return exc
    return body


class GeventKill(Kind):
    name = "gevent-kill"

    def __init__(self, timeout: bool = False) -> None:
        import gevent

        self.gevent = gevent
        self.use_timeout = timeout
        self.exception = (gevent.Timeout,) if timeout else (gevent.GreenletExit,)
        if timeout:
            self.name = "gevent-timeout"

    def start(self, pool: Any, when: str) -> Any:
        before = queued_so_far(pool)
        body = _catching(pool)
        if self.use_timeout and when == "waiting":
            body = _catching(pool, lambda: self.gevent.Timeout(0.01))
        greenlet = self.gevent.spawn(body)
        wait_until(lambda: queued_so_far(pool) > before)
        return greenlet

    def _throw(self, greenlet: Any, block: bool) -> None:
        if self.use_timeout:
            greenlet.kill(self.gevent.Timeout(), block=block)
        else:
            greenlet.kill(block=block)

    def interrupt(self, handle: Any) -> None:
        if not self.use_timeout:  # a real Timeout fires on its own
            self._throw(handle, block=True)

    def release_then_interrupt(self, handle: Any, pool: Any, resource: Any) -> None:
        # gevent delivers a kill from the hub, in order: queue the kill first,
        # then grant; the kill reaches the waiter before the wake-up does.
        self._throw(handle, block=False)
        pool.release(resource)

    def outcome(self, handle: Any) -> Any:
        return handle.get(timeout=HANG_TIMEOUT)


class EventletKill(Kind):
    name = "eventlet-kill"

    def __init__(self, timeout: bool = False) -> None:
        import eventlet

        self.eventlet = eventlet
        self.use_timeout = timeout
        self.exception = (eventlet.Timeout,) if timeout else (eventlet.greenlet.GreenletExit,)
        if timeout:
            self.name = "eventlet-timeout"

    def start(self, pool: Any, when: str) -> Any:
        before = queued_so_far(pool)
        body = _catching(pool)
        if self.use_timeout and when == "waiting":
            body = _catching(pool, lambda: self.eventlet.Timeout(0.01))
        green = self.eventlet.spawn(body)
        wait_until(lambda: queued_so_far(pool) > before)
        return green

    def _throw(self, green: Any) -> None:
        # eventlet's kill throws into the green thread at once.
        if self.use_timeout:
            green.kill(self.eventlet.Timeout(None))
        else:
            green.kill()

    def interrupt(self, handle: Any) -> None:
        if not self.use_timeout:
            self._throw(handle)

    def release_then_interrupt(self, handle: Any, pool: Any, resource: Any) -> None:
        pool.release(resource)
        self._throw(handle)

    def outcome(self, handle: Any) -> Any:
        return handle.wait()


def kinds() -> list[Kind]:
    found: list[Kind] = [StubKind()]
    if BACKEND == "gevent":
        found += [GeventKill(), GeventKill(timeout=True)]
    elif BACKEND == "eventlet":
        found += [EventletKill(), EventletKill(timeout=True)]
    return found


KINDS = kinds()


def _assert_interrupted(kind: Kind, outcome: Any) -> None:
    assert isinstance(outcome, kind.exception), outcome


# -- the scenarios --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_interrupted_while_waiting(make_pool: Any, kind: Kind) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    held = pool.acquire()
    states = spy_abandon(pool)
    handle = kind.start(pool, "waiting")
    behind = start_acquirer(pool)
    kind.interrupt(handle)
    _assert_interrupted(kind, kind.outcome(handle))
    assert states == [WAITING]
    assert waiting(pool) == 1
    pool.release(held)
    assert behind.join() is held  # the one behind is served, nothing was lost
    pool.release(held)
    assert_balanced(pool)
    assert_can_take_limit(pool)
    assert len(factory.made) == 1


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("someone_behind", [True, False], ids=["waiter-behind", "alone"])
def test_interrupted_right_after_the_grant(make_pool: Any, kind: Kind,
                                           someone_behind: bool) -> None:
    factory = Factory()
    pool = make_pool(factory, 2)
    held = pool.acquire()
    other = pool.acquire()
    states = spy_abandon(pool)
    handle = kind.start(pool, "granted")
    behind = start_acquirer(pool) if someone_behind else None
    passed_over_past_the_bound(pool._waiting.oldest())  # the release hands off
    kind.release_then_interrupt(handle, pool, held)
    _assert_interrupted(kind, kind.outcome(handle))
    assert states == [GRANTED], "the interruption did not hit the hand-off"
    if behind is not None:
        assert behind.join() is held  # passed on to the next waiter
        pool.release(held)
    else:
        assert pool.get_stats()["pool_available"] == 1  # back in the pool
    pool.release(other)
    assert_balanced(pool)
    assert_can_take_limit(pool)
    assert len(factory.made) == 2


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_interrupted_while_allowed_to_create(make_pool: Any, kind: Kind) -> None:
    """A replace hands the waiter the right to create; an interruption passes it on."""
    factory = Factory()
    pool = make_pool(factory, 1)
    broken = pool.acquire()
    states = spy_abandon(pool)
    handle = kind.start(pool, "granted")
    behind = start_acquirer(pool)

    class Replace:
        def release(self, resource: Any) -> None:
            pool.replace(resource)

    kind.release_then_interrupt(handle, Replace(), broken)
    _assert_interrupted(kind, kind.outcome(handle))
    assert states == [2]  # _MAY_CREATE
    fresh = behind.join()
    assert fresh is not broken and len(factory.made) == 2
    pool.release(fresh)
    assert_balanced(pool)
    assert_can_take_limit(pool)


def test_timeout_race_never_loses_a_resource(make_pool: Any) -> None:
    """Waiters time out in every phase while resources go round."""
    factory = Factory()
    limit = 3
    pool = make_pool(factory, limit)
    holders: dict[int, int] = {}
    overlaps: list[Any] = []
    timeouts = [0]
    rng = random.Random(1234)
    choices = [0.0, 0.0005, 0.001, 0.002, 0.005]

    def worker(me: int) -> int:
        got = 0
        for _ in range(40):
            try:
                resource = pool.acquire(True, rng.choice(choices))
            except PoolTimeout:
                timeouts[0] += 1
                continue
            if holders.setdefault(id(resource), me) != me:
                overlaps.append(resource)
            time.sleep(0)
            del holders[id(resource)]
            pool.release(resource)
            got += 1
        return got

    results = join_all([spawn(worker, i) for i in range(30)])
    assert not overlaps
    assert sum(results) + timeouts[0] == 30 * 40
    assert sum(results) > 0
    assert_balanced(pool)
    assert len(factory.made) == pool.get_stats()["pool_size"] <= limit
    assert_can_take_limit(pool)


class RandomInterrupts:
    """The active backend, but a fifth of its waiters interrupt their task."""

    def __init__(self, real: backends.Backend, seed: int) -> None:
        self._real = real
        self._rng = random.Random(seed)

    def waiter(self) -> Waiter:
        real = self._real.waiter()
        roll = self._rng.random()
        if roll < 0.1:
            return InterruptingWaiter(real, "waiting")
        if roll < 0.2:
            return InterruptingWaiter(real, "granted")
        return real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class Storm:
    """Green or native tasks, some of which get interrupted while they wait."""

    name = "stub-interrupts"

    def __init__(self) -> None:
        self._original = backends.current

    def setup(self, pool: Any) -> None:
        stub = RandomInterrupts(backends.current(), seed=7)
        backends.current = lambda: stub  # type: ignore[assignment,return-value]
        pool._new_waiter = stub.waiter  # what the pool makes its waiters with

    def teardown(self) -> None:
        backends.current = self._original  # type: ignore[assignment]

    def spawn(self, fn: Any, *args: Any) -> Any:
        return spawn(fn, *args)

    def kill(self, task: Any) -> None:
        pass

    def join(self, tasks: list[Any]) -> None:
        join_all(tasks)


class GeventStorm(Storm):
    name = "gevent-kills"

    def setup(self, pool: Any) -> None:
        pass

    def teardown(self) -> None:
        pass

    def spawn(self, fn: Any, *args: Any) -> Any:
        import gevent

        return gevent.spawn(fn, *args)

    def kill(self, task: Any) -> None:
        import gevent

        if not task.dead:
            task.kill(gevent.Timeout() if random.random() < 0.5 else gevent.GreenletExit,
                      block=False)

    def join(self, tasks: list[Any]) -> None:
        import gevent

        gevent.joinall(tasks, timeout=HANG_TIMEOUT)
        assert all(task.dead for task in tasks)


class EventletStorm(GeventStorm):
    name = "eventlet-kills"

    def spawn(self, fn: Any, *args: Any) -> Any:
        import eventlet

        return eventlet.spawn(fn, *args)

    def kill(self, task: Any) -> None:
        import eventlet

        if not task.dead:
            task.kill(eventlet.Timeout(None) if random.random() < 0.5 else
                      eventlet.greenlet.GreenletExit())

    def join(self, tasks: list[Any]) -> None:
        for task in tasks:
            task.wait()


STORMS: list[Storm] = [Storm()]
if BACKEND == "gevent":
    STORMS.append(GeventStorm())
elif BACKEND == "eventlet":
    STORMS.append(EventletStorm())


@pytest.mark.parametrize("storm", STORMS, ids=lambda s: s.name)
def test_interruption_storm(make_pool: Any, storm: Storm) -> None:
    factory = Factory()
    limit = 3
    pool = make_pool(factory, limit)
    holders: dict[int, int] = {}
    overlaps: list[Any] = []
    counts = {"interrupted": 0, "cycles": 0}

    # Thirty rounds each, and more until some task was interrupted: on a
    # loaded machine a thread can run all its rounds without ever waiting.
    deadline = time.monotonic() + 10.0

    def more_rounds(done: int) -> bool:
        return done < 30 or (not counts["interrupted"] and time.monotonic() < deadline)

    def worker(me: int) -> None:
        try:
            done = 0
            while more_rounds(done):
                done += 1
                try:
                    resource = pool.acquire(True, PATIENCE)
                except Interrupted:
                    counts["interrupted"] += 1
                    continue
                try:
                    if holders.setdefault(id(resource), me) != me:
                        overlaps.append(resource)
                    time.sleep(0)
                finally:
                    if holders.get(id(resource)) == me:
                        del holders[id(resource)]
                    pool.release(resource)
                counts["cycles"] += 1
        except BaseException:  # killed, waiting or holding: this task ends
            counts["interrupted"] += 1

    storm.setup(pool)
    try:
        rng = random.Random(99)
        tasks = [storm.spawn(worker, i) for i in range(40)]
        for _ in range(60):
            time.sleep(0)
            storm.kill(rng.choice(tasks))
        if isinstance(storm, GeventStorm):
            storm.join(tasks)
        else:
            join_all(tasks)
    finally:
        storm.teardown()
    assert not overlaps
    assert counts["interrupted"] > 0 and counts["cycles"] > 0
    assert_balanced(pool)
    assert len(factory.made) == pool.get_stats()["pool_size"] <= limit
    assert_can_take_limit(pool)


def test_several_interrupted_hand_offs_in_a_row(make_pool: Any) -> None:
    """Three granted-then-interrupted waiters pass two resources on to the normal ones."""
    pool = make_pool(Factory(), 2)
    held = [pool.acquire(), pool.acquire()]
    kind = StubKind()
    handles = [kind.start(pool, "granted") for _ in range(3)]
    release = threading.Event()
    normal = [start_acquirer(pool, release=release) for _ in range(2)]
    pool.release(held[0])
    pool.release(held[1])
    for handle in handles:
        assert isinstance(kind.outcome(handle), Interrupted)
    wait_until(lambda: waiting(pool) == 0 and len(pool._lent_slots()) == 2)
    assert pool.get_stats()["pool_available"] == 0
    release.set()
    assert {id(r) for r in join_all(normal)} == {id(r) for r in held}
    assert_balanced(pool)
    assert_can_take_limit(pool)
