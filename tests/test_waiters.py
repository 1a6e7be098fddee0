"""The waiter contract, on this run's backend, for every waiter it has.

On gevent and eventlet that is ``greenpools.backends._green.HubWaiter``
over the backend's hub operations; on threads, the lock waiter.  Each runs
compiled and as plain Python (the runner's two builds).
Every waiter is also a pool's waiting client: its transitions (grant,
allow_create, refuse, withdraw) are each made once, and wake it.
Beyond the contract, the green waiters' run-next hand-off: a task that
wakes a waiter and then parks switches straight into it.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from typing import Any

import pytest
from helpers import (
    BACKEND,
    Factory,
    assert_balanced,
    native_runner,
    run_python,
    spawn,
    wait_until,
)

import greenpools
from greenpools import backends

#: The waiting client's states (as the pool sees them: C constants when compiled).
WAITING, GRANTED, MAY_CREATE, REFUSED = 0, 1, 2, 3


def _waiter_classes() -> list[type[Any]]:
    """The active backend's waiter (the build under test: the runner runs the
    suite once compiled and once as plain Python)."""
    return [backends.get_backend().waiter_factory()]  # type: ignore[list-item]


def _name(make: Any) -> str:
    return getattr(make, "__name__", type(make).__name__)


@pytest.fixture(params=_waiter_classes(), ids=_name)
def make_waiter(request: pytest.FixtureRequest) -> Any:
    return request.param


green_only = pytest.mark.skipif(BACKEND == "threading", reason="about green threads")


def _parked(waiter: Any) -> bool:
    """Whether a green waiter's task is parked in it (threads: not observable)."""
    return getattr(waiter, "_greenlet", True) is not None


def _green_spawn(func: Any) -> None:
    """Schedule ``func`` without yielding (``Thread.start`` waits for it to run)."""
    if BACKEND == "gevent":
        import gevent

        gevent.spawn(func)
    else:
        import eventlet

        eventlet.spawn(func)


def _real_sleep() -> Any:
    """``time.sleep`` as it was before monkey patching: for native threads."""
    if BACKEND == "gevent":
        from gevent import monkey

        return monkey.get_original("time", "sleep")
    if BACKEND == "eventlet":
        from eventlet import patcher

        return patcher.original("time").sleep
    return time.sleep


def test_woken_before_waiting_returns_at_once(make_waiter: Any) -> None:
    waiter = make_waiter()
    waiter.wake()
    assert waiter.wait(None) is True


def test_zero_timeout_does_not_park(make_waiter: Any) -> None:
    assert make_waiter().wait(0) is False


def test_a_second_wake_changes_nothing(make_waiter: Any) -> None:
    waiter = make_waiter()
    waiter.wake()
    waiter.wake()
    assert waiter.wait(None) is True


def test_a_new_waiter_is_a_waiting_client(make_waiter: Any) -> None:
    from greenpools.core.waiting import WaitingClient

    waiter = make_waiter()
    assert isinstance(waiter, WaitingClient)
    assert (waiter.state, waiter.slot, waiter.stall_warned) == (WAITING, None, False)


@pytest.mark.parametrize("serve", ["grant", "allow_create", "refuse"])
def test_a_transition_is_made_once_and_wakes(make_waiter: Any, serve: str) -> None:
    waiter = make_waiter()
    slot = object()
    args = (slot,) if serve == "grant" else ()
    assert getattr(waiter, serve)(*args) is True
    assert waiter.wait(0) is True  # woken: no wait
    assert waiter.state == {"grant": GRANTED, "allow_create": MAY_CREATE, "refuse": REFUSED}[serve]
    assert waiter.slot is (slot if serve == "grant" else None)
    # served once: every later transition is refused and changes nothing
    assert waiter.grant(object()) is False
    assert waiter.allow_create() is False
    assert waiter.refuse() is False
    assert waiter.slot is (slot if serve == "grant" else None)
    assert waiter.withdraw() == {"grant": GRANTED, "allow_create": MAY_CREATE,
                                 "refuse": REFUSED}[serve]


def test_a_withdrawn_waiter_refuses_every_transition(make_waiter: Any) -> None:
    waiter = make_waiter()
    assert waiter.withdraw() == WAITING
    assert waiter.grant(object()) is False
    assert waiter.allow_create() is False
    assert waiter.slot is None
    assert waiter.wait(0) is False  # never woken


def test_timeout_expires(make_waiter: Any) -> None:
    """The timeout counts from the call, also after a long stretch without
    yielding (a hub's cached clock is stale then)."""
    waiter = make_waiter()
    busy_until = time.monotonic() + 0.1
    while time.monotonic() < busy_until:
        pass
    started = time.monotonic()
    assert waiter.wait(0.05) is False
    assert time.monotonic() - started >= 0.04
    waiter.wake()  # late: harmless
    assert waiter.wait(None) is True


# An infinite timeout is too long for an OS lock to count: it means forever.
@pytest.mark.parametrize("timeout", [30.0, float("inf")], ids=["30s", "inf"])
def test_woken_by_another_task(make_waiter: Any, timeout: float) -> None:
    waiter = make_waiter()
    ready = threading.Event()

    def wait() -> bool:
        ready.set()
        return bool(waiter.wait(timeout))

    task = spawn(wait)
    ready.wait(30)
    wait_until(lambda: _parked(waiter))
    waiter.wake()
    assert task.join() is True


def test_woken_from_a_native_thread(make_waiter: Any) -> None:
    waiter = make_waiter()
    sleep = _real_sleep()

    def wake_once_parked() -> None:
        deadline = time.monotonic() + 30
        while not _parked(waiter) and time.monotonic() < deadline:
            sleep(0.001)
        waiter.wake()

    join = native_runner(BACKEND)(wake_once_parked)
    assert waiter.wait(30) is True
    join()


@green_only
def test_waker_that_parks_switches_straight_into_the_woken(make_waiter: Any) -> None:
    order: list[str] = []
    first, second = make_waiter(), make_waiter()

    def woken() -> None:
        assert first.wait(30)
        order.append("woken")
        second.wake()

    def bystander() -> None:
        order.append("bystander")

    def waker() -> None:
        _green_spawn(bystander)  # ready before the wake-up below
        first.wake()
        assert second.wait(30)  # parks: the woken task runs first
        order.append("waker")

    tasks = [spawn(woken)]
    wait_until(lambda: _parked(first))
    tasks.append(spawn(waker))
    for task in tasks:
        task.join()
    assert order[0] == "woken", order
    assert sorted(order) == ["bystander", "waker", "woken"]


def _hub_greenlet() -> Any:
    """The running thread's hub as a greenlet (eventlet's hub object has one)."""
    if BACKEND == "gevent":
        import gevent

        return gevent.get_hub()
    from eventlet import hubs

    return hubs.get_hub().greenlet


@green_only
@pytest.mark.parametrize("resumed_by", ["hub", "direct switch", "timer"])
def test_a_greenlet_that_overrides_switch_is_resumed_through_it(
    make_waiter: Any, resumed_by: str
) -> None:
    """A greenlet subclass's own ``switch`` runs when a waiter resumes it
    (compiled, greenlet's C switch would bypass it)."""
    import greenlet

    switched: list[tuple[Any, ...]] = []

    class Tracking(greenlet.greenlet):  # type: ignore[misc]
        def switch(self, *args: Any, **kwargs: Any) -> Any:
            switched.append(args)
            return super().switch(*args, **kwargs)

    waiter, done = make_waiter(), make_waiter()
    results: list[bool] = []

    def run() -> None:
        results.append(waiter.wait(0.05 if resumed_by == "timer" else 30))
        done.wake()

    task = Tracking(run, parent=_hub_greenlet())
    _green_spawn(task.switch)
    wait_until(lambda: _parked(waiter))
    del switched[:]  # the start
    if resumed_by == "hub":
        waiter.wake()  # the hub resumes it: this task does not park on a waiter
        wait_until(lambda: bool(results))
    elif resumed_by == "direct switch":
        waiter.wake()
        assert done.wait(30)  # parks here: switches straight into the woken task
    assert done.wait(30)
    assert results == [resumed_by != "timer"]
    assert switched == [(resumed_by != "timer",)]


@pytest.mark.skipif(BACKEND != "gevent", reason="about gevent's Hub.destroy()")
def test_a_wait_after_the_hub_was_destroyed_parks_on_the_new_hub() -> None:
    """Waiters skip asking gevent for the thread's hub while the running
    greenlet is a child of the hub found last; a destroyed hub (its greenlet
    still suspended) is never used again, even by a greenlet it was the
    parent of."""
    result = run_python(textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import gevent, greenlet
        from greenpools import backends
        make = backends.get_backend().waiter_factory()

        def wait_once():
            waiter = make()
            task = gevent.spawn(waiter.wait, 5)
            gevent.sleep(0.01)
            waiter.wake()
            assert task.get(timeout=5) is True
            return waiter._home

        old = gevent.get_hub()
        assert wait_once().hub is old
        results, late, main = [], make(), greenlet.getcurrent()

        def late_waiter():
            results.append(late.wait(5))
            greenlet.getcurrent().parent = main  # end here, not in the destroyed hub

        # A greenlet of the old hub that first runs, and waits, once it is destroyed.
        orphan = greenlet.greenlet(late_waiter, parent=old)
        old.destroy(destroy_loop=True)
        new = gevent.get_hub()
        assert new is not old
        new.loop.run_callback(late.wake)
        orphan.switch()
        assert results == [True], results
        assert late._home.hub is new
        assert wait_once().hub is new
        print("OK")
    """))
    assert result.stdout.strip() == "OK", result.stderr


@green_only
def test_an_interrupted_wait_forgets_its_task(make_waiter: Any) -> None:
    waiter = make_waiter()

    class Stop(Exception):
        pass

    def wait() -> None:
        waiter.wait(30)

    if BACKEND == "gevent":
        import gevent

        task = gevent.spawn(wait)
        wait_until(lambda: _parked(waiter))
        task.kill(Stop, block=True)
        assert isinstance(task.exception, Stop)
    else:
        import eventlet

        green = eventlet.spawn(wait)
        wait_until(lambda: _parked(waiter))
        green.kill(Stop())
        with pytest.raises(Stop):
            green.wait()
    assert waiter._greenlet is None
    waiter.wake()  # nobody to resume: harmless


threads_only = pytest.mark.skipif(
    BACKEND != "threading" or threading.current_thread() is not threading.main_thread()
    or not hasattr(signal, "pthread_kill"),
    reason="signals the main native thread while it waits (threading backend, POSIX)",
)


def _signal_main_thread_after(seconds: float) -> threading.Timer:
    """SIGUSR1 to the main thread (the waiting one) ``seconds`` from now."""
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGUSR1))
    timer.start()
    return timer


@threads_only
def test_a_signal_neither_ends_nor_extends_a_timed_wait(make_waiter: Any) -> None:
    handled = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: handled.append(time.monotonic()))
    try:
        waiter = make_waiter()
        started = time.monotonic()
        timer = _signal_main_thread_after(0.15)
        assert waiter.wait(0.3) is False
        waited = time.monotonic() - started
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert handled and handled[0] - started < 0.29  # the handler ran during the wait
    # Neither cut short by the signal nor started over after it (that is 0.45 s).
    assert 0.28 <= waited < 0.42, waited


@threads_only
def test_a_signal_handler_that_raises_ends_the_wait(make_waiter: Any) -> None:
    class Interrupted(Exception):
        pass

    def interrupt(*args: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        waiter = make_waiter()
        timer = _signal_main_thread_after(0.05)
        with pytest.raises(Interrupted):
            waiter.wait(None)
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    waiter.wake()
    assert waiter.wait(None) is True  # still usable: the wake was not lost


@green_only
def test_a_wait_in_the_hub_itself_is_refused_with_a_clear_error(make_waiter: Any) -> None:
    pool = greenpools.Pool(Factory(), 1)
    held = pool.acquire()
    outcomes: list[str] = []

    def in_the_hub(*_: Any) -> None:
        for wait in (lambda: make_waiter().wait(1.0), lambda: pool.acquire(True, 1.0)):
            try:
                wait()
            except RuntimeError as exc:
                outcomes.append(str(exc))
            else:
                outcomes.append("no error")

    if BACKEND == "gevent":
        import gevent

        gevent.get_hub().loop.run_callback(in_the_hub)
    else:
        from eventlet import hubs

        hubs.get_hub().schedule_call_global(0, in_the_hub)
    wait_until(lambda: len(outcomes) == 2)
    assert all("cannot run in the hub itself" in outcome for outcome in outcomes), outcomes
    assert pool.get_stats()["requests_waiting"] == 0  # the refused caller left the queue
    pool.release(held)
    assert_balanced(pool)
