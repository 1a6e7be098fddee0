"""Benchmarks of greenpools next to kombu's pools: the engine and the short run.

``python -m greenpools bench`` runs a short version of the repository's
``benchmarks/`` suite: S1 (uncontended cycle cost), S2 (contended
throughput and waits) and S3 (fairness), greenpools next to kombu and
next to floors (a native lock pair, a deque pop+append, the backend's
semaphore pair), on the current process's backend or on all three, each
in its own freshly monkey-patched interpreter.

The full suite in ``benchmarks/`` reuses everything here through public
names only (the contenders, the scenario functions, the worker protocol,
``metric``/``fmt``/``yes_no``/``ratio_target`` for summaries and targets,
``start_tasks``/``join_tasks``, ``kombu_subject``), and adds its own
contenders and scenarios.

Importing this module imports neither gevent nor eventlet nor kombu:
each contender imports what it needs when it is built, after the worker
process has been monkey-patched.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

__all__ = [
    "BACKENDS",
    "CONTENDERS",
    "PRESETS",
    "SCENARIOS",
    "Contender",
    "ProgressBar",
    "Subject",
    "main",
]

BACKENDS = ("threading", "gevent", "eventlet")

#: Lines a worker writes for its parent start with this marker.
MARKER = "@@greenpools-bench "

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


def _nothing(*args: Any) -> None:
    return None


class WaitTimedOut(Exception):
    """A floor's acquire with a timeout ran out (pools raise their own)."""


@dataclass
class Subject:
    """One pool (or floor) under test, built fresh for each measurement.

    ``acquire()`` blocks without a timeout (the hot path); ``acquire_for(s)``
    blocks at most ``s`` seconds and raises when it runs out; ``waiting()``
    counts the callers queued (used to queue S3's waiters in a known
    order).  ``loop(n)``, when given, runs ``n`` uncontended cycles in the
    subject's own tightest form (the floors: ``a(); r()`` with no value).
    ``identify(r)`` is the same each time one resource is lent (``None``:
    the subject lends no distinct objects, like a semaphore's permits).
    """

    acquire: Callable[[], Any]
    release: Callable[[Any], object]
    acquire_for: Callable[[float], Any]
    waiting: Callable[[], int] | None = None
    close: Callable[[], object] = _nothing
    loop: Callable[[int], None] | None = None
    identify: Callable[[Any], int] | None = id


@dataclass
class Contender:
    """A pool implementation that the scenarios measure."""

    id: str
    label: str
    library: str  # "greenpools", "kombu", "floor", ...
    kind: str  # "connection", "producer", "generic", "floor"
    make: Callable[[int], Subject] = field(repr=False)
    backends: tuple[str, ...] = BACKENDS
    scenarios: tuple[str, ...] = ("s1", "s2", "s3")


# -- backend helpers ------------------------------------------------------------


def running_backend() -> str:
    """The backend the running process is patched for."""
    from greenpools import backends

    return backends.detect()


def installed_backends() -> list[str]:
    """The backends whose library can be imported here."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def backend_problem(name: str) -> str | None:
    """Why the backend ``name`` cannot run here (its library does not
    import), or ``None`` when it can."""
    from greenpools import backends

    try:
        backends.load(name)
    except ImportError as exc:
        return str(exc)
    return None


def versions() -> dict[str, str]:
    """Versions of the libraries measured, for the JSON record."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("greenpools", "kombu", "gevent", "eventlet", "greenlet", "SQLAlchemy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- contenders ---------------------------------------------------------------------


def _module(name: str) -> Any:
    """``import name``, typed loosely (kombu has no type hints)."""
    return importlib.import_module(name)


def _memory_connection() -> Any:
    return _module("kombu").Connection("memory://")


def _timed_out(acquire: Callable[..., bool]) -> Callable[[float], bool]:
    def acquire_for(timeout: float) -> bool:
        if not acquire(True, timeout):
            raise WaitTimedOut(f"no permit within {timeout} seconds")
        return True

    return acquire_for


def _pair_loop(
    acquire: Callable[[], object], release: Callable[[], object]
) -> Callable[[int], None]:
    def loop(n: int) -> None:
        a, r = acquire, release
        for _ in itertools.repeat(None, n):
            a()
            r()

    return loop


def make_native_lock(limit: int) -> Subject:
    from greenpools.backends.base import native_lock

    lock = native_lock()
    return Subject(lock.acquire, lambda _: lock.release(), _timed_out(lock.acquire),
                   loop=_pair_loop(lock.acquire, lock.release), identify=None)


def make_deque(limit: int) -> Subject:
    items = deque([object()])

    def loop(n: int) -> None:
        pop, append = items.pop, items.append
        for _ in itertools.repeat(None, n):
            append(pop())

    return Subject(items.pop, items.append, lambda timeout: items.pop(), loop=loop,
                   identify=None)


def backend_semaphore(limit: int) -> Any:
    """The semaphore of the library the process is patched for."""
    name = running_backend()
    if name == "gevent":
        from gevent.lock import Semaphore

        return Semaphore(limit)
    if name == "eventlet":
        from eventlet.semaphore import Semaphore as EventletSemaphore

        return EventletSemaphore(limit)
    return threading.Semaphore(limit)


def _semaphore_waiting(sem: Any) -> Callable[[], int] | None:
    name = running_backend()
    if name == "gevent":
        return lambda: int(sem.linkcount())
    if name == "eventlet":
        return lambda: len(sem._waiters)
    return lambda: len(sem._cond._waiters)


def make_semaphore(limit: int) -> Subject:
    sem = backend_semaphore(limit)
    return Subject(sem.acquire, lambda _: sem.release(), _timed_out(sem.acquire),
                   _semaphore_waiting(sem), loop=_pair_loop(sem.acquire, sem.release),
                   identify=None)


def _gp_subject(pool: Any) -> Subject:
    return Subject(partial(pool.acquire, True), pool.release,
                   lambda timeout: pool.acquire(True, timeout),
                   lambda: len(pool._waiting), pool.close)


def queue_waiting(queue: Any) -> Callable[[], int] | None:
    """Count the callers blocked in ``queue.get()``, where the queue tells."""
    if hasattr(queue, "not_empty"):  # the standard library's
        return lambda: len(queue.not_empty._waiters)
    if hasattr(queue, "getting"):  # eventlet's
        return lambda: int(queue.getting())
    return None  # gevent's (compiled) keeps it to itself


def kombu_subject(pool: Any) -> Subject:
    """A kombu ``Resource`` (or pool) as a benchmark :class:`Subject`."""
    return Subject(partial(pool.acquire, True), pool.release,
                   lambda timeout: pool.acquire(True, timeout),
                   queue_waiting(pool._resource), pool.force_close_all)


def make_gp_generic(limit: int) -> Subject:
    import greenpools

    return _gp_subject(greenpools.Pool(object, limit))


def make_gp_connection_pool(limit: int, connection: Any = None) -> Any:
    """A greenpools connection pool (default: on the in-memory transport)."""
    pools = _module("greenpools.pools")
    return pools.ConnectionPool(connection or _memory_connection(), limit=limit)


def make_gp_connection(limit: int) -> Subject:
    return _gp_subject(make_gp_connection_pool(limit))


def make_gp_producer_pool(limit: int, connection: Any = None) -> Any:
    """What ``greenpools.pools.producers[conn]`` builds, with an explicit limit."""
    pools = _module("greenpools.pools")
    return pools.ProducerPool(make_gp_connection_pool(limit, connection), limit=limit)


def make_gp_producer(limit: int) -> Subject:
    return _gp_subject(make_gp_producer_pool(limit))


def make_kombu_connection_pool(limit: int, connection: Any = None) -> Any:
    """What ``kombu.pools.connections[conn]`` builds, with an explicit limit."""
    return (connection or _memory_connection()).Pool(limit)


def make_kombu_connection(limit: int) -> Subject:
    return kombu_subject(make_kombu_connection_pool(limit))


def make_kombu_producer_pool(limit: int, connection: Any = None) -> Any:
    """What ``kombu.pools.producers[conn]`` builds, with an explicit limit."""
    producer_pool = _module("kombu.pools").ProducerPool
    return producer_pool(make_kombu_connection_pool(limit, connection), limit=limit)


def make_kombu_producer(limit: int) -> Subject:
    return kombu_subject(make_kombu_producer_pool(limit))


CONTENDERS: list[Contender] = [
    Contender("gp-conn", "greenpools connection pool", "greenpools", "connection",
              make_gp_connection),
    Contender("kombu-conn", "kombu connection pool", "kombu", "connection",
              make_kombu_connection),
    Contender("gp-producer", "greenpools producer pool", "greenpools", "producer",
              make_gp_producer, scenarios=("s1",)),
    Contender("kombu-producer", "kombu producer pool", "kombu", "producer",
              make_kombu_producer, scenarios=("s1",)),
    Contender("gp-generic", "greenpools.Pool (generic)", "greenpools", "generic",
              make_gp_generic),
    Contender("floor-lock", "floor: native lock pair", "floor", "floor", make_native_lock,
              scenarios=("s1",)),
    Contender("floor-deque", "floor: deque pop+append", "floor", "floor", make_deque,
              scenarios=("s1",)),
    Contender("floor-semaphore", "floor: backend semaphore pair", "floor", "floor",
              make_semaphore),
]


# -- scenarios ------------------------------------------------------------------------


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


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def count_overtakes(records: Sequence[tuple[float, float]], margin: float) -> int:
    """Grants that went to a caller while an earlier one still waited.

    ``records`` holds ``(requested_at, granted_at)`` per acquire.  A grant
    to B overtakes when some A requested more than ``margin`` before B
    and was granted more than ``margin`` after B.
    """
    records = sorted(records)
    requested = [r for r, _ in records]
    latest_grant: list[float] = []  # running max of granted_at, by request order
    top = float("-inf")
    for _, granted in records:
        top = max(top, granted)
        latest_grant.append(top)
    overtakes = 0
    for requested_at, granted_at in records:
        earlier = bisect_left(requested, requested_at - margin)
        if margin == 0.0:
            # No margin: only callers strictly before this one count.
            while earlier > 0 and requested[earlier - 1] >= requested_at:
                earlier -= 1
        if earlier and latest_grant[earlier - 1] > granted_at + margin:
            overtakes += 1
    return overtakes


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

    def task(index: int) -> None:
        acquire, release = subject.acquire, subject.release
        clock, pause = time.perf_counter, time.sleep
        mine = []
        go.wait()
        try:
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

    try:
        workers = start_tasks(tasks, task)
        time.sleep(0.01)
        gc.collect()
        started = time.perf_counter()
        go.set()
        finished = join_tasks(workers, settings.get("s2_timeout", 120.0))
        elapsed = time.perf_counter() - started
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


def inversions(order: Sequence[int]) -> int:
    """Pairs granted in the opposite order to their request."""
    return sum(1 for a, b in itertools.combinations(order, 2) if a > b)


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


# -- planning and running in one process --------------------------------------------


@dataclass(frozen=True)
class Step:
    scenario: str
    contender: str
    rep: int

    @property
    def label(self) -> str:
        return f"{self.scenario.upper()} {self.contender} #{self.rep + 1}"


def plan(backend: str, scenarios: Sequence[str], settings: Settings,
         contenders: Sequence[Contender]) -> list[Step]:
    """Every measurement for one backend, repetitions interleaved."""
    steps = []
    for scenario in scenarios:
        reps = int(settings.get(f"{scenario}_reps") or settings["reps"])
        for rep in range(reps):
            for contender in contenders:
                if scenario in contender.scenarios and backend in contender.backends:
                    steps.append(Step(scenario, contender.id, rep))
    return steps


Emit = Callable[[dict[str, Any]], None]


def run_steps(backend: str, steps: Sequence[Step], settings: Settings,
              contenders: Sequence[Contender], funcs: dict[str, ScenarioFunc],
              emit: Emit) -> dict[str, Any]:
    """Run ``steps`` here; ``emit`` hears of each; returns the raw results."""
    by_id = {c.id: c for c in contenders}
    raw: dict[str, dict[str, list[Any]]] = {}
    errors: dict[str, str] = {}
    for done, step in enumerate(steps):
        emit({"event": "step", "backend": backend, "label": step.label, "done": done})
        key = f"{step.scenario}/{step.contender}"
        if key in errors:
            continue
        try:
            value = funcs[step.scenario](by_id[step.contender], settings)
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"
            continue
        raw.setdefault(step.scenario, {}).setdefault(step.contender, []).append(value)
    emit({"event": "step", "backend": backend, "label": "done", "done": len(steps)})
    return {"backend": backend, "raw": raw, "errors": errors, "versions": versions()}


# -- worker processes ------------------------------------------------------------------

#: Runs in a fresh interpreter: patch first, import greenpools after.
_WORKER_CODE = """\
import sys
from greenpools.startup import patch_first
patch_first(sys.argv[1])
from greenpools.cli.bench import worker_main
sys.exit(worker_main(sys.argv[1:]))
"""


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of a worker (already patched): run, report on stdout."""
    backend, preset, scenarios = argv[0], argv[1], argv[2].split(",")
    settings = PRESETS[preset]
    steps = plan(backend, scenarios, settings, CONTENDERS)
    result = run_steps(backend, steps, settings, CONTENDERS, SCENARIOS, emit_line)
    emit_line({"event": "result", "data": result})
    return 0


def emit_line(message: dict[str, Any]) -> None:
    """Write one protocol line for the parent process."""
    sys.stdout.write(MARKER + json.dumps(message) + "\n")
    sys.stdout.flush()


def run_worker(command: list[str], on_step: Callable[[dict[str, Any]], None],
               timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker process; pass its progress on; return its result."""
    env = {**os.environ, **(env or {})}
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    result: dict[str, Any] | None = None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)
    drain.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout or ():
            if not line.startswith(MARKER):
                continue
            message = json.loads(line[len(MARKER):])
            if message["event"] == "result":
                result = message["data"]
            else:
                on_step(message)
        proc.wait()
    finally:
        killer.cancel()
    drain.join(5)
    if result is None:
        tail = "".join(stderr[-20:])
        raise RuntimeError(f"worker {command[3:]!r} exited {proc.returncode} "
                           f"without a result:\n{tail}")
    return result


# -- summary, targets, table --------------------------------------------------------------

#: How repetitions combine, by metric; everything else takes the median.
_AGGREGATE: dict[str, Callable[[list[Any]], Any]] = {
    "fifo": all, "queued_in_order": all, "overtakes": max, "inversions": max,
    "churn_timeouts": max, "order": lambda values: values[0],
}
#: Rates whose lowest and highest repetition are kept too (``<key>_spread``).
_SPREAD = frozenset({"cycles_per_s", "messages_per_s"})


def summarise(raw: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, Any]]:
    """Medians (or the stated aggregate) over repetitions."""
    summary: dict[str, dict[str, Any]] = {}
    for scenario, per_contender in raw.items():
        for contender, values in per_contender.items():
            if not values:
                continue
            if isinstance(values[0], dict):
                merged = {}
                for key in values[0]:
                    series = [v[key] for v in values if key in v]
                    merged[key] = _AGGREGATE.get(key, statistics.median)(series)
                    if key in _SPREAD:
                        merged[f"{key}_spread"] = [min(series), max(series)]
                merged["reps"] = len(values)
            else:
                merged = {"value": statistics.median(values), "reps": len(values),
                          "spread": [min(values), max(values)]}
            summary.setdefault(scenario, {})[contender] = merged
    return summary


Summary = dict[str, dict[str, Any]]
#: (met, or None when not measured; the figure judged; a longer explanation)
Verdict = tuple[bool | None, str, str]
NOT_MEASURED: Verdict = (None, "-", "not measured")


@dataclass
class Target:
    """One target of issue 4, judged on one backend's summary."""

    id: str
    text: str
    judge: Callable[[Summary], Verdict]


def metric(summary: dict[str, dict[str, Any]], scenario: str, contender: str,
           key: str = "value") -> Any:
    """One figure of a run's summary, or ``None`` where it was not measured."""
    return summary.get(scenario, {}).get(contender, {}).get(key)


def judge_ratio(ratio: float, bound: float, at_most: bool, digits: int = 3) -> tuple[bool, str]:
    """Whether ``ratio`` meets ``bound``, and the ratio printed as ``"0.999x"``.

    Judged on the unrounded ratio, and printed with as many digits as it
    takes for the figure to fall on the same side of the bound: never
    "NOT MET 1.000x".
    """
    met = ratio <= bound if at_most else ratio >= bound
    text = f"{ratio:.{digits}f}"
    while digits < 12:
        shown = float(text)
        if (shown <= bound if at_most else shown >= bound) == met:
            break
        digits += 1
        text = f"{ratio:.{digits}f}"
    return met, f"{text}x"


def ratio_target(scenario: str, ours: str, theirs: str, key: str, bound: float,
                 at_most: bool) -> Callable[[Summary], Verdict]:
    """A target met when ``ours / theirs`` of ``key`` is at most (or least) ``bound``."""
    def judge(summary: Summary) -> Verdict:
        a, b = metric(summary, scenario, ours, key), metric(summary, scenario, theirs, key)
        if a is None or b is None or not b:
            return NOT_MEASURED
        met, figure = judge_ratio(a / b, bound, at_most)
        return met, figure, f"greenpools {fmt(a)}, kombu {fmt(b)}"

    return judge


def _s2_fifo(summary: Summary) -> Verdict:
    overtakes = metric(summary, "s2", "gp-conn", "overtakes")
    if overtakes is None:
        return NOT_MEASURED
    theirs = metric(summary, "s2", "kombu-conn", "overtakes")
    return overtakes == 0, f"{overtakes} overtakes", f"kombu: {theirs} overtakes"


def _s2_max_wait(summary: Summary) -> Verdict:
    wait = metric(summary, "s2", "gp-conn", "wait_max_ms")
    if wait is None:
        return NOT_MEASURED
    theirs = metric(summary, "s2", "kombu-conn", "wait_max_ms")
    stall = metric(summary, "s2", "gp-conn", "no_progress_max_ms")
    return wait <= 20.0, f"{wait:.1f} ms", (
        f"kombu: {fmt(theirs)} ms; longest time in which no task got a resource: "
        f"{fmt(stall)} ms (a stall of the whole process, not of the pool, if close)")


def _s3_fifo(summary: Summary) -> Verdict:
    fifo = metric(summary, "s3", "gp-conn", "fifo")
    if fifo is None:
        return NOT_MEASURED
    theirs = metric(summary, "s3", "kombu-conn", "fifo")
    back = metric(summary, "s3", "gp-conn", "back_to_releaser")
    kombu_back = metric(summary, "s3", "kombu-conn", "back_to_releaser")
    return bool(fifo), f"FIFO {yes_no(fifo)}", (
        f"kombu FIFO {yes_no(theirs)}; churn: share of grants back to the releaser "
        f"{fmt(back)} (kombu {fmt(kombu_back)})")


TARGETS: list[Target] = [
    Target("s1-connection", "S1 connection pool cycle <= 0.30x kombu",
           ratio_target("s1", "gp-conn", "kombu-conn", "value", 0.30, at_most=True)),
    Target("s1-producer", "S1 producer pool cycle <= 0.125x kombu",
           ratio_target("s1", "gp-producer", "kombu-producer", "value", 0.125, at_most=True)),
    Target("s2-throughput", "S2 throughput >= 1.0x kombu",
           ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0, at_most=False)),
    Target("s2-fifo", "S2 strict FIFO grants", _s2_fifo),
    Target("s2-max-wait", "S2 max wait <= 20 ms", _s2_max_wait),
    Target("s3-fifo", "S3 FIFO grant order", _s3_fifo),
]


def judge_targets(summary: Summary, targets: Sequence[Target]) -> list[dict[str, Any]]:
    verdicts = []
    for target in targets:
        met, figure, detail = target.judge(summary)
        verdicts.append({"id": target.id, "target": target.text, "met": met,
                         "figure": figure, "detail": detail})
    return verdicts


def fmt(value: Any) -> str:
    """A figure as the reports print it (``-`` when missing)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def yes_no(value: Any) -> str:
    """``yes``, ``no``, or ``-`` when missing."""
    return "-" if value is None else ("yes" if value else "no")


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "n/a"}[met]



@dataclass(frozen=True)
class Column:
    """One column of the per-backend table: a metric of a scenario."""

    scenario: str
    key: str
    header: str
    ratio: bool = True  # show greenpools/kombu for it


COLUMNS: list[Column] = [
    Column("s1", "value", "S1 ns/cycle"),
    Column("s2", "cycles_per_s", "S2 cycles/s"),
    Column("s2", "wait_p50_ms", "S2 p50 ms", ratio=False),
    Column("s2", "wait_p99_ms", "S2 p99 ms", ratio=False),
    Column("s2", "wait_p999_ms", "S2 p99.9 ms", ratio=False),
    Column("s2", "wait_max_ms", "S2 max ms"),
    Column("s2", "overtakes", "S2 overtakes", ratio=False),
    Column("s3", "fifo", "S3 FIFO", ratio=False),
    Column("s3", "back_to_releaser", "S3 churn back", ratio=False),
    Column("s3", "churn_wait_max_ms", "S3 churn max ms", ratio=False),
]

#: Rows of ratios: (greenpools id, kombu id, caption).
PAIRS: list[tuple[str, str, str]] = [
    ("gp-conn", "kombu-conn", "ratio connection pools"),
    ("gp-producer", "kombu-producer", "ratio producer pools"),
]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Rows as an aligned text table, or as a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    out = []
    for row in (headers, *rows):
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def backend_table(summary: dict[str, dict[str, Any]], contenders: Sequence[Contender],
                  columns: Sequence[Column], pairs: Sequence[tuple[str, str, str]] = PAIRS,
                  markdown: bool = False) -> str:
    """Every contender measured on one backend, then the greenpools/kombu ratios."""
    columns = [c for c in columns
               if any(metric(summary, c.scenario, k.id, c.key) is not None for k in contenders)]
    rows = []
    for contender in contenders:
        cells = [fmt(metric(summary, c.scenario, contender.id, c.key)) for c in columns]
        if any(cell != "-" for cell in cells):
            rows.append([contender.label, *cells])
    for ours, theirs, caption in pairs:
        cells = []
        for column in columns:
            a = metric(summary, column.scenario, ours, column.key)
            b = metric(summary, column.scenario, theirs, column.key)
            numeric = isinstance(a, (int, float)) and isinstance(b, (int, float))
            cells.append(f"{a / b:.3f}" if column.ratio and numeric and b else "")
        if any(cells):
            rows.append([caption, *cells])
    return table(["contender", *(c.header for c in columns)], rows, markdown)


def targets_table(report: dict[str, Any], markdown: bool = False) -> str:
    """Targets down, backends across: met or not with the figure; details below."""
    names = list(report["backends"])
    verdicts = {n: {v["id"]: v for v in report["backends"][n]["targets"]} for n in names}
    texts: dict[str, str] = {}
    for name in names:
        for verdict in report["backends"][name]["targets"]:
            texts.setdefault(verdict["id"], verdict["target"])
    rows, details = [], []
    for target_id, text in texts.items():
        cells = []
        for name in names:
            v = verdicts[name].get(target_id)
            if v is None or v["met"] is None:
                cells.append("n/a")
                continue
            cells.append(f"{_verdict(v['met'])} {v['figure']}")
            if markdown or not v["met"]:  # on a terminal, only what is missed
                details.append(f"{text}, {name}: {v['figure']}; {v['detail']}")
        rows.append([text, *cells])
    bullet = "- " if markdown else "  "
    return (table(["target", *names], rows, markdown) + "\n\n"
            + "\n".join(bullet + line for line in details))


# -- progress bar -----------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a terminal; sparse plain lines otherwise."""

    def __init__(self, total: int, stream: IO[str] | None = None, width: int = 28) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._started = time.monotonic()

    def advance(self, label: str, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        self._draw(label)

    def _draw(self, label: str) -> None:
        fraction = self.done / self.total
        elapsed = time.monotonic() - self._started
        if self._tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {fraction:4.0%} {elapsed:5.0f}s {label[:40]:<40}")
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(f"[{fraction:4.0%}] {elapsed:5.0f}s {label}\n")
        self.stream.flush()

    def finish(self) -> None:
        self.done = self.total
        self._draw("finished")
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()


# -- command line -----------------------------------------------------------------------------


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m greenpools bench",
        description="Short benchmark: greenpools next to kombu's pools (S1-S3). "
                    "The full suite is benchmarks/run.py in the repository.",
    )
    parser.add_argument("--backend", default="all",
                        choices=("all", "current", *BACKENDS),
                        help="'current': this process, as patched; a name or 'all': one "
                             "freshly patched process per backend (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller, noisier run")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m greenpools bench``: run, print the table, return an exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    preset = "quick" if args.quick else "short"
    settings = PRESETS[preset]
    scenarios = args.scenario or list(SCENARIOS)
    if args.backend == "current":
        names = [running_backend()]
    elif args.backend == "all":
        names = installed_backends()
    else:
        names = [args.backend]
        problem = backend_problem(args.backend)
        if problem is not None:
            print(f"greenpools bench: {problem}", file=sys.stderr)
            return 2
    json_out: IO[str] | None = None
    if args.json:
        # Opened before the run, so that a path that cannot be written is
        # said at once, not after minutes of benchmarking.
        try:
            json_out = open(args.json, "w")
        except OSError as exc:
            print(f"greenpools bench: cannot write --json {args.json}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
    total = sum(len(plan(n, scenarios, settings, CONTENDERS)) + 1 for n in names)
    bar = ProgressBar(total, stream=open(os.devnull, "w") if args.no_progress else None)

    def on_step(message: dict[str, Any]) -> None:
        bar.advance(f"{message['backend']}: {message['label']}")

    results: dict[str, Any] = {}
    for name in names:
        if args.backend == "current":
            steps = plan(name, scenarios, settings, CONTENDERS)
            results[name] = run_steps(name, steps, settings, CONTENDERS, SCENARIOS, on_step)
        else:
            command = [sys.executable, "-c", _WORKER_CODE, name, preset, ",".join(scenarios)]
            try:
                results[name] = run_worker(command, on_step, timeout=600.0)
            except RuntimeError as exc:
                results[name] = {"backend": name, "raw": {}, "errors": {"worker": str(exc)}}
    bar.finish()
    report = build_report(results, TARGETS, preset, settings)
    print(render_report(report, CONTENDERS, [COLUMNS]))
    if json_out is not None:
        with json_out:
            json.dump(report, json_out, indent=1, default=str)
    failed = [name for name, result in results.items() if "worker" in result.get("errors", {})]
    if failed:
        print(f"greenpools bench: the run on {', '.join(failed)} failed (the error is above)",
              file=sys.stderr)
        return 1
    return 0


def build_report(results: dict[str, Any], targets: Sequence[Target], preset: str,
                 settings: Settings) -> dict[str, Any]:
    """Summaries and verdicts per backend, with the raw results kept."""
    backends_out = {}
    for name, result in results.items():
        summary = summarise(result.get("raw", {}))
        backends_out[name] = {
            "summary": summary,
            "targets": judge_targets(summary, targets),
            "errors": result.get("errors", {}),
            "raw": result.get("raw", {}),
            "versions": result.get("versions", {}),
        }
    return {
        "preset": preset,
        "settings": settings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "backends": backends_out,
    }


def render_report(report: dict[str, Any], contenders: Sequence[Contender],
                  column_groups: Sequence[Sequence[Column]], markdown: bool = False,
                  pairs: Sequence[tuple[str, str, str]] = PAIRS) -> str:
    """The whole report: tables per backend (one per column group), then the targets."""
    parts = []
    for name, data in report["backends"].items():
        title = f"### {name}" if markdown else f"== {name} =="
        tables = [backend_table(data["summary"], contenders, columns, pairs, markdown)
                  for columns in column_groups]
        parts.append(title + "\n" + "\n\n".join(t for t in tables if t.count("\n") > 1))
        for key, error in data["errors"].items():
            parts.append(f"error in {name} {key}: {error}")
    parts.append(targets_table(report, markdown))
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
