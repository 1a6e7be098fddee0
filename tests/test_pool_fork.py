"""os.fork() at the generic pool level: the child starts empty, the parent is untouched.

The child never uses or closes what it inherited: each inherited resource
goes to ``forget_resource`` (not ``close_resource``), and the pool then
makes fresh ones.  The child reports back as JSON through a pipe.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from helpers import (
    HANG_TIMEOUT,
    Thing,
    assert_balanced,
    close_now,
    spawn,
    start_acquirer,
    wait_for_child,
    wait_until,
)

from greenpools import LimitExceeded, PoolTimeout, Resource
from greenpools.core import lifecycle
from greenpools.forking import fork_guard


class Forgetful(Resource[Thing]):
    """Logs which resources were closed and which forgotten, by number."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed_log: list[int] = []
        self.forgotten: list[int] = []
        super().__init__(*args, **kwargs)

    def new(self) -> Thing:
        return Thing()

    def close_resource(self, resource: Thing) -> None:
        self.closed_log.append(resource.number)
        resource.close()

    def forget_resource(self, resource: Thing) -> None:
        self.forgotten.append(resource.number)


def in_child(scenario: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``scenario`` in the child and return what it reported."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_fd)
            try:
                report = scenario()
            except BaseException:
                report = {"error": traceback.format_exc()}
                code = 1
            with os.fdopen(write_fd, "w") as out:
                json.dump(report, out)
        finally:
            os._exit(code)
    close_now(write_fd)  # so that the read below ends when the child exits
    with os.fdopen(read_fd) as inp:
        data = inp.read()  # until the child exits
    status = wait_for_child(pid)
    report = json.loads(data) if data else {}
    assert "error" not in report, report.get("error")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, report)
    return report


def test_child_starts_empty_and_forgets_inherited_resources() -> None:
    pool = Forgetful(3)
    idle, lent = pool.acquire(), pool.acquire()
    pool.release(idle)
    parent_before = pool.get_stats()
    parent_numbers = {idle.number, lent.number}

    def child() -> dict[str, Any]:
        stats = pool.get_stats()
        forgotten = sorted(pool.forgotten)
        fresh = [pool.acquire() for _ in range(3)]  # the whole limit, all new
        pool.release(lent)  # inherited while lent: dropped quietly
        for resource in fresh:
            pool.release(resource)
        pool.close()
        return {
            "size": stats["pool_size"], "available": stats["pool_available"],
            "lent": len(pool._lent_slots()), "forgotten": forgotten,
            "fresh": [r.number for r in fresh],
            "closed": sorted(pool.closed_log), "forgotten_after": sorted(pool.forgotten),
        }

    report = in_child(child)
    assert (report["size"], report["available"]) == (0, 0)
    assert report["forgotten"] == sorted(parent_numbers)
    assert report["forgotten_after"] == sorted(parent_numbers)  # each forgotten once
    assert not set(report["fresh"]) & parent_numbers
    assert report["closed"] == sorted(report["fresh"])  # inherited ones never closed

    # the parent is unaffected
    assert pool.get_stats() == parent_before
    assert pool.forgotten == [] and pool.closed_log == []
    assert idle.closed == lent.closed == 0
    pool.release(lent)
    assert pool.acquire() is lent
    pool.release(lent)
    assert_balanced(pool)
    pool.close()
    assert sorted(pool.closed_log) == sorted(parent_numbers)


def test_parent_waiters_are_not_inherited() -> None:
    pool = Forgetful(1)
    held = pool.acquire()
    waiter = start_acquirer(pool)

    def child() -> dict[str, Any]:
        waiting = pool.get_stats()["requests_waiting"]
        fresh = pool.acquire()
        number = fresh.number
        pool.release(fresh)
        pool.close()
        return {"waiting": waiting, "fresh": number}

    report = in_child(child)
    assert report["waiting"] == 0 and report["fresh"] != held.number
    assert pool.get_stats()["requests_waiting"] == 1
    pool.release(held)
    assert waiter.join() is held
    pool.release(held)
    assert_balanced(pool)
    pool.close()


def test_close_after_fork_false_keeps_nothing_but_does_not_forget() -> None:
    pool = Forgetful(2, close_after_fork=False)
    pool.release(pool.acquire())

    def child() -> dict[str, Any]:
        stats = pool.get_stats()
        return {"size": stats["pool_size"], "forgotten": pool.forgotten}

    report = in_child(child)
    assert report == {"size": 0, "forgotten": []}
    pool.close()


def test_pool_with_upkeep_works_in_child() -> None:
    pool = Forgetful(3, min_size=1)
    first = pool.acquire()
    pool.release(first)

    def child() -> dict[str, Any]:
        thing = pool.acquire(block=True, timeout=5)
        upkeep = pool._upkeep
        pool.release(thing)
        pool.close()
        return {"new": thing.number != first.number,
                "upkeep_restarted": upkeep is not None and upkeep._pid == os.getpid()}

    assert in_child(child) == {"new": True, "upkeep_restarted": True}
    pool.close()


def test_green_waiter_copied_into_child_asks_the_childs_pool(backend_name: str) -> None:
    """A green thread waiting at fork() lives on in the child: it is served there."""
    if backend_name == "threading":
        pytest.skip("native threads are not copied into a forked child")
    pool = Forgetful(1)
    held = pool.acquire()
    waiter = start_acquirer(pool, timeout=0.3)

    def child() -> dict[str, Any]:
        if not waiter.done.wait(5):
            return {"error": "the copied waiter never finished"}
        try:
            got = waiter.join()
        except BaseException as exc:  # the bug: ValueError from the child's empty queue
            return {"outcome": type(exc).__name__}
        outcome = "parent's" if got is held else "fresh"
        pool.release(got)
        return {"outcome": outcome, "size": pool.get_stats()["pool_size"]}

    assert in_child(child) == {"outcome": "fresh", "size": 1}
    with pytest.raises(PoolTimeout):  # the parent's own request ran out as usual
        waiter.join()
    pool.release(held)
    assert_balanced(pool)
    pool.close()


class Gate:
    """Holds the first task that reaches it until opened (a task blocked
    there at fork() lives on, copied, in a green child)."""

    def __init__(self) -> None:
        self.reached, self.opened = threading.Event(), threading.Event()

    def hold(self) -> bool:
        """Wait for the gate to open if it is still shut; True if it waited."""
        if self.opened.is_set():
            return False
        self.reached.set()
        if not self.opened.wait(HANG_TIMEOUT):
            raise AssertionError("the gate never opened")
        return True


def test_green_task_creating_at_fork_makes_its_resource_again_in_the_child(
    backend_name: str,
) -> None:
    """A green thread inside ``new()`` at fork() lives on in the child: what it
    made there is half the parent's (forgotten), and it asks the child's pool
    again, whose books then count it (the pool's limit holds)."""
    if backend_name == "threading":
        pytest.skip("native threads are not copied into a forked child")
    gate = Gate()

    class SlowToMake(Forgetful):
        def new(self) -> Thing:
            thing = super().new()
            gate.hold()
            return thing

    pool = SlowToMake(1)
    creator = spawn(pool.acquire, block=True, timeout=HANG_TIMEOUT)
    assert gate.reached.wait(HANG_TIMEOUT), "the creating task never reached new()"

    def child() -> dict[str, Any]:
        gate.opened.set()
        got = creator.join()
        try:
            pool.acquire()
            second = "granted"
        except LimitExceeded:
            second = "refused"
        report = {"size": pool.get_stats()["pool_size"], "second": second,
                  "forgotten": len(pool.forgotten)}
        pool.release(got)
        assert_balanced(pool)
        return report

    assert in_child(child) == {"size": 1, "second": "refused", "forgotten": 1}
    gate.opened.set()
    pool.release(creator.join())
    assert pool.forgotten == []
    assert_balanced(pool)
    pool.close()


def test_green_task_whose_configure_fails_after_fork_forgets_and_asks_again(
    backend_name: str,
) -> None:
    """What a green thread made before fork() and then failed to configure in
    the child is forgotten, never closed (the parent may be using it), and
    the acquire asks the child's pool again instead of raising."""
    if backend_name == "threading":
        pytest.skip("native threads are not copied into a forked child")
    gate = Gate()

    def configure(thing: Thing) -> None:
        if gate.hold():
            raise OSError("configured after fork: broken")

    pool = Forgetful(1, configure=configure)
    creator = spawn(pool.acquire, block=True, timeout=HANG_TIMEOUT)
    assert gate.reached.wait(HANG_TIMEOUT), "the creating task never reached configure()"

    def child() -> dict[str, Any]:
        gate.opened.set()
        got = creator.join()
        report = {"closed": len(pool.closed_log), "forgotten": len(pool.forgotten),
                  "size": pool.get_stats()["pool_size"]}
        pool.release(got)
        assert_balanced(pool)
        return report

    assert in_child(child) == {"closed": 0, "forgotten": 1, "size": 1}
    gate.opened.set()
    with pytest.raises(OSError):  # in the parent the failure is the caller's
        creator.join()
    assert len(pool.closed_log) == 1
    assert_balanced(pool)
    pool.close()


def test_stall_watch_runs_again_in_child() -> None:
    """The parent's stall-watch task does not exist in a child: the next wait starts one."""
    pool = Forgetful(1)
    held = pool.acquire()
    parent_waiter = start_acquirer(pool)  # no timeout: the parent's stall watch runs
    assert lifecycle.stall_watch.running is not None

    def child() -> dict[str, Any]:
        lifecycle.stall_watch.after = 0.02
        messages: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                messages.append(record.getMessage())

        logging.getLogger("greenpools").addHandler(Collect())
        mine = pool.acquire()  # the child's own pool: empty, so this is fresh
        waiter = start_acquirer(pool)  # waits forever in the child
        wait_until(lambda: any("has waited" in m for m in messages))
        pool.release(mine)
        pool.release(waiter.join())
        return {"reported": True}

    assert in_child(child) == {"reported": True}
    pool.release(held)
    pool.release(parent_waiter.join())
    assert_balanced(pool)
    pool.close()


class Reset:
    """A tracked object that logs its reset in the child (and can fail, or drop another)."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail
        self.holds: object = None
        fork_guard.track(self)

    def _after_fork_in_child(self) -> None:
        seen = "pid ok" if fork_guard.pid == os.getpid() else "stale pid"
        self.log.append(f"{self.name}: {seen}")
        self.holds = None  # may drop the last reference to another tracked object
        if self.fail:
            raise RuntimeError(f"{self.name} failed")


def test_fork_guard_resets_in_registration_order_and_goes_on_after_a_failure() -> None:
    log: list[str] = []
    first = Reset("first", log)
    failing = Reset("failing", log, fail=True)
    first.holds = Reset("held", log)  # only `first` refers to it: its reset drops it
    last = Reset("last", log)

    def scenario() -> dict[str, Any]:
        return {"log": log, "failures": [str(exc) for _, exc in fork_guard.failures]}

    report = in_child(scenario)
    assert report["log"] == [
        "first: pid ok", "failing: pid ok", "held: pid ok", "last: pid ok",
    ]
    assert report["failures"] == ["failing failed"]
    assert log == [] and fork_guard.failures == [] and fork_guard.pid == os.getpid()
    del first, failing, last


def test_fork_guard_runs_the_event_loops_callbacks_after_every_reset() -> None:
    log: list[str] = []
    armed = [True]

    def loop() -> None:  # registered first, runs last
        if armed[0]:
            log.append("loop")

    fork_guard.after_resets(loop)
    pool = Reset("pool", log)  # tracked later, reset earlier

    def callback() -> None:
        if armed[0]:
            log.append("callback")

    fork_guard.after_fork_in_child(callback)
    try:
        assert in_child(lambda: {"log": log})["log"] == ["pool: pid ok", "callback", "loop"]
    finally:
        armed[0] = False  # the guard keeps callbacks for good: disarm them for later forks
        del pool
