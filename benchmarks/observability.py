"""Cost of watching pools: acquire+release cycles with and without metrics.

    python benchmarks/observability.py SCENARIO CYCLES [--backend B] [--metrics]
                                       [--listener] [--collect]
    python benchmarks/observability.py callgrind [--backend B] [--cycles N]

SCENARIO: ``s1`` (one task, uncontended, a pool of 10) or ``s2`` (8 tasks
on a pool of 2, each yielding while it holds one); ``record``: one
OpenTelemetry SDK histogram ``record()`` alone.  ``--backend``: ``gevent``
(the default: the stdlib is monkey-patched first) or ``threading``.
``--metrics``: ``greenpools.instrument()`` with an in-memory SDK reader;
``--collect``: the run ends with one collection, which hands every buffered
histogram sample to the SDK; it is timed on its own (per sample).  Prints
microseconds per cycle (and per sample collected) by ``perf_counter``.

``callgrind`` runs the scenarios under ``valgrind --tool=callgrind`` with
N and 2N cycles and prints the difference over N: instructions per cycle,
start-up and warm-up cancelled, repeatable to a few instructions on a busy
machine where the wall clock is not (see README, "Observability").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


USAGE = __doc__.split("\n\n")[1] if __doc__ else ""
FLAGS = {"--metrics", "--listener", "--collect"}


def _usage_error(message: str) -> None:
    sys.exit(f"observability.py: {message}\nusage:\n{USAGE}")


def check_arguments(argv: list[str]) -> list[str]:
    """The words of ``argv`` that are not options and their values; exits
    with a message and status 1 on a command line this script cannot run."""
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        sys.exit(0)
    words = list(argv)
    for name in ("--backend", "--cycles"):
        if name in words:
            at = words.index(name)
            if at + 1 >= len(words):
                _usage_error(f"{name} needs a value")
            del words[at:at + 2]
    backend = _option(argv, "--backend", "gevent")
    if backend not in ("gevent", "threading"):
        _usage_error(f"--backend must be gevent or threading, got {backend!r}")
    positional = [word for word in words if not word.startswith("-")]
    options = [word for word in words if word.startswith("-")]
    if positional[:1] == ["callgrind"]:
        if len(positional) > 1:
            _usage_error(f"unexpected argument {positional[1]!r}")
        if options:
            _usage_error(f"unknown option {options[0]!r}")
        cycles = _option(argv, "--cycles", "2000")
    else:
        if "--cycles" in argv:
            _usage_error("--cycles is an option of callgrind")
        if len(positional) != 2 or positional[0] not in ("s1", "s2", "record"):
            _usage_error("expected SCENARIO (s1, s2 or record) and CYCLES")
        unknown = [word for word in options if word not in FLAGS]
        if unknown:
            _usage_error(f"unknown option {unknown[0]!r}")
        cycles = positional[1]
    if not (cycles.isascii() and cycles.isdigit()) or int(cycles) < 1:
        _usage_error(f"cycles must be a positive whole number, got {cycles!r}")
    return positional


POSITIONAL = check_arguments(sys.argv[1:])
BACKEND = _option(sys.argv, "--backend", "gevent")
if POSITIONAL[:1] != ["callgrind"]:
    from greenpools.startup import patch_first

    patch_first(BACKEND)

import greenpools  # noqa: E402


def spawn_and_join(fn: Callable[[int], None], n: int, tasks: int) -> None:
    if BACKEND == "gevent":
        import gevent

        gevent.joinall([gevent.spawn(fn, n) for _ in range(tasks)])
    else:
        import threading

        threads = [threading.Thread(target=fn, args=(n,)) for _ in range(tasks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def s1(pool: greenpools.Pool[object], cycles: int) -> None:
    acquire, release = pool.acquire, pool.release
    for _ in range(cycles):
        release(acquire())


def s2(pool: greenpools.Pool[object], cycles: int) -> None:
    def worker(n: int) -> None:
        for _ in range(n):
            r = pool.acquire(True)
            time.sleep(0)
            pool.release(r)

    spawn_and_join(worker, cycles // 8, 8)


def sdk_record(cycles: int) -> None:
    """The OpenTelemetry SDK's own cost: one histogram ``record()``."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    histogram = meter.create_histogram("h", unit="s")
    attributes = {"db.client.connection.pool.name": "pool-1"}
    record = histogram.record
    for _ in range(1000):
        record(0.001, attributes)
    started = time.perf_counter()
    for _ in range(cycles):
        record(0.001, attributes)
    elapsed = time.perf_counter() - started
    print(f"record {elapsed / max(cycles, 1) * 1e6:.3f} us/call")


def main(argv: list[str]) -> None:
    scenario, cycles = POSITIONAL[0], int(POSITIONAL[1])
    if scenario == "record":
        sdk_record(cycles)
        return
    reader: Any = None
    if "--metrics" in argv:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        greenpools.instrument(MeterProvider(metric_readers=[reader]))
    pool: greenpools.Pool[object] = greenpools.Pool(object, 2 if scenario == "s2" else 10)
    if "--listener" in argv:
        greenpools.listen(pool, "checkout", lambda p, r, s: None)
    run = s1 if scenario == "s1" else s2
    run(pool, 1000)  # warm up
    if reader is not None:
        reader.get_metrics_data()  # the warm-up's samples, and the SDK's first-collection set-up
    started = time.perf_counter()
    run(pool, cycles)
    elapsed = time.perf_counter() - started
    print(f"{scenario} {elapsed / max(cycles, 1) * 1e6:.3f} us/cycle")
    if reader is not None and "--collect" in argv:
        started = time.perf_counter()
        reader.get_metrics_data()
        elapsed = time.perf_counter() - started
        samples = 2 * cycles  # a wait time and a use time per cycle
        print(f"collect {elapsed / max(samples, 1) * 1e6:.3f} us/sample")


# -- callgrind -------------------------------------------------------------

RUNS = {
    "unwatched": [],
    "one listener": ["--listener"],
    "metrics on": ["--metrics"],
    "metrics on + collect": ["--metrics", "--collect"],
}


def instructions(args: list[str]) -> int:
    """Instructions callgrind counts for one run of this script with ``args``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, __file__, *args],
            check=True, capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # else string hashing varies the counts
        )
        with open(out) as f:
            text = f.read()
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))  # type: ignore[union-attr]


def callgrind(argv: list[str]) -> None:
    n = int(_option(argv, "--cycles", "2000"))
    print(f"instructions per acquire+release cycle, backend {BACKEND}, N={n}")
    for scenario in ("s1", "s2"):
        per_run: dict[str, float] = {}
        for label, extra in RUNS.items():
            common = ["--backend", BACKEND, *extra]
            once = instructions([scenario, str(n), *common])
            twice = instructions([scenario, str(2 * n), *common])
            per_run[label] = (twice - once) / n
            print(f"{scenario} {label:22} {per_run[label]:10,.0f}", flush=True)
        deferred = per_run["metrics on + collect"] - per_run["metrics on"]
        print(f"{scenario} {'collection, per sample':22} {deferred / 2:10,.0f}", flush=True)


if __name__ == "__main__":
    if POSITIONAL[:1] == ["callgrind"]:
        callgrind(sys.argv[1:])
    else:
        main(sys.argv[1:])
