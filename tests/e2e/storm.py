"""The fork storm: one scenario, run by the tests and by the comparison script.

A parent publishes through a pools module's global ``producers`` with
publisher confirms on, holds pooled connections (one lent, one idle),
forks children with a plain ``os.fork()``, and then parent and children
publish concurrently.  Works with ``greenpools.pools`` and, for
comparison, with ``kombu.pools`` (which resets nothing on a plain fork).

Every wait is bounded: children carry a watchdog alarm and are killed
when they overrun, and publishing tasks that do not finish in time are
reported as hung instead of waited for.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

try:
    from . import support
except ImportError:  # run as a script from this directory
    import support  # type: ignore[no-redef]


@dataclasses.dataclass
class PublishOutcome:
    """What one process's publishing tasks did."""

    published: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    hung_tasks: int = 0


@dataclasses.dataclass
class StormResult:
    """What the parent saw; the test and the script judge it."""

    expected_bodies: list[str]
    parent: PublishOutcome
    child_exit_codes: dict[int, int | str]
    child_reports: list[str]
    held_before: dict[str, Any]
    held_after: dict[str, Any] | None
    idle_before: dict[str, Any]
    idle_after: dict[str, Any] | None
    pre_fork_errors: list[str]
    seconds: float


def publish_concurrently(
    pools: ModuleType, conn: Any, queue: str, tag: str, count: int, tasks: int,
    timeout: float, progress: threading.Event | None = None,
) -> PublishOutcome:
    """Publish ``count`` messages ``"<tag>:<i>"`` from ``tasks`` concurrent tasks.

    Tasks are ``threading.Thread`` (green under monkey patching); each
    acquires a producer per message, blocking, from ``pools.producers``.
    ``progress`` is set once a fifth of the messages went out.
    """
    outcome = PublishOutcome()
    lock = threading.Lock()
    numbers = iter(range(count))
    progress_at = max(1, count // 5)

    def task() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                with pools.producers[conn].acquire(block=True, timeout=timeout) as producer:
                    support.publish_one(producer, queue, f"{tag}:{number}")
            except Exception as exc:
                with lock:
                    outcome.errors.append(f"{tag}:{number}: {exc!r}")
                return
            with lock:
                outcome.published += 1
                if progress is not None and outcome.published >= progress_at:
                    progress.set()

    threads = [threading.Thread(target=task, name=f"{tag}-publisher-{i}", daemon=True)
               for i in range(tasks)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    outcome.hung_tasks = sum(thread.is_alive() for thread in threads)
    return outcome


def run_storm(
    pools: ModuleType, queue: str, *, children: int = 4, per_process: int = 300,
    tasks: int = 6, warm: int = 20, timeout: float = 60.0, url: str = support.AMQP_URL,
    fork_while_publishing: bool = False, before_fork: Callable[[], object] | None = None,
    child_report: Callable[[], str] | None = None,
) -> StormResult:
    """Run the storm once against ``queue`` (which must exist and be empty).

    With ``fork_while_publishing`` the parent's tasks are already publishing
    when the children are forked (only sound for native threads, which do
    not exist in the child: green threads would carry on there).
    ``before_fork()`` runs in the parent after the warm-up, before the
    connections held across the fork are taken;
    ``child_report()`` runs in each child after it published, and what it
    returns ends the child's report line.
    """
    started = time.monotonic()
    conn = support.confirming_connection(url)
    expected = [f"warm:{i}" for i in range(warm)]
    pre_fork = publish_concurrently(pools, conn, queue, "warm", warm, min(tasks, 4), timeout)
    pre_fork_errors = pre_fork.errors + [f"{pre_fork.hung_tasks} warm-up tasks hung"] * bool(
        pre_fork.hung_tasks)

    if before_fork is not None:
        before_fork()
    pool = pools.connections[conn]
    held = pool.acquire(block=True, timeout=timeout)
    idle = pool.acquire(block=True, timeout=timeout)
    held.default_channel  # noqa: B018 - connect both, so that the sockets exist
    idle.default_channel  # noqa: B018
    held_before = support.socket_identity(held)
    idle_before = support.socket_identity(idle)
    idle.release()

    parent_outcomes: list[PublishOutcome] = []
    publishing = threading.Event()

    def parent_publishes() -> None:
        parent_outcomes.append(publish_concurrently(
            pools, conn, queue, "parent", per_process, tasks, timeout, progress=publishing))

    expected += [f"parent:{i}" for i in range(per_process)]
    parent_thread = threading.Thread(target=parent_publishes, name="parent-storm", daemon=True)
    if fork_while_publishing:
        parent_thread.start()
        if not publishing.wait(timeout):
            raise support.Overrun(f"the parent published nothing in {timeout}s")

    read_fd, write_fd = os.pipe()
    pids: list[int] = []
    try:
        for number in range(children):
            tag = f"child{number}"
            expected += [f"{tag}:{i}" for i in range(per_process)]
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                support.run_forked_child(
                    lambda tag=tag: _child_body(pools, conn, queue, tag, per_process, tasks,
                                                timeout, child_report),
                    report_fd=write_fd, watchdog=int(timeout * 1.5),
                )
            pids.append(pid)
        os.close(write_fd)
        write_fd = -1

        if fork_while_publishing:
            parent_thread.join(timeout)
        else:
            parent_publishes()
        parent = parent_outcomes[0] if parent_outcomes else PublishOutcome(hung_tasks=tasks)

        exit_codes: dict[int, int | str] = {}
        for pid in pids:
            try:
                exit_codes[pid] = support.wait_pid(pid, timeout)
            except support.Overrun:
                exit_codes[pid] = "hung (killed)"
        pids = []
        reports = support.read_reports(read_fd)

        held_after = _publish_on(held, queue, "held", expected)
        idle_after = _publish_on(idle, queue, "idle", expected)
        held.release()
    finally:
        for pid in pids:
            support.kill_quietly(pid)
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    return StormResult(
        expected_bodies=expected, parent=parent, child_exit_codes=exit_codes,
        child_reports=reports, held_before=held_before, held_after=held_after,
        idle_before=idle_before, idle_after=idle_after, pre_fork_errors=pre_fork_errors,
        seconds=time.monotonic() - started,
    )


def _child_body(
    pools: ModuleType, conn: Any, queue: str, tag: str, count: int, tasks: int, timeout: float,
    report: Callable[[], str] | None = None,
) -> str:
    outcome = publish_concurrently(pools, conn, queue, tag, count, tasks, timeout)
    if outcome.errors or outcome.hung_tasks or outcome.published != count:
        raise AssertionError(
            f"{tag}: published {outcome.published}/{count}, {outcome.hung_tasks} hung tasks, "
            f"errors: {outcome.errors[:5]}"
        )
    extra = f" {report()}" if report is not None else ""
    return f"{tag} pid={os.getpid()} published={outcome.published}{extra}"


def _publish_on(conn: Any, queue: str, body: str, expected: list[str]) -> dict[str, Any] | None:
    """Publish ``body`` (confirmed) on a pre-fork connection; its socket afterwards.

    ``None`` when the connection no longer works.  The socket identity is
    read *after* publishing: kombu reconnects a dropped connection on use,
    so an unchanged local port is what shows the original TCP connection
    survived.
    """
    try:
        support.publish_one(conn.Producer(), queue, body)
    except Exception as exc:
        print(f"publishing on the pre-fork {body} connection failed: {exc!r}")
        return None
    expected.append(body)
    return support.socket_identity(conn)
