"""The scenarios S1 (uncontended cycle), S2 (contended) and S3 (fairness), and their sizes."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .contenders import Contender, Subject
from .environment import running_backend
from .stats import count_overtakes, inversions, percentile

Settings = dict[str, Any]

#: Sizes of each run.  ``short`` is the default of ``python -m greenpools bench``.
PRESETS: dict[str, Settings] = {
    "full": {
        "reps": 5, "s1_cycles": 200_000,
        "s2_limit": 10, "s2_tasks": 100, "s2_threads": 16, "s2_cycles": 2000, "s2_reps": 5,
        "s3_waiters": 20, "churn_tasks": 10, "churn_grants": 2000,
    },
    "short": {
        "reps": 3, "s1_cycles": 100_000,
        "s2_limit": 10, "s2_tasks": 100, "s2_threads": 16, "s2_cycles": 500, "s2_reps": 3,
        "s3_waiters": 20, "churn_tasks": 10, "churn_grants": 1000,
    },
    "quick": {
        "reps": 3, "s1_cycles": 30_000,
        "s2_limit": 10, "s2_tasks": 100, "s2_threads": 16, "s2_cycles": 150, "s2_reps": 1,
        "s3_waiters": 20, "churn_tasks": 10, "churn_grants": 300,
    },
}

#: Overtakes in S2 are counted beyond this margin.  A grant is dated when
#: the resource granted became available to the caller (its last release,
#: or the request if later), not when the caller got to run; still, on
#: native threads a thread can be preempted between reading the clock and
#: queueing or handing over, so only reordering beyond the margin is
#: attributable to the pool.  Green threads cannot be preempted there.
OVERTAKE_MARGIN = {"threading": 0.010, "gevent": 0.0, "eventlet": 0.0}


def _default_loop(subject: Subject) -> Callable[[int], None]:
    def loop(n: int) -> None:
        acquire, release = subject.acquire, subject.release
        for _ in itertools.repeat(None, n):
            release(acquire())

    return loop


def run_s1(contender: Contender, settings: Settings) -> float:
    """S1: nanoseconds per uncontended acquire+release cycle, one task."""
    subject = contender.make(settings.get("s2_limit", 10))
    try:
        loop = subject.loop or _default_loop(subject)
        loop(min(1000, settings["s1_cycles"]))  # create the resource, warm up
        cycles = settings["s1_cycles"]
        gc.collect()
        started = time.perf_counter()
        loop(cycles)
        elapsed = time.perf_counter() - started
    finally:
        subject.close()
    return float(elapsed / cycles * 1e9)


def start_tasks(count: int, target: Callable[..., None], *args: Any) -> list[threading.Thread]:
    """Start ``count`` daemon threads (green under patching) running ``target(i, *args)``."""
    tasks = [threading.Thread(target=target, args=(i, *args), daemon=True) for i in range(count)]
    for task in tasks:
        task.start()
    return tasks


def join_tasks(tasks: Iterable[threading.Thread], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds in all for ``tasks``; whether all ended."""
    deadline = time.monotonic() + timeout
    for task in tasks:
        task.join(max(0.0, deadline - time.monotonic()))
        if task.is_alive():
            return False
    return True


def run_s2(contender: Contender, settings: Settings) -> dict[str, Any]:
    """S2: ``tasks`` tasks, each ``cycles`` x (acquire, yield, release), limit 10."""
    backend = running_backend()
    tasks = settings["s2_threads"] if backend == "threading" else settings["s2_tasks"]
    cycles = settings["s2_cycles"]
    subject = contender.make(settings["s2_limit"])
    go = threading.Event()
    records: list[tuple[float, float, float]] = []
    failures: list[BaseException] = []
    # When each resource was last given back: the moment a hand-off pool
    # grants it to a waiter, whenever that waiter gets to run.
    freed_at: dict[int, float] = {}
    identify = subject.identify
    # The run ends when its last task does, and the caller waits for that on
    # one event: joining task after task meanwhile would take eventlet's
    # current_thread() on each join, a scan of every live thread, so the
    # joins would cost (and count) O(tasks) each, most for a pool whose
    # tasks end in the order they started.
    ended: list[float] = []
    ending = threading.Lock()
    all_ended = threading.Event()

    def task(index: int) -> None:
        acquire, release = subject.acquire, subject.release
        clock, pause = time.perf_counter, time.sleep
        mine = []
        try:
            go.wait()
            for _ in range(cycles):
                requested = clock()
                resource = acquire()
                granted = clock()
                if identify is None:
                    available = granted
                else:
                    key = identify(resource)
                    available = max(requested, freed_at.get(key, requested))
                pause(0)
                if identify is not None:
                    freed_at[key] = clock()
                release(resource)
                mine.append((requested, granted, available))
        except BaseException as exc:  # reported, never hangs the others silently
            failures.append(exc)
        records.extend(mine)
        with ending:
            ended.append(clock())
            if len(ended) == tasks:
                all_ended.set()

    try:
        workers = start_tasks(tasks, task)
        time.sleep(0.01)
        gc.collect()
        started = time.perf_counter()
        go.set()
        finished = all_ended.wait(settings.get("s2_timeout", 120.0))
        finished = join_tasks(workers, 10.0) and finished
        elapsed = max(ended, default=started) - started
    finally:
        subject.close()
    if failures or not finished:
        raise RuntimeError(f"S2 failed: {failures[:1]!r}, all finished: {finished}")
    waits = sorted(granted - requested for requested, granted, _ in records)
    grants = [(requested, available) for requested, _, available in records]
    # The longest time in which no task got anything: when the whole process
    # was descheduled, every wait across that gap grows by it, pool or not.
    granted_at = sorted(granted for _, granted, _ in records)
    no_progress = max((b - a for a, b in itertools.pairwise(granted_at)), default=0.0)
    return {
        "cycles_per_s": len(records) / elapsed,
        "wait_p50_ms": percentile(waits, 0.50) * 1e3,
        "wait_p99_ms": percentile(waits, 0.99) * 1e3,
        "wait_p999_ms": percentile(waits, 0.999) * 1e3,
        "wait_max_ms": waits[-1] * 1e3,
        "overtakes": count_overtakes(grants, OVERTAKE_MARGIN.get(backend, 0.0)),
        "no_progress_max_ms": no_progress * 1e3,
        "grants": len(records),
    }


def _wait_until_queued(subject: Subject, count: int, timeout: float = 2.0) -> bool:
    """Let the task just started reach its wait; True once ``count`` are queued."""
    if subject.waiting is None:
        # Green threads run until they block: a short sleep gets it queued.
        time.sleep(0.05 if running_backend() == "threading" else 0.002)
        return True
    deadline = time.monotonic() + timeout
    while subject.waiting() < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def run_s3_order(contender: Contender, settings: Settings) -> dict[str, Any]:
    """S3a: limit 1, ``waiters`` queued one by one; the order they are served in."""
    subject = contender.make(1)
    waiters = settings["s3_waiters"]
    granted: list[int] = []
    try:
        held = subject.acquire_for(5.0)
        queued_in_order = True

        def waiter(index: int) -> None:
            try:
                resource = subject.acquire_for(10.0)
            except Exception:
                return
            granted.append(index)
            time.sleep(0)
            subject.release(resource)

        workers = []
        for index in range(waiters):
            workers += start_tasks(1, lambda _, i=index: waiter(i))
            queued_in_order &= _wait_until_queued(subject, index + 1)
        subject.release(held)
        join_tasks(workers, 20.0)
    finally:
        subject.close()
    return {
        "fifo": granted == list(range(waiters)),
        "inversions": inversions(granted) + (waiters - len(granted)) * waiters,
        "served": len(granted),
        "queued_in_order": queued_in_order,
        "order": granted,
    }


def run_s3_churn(contender: Contender, settings: Settings) -> dict[str, Any]:
    """S3b: limit 1, every task asks again right after it releases."""
    subject = contender.make(1)
    wanted = settings["churn_grants"]
    holders: list[int] = []
    waits: list[float] = []
    timeouts = [0]
    go = threading.Event()

    def task(index: int) -> None:
        go.wait()
        while len(holders) < wanted:
            requested = time.perf_counter()
            try:
                resource = subject.acquire_for(2.0)
            except Exception:
                timeouts[0] += 1
                continue
            waits.append(time.perf_counter() - requested)
            holders.append(index)
            time.sleep(0)
            subject.release(resource)

    try:
        workers = start_tasks(settings["churn_tasks"], task)
        time.sleep(0.01)
        go.set()
        join_tasks(workers, 60.0)
    finally:
        subject.close()
    back = sum(1 for a, b in itertools.pairwise(holders) if a == b)
    return {
        "back_to_releaser": back / max(1, len(holders) - 1),
        "churn_wait_max_ms": max(waits, default=float("nan")) * 1e3,
        "churn_timeouts": timeouts[0],
    }


def run_s3(contender: Contender, settings: Settings) -> dict[str, Any]:
    """S3: grant order against request order, then churn."""
    return {**run_s3_order(contender, settings), **run_s3_churn(contender, settings)}


ScenarioFunc = Callable[[Contender, Settings], Any]

SCENARIOS: dict[str, ScenarioFunc] = {"s1": run_s1, "s2": run_s2, "s3": run_s3}
