"""Helpers shared by the test modules: tasks, waiting, test resources, services.

Everything here works on every backend: the runner monkey-patches the
process, so ``threading.Thread``, ``threading.Event`` and ``time.sleep``
are green under gevent and eventlet.  Import it as ``helpers``
(``from helpers import spawn, wait_until``): pytest puts ``tests/`` on
``sys.path``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import pytest

from greenpools.backends import detect

#: The backend this test process runs on (set by tests/runner.py).
BACKEND: str = os.environ.get("GREENPOOLS_TEST_BACKEND") or detect()

#: How long a join or a wait_until may take before the test fails as hung.
#: Generous: the machine is slow and noisy; a correct test never gets near it.
HANG_TIMEOUT = 30.0

#: Prefix of the skip reason when a service (RabbitMQ, Redis) is missing;
#: with ``CI=true`` conftest turns such skips into failures.
SERVICE_MISSING = "service unavailable:"

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# -- tasks -----------------------------------------------------------------


class Task:
    """A function running in its own thread (a green thread when patched)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 name: str | None = None) -> None:
        self.result: Any = None
        self.exception: BaseException | None = None
        self.started = threading.Event()
        self.done = threading.Event()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.started.set()
        try:
            self.result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # reported by join()
            self.exception = exc
        finally:
            self.done.set()

    def start(self) -> Task:
        self.thread.start()
        return self

    def join(self, timeout: float = HANG_TIMEOUT) -> Any:
        """Wait for the task; return its result or raise its exception."""
        if not self.done.wait(timeout):
            raise AssertionError(f"task {self.thread.name} still running after {timeout}s")
        self.thread.join(timeout)
        if self.exception is not None:
            raise self.exception
        return self.result


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
    """Start ``fn(*args, **kwargs)`` concurrently and return its :class:`Task`."""
    return Task(fn, args, kwargs).start()


def native_runner(backend_name: str):  # type: ignore[no-untyped-def]
    """A function running ``fn(*args)`` in a real OS thread, returning a join()."""
    if backend_name == "gevent":
        import gevent

        threadpool = gevent.get_hub().threadpool

        def start(fn, *args):  # type: ignore[no-untyped-def]
            result = threadpool.spawn(fn, *args)
            return lambda: result.get(timeout=30)

    elif backend_name == "eventlet":
        import eventlet
        from eventlet import tpool

        def start(fn, *args):  # type: ignore[no-untyped-def]
            green = eventlet.spawn(tpool.execute, fn, *args)
            return green.wait

    else:

        def start(fn, *args):  # type: ignore[no-untyped-def]
            task = spawn(fn, *args)
            return task.join

    return start


def join_all(tasks: Iterable[Task], timeout: float = HANG_TIMEOUT) -> list[Any]:
    """Join every task (failing if one hangs); return their results in order."""
    deadline = time.monotonic() + timeout
    return [task.join(max(0.0, deadline - time.monotonic())) for task in tasks]


def yield_now() -> None:
    """Let every other runnable task run once."""
    time.sleep(0)


def wait_until(predicate: Callable[[], object], timeout: float = HANG_TIMEOUT,
               message: str | None = None) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds.

    Only for conditions nothing signals (a pool's internal queue, say):
    where there is an event, wait on the event.  Polls with a yielding
    one-millisecond sleep, so the tasks it waits for can run.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition {predicate!r} not met in {timeout}s")
        time.sleep(0.001)


# -- waiting on pools ------------------------------------------------------


class RecordsSeen(logging.Handler):
    """``with RecordsSeen(wanted, count, event):`` sets ``event`` (a
    ``threading.Event``, or an ``asyncio.Event`` of a loop that logs) once
    ``count`` log records that ``wanted(record)`` picks have arrived: a test
    waits on that, never for a time.

    It sits on the root logger after pytest's ``caplog`` handler, so each
    record is in ``caplog.records`` before it counts here.
    """

    def __init__(self, wanted: Callable[[logging.LogRecord], bool], count: int,
                 event: Any) -> None:
        super().__init__(logging.DEBUG)
        self.wanted, self.left, self.event = wanted, count, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.wanted(record):
            self.left -= 1
            if self.left <= 0:
                self.event.set()

    def __enter__(self) -> RecordsSeen:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)


def waiting(pool: Any) -> int:
    """How many callers are queued in ``pool`` right now."""
    return len(pool._waiting)


def queued_so_far(pool: Any) -> int:
    """How many callers ever queued in ``pool`` (only grows, unlike :func:`waiting`)."""
    return int(pool.get_stats()["requests_queued"])


def start_acquirer(pool: Any, timeout: float | None = None,
                   on_grant: Callable[[Any], object] | None = None,
                   release: threading.Event | None = None) -> Task:
    """Start a task that blocks in ``pool.acquire`` and return once it is queued.

    The task's result is the resource it got.  ``on_grant(resource)`` runs
    right after the grant (record order there); with ``release`` the task
    then waits for that event and gives the resource back itself.
    """
    before = queued_so_far(pool)

    def acquire() -> Any:
        resource = pool.acquire(block=True, timeout=timeout)
        if on_grant is not None:
            on_grant(resource)
        if release is not None:
            if not release.wait(HANG_TIMEOUT):
                raise AssertionError("release event never set")
            pool.release(resource)
        return resource

    task = spawn(acquire)
    # A count that only grows: another waiter leaving meanwhile cannot hide ours.
    wait_until(lambda: queued_so_far(pool) > before or task.done.is_set(),
               message="the acquiring task never queued")
    if task.done.is_set():
        task.join()  # raises what went wrong
        raise AssertionError("acquire did not block: the pool had a free resource")
    return task


def queue_acquirers(pool: Any, count: int, **options: Any) -> list[Task]:
    """``count`` tasks queued in ``pool`` one after another, in a known order."""
    return [start_acquirer(pool, **options) for _ in range(count)]


# -- test resources -----------------------------------------------------------


class Thing:
    """A resource that counts how often it was closed."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        self.number = next(self._numbers)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def __repr__(self) -> str:
        return f"<Thing #{self.number}{' closed' if self.closed else ''}>"


class Factory:
    """``create`` for a pool that remembers everything it made."""

    def __init__(self, kind: Callable[[], Any] = Thing) -> None:
        self.kind = kind
        self.made: list[Any] = []
        self.fail_next = 0  # how many of the next calls raise ConnectionError

    def __call__(self) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("cannot create a resource (on purpose)")
        thing = self.kind()
        self.made.append(thing)
        return thing

    def closed_counts(self) -> list[int]:
        return [thing.closed for thing in self.made]


def passed_over_past_the_bound(client: Any) -> None:
    """Mark a queued waiting client as passed over, an hour ago, for a free
    resource: past any barging bound, so that the next one goes to it."""
    client.passed_since = time.monotonic() - 3600.0


def assert_balanced(pool: Any) -> None:
    """Nothing lent or waiting, and the book-keeping agrees with itself."""
    stats = pool.get_stats()
    assert stats["requests_waiting"] == 0, stats
    assert not pool._lent_slots(), pool._lent_slots()
    assert stats["pool_size"] == stats["pool_available"], stats
    # Every idle resource, and no closed one, can be found by id.
    assert len(pool._slots) == stats["pool_size"], (len(pool._slots), stats)
    assert {id(slot) for slot in pool._slots.values()} == {id(slot) for slot in pool._idle}
    if pool.limit:
        assert stats["pool_size"] <= pool.limit, stats


def assert_can_take_limit(pool: Any) -> list[Any]:
    """Acquiring ``limit`` resources without waiting succeeds (no slot leaked)."""
    taken = [pool.acquire(block=False) for _ in range(pool.limit)]
    assert len({id(r) for r in taken}) == pool.limit
    for resource in taken:
        pool.release(resource)
    return taken


# -- subprocesses ----------------------------------------------------------------


def run_python(code: str, env: dict[str, str] | None = None,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (no backend env vars unless given)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("GREENPOOLS_BACKEND", "GREENPOOLS_TEST_BACKEND")}
    full_env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def hiding(directory: Any, *modules: str) -> dict[str, str]:
    """Environment under which importing each of ``modules`` really fails in
    a child process: a module of that name first on ``PYTHONPATH``, in
    ``directory``, raises ImportError as a missing package would."""
    for name in modules:
        with open(os.path.join(directory, f"{name}.py"), "w") as module:
            module.write(f"raise ImportError(\"No module named '{name}' (hidden by the test)\", "
                         f"name={name!r})\n")
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


# -- child processes ------------------------------------------------------------


def _unpatched_waitpid() -> Callable[[int, int], tuple[int, int]]:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("os"):
        return monkey.get_original("os", "waitpid")  # type: ignore[no-any-return]
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("os"):
        return patcher.original("os").waitpid  # type: ignore[no-any-return]
    return os.waitpid


def close_now(fd: int) -> None:
    """Close ``fd`` at once, even under gevent.

    gevent (25.8+) patches ``os.close`` to close pipes and sockets only on
    the hub's next loop iteration; a parent that closes its copy of a
    pipe's write end and then blocks reading until EOF would never see it.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("os"):
        monkey.get_original("os", "close")(fd)
    else:
        os.close(fd)


def wait_for_child(pid: int, timeout: float = HANG_TIMEOUT) -> int:
    """Reap the forked child ``pid`` and return its wait status.

    Polls instead of blocking: gevent's cooperative ``os.waitpid`` can miss
    the SIGCHLD of a child that exits very quickly and then waits forever
    for a zombie.  Whichever of gevent's watcher and the real ``waitpid``
    reaps the child first, the status is found.
    """
    real_waitpid = _unpatched_waitpid()
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)  # gevent: what its watcher saw
            if done != pid:
                done, status = real_waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = 0, 0  # reaped by gevent's watcher just now: look again
        if done == pid:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"child {pid} still running after {timeout}s")
        time.sleep(0.001)


# -- services ------------------------------------------------------------------


def amqp_url() -> str:
    return os.environ.get("GREENPOOLS_TEST_AMQP_URL", DEFAULT_AMQP_URL)


def redis_url() -> str:
    return os.environ.get("GREENPOOLS_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def service_reachable(url: str, default_port: int, timeout: float = 2.0) -> bool:
    """True when something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> str:
    """Return ``url``, or skip the test (fail it with ``CI=true``) if unreachable."""
    if not service_reachable(url, default_port):
        pytest.skip(f"{SERVICE_MISSING} {name} at {url} is not reachable")
    return url


def require_amqp() -> str:
    return require_service("RabbitMQ", amqp_url(), 5672)


def require_redis() -> str:
    return require_service("Redis", redis_url(), 6379)
