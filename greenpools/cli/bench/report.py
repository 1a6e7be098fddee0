"""The report of a run: summaries and verdicts per backend, printed as tables."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .contenders import Contender
from .scenarios import Settings
from .stats import metric, summarise
from .tables import fmt, table, wrap
from .targets import Target, judge_targets


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


def backend_table(summary: dict[str, dict[str, Any]], contenders: Sequence[Contender],
                  columns: Sequence[Column], pairs: Sequence[tuple[str, str, str]] = PAIRS,
                  markdown: bool = False, width: int | None = None) -> str:
    """Every contender measured on one backend, then the greenpools/kombu ratios
    (a text table cut to ``width`` columns, see :func:`table`)."""
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
    return table(["contender", *(c.header for c in columns)], rows, markdown, width)


def targets_table(report: dict[str, Any], markdown: bool = False,
                  width: int | None = None) -> str:
    """Targets down, backends across: met or not with the figure; details below
    (as text, in ``width`` columns, see :func:`table`)."""
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
    if markdown:
        notes = ["- " + line for line in details]
    else:
        notes = [wrap(line, width, indent="  ") for line in details]
    return table(["target", *names], rows, markdown, width) + "\n\n" + "\n".join(notes)


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
                  pairs: Sequence[tuple[str, str, str]] = PAIRS,
                  width: int | None = None) -> str:
    """The whole report: tables per backend (one per column group), then the targets.

    As text, the tables fit in ``width`` columns (default: the terminal's
    width, or 100 when the output is not a terminal).
    """
    parts = []
    for name, data in report["backends"].items():
        title = f"### {name}" if markdown else f"== {name} =="
        tables = [backend_table(data["summary"], contenders, columns, pairs, markdown, width)
                  for columns in column_groups]
        parts.append(title + "\n" + "\n\n".join(t for t in tables if t.count("\n") > 1))
        for key, error in data["errors"].items():
            parts.append(f"error in {name} {key}: {error}")
    parts.append(targets_table(report, markdown, width))
    return "\n\n".join(parts)
