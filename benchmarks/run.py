"""Run the whole benchmark suite: greenpools next to kombu and the others.

    python benchmarks/run.py [--quick] [--backend NAME]... [--scenario NAME]...
    python benchmarks/run.py --baseline DIR [--rounds N] [--quick] [...]
    python benchmarks/run.py --busy N [...]     # N cores kept busy, as on a loaded server

Each backend (threading; gevent and eventlet, monkey-patched) runs in its
own freshly started process (benchmarks/worker.py); S4 runs in unpatched
processes of its own (benchmarks/cooperative.py).  The results are merged,
printed as one table per backend with medians over repetitions and the
greenpools/kombu ratios, every target of issue 4 is marked met or not,
and everything is saved as JSON in benchmarks/results/<timestamp>.json.

Scenarios: s1 (uncontended cycle), s2 (contended), s3 (fairness), sweep
(S2 on 4 to 256 OS threads against limits 1 and 10, threading only), s4
(cooperative waiting), s5 (RabbitMQ publish, confirms on), memory.
The full run takes a few minutes; --quick well under one.

With --baseline DIR (another greenpools checkout, e.g. a git worktree of
an older commit), the worker scenarios (not s4) run round by round from
both checkouts alternately, and each greenpools figure is printed as a
ratio new/old with its spread over the rounds and whether it is within
the run's noise (see benchmarks/baseline.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import baseline  # noqa: E402
import busy  # noqa: E402
import cooperative  # noqa: E402
import suite  # noqa: E402

from greenpools.cli import bench  # noqa: E402

RESULTS_DIR = os.path.join(HERE, "results")
GREEN = ("gevent", "eventlet")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--backend", action="append", choices=bench.BACKENDS,
                        help="only this backend (repeatable; default: every installed one)")
    parser.add_argument("--scenario", action="append", choices=suite.ALL_SCENARIOS,
                        help="only this scenario (repeatable; default: all)")
    parser.add_argument("--json", metavar="PATH",
                        help="where to save the JSON (default: benchmarks/results/<time>.json)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--baseline", metavar="DIR",
                        help="compare with the greenpools checkout in DIR, round by round")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="rounds of the --baseline comparison (default: 3)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="keep N cores busy with spinners at the lowest priority, so that "
                             "no core idles, as on a loaded server (default: 0)")
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error(f"--busy: must be 0 or more, not {args.busy}")
    return args


def s4_jobs(backends: list[str]) -> list[tuple[str, str]]:
    jobs = []
    for lib in backends:
        if lib in GREEN:
            for contender in cooperative.CONTENDERS:
                if contender != "eventlet-pool" or lib == "eventlet":
                    jobs.append((lib, contender))
    return jobs


def main(argv: list[str]) -> int:
    args = parse(argv)
    with busy.busy_cores(args.busy):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    preset = "quick" if args.quick else "full"
    settings = suite.PRESETS[preset]
    named = bool(args.backend)
    backends = []
    for name in args.backend or bench.BACKENDS:
        problem = bench.backend_problem(name)
        if problem is None:
            backends.append(name)
        elif named:
            print(f"run.py: --backend {name}: cannot run here: {problem}", file=sys.stderr)
            return 2
        else:
            print(f"run.py: skipping {name}: {problem}", file=sys.stderr)
    scenarios = args.scenario or list(suite.ALL_SCENARIOS)
    if args.baseline:
        status = baseline.compare(args.baseline, backends, scenarios, preset, args.rounds,
                                  open(os.devnull, "w") if args.no_progress else None)
        if args.busy:
            print(f"({args.busy} cores kept busy at nice 19)")
        return status
    in_workers = [s for s in suite.WORKER_SCENARIOS if s in scenarios]
    # The broker scenario last, for every backend: the broker shares the
    # machine's cores and stays busy a while after it (confirms, queue
    # deletion), which would otherwise weigh on the next CPU-bound scenario.
    passes = [p for p in ([s for s in in_workers if s not in suite.BROKER_SCENARIOS],
                          [s for s in in_workers if s in suite.BROKER_SCENARIOS]) if p]
    jobs = s4_jobs(backends) if "s4" in scenarios else []
    total = len(jobs) + sum(len(bench.plan(b, scenario_pass, settings, suite.CONTENDERS)) + 1
                            for scenario_pass in passes for b in backends)
    bar = bench.ProgressBar(total, stream=open(os.devnull, "w") if args.no_progress else None)
    started = time.monotonic()

    results: dict[str, Any] = {b: {"backend": b, "raw": {}, "errors": {}} for b in backends}
    for scenario_pass in passes:
        for backend in backends:
            command = [sys.executable, os.path.join(HERE, "worker.py"), backend, preset,
                       ",".join(scenario_pass)]
            try:
                result = run_worker(command, bar)
            except RuntimeError as exc:
                results[backend]["errors"][f"worker {','.join(scenario_pass)}"] = str(exc)
                continue
            merged = results[backend]
            merged["raw"].update(result["raw"])
            merged["errors"].update(result["errors"])
            merged["versions"] = result.get("versions", {})
    for lib, contender in jobs:
        bar.advance(f"{lib}: S4 {contender}")
        try:
            outcome = cooperative.run_s4(lib, contender)
        except RuntimeError as exc:
            results[lib]["errors"][f"s4/{contender}"] = str(exc)
            continue
        results[lib]["raw"].setdefault("s4", {})[contender] = [outcome]
    bar.finish()

    report = bench.build_report(results, suite.TARGETS, preset, settings)
    report["command"] = " ".join(["python benchmarks/run.py", *argv])
    report["busy_cores"] = args.busy
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    print(bench.render_report(report, suite.CONTENDERS, suite.COLUMN_GROUPS, pairs=suite.PAIRS))
    sweep = sweep_tables(report)
    if sweep:
        print("\n" + sweep)
    busy_note = f"; {args.busy} cores kept busy at nice 19" if args.busy else ""
    print(f"\n{preset} run, {report['elapsed_s']} s{busy_note}; medians over repetitions; "
          f"ratios are greenpools/kombu.")
    path = args.json or os.path.join(RESULTS_DIR, time.strftime("%Y%m%d-%H%M%S") + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(report, out, indent=1, default=str)
    print(f"saved {path}")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(bench.render_report(report, suite.CONTENDERS, suite.COLUMN_GROUPS,
                                          markdown=True, pairs=suite.PAIRS) + "\n")
            out.write(sweep_tables(report, markdown=True))
    return 0


def sweep_tables(report: dict[str, Any], markdown: bool = False) -> str:
    """The thread sweep of each backend that ran it, one row per point ('' if none)."""
    parts = []
    for name, data in report["backends"].items():
        points = bench.sweep_points(data["raw"].get("sweep", {}))
        if points:
            title = f"### {name}: sweep" if markdown else f"== {name}: sweep (threads/limit) =="
            parts.append(title + "\n" + bench.sweep_table(points, markdown) + "\n")
    return "\n".join(parts)


def run_worker(command: list[str], bar: bench.ProgressBar) -> dict[str, Any]:
    def on_step(message: dict[str, Any]) -> None:
        bar.advance(f"{message['backend']}: {message['label']}")

    return bench.run_worker(command, on_step, timeout=900.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
