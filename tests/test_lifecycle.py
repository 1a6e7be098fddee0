"""psycopg_pool-style lifecycle options: min_size, max_idle, max_lifetime,
check, reset, configure, reconnect_failed, leak_timeout.

The upkeep task works in the background; tests wait for what it does to
become visible (``wait_until``), never for a fixed time.
"""

from __future__ import annotations

import ast
import gc
import logging
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    HANG_TIMEOUT,
    Factory,
    RecordsSeen,
    Thing,
    assert_balanced,
    join_all,
    spawn,
    start_acquirer,
    wait_until,
)
from kombu import Connection

from greenpools import Pool, PoolClosed, PoolTimeout, pools
from greenpools.core import lifecycle


@pytest.fixture
def quick_upkeep(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Upkeep rounds and reconnection back-off in milliseconds, not seconds."""
    monkeypatch.setattr(lifecycle, "MAX_INTERVAL", 0.01)
    yield


def _stats(pool: Any, *keys: str) -> tuple[int, ...]:
    stats = pool.get_stats()
    return tuple(stats[key] for key in keys)


# -- min_size -------------------------------------------------------------------------


def test_min_size_is_filled_in_the_background(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 5, min_size=2)
    wait_until(lambda: _stats(pool, "pool_size", "pool_available") == (2, 2))
    assert len(factory.made) == 2 and pool.get_stats()["pool_min"] == 2


def test_min_size_is_restored_after_losses(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 5, min_size=2)
    wait_until(lambda: pool.get_stats()["pool_available"] == 2)
    a, b = pool.acquire(), pool.acquire()
    pool.replace(a)
    pool.replace(b)
    wait_until(lambda: _stats(pool, "pool_size", "pool_available") == (2, 2))
    assert len(factory.made) == 4
    assert pool.get_stats()["connections_lost"] == 2


def test_min_size_retries_failed_creations(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    factory.fail_next = 3
    pool = make_pool(factory, 5, min_size=1)
    wait_until(lambda: pool.get_stats()["pool_available"] == 1)
    assert pool.get_stats()["connections_errors"] == 3


#: A broker that is down: nothing listens on port 1 of the loopback.
REFUSED_URL = "amqp://guest:guest@127.0.0.1:1//"


def failed_attempt(record: logging.LogRecord) -> bool:
    """A record of upkeep's: an attempt to reach min_size failed."""
    return record.levelno == logging.WARNING and "could not reach min_size" in record.getMessage()


def attempt_traceback(record: logging.LogRecord) -> bool:
    """A record of upkeep's: the traceback of an attempt that failed."""
    return record.levelno == logging.DEBUG and record.exc_info is not None and (
        "attempt to reach min_size failed" in record.getMessage())


def test_a_failed_reconnect_is_one_warning_line_with_its_cause_its_traceback_at_debug(
        caplog: pytest.LogCaptureFixture, quick_upkeep: None) -> None:
    caplog.set_level(logging.DEBUG, logger="greenpools")
    seen = threading.Event()
    pool = pools.ConnectionPool(Connection(REFUSED_URL, connect_timeout=1), limit=5, min_size=2)
    try:
        # Each attempt's traceback comes right after its warning line, so
        # three are logged once the fourth warning is.
        with RecordsSeen(failed_attempt, 4, seen):
            assert seen.wait(HANG_TIMEOUT)
    finally:
        pool.close()
    records = list(caplog.records)
    warnings = [r for r in records if failed_attempt(r)]
    assert len(warnings) >= 3
    for record, backing_off in zip(warnings[:3], (1, 2, 4), strict=True):
        message = record.getMessage()
        assert record.exc_info is None and "\n" not in message, message
        # The pool (which names the broker), the cause, when the next attempt is.
        assert message.startswith(
            "greenpools: pool 'connections amqp://127.0.0.1:1//' could not reach min_size 2: "
        ), message
        assert "OperationalError: [Errno 111]" in message, message  # kombu's, and its cause:
        assert "(from ConnectionRefusedError)" in message, message
        found = re.search(r"; next attempt in ([0-9.e-]+) s$", message)
        assert found, message
        delay = lifecycle.MAX_INTERVAL * backing_off  # with up to 10% of jitter either way
        assert 0.89 * delay <= float(found.group(1)) <= 1.11 * delay, message
    tracebacks = [r for r in records if attempt_traceback(r)]
    assert len(tracebacks) >= 3 and all(
        "ConnectionRefusedError" in logging.Formatter().formatException(r.exc_info)
        for r in tracebacks if r.exc_info)
    assert [r.levelno for r in records if r.exc_info] == [logging.DEBUG] * len(tracebacks)


# -- max_idle and max_lifetime ----------------------------------------------------------


def test_max_idle_closes_idle_extras_above_min_size(make_pool: Any,
                                                      quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 5, min_size=1, max_idle=0.02)
    taken = [pool.acquire() for _ in range(3)]
    for resource in taken:
        pool.release(resource)
    wait_until(lambda: sum(factory.closed_counts()) == 2)
    assert _stats(pool, "pool_size", "pool_available") == (1, 1)
    assert all(count <= 1 for count in factory.closed_counts())
    # the one kept is the warmest: the last released
    assert pool.acquire() is taken[-1]


def test_max_idle_leaves_lent_resources_alone(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 3, max_idle=0.01)
    held = pool.acquire()
    idle = pool.acquire()
    pool.release(idle)
    wait_until(lambda: idle.closed == 1)
    assert held.closed == 0 and pool.get_stats()["pool_size"] == 1
    pool.release(held)


def test_max_lifetime_closes_on_return(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 2, max_lifetime=0.02)
    thing = pool.acquire()
    slot = pool._slots[id(thing)]
    wait_until(lambda: time.monotonic() >= slot.expires)  # it has outlived its lifetime
    pool.release(thing)
    assert thing.closed == 1
    assert pool.get_stats()["pool_size"] == 0
    assert pool.acquire() is not thing


def test_max_lifetime_closes_idle_in_upkeep(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 2, max_lifetime=0.02)
    thing = pool.acquire()
    pool.release(thing)
    wait_until(lambda: thing.closed == 1)
    assert pool.get_stats()["pool_size"] == 0


def test_max_lifetime_is_jittered(make_pool: Any) -> None:
    pool = make_pool(Factory(), 20, max_lifetime=100)
    taken = [pool.acquire() for _ in range(20)]
    lifetimes = {pool._slots[id(r)].expires - pool._slots[id(r)].created for r in taken}
    assert all(90 <= lifetime <= 100 for lifetime in lifetimes)
    assert len(lifetimes) > 1


def test_expired_idle_resource_is_not_handed_out(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 2, max_lifetime=0.05)
    old = pool.acquire()
    pool.release(old)
    slot = pool._idle[-1]
    wait_until(lambda: time.monotonic() >= slot.expires)
    fresh = pool.acquire()
    assert fresh is not old  # closed by the acquire or by upkeep, never lent
    wait_until(lambda: old.closed == 1)


# -- check ----------------------------------------------------------------------------


def test_check_discards_failing_resources(make_pool: Any) -> None:
    factory = Factory()
    bad: set[int] = set()

    def check(thing: Thing) -> None:
        if thing.number in bad:
            raise ConnectionError("dead")

    pool = make_pool(factory, 3, check=check, preload=2)
    first, second = factory.made
    bad.add(second.number)  # the warmest idle one is broken
    got = pool.acquire()
    assert got is first
    assert second.closed == 1
    assert pool.get_stats()["connections_lost"] == 1
    pool.release(got)


def test_check_failures_fall_back_to_a_new_resource(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 3, preload=2, check=lambda thing: thing.fail())
    for thing in factory.made:
        thing.fail = _raise  # type: ignore[attr-defined]
    got = pool.acquire()  # both idle ones fail; a new one is made
    assert got is factory.made[2] and factory.closed_counts() == [1, 1, 0]
    got.fail = _raise  # type: ignore[attr-defined]
    pool.release(got)


def _raise() -> None:
    raise ConnectionError("dead")


def test_check_that_always_fails_does_not_loop(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 2, check=lambda thing: _raise())
    first = pool.acquire(block=True, timeout=5)  # made for us: not checked
    pool.release(first)
    second = pool.acquire(block=True, timeout=5)  # first fails its check
    assert second is not first and first.closed == 1
    pool.release(second)


def test_check_runs_for_a_waiter(make_pool: Any) -> None:
    factory = Factory()
    checked: list[Thing] = []
    pool = make_pool(factory, 1, check=checked.append)
    held = pool.acquire()
    task = start_acquirer(pool)
    pool.release(held)
    assert task.join() is held and checked == [held]
    pool.release(held)


# -- reset and configure -----------------------------------------------------------------


def test_reset_is_called_on_return(make_pool: Any) -> None:
    reset: list[Thing] = []
    pool = make_pool(Factory(), 2, reset=reset.append)
    thing = pool.acquire()
    assert reset == []
    pool.release(thing)
    assert reset == [thing]
    assert pool.acquire() is thing


def test_failing_reset_discards(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1, reset=lambda thing: _raise())
    thing = pool.acquire()
    pool.release(thing)
    assert thing.closed == 1
    stats = pool.get_stats()
    assert stats["returns_bad"] == 1 and stats["pool_size"] == 0
    assert pool.acquire() is not thing


def test_failing_reset_passes_the_slot_to_a_waiter(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1, reset=lambda thing: _raise())
    thing = pool.acquire()
    task = start_acquirer(pool)
    pool.release(thing)
    fresh = task.join()
    assert fresh is not thing and thing.closed == 1


class Interruption(BaseException):
    """Stands for gevent.Timeout, GreenletExit or KeyboardInterrupt."""


def test_a_reset_interrupted_discards_the_resource_frees_its_place_and_goes_on_up(
    make_pool: Any
) -> None:
    factory = Factory()

    def reset(thing: Thing) -> None:
        if thing is factory.made[0]:
            raise Interruption

    pool = make_pool(factory, 1, reset=reset)
    thing = pool.acquire()
    with pytest.raises(Interruption):
        pool.release(thing)
    stats = pool.get_stats()
    assert stats["returns_bad"] == 1 and stats["pool_size"] == 0
    fresh = pool.acquire(block=True, timeout=5)  # its place was freed
    assert fresh is not thing and thing.closed == 1  # closed by the next caller
    with pytest.raises(ValueError):
        pool.release(thing)  # gone from the pool, not lent
    pool.release(fresh)
    assert pool.get_stats()["pool_available"] == 1


def test_configure_runs_once_per_creation(make_pool: Any) -> None:
    configured: list[Thing] = []
    factory = Factory()
    pool = make_pool(factory, 2, configure=configured.append, preload=1)
    assert configured == factory.made
    a, b = pool.acquire(), pool.acquire()
    pool.release(a)
    pool.release(b)
    pool.release(pool.acquire())
    assert configured == factory.made and len(configured) == 2


def test_failing_configure_closes_and_frees_the_slot(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1, configure=lambda thing: _raise())
    with pytest.raises(ConnectionError):
        pool.acquire()
    assert factory.closed_counts() == [1]
    stats = pool.get_stats()
    assert stats["connections_errors"] == 1 and stats["pool_size"] == 0


# -- reconnect_failed --------------------------------------------------------------------


def test_reconnect_failed_after_reconnect_timeout(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    factory.fail_next = 10**9  # the server is gone for good
    failures: list[Any] = []
    started = time.monotonic()
    pool = make_pool(factory, 2, min_size=1, reconnect_timeout=0.02,
                     reconnect_failed=failures.append)
    wait_until(lambda: failures)
    assert failures[0] is pool
    assert time.monotonic() - started >= 0.02
    assert pool.get_stats()["connections_errors"] >= 2
    assert pool.get_stats()["pool_size"] == 0


def test_reconnect_failed_not_called_when_creation_recovers(make_pool: Any,
                                                            quick_upkeep: None) -> None:
    factory = Factory()
    factory.fail_next = 1
    failures: list[Any] = []
    pool = make_pool(factory, 2, min_size=1, reconnect_timeout=60,
                     reconnect_failed=failures.append)
    wait_until(lambda: pool.get_stats()["pool_available"] == 1)
    assert failures == []


# -- leak_timeout ------------------------------------------------------------------------


def _hold_it_somewhere(pool: Any) -> tuple[Any, int]:
    """Acquire from ``pool``; return the resource and the line that acquired it."""
    resource = pool.acquire(); line = sys._getframe().f_lineno  # noqa: E702  (one line)
    return resource, line


def _leak_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "greenpools" and "held for more than" in r.getMessage()]


def test_leak_timeout_logs_once_with_the_acquirers_line(
        make_pool: Any, caplog: pytest.LogCaptureFixture) -> None:
    """On the greenpools logger at WARNING (not a ResourceWarning that Python's
    default filters hide), once per lease, and the stack's last line is the
    caller's acquire, whichever fast path (C or Python) ran in between."""
    caplog.set_level("WARNING", logger="greenpools")
    pool = make_pool(Factory(), 2, leak_timeout=0.02, name="leaky")
    thing, line = _hold_it_somewhere(pool)
    wait_until(lambda: _leak_records(caplog))
    started = time.monotonic()  # let the upkeep run several more rounds (4 per leak_timeout)
    wait_until(lambda: time.monotonic() - started > 5 * pool.leak_timeout)
    leaks = _leak_records(caplog)
    assert len(leaks) == 1, [r.getMessage() for r in leaks]
    assert leaks[0].levelno == logging.WARNING
    message = leaks[0].getMessage()
    assert "'leaky'" in message and repr(thing) in message
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', message)
    assert frames[-1] == (__file__, str(line), "_hold_it_somewhere"), frames[-3:]
    assert frames[-2][2] == "test_leak_timeout_logs_once_with_the_acquirers_line"
    pool.release(thing)


def test_leak_timeout_warns_again_for_the_next_lease(
        make_pool: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="greenpools")
    pool = make_pool(Factory(), 1, leak_timeout=0.02)
    for expected in (1, 2):
        thing = pool.acquire()
        wait_until(lambda: len(_leak_records(caplog)) == expected)  # noqa: B023
        pool.release(thing)


def test_leak_timeout_through_a_lease_points_at_the_with_line(
        make_pool: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="greenpools")
    pool = make_pool(Factory(), 1, leak_timeout=0.02)
    with pool.acquired():
        line = sys._getframe().f_lineno - 1  # the ``with`` line acquired it
        wait_until(lambda: _leak_records(caplog))
    message = _leak_records(caplog)[0].getMessage()
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', message)
    assert frames[-1][:2] == (__file__, str(line)), frames[-3:]


def test_leak_timeout_is_quiet_for_short_leases(make_pool: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="greenpools")
    pool = make_pool(Factory(), 2, leak_timeout=0.05)
    for _ in range(5):
        pool.release(pool.acquire())
    pool.acquire()  # held: the only one that may warn
    wait_until(lambda: _leak_records(caplog))
    assert len(_leak_records(caplog)) == 1


def test_usage_is_tracked(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1, track_usage=True)
    thing = pool.acquire()
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 0.01)
    pool.release(thing)
    assert pool.get_stats()["usage_ms"] >= 10


# -- upkeep task life ---------------------------------------------------------------------


def test_upkeep_stops_when_the_pool_closes(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    pool = make_pool(factory, 3, min_size=2)
    wait_until(lambda: pool.get_stats()["pool_available"] == 2)
    pool.close()
    assert factory.closed_counts() == [1, 1]
    # a stopped upkeep refills nothing: give it many rounds to misbehave
    tasks = [spawn(time.sleep, 0.001) for _ in range(20)]
    join_all(tasks)
    wait_until(lambda: pool._upkeep is None or pool._upkeep._live_pool() is None)
    assert len(factory.made) == 2


def _collected(dropped: weakref.ref[Any]) -> bool:
    gc.collect()  # an upkeep job may hold the pool for a moment: look again
    return dropped() is None


def test_a_dropped_pool_with_upkeep_is_collected_and_its_task_ends(quick_upkeep: None) -> None:
    pool = Pool(Factory(), 3, min_size=1, max_idle=10, max_lifetime=60, leak_timeout=10,
                keepalive=0.01, check=lambda thing: None)
    pool.wait(timeout=HANG_TIMEOUT)
    upkeep = pool._upkeep
    assert upkeep is not None and len(upkeep.tasks) == 4 and not upkeep.ended
    dropped = weakref.ref(pool)
    del pool  # never closed: only the upkeep task could keep it alive
    wait_until(lambda: _collected(dropped), message="the dropped pool was never collected")
    wait_until(lambda: upkeep.ended, message="the upkeep task outlived its pool")


def test_a_dropped_pool_that_waited_without_a_timeout_is_collected() -> None:
    pool = Pool(Factory(), 1)
    held = pool.acquire()
    waiter = start_acquirer(pool)  # no timeout: the stall watch watches the pool now
    assert pool._stall_watch is lifecycle.stall_watch.running
    pool.release(held)
    pool.release(waiter.join())
    del waiter  # its function holds the pool
    dropped = weakref.ref(pool)
    del pool
    wait_until(lambda: _collected(dropped), message="the stall watch kept the pool alive")


def test_a_pool_without_lifecycle_options_starts_no_task(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2, check=lambda thing: None, timeout=1)
    pool.release(pool.acquire(block=True))
    pool.wait(timeout=0)
    assert pool._upkeep is None


def test_lifecycle_does_not_import_the_pool() -> None:
    """Upkeep types against its own protocol of a pool: no import cycle,
    not even one for type checking only."""
    source = Path(lifecycle.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = lifecycle.__name__.split(".")[:-node.level] if node.level else []
            base = ".".join([*package, *filter(None, [node.module])])
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
    assert "greenpools.backends" in imported  # the walk does see its imports
    assert not {name for name in imported if name.startswith("greenpools.core.resource")}, imported


def test_timeouts_with_lifecycle_options(make_pool: Any, quick_upkeep: None) -> None:
    pool = make_pool(Factory(), 1, min_size=1, max_idle=10, timeout=0.01)
    wait_until(lambda: pool.get_stats()["pool_available"] == 1)
    held = pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire(block=True)
    pool.release(held)
    assert_balanced(pool)


# -- a wait without a timeout that never ends is reported --------------------------------


def test_stalled_waiter_is_reported(make_pool: Any, quick_upkeep: None,
                                    monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """Nested acquires on an exhausted pool (py-amqp #267) must not hang in silence."""
    monkeypatch.setattr(lifecycle.stall_watch, "after", 0.02)
    caplog.set_level("WARNING", logger="greenpools")
    pool = make_pool(Factory(), 1, name="nested")
    held = pool.acquire()
    task = start_acquirer(pool)  # waits forever: no timeout
    wait_until(lambda: "has waited" in caplog.text)
    assert "'nested'" in caplog.text and "1 of 1 in use" in caplog.text
    pool.release(held)
    pool.release(task.join())


# -- keepalive -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "error"), [
    (0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("5", TypeError),
    (True, TypeError),
])
def test_keepalive_is_validated(make_pool: Any, value: Any, error: type) -> None:
    with pytest.raises(error, match="keepalive"):
        make_pool(Factory(), 2, keepalive=value, check=lambda thing: None)


def test_keepalive_needs_a_check(make_pool: Any) -> None:
    with pytest.raises(ValueError, match=r"keepalive=5.*check"):
        make_pool(Factory(), 2, keepalive=5)


def test_keepalive_checks_idle_resources_and_replaces_dead_ones(
        make_pool: Any, quick_upkeep: None) -> None:
    checked: list[Any] = []

    def check(thing: Any) -> None:
        checked.append(thing)
        if getattr(thing, "dead", False):
            raise ConnectionError("the peer is gone")

    pool = make_pool(Factory(), 3, keepalive=0.01, check=check)
    idle, lent = pool.acquire(), pool.acquire()
    pool.release(idle)
    wait_until(lambda: idle in checked)
    idle.dead = True
    wait_until(lambda: pool.get_stats()["connections_lost"] == 1,
               message="keepalive did not notice the dead idle resource")
    assert idle.closed == 1
    wait_until(lambda: pool.get_stats()["pool_available"] == 1,
               message="keepalive did not replace the dead idle resource")
    assert lent not in checked  # a lent resource belongs to its holder
    fresh = pool.acquire()
    assert fresh is not idle and fresh is not lent
    pool.release(fresh)
    pool.release(lent)
    assert_balanced(pool)


class _Touching(Pool[Any]):
    """A plain pool (no check: the lock-free fast path stays on) whose
    keepalive marks each idle resource while it works on it, yielding."""

    touched = 0

    def _keep_alive(self, resource: Any) -> None:
        resource.busy = True
        time.sleep(0.001)  # let the acquirers run while the resource is out
        resource.busy = False
        self.touched += 1


def test_keepalive_never_shares_a_resource_with_a_lock_free_acquire() -> None:
    factory = Factory()
    pool = _Touching(factory, 4, keepalive=0.001)
    assert pool._lock_free, "the pool must be on the lock-free fast path"
    clashes: list[Any] = []
    enough = threading.Event()

    def churn() -> None:
        while not enough.is_set():
            thing = pool.acquire(block=True, timeout=HANG_TIMEOUT)
            if getattr(thing, "busy", False):
                clashes.append(thing)
            time.sleep(0)
            pool.release(thing)
            time.sleep(0)  # idle a moment: keepalive may take it now

    try:
        for thing in [pool.acquire() for _ in range(4)]:  # all four made
            pool.release(thing)
        tasks = [spawn(churn) for _ in range(4)]  # as many as the limit
        wait_until(lambda: pool.touched >= 30)
        enough.set()
        join_all(tasks)
        assert clashes == []
    finally:
        pool.close()
    # Closed once each, the one keepalive may hold right now included.
    wait_until(lambda: factory.closed_counts() == [1, 1, 1, 1],
               message=f"closed {factory.closed_counts()}")
    wait_until(lambda: pool.get_stats()["pool_size"] == 0)


# -- wait(): readiness -----------------------------------------------------------------------


def test_wait_returns_once_min_size_exists(make_pool: Any, quick_upkeep: None) -> None:
    pool = make_pool(Factory(), 5, min_size=3)
    pool.wait(timeout=HANG_TIMEOUT)
    assert pool.get_stats()["pool_available"] == 3


def test_wait_without_min_size_returns_at_once(make_pool: Any) -> None:
    make_pool(Factory(), 5).wait(timeout=0)


def test_wait_times_out_saying_how_many_are_ready_and_the_pool_keeps_trying(
        make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    factory.fail_next = 10**9
    pool = make_pool(factory, 5, min_size=2)
    with pytest.raises(PoolTimeout, match="0 of min_size 2"):
        pool.wait(timeout=0.1)
    assert not pool.closed
    factory.fail_next = 0
    pool.wait(timeout=HANG_TIMEOUT)
    assert pool.get_stats()["pool_available"] == 2


def test_wait_is_woken_by_close(make_pool: Any, quick_upkeep: None) -> None:
    factory = Factory()
    factory.fail_next = 10**9
    pool = make_pool(factory, 5, min_size=2)
    task = spawn(pool.wait, None)
    wait_until(lambda: pool._ready_waiters)
    pool.close()
    with pytest.raises(PoolClosed):
        task.join()


def test_wait_validates_its_timeout(make_pool: Any) -> None:
    with pytest.raises(ValueError, match=r"timeout must be a non-negative number.*-1"):
        make_pool(Factory(), 5, min_size=1).wait(timeout=-1)
