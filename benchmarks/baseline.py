"""This checkout next to a baseline checkout, in one run: ``run.py --baseline DIR``.

Each round runs every worker twice, once from this checkout and once from
the baseline's (its own ``benchmarks/worker.py`` importing its own
greenpools), alternating which goes first from round to round, so that
both sides share the machine's state as evenly as one run can.  For every
figure the round gives a ratio new/old; the report prints the median ratio
and the lowest and highest over the rounds.

The run's own noise comes from the contenders that are not greenpools
(kombu's pools, the floors): their code is the same on both sides, so
their ratios would all be 1.0 on a quiet machine.  A greenpools figure is
*within noise* when its median ratio lies inside the range those control
ratios took for the same kind of figure (or, with no control of that kind,
when its own range holds 1.0).

The baseline runs on ``DIR/.venv/bin/python`` when that exists (a checkout
installed into its own virtualenv), else on this interpreter with
``PYTHONPATH=DIR`` (a checkout built in place with ``python setup.py
build_ext --inplace``); either way the run first checks that each side
imports its own greenpools.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import suite

from greenpools.cli import bench

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
#: (backend, scenario, contender, key)
Figure = tuple[str, str, str, str]


@dataclass
class Side:
    """One checkout and the interpreter that runs its workers."""

    label: str
    root: str
    python: str

    @property
    def env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": self.root + (os.pathsep + path if path else "")}

    def worker(self, backend: str, preset: str, scenarios: list[str]) -> list[str]:
        return [self.python, os.path.join(self.root, "benchmarks", "worker.py"), backend,
                preset, ",".join(scenarios)]


def side_for(label: str, root: str) -> Side:
    """A checkout's side; its own virtualenv's Python when it has one."""
    root = os.path.realpath(root)
    if not os.path.isfile(os.path.join(root, "benchmarks", "worker.py")):
        raise SystemExit(f"--baseline must be a greenpools checkout with benchmarks/worker.py, "
                         f"got {root!r}")
    venv_python = os.path.join(root, ".venv", "bin", "python")
    python = (venv_python if label == "old" and os.access(venv_python, os.X_OK)
              else os.path.abspath(sys.executable))
    side = Side(label, root, python)
    found = subprocess.run(
        [python, "-c", "import greenpools; print(greenpools.__file__)"],
        env={**os.environ, **side.env}, capture_output=True, text=True, cwd=root,
    )
    where = os.path.realpath(found.stdout.strip()) if found.returncode == 0 else ""
    if not where.startswith(root + os.sep):
        raise SystemExit(f"the {label} side ({python}) imports greenpools from "
                         f"{where or found.stderr.strip()!r}, not from {root!r}")
    return side


def figures(summary: dict[str, dict[str, Any]], backend: str) -> dict[Figure, float]:
    """The numeric figures of one worker's summary."""
    found = {}
    for scenario, per_contender in summary.items():
        for contender, values in per_contender.items():
            for key, value in values.items():
                if key == "reps" or key.endswith("_spread") or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    found[(backend, scenario, contender, key)] = float(value)
    return found


def run_rounds(new: Side, old: Side, backends: list[str], passes: list[list[str]],
               preset: str, rounds: int, bar: bench.ProgressBar
               ) -> tuple[dict[Figure, list[float]], list[str], set[str]]:
    """Per-round ratios new/old of every figure both sides measured; workers
    that failed; contenders a worker could not measure (e.g. not installed)."""
    ratios: dict[Figure, list[float]] = {}
    errors: list[str] = []
    unmeasured: set[str] = set()

    def on_step(message: dict[str, Any]) -> None:
        bar.advance(f"{message['backend']}: {message['label']}")

    for number in range(rounds):
        order = (new, old) if number % 2 == 0 else (old, new)
        for scenarios in passes:
            for backend in backends:
                measured: dict[str, dict[Figure, float]] = {}
                for side in order:
                    try:
                        result = bench.run_worker(side.worker(backend, preset, scenarios),
                                                  on_step, timeout=900.0, env=side.env)
                    except RuntimeError as exc:
                        errors.append(f"round {number + 1}, {side.label}, {backend}: {exc}")
                        continue
                    for key, error in result.get("errors", {}).items():
                        unmeasured.add(f"{side.label}, {backend} {key}: {error}")
                    summary = bench.summarise(result.get("raw", {}))
                    measured[side.label] = figures(summary, backend)
                if len(measured) < 2:
                    continue
                for figure, value in measured["new"].items():
                    base = measured["old"].get(figure)
                    if base:
                        ratios.setdefault(figure, []).append(value / base)
    return ratios, errors, unmeasured


def noise_bands(ratios: dict[Figure, list[float]], is_ours: Callable[[str], bool]
                ) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (scenario, key), the range of the control figures' per-round ratios."""
    bands: dict[tuple[str, str], tuple[float, float]] = {}
    for (_, scenario, contender, key), series in ratios.items():
        if is_ours(contender):
            continue
        low, high = bands.get((scenario, key), (1.0, 1.0))
        bands[(scenario, key)] = (min(low, *series), max(high, *series))
    return bands


def verdict(series: list[float], band: tuple[float, float] | None) -> str:
    """Whether a figure's ratios are within the run's noise, else which way they moved."""
    middle = statistics.median(series)
    if band is not None:
        inside = band[0] <= middle <= band[1]
    else:  # no control of this kind: the figure's own spread must hold 1.0
        inside = min(series) <= 1.0 <= max(series)
    if inside:
        return "within noise"
    return "new higher" if middle > 1.0 else "new lower"


def render(ratios: dict[Figure, list[float]], rounds: int,
           is_ours: Callable[[str], bool]) -> Iterable[str]:
    bands = noise_bands(ratios, is_ours)
    yield (f"new/old ratios over {rounds} round(s): median [lowest-highest]; noise: "
           "the range of the same kind of figure for contenders whose code is the same "
           "on both sides")
    header = f"{'backend':<10} {'scenario':<8} {'contender':<18} {'figure':<24} "
    yield header + f"{'ratio':>7} {'spread':>15}  verdict"
    for figure in sorted(f for f in ratios if is_ours(f[2])):
        backend, scenario, contender, key = figure
        series = ratios[figure]
        yield (f"{backend:<10} {scenario:<8} {contender:<18} {key:<24} "
               f"{statistics.median(series):>7.3f} "
               f"{f'[{min(series):.3f}-{max(series):.3f}]':>15}  "
               f"{verdict(series, bands.get((scenario, key)))}")
    yield ""
    yield "noise: ratios of the control contenders (same code on both sides)"
    for (scenario, key), (low, high) in sorted(bands.items()):
        yield f"  {scenario:<8} {key:<24} [{low:.3f}-{high:.3f}]"


def compare(baseline: str, backends: list[str], scenarios: list[str], preset: str,
            rounds: int, bar_stream: Any) -> int:
    """The whole side-by-side run; prints the comparison, returns the exit code."""
    if rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {rounds}")
    new, old = side_for("new", CHECKOUT), side_for("old", baseline)
    if new.root == old.root:
        raise SystemExit(f"--baseline is this checkout itself: {baseline!r}")
    in_workers = [s for s in suite.WORKER_SCENARIOS if s in scenarios]
    passes = [p for p in ([s for s in in_workers if s not in suite.BROKER_SCENARIOS],
                          [s for s in in_workers if s in suite.BROKER_SCENARIOS]) if p]
    settings = suite.PRESETS[preset]
    steps = sum(len(bench.plan(b, p, settings, suite.CONTENDERS)) + 1
                for p in passes for b in backends)
    bar = bench.ProgressBar(2 * rounds * steps, stream=bar_stream)
    ratios, errors, unmeasured = run_rounds(new, old, backends, passes, preset, rounds, bar)
    bar.finish()
    ours = {c.id for c in suite.CONTENDERS if c.library == "greenpools"}
    print(f"new: {new.root} ({new.python})\nold: {old.root} ({old.python})")
    for line in render(ratios, rounds, lambda contender: contender in ours):
        print(line)
    for problem in sorted(unmeasured):
        print(f"not measured: {problem}")
    for error in errors:
        print(f"error: {error}")
    return 1 if errors or not ratios else 0
