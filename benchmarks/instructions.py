"""Instructions per cycle under callgrind, this checkout against a baseline.

    python benchmarks/instructions.py --baseline DIR [--backend B]... [--scenario S]...
                                      [--build compiled|pure]... [--cycles N] [--jobs J]

The clock on a shared two-core machine swings by a factor of two between
runs; callgrind's instruction count does not.  Each figure is the count
of one run with 2N cycles minus one with N, over N (PYTHONHASHSEED=0):
start-up and warm-up cancel out.  Both checkouts run the same driver (the
``cycle`` mode of this file, public API only) with ``PYTHONPATH`` set to
the checkout, which must be built in place (``python setup.py build_ext
--inplace``) for its compiled figures; ``--build pure`` sets
``GREENPOOLS_NO_SPEEDUPS=1``.  The report gives new, old and new/old for
each scenario, backend and build.

Scenarios (kombu's pools on its in-memory transport; no broker):

- ``s1-conn``: ``pool.release(pool.acquire())`` on a ``ConnectionPool``;
- ``s1-conn-with``: ``with pool.acquire() as conn: pass``, the same pool;
- ``s1-producer``: ``with producers.acquire(block=True) as p: pass``;
- ``s1-generic``: ``with pool.acquired(): pass`` on a ``greenpools.Pool``;
- ``s2-conn``: 8 tasks share a ``ConnectionPool`` of 2, each holding for
  one ``sleep(0)`` (green backends only: under callgrind OS threads run one
  at a time, so a threaded count says nothing of contention).

A user mistake on the command line is a one-line message and exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from itertools import product

HERE = os.path.abspath(__file__)
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
BACKENDS = ("threading", "gevent", "eventlet")
SCENARIOS = ("s1-conn", "s1-conn-with", "s1-producer", "s1-generic", "s2-conn")
BUILDS = ("compiled", "pure")
WARM_UP = 500


# -- the driver, run under callgrind in each checkout --------------------------


def cycle(scenario: str, backend: str, cycles: int) -> None:
    """Run ``cycles`` cycles of ``scenario`` after a warm-up (imports first)."""
    from greenpools.startup import patch_first

    patch_first(backend)
    import threading
    import time

    from kombu import Connection

    import greenpools
    from greenpools import pools

    def connections(limit: int) -> object:
        return pools.ConnectionPool(Connection("memory://localhost/instructions"), limit=limit)

    if scenario == "s2-conn":
        pool = connections(2)

        def worker(n: int) -> None:
            for _ in range(n):
                conn = pool.acquire(block=True)
                time.sleep(0)
                conn.release()

        def run(n: int) -> None:  # green threads: the stdlib is patched
            tasks = [threading.Thread(target=worker, args=(n // 8,)) for _ in range(8)]
            for task in tasks:
                task.start()
            for task in tasks:
                task.join()

        run(WARM_UP)
        run(cycles)
        return
    if scenario == "s1-generic":
        generic = greenpools.Pool(object, 10)

        def run(n: int) -> None:
            acquired = generic.acquired
            for _ in range(n):
                with acquired():
                    pass
    elif scenario == "s1-producer":
        producers = pools.ProducerPool(connections(10), limit=10)

        def run(n: int) -> None:
            acquire = producers.acquire
            for _ in range(n):
                with acquire(block=True):
                    pass
    else:
        conns = connections(10)

        def run(n: int) -> None:
            acquire, release = conns.acquire, conns.release
            if scenario == "s1-conn-with":
                for _ in range(n):
                    with acquire():
                        pass
            else:
                for _ in range(n):
                    release(acquire())

    run(WARM_UP)
    run(cycles)


# -- counting ----------------------------------------------------------------------


def instructions(checkout: str, build: str, args: list[str]) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": checkout}
    env.pop("GREENPOOLS_NO_SPEEDUPS", None)
    if build == "pure":
        env["GREENPOOLS_NO_SPEEDUPS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, HERE, "cycle", *args],
            capture_output=True, text=True, env=env, cwd=tmp,
        )
        if run.returncode:
            lines = [line for line in run.stderr.splitlines() if not line.startswith("==")]
            raise RuntimeError(f"{' '.join(args)} ({build}) in {checkout} failed:\n"
                               + "\n".join(lines[-15:]))
        with open(out) as f:
            text = f.read()
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    assert found, "callgrind wrote no total"
    return int(found.group(1))


def per_cycle(checkout: str, build: str, scenario: str, backend: str, n: int) -> float:
    once = instructions(checkout, build, [scenario, backend, str(n)])
    twice = instructions(checkout, build, [scenario, backend, str(2 * n)])
    return (twice - once) / n


def checked_baseline(path: str) -> str:
    if not os.path.isfile(os.path.join(path, "greenpools", "__init__.py")):
        raise argparse.ArgumentTypeError(f"{path!r} is not a greenpools checkout")
    return os.path.abspath(path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/instructions.py", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=checked_baseline, required=True, metavar="DIR")
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--build", action="append", choices=BUILDS)
    parser.add_argument("--cycles", type=int, default=2000, metavar="N")
    parser.add_argument("--jobs", type=int, default=2, metavar="J")
    args = parser.parse_args(argv)
    if args.cycles < 100:
        parser.error(f"--cycles must be at least 100, got {args.cycles}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    combos = [
        (scenario, backend, build)
        for scenario, backend, build in product(
            args.scenario or SCENARIOS, args.backend or BACKENDS, args.build or BUILDS)
        if not (scenario.startswith("s2") and backend == "threading")
    ]
    jobs = [(side, combo) for combo in combos for side in (CHECKOUT, args.baseline)]
    print(f"instructions per cycle (callgrind, N={args.cycles}); new: {CHECKOUT}, "
          f"old: {args.baseline}")
    print(f"{'scenario':14} {'backend':10} {'build':9} {'new':>9} {'old':>9} {'new/old':>8}",
          flush=True)
    with ThreadPoolExecutor(args.jobs) as executor:
        counts = executor.map(
            lambda job: per_cycle(job[0], job[1][2], job[1][0], job[1][1], args.cycles), jobs)
        for scenario, backend, build in combos:  # a row as soon as both sides are counted
            new, old = next(counts), next(counts)
            print(f"{scenario:14} {backend:10} {build:9} {new:9,.0f} {old:9,.0f} "
                  f"{new / old:8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["cycle"]:
        cycle(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main(sys.argv[1:]))
