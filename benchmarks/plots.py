"""The documentation's benchmark plots, drawn from the committed results.

    python benchmarks/plots.py                  # redraw from docs/_static/bench/*.json
    python benchmarks/plots.py --rerun [--quick]   # run the benchmarks first, then redraw

Reads ``s2.json`` (written by ``benchmarks/run.py --scenario s2 --json``)
and ``waiters.json`` (written by ``benchmarks/scaling.py --json``) in the
data folder (default docs/_static/bench), and writes there:

- ``s2_max_wait.png``: S2's longest wait, greenpools against kombu, per backend;
- ``s2_throughput.png``: S2's cycles per second, the same pairs;
- ``waiters_cost.png``: nanoseconds per contended cycle as the waiting tasks grow;
- ``provenance.rst``: one paragraph saying which run the plots show.

``--rerun`` runs both benchmarks on every installed backend and saves their
JSON there first (about ten minutes; ``--quick``: about two, and noisy).
Needs matplotlib: ``pip install -e '.[plots]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(os.path.dirname(HERE), "docs", "_static", "bench")
S2_FILE, WAITERS_FILE = "s2.json", "waiters.json"
PAIR = {"gp-conn": ("greenpools", "#2a7ab0"), "kombu-conn": ("kombu", "#d9822b")}
BACKEND_ORDER = ("threading", "gevent", "eventlet")


def rerun(data_dir: str, quick: bool) -> None:
    """Run both benchmarks, saving their JSON in ``data_dir``."""
    extra = ["--quick"] if quick else []
    for script, out in (("run.py", S2_FILE), ("scaling.py", WAITERS_FILE)):
        scenario = ["--scenario", "s2"] if script == "run.py" else []
        command = [sys.executable, os.path.join(HERE, script), *scenario, *extra,
                   "--json", os.path.join(data_dir, out)]
        print("running:", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)


def load(path: str) -> dict[str, Any]:
    try:
        with open(path) as saved:
            data: dict[str, Any] = json.load(saved)
    except FileNotFoundError:
        raise SystemExit(f"plots.py: no results at {path}: run with --rerun first") from None
    return data


def backends_of(report: dict[str, Any]) -> list[str]:
    return [b for b in BACKEND_ORDER if b in report["backends"]]


def s2_metric(report: dict[str, Any], backend: str, contender: str, key: str) -> float:
    value = report["backends"][backend]["summary"]["s2"][contender][key]
    return float(value)


def ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def number(value: float) -> str:
    """``13,100`` or ``41.5``: no exponents on the plots."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def plain_numbers(minor: bool = False) -> Any:
    """Axis labels as plain numbers (minor ticks: only 2, 3 and 5 of each decade)."""
    def label(value: float, _: Any) -> str:
        leading = f"{value:e}"[0]
        return number(value) if not minor or leading in "235" else ""

    return ticker().FuncFormatter(label)


def paired_bars(plt: Any, report: dict[str, Any], key: str, ylabel: str, title: str,
                log: bool, path: str) -> None:
    """One group of bars per backend: greenpools next to kombu."""
    backends = backends_of(report)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    width = 0.38
    for offset, (contender, (label, colour)) in zip((-width / 2, width / 2), PAIR.items(),
                                                     strict=True):
        values = [s2_metric(report, b, contender, key) for b in backends]
        xs = [i + offset for i in range(len(backends))]
        bars = ax.bar(xs, values, width, label=label, color=colour)
        ax.bar_label(bars, labels=[number(v) for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain_numbers())
    ax.yaxis.set_minor_formatter(plain_numbers(minor=True))
    ax.margins(y=0.15)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def waiters_plot(plt: Any, report: dict[str, Any], path: str) -> None:
    """ns per cycle against waiting tasks: one panel per backend."""
    backends = backends_of(report)
    fig, axes = plt.subplots(1, len(backends), figsize=(3.2 * len(backends), 3.4), dpi=110,
                             squeeze=False)
    for ax, backend in zip(axes[0], backends, strict=True):
        result = report["backends"][backend]
        for contender, (label, colour) in PAIR.items():
            ax.plot(result["waiters"], [v / 1000 for v in result["ns_per_cycle"][contender]],
                    marker="o", label=label, color=colour)
        ax.set_xscale("log")
        ax.set_xticks(result["waiters"], [number(n) for n in result["waiters"]])
        ax.xaxis.set_minor_locator(ticker().NullLocator())
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(backend, fontsize=10)
        ax.set_xlabel("tasks waiting on a pool of 10")
        ax.set_ylim(bottom=0)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("µs per contended cycle")
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def provenance(s2: dict[str, Any], waiters: dict[str, Any]) -> str:
    """The paragraph the performance page includes above the plots."""
    first = next(iter(s2["backends"].values()), {})
    versions = first.get("versions", {})
    shown = ", ".join(f"{name} {versions[name]}" for name in
                      ("python", "kombu", "gevent", "eventlet", "greenpools") if name in versions)
    quick = " (a short ``--quick`` run: read the shapes, not the numbers)"

    def run_of(report: dict[str, Any]) -> str:
        return (f"the run of {report.get('created', '?')[:10]} on "
                f"{report.get('machine', {}).get('cpus', '?')} CPUs"
                f"{quick if report.get('preset') == 'quick' else ''}")

    return (f"The S2 plots show {run_of(s2)}, the waiters plot {run_of(waiters)}"
            f"{'; ' + shown if shown else ''}. The data is in ``docs/_static/bench/``.\n")


def draw(data_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s2 = load(os.path.join(data_dir, S2_FILE))
    waiters = load(os.path.join(data_dir, WAITERS_FILE))
    written = [os.path.join(data_dir, name) for name in
               ("s2_max_wait.png", "s2_throughput.png", "waiters_cost.png", "provenance.rst")]
    paired_bars(plt, s2, "wait_max_ms", "ms (log scale)",
                "S2: the longest wait for a connection (lower is better)", True, written[0])
    paired_bars(plt, s2, "cycles_per_s", "cycles per second",
                "S2: contended cycles per second (higher is better)", False, written[1])
    waiters_plot(plt, waiters, written[2])
    with open(written[3], "w") as out:
        out.write(provenance(s2, waiters))
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/plots.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rerun", action="store_true", help="run the benchmarks first")
    parser.add_argument("--quick", action="store_true", help="with --rerun: a short run")
    parser.add_argument("--data", default=DATA_DIR, metavar="DIR",
                        help="where the JSON is read and the plots written (docs/_static/bench)")
    args = parser.parse_args(argv)
    if args.quick and not args.rerun:
        parser.error("--quick only applies with --rerun")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("plots.py needs matplotlib: pip install -e '.[plots]'") from None
    if args.rerun:
        os.makedirs(args.data, exist_ok=True)
        try:
            rerun(args.data, args.quick)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"plots.py: a benchmark failed (exit {exc.returncode})") from None
    for path in draw(args.data):
        print("wrote", os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
