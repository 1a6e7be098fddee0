"""``python -m greenpools bench``: the command line of the short run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from .contenders import CONTENDERS
from .environment import BACKENDS, backend_problem, running_backend
from .plan import plan, run_steps
from .progress import ProgressBar
from .report import COLUMNS, build_report, render_report
from .scenarios import PRESETS, SCENARIOS
from .targets import TARGETS
from .worker import run_worker, worker_command


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
        problems = {name: backend_problem(name) for name in BACKENDS}
        names = [name for name, problem in problems.items() if problem is None]
        left_out = [f"leaving out {name}: {problem}" for name, problem in problems.items()
                    if problem is not None]
        if left_out:
            print(f"greenpools bench: {'; '.join(left_out)}; running {', '.join(names)}",
                  file=sys.stderr)
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
            command = worker_command(name, preset, scenarios)
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
