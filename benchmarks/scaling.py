"""Cost per contended cycle as waiters grow: greenpools' connection pool next to kombu's.

    python benchmarks/scaling.py [--quick] [--backend NAME]... [--json PATH]

S2's cycle (acquire, ``sleep(0)``, release on a pool of 10, kombu's
in-memory transport) with more and more tasks queued on the pool: 100 to
30,000 green threads on gevent and eventlet, 16 to 1,024 OS threads on
threading.  Every task runs the same number of cycles, so that the run's
total stays about constant; the figure is nanoseconds of wall clock per
cycle (1e9 / cycles per second), the median over the repetitions.

Each backend runs in its own freshly started, monkey-patched interpreter
(this file, with ``--worker``).  The results go to ``--json`` (default
benchmarks/results/waiters-<time>.json); ``benchmarks/plots.py`` draws them.
"""

# Nothing before the monkey patching in a worker (greenpools.startup imports nothing else).
import sys

from greenpools.startup import patch_first

WORKER_FLAG = "--worker"

if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == WORKER_FLAG:
    patch_first(sys.argv[2])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from greenpools.cli import bench  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
CONTENDERS = ("gp-conn", "kombu-conn")

#: Tasks on the pool, by kind of backend, and the run's size.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {"green": [100, 300, 1000, 3000, 10000, 30000], "threads": [16, 64, 256, 1024],
             "total_cycles": 200_000, "reps": 3},
    "quick": {"green": [100, 1000, 10000, 30000], "threads": [16, 64, 256],
              "total_cycles": 30_000, "reps": 1},
}


def waiter_counts(backend: str, preset: str) -> list[int]:
    """How many tasks share the pool in each measurement on ``backend``."""
    return PRESETS[preset]["threads" if backend == "threading" else "green"]


def measure(backend: str, preset: str) -> dict[str, Any]:
    """Run every measurement of one backend here (already patched)."""
    sizes = PRESETS[preset]
    by_id = {c.id: c for c in bench.CONTENDERS}
    samples: dict[str, dict[int, list[float]]] = {c: {} for c in CONTENDERS}
    for tasks in waiter_counts(backend, preset):
        settings = {"s2_limit": 10, "s2_tasks": tasks, "s2_threads": tasks,
                    "s2_cycles": max(2, sizes["total_cycles"] // tasks), "s2_timeout": 900.0}
        for rep in range(sizes["reps"]):
            for contender in CONTENDERS:
                bench.emit_line({"event": "step", "backend": backend,
                                 "label": f"{tasks} tasks {contender} #{rep + 1}"})
                result = bench.run_s2(by_id[contender], settings)
                samples[contender].setdefault(tasks, []).append(1e9 / result["cycles_per_s"])
    return {
        "backend": backend,
        "waiters": waiter_counts(backend, preset),
        "ns_per_cycle": {c: [statistics.median(samples[c][n]) for n in sorted(samples[c])]
                         for c in CONTENDERS},
        "versions": bench.versions(),
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/scaling.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and cycles, one round")
    parser.add_argument("--backend", action="append", choices=bench.BACKENDS,
                        help="only this backend (repeatable; default: every installed one)")
    parser.add_argument("--json", metavar="PATH",
                        help="where to save the results (default: benchmarks/results/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == [WORKER_FLAG]:
        bench.emit_line({"event": "result", "data": measure(argv[1], argv[2])})
        return 0
    args = parse(argv)
    preset = "quick" if args.quick else "full"
    backends = args.backend or bench.installed_backends()
    steps = sum(len(waiter_counts(b, preset)) * PRESETS[preset]["reps"] * len(CONTENDERS)
                for b in backends)
    bar = bench.ProgressBar(steps, stream=open(os.devnull, "w") if args.no_progress else None)
    report: dict[str, Any] = {"preset": preset, "settings": PRESETS[preset],
                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
                              "backends": {}, "errors": {}}
    for backend in backends:
        command = [sys.executable, os.path.abspath(__file__), WORKER_FLAG, backend, preset]
        try:
            report["backends"][backend] = bench.run_worker(
                command, lambda message: bar.advance(f"{message['backend']}: {message['label']}"),
                timeout=3600.0)
        except RuntimeError as exc:
            report["errors"][backend] = str(exc)
    bar.finish()
    for backend, result in report["backends"].items():
        print(f"== {backend}: ns per contended cycle (greenpools / kombu) ==")
        gp, kombu = (result["ns_per_cycle"][c] for c in CONTENDERS)
        for tasks, ours, theirs in zip(result["waiters"], gp, kombu, strict=True):
            print(f"{tasks:>7} tasks  {ours:>10.0f} / {theirs:>10.0f}  ({ours / theirs:.2f}x)")
    for backend, error in report["errors"].items():
        print(f"error in {backend}: {error}", file=sys.stderr)
    path = args.json or os.path.join(RESULTS_DIR, time.strftime("waiters-%Y%m%d-%H%M%S.json"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(report, out, indent=1)
    print(f"saved {path}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
