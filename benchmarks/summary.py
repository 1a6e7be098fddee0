"""A compact Markdown summary of one saved run, for the README.

    python benchmarks/summary.py benchmarks/results/<timestamp>.json

Metrics down, backends across, greenpools next to kombu with the ratio;
then the floors and the other pools; then the targets.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from greenpools.cli import bench

#: (caption, scenario, greenpools id, kombu id, metric, show the ratio)
PAIRED = [
    ("S1 connection pool, ns/cycle", "s1", "gp-conn", "kombu-conn", "value", True),
    ("S1 producer pool, ns/cycle", "s1", "gp-producer", "kombu-producer", "value", True),
    ("S2 throughput, cycles/s", "s2", "gp-conn", "kombu-conn", "cycles_per_s", True),
    ("S2 wait p50, ms", "s2", "gp-conn", "kombu-conn", "wait_p50_ms", False),
    ("S2 wait p99, ms", "s2", "gp-conn", "kombu-conn", "wait_p99_ms", False),
    ("S2 wait p99.9, ms", "s2", "gp-conn", "kombu-conn", "wait_p999_ms", False),
    ("S2 wait max, ms", "s2", "gp-conn", "kombu-conn", "wait_max_ms", False),
    ("S2 longest time in which nobody got a resource, ms", "s2", "gp-conn", "kombu-conn",
     "no_progress_max_ms", False),
    ("S2 overtaken grants", "s2", "gp-conn", "kombu-conn", "overtakes", False),
    ("S3 grant order is FIFO (20 queued)", "s3", "gp-conn", "kombu-conn", "fifo", False),
    ("S3 churn: share of grants back to the releaser", "s3", "gp-conn", "kombu-conn",
     "back_to_releaser", False),
    ("S3 churn: max wait, ms", "s3", "gp-conn", "kombu-conn", "churn_wait_max_ms", False),
    ("S4 hub keeps running during a wait", "s4", "gp-conn", "kombu-conn", "hub_ran", False),
    ("S5 publish with confirms, messages/s", "s5", "gp-producer", "kombu-producer",
     "messages_per_s", True),
    ("S5 CPU of the publishing process per message, us", "s5", "gp-producer", "kombu-producer",
     "cpu_us_per_message", True),
    ("Memory per idle connection pool, B", "memory", "gp-conn", "kombu-conn", "pool_bytes", True),
    ("Memory per idle producer pool, B", "memory", "gp-producer", "kombu-producer",
     "pool_bytes", True),
    ("Memory per pooled resource (generic pools), B", "memory", "gp-generic", "kombu-generic",
     "resource_bytes", True),
    ("Memory per pooled connection, B", "memory", "gp-conn", "kombu-conn", "connection_bytes",
     True),
    ("Memory per waiting task, B", "memory", "gp-conn", "kombu-conn", "waiter_bytes", True),
]

#: (caption, scenario, contender id, metric)
OTHERS = [
    ("S1 floor: native lock pair, ns", "s1", "floor-lock", "value"),
    ("S1 floor: deque pop+append, ns", "s1", "floor-deque", "value"),
    ("S1 floor: backend semaphore pair, ns", "s1", "floor-semaphore", "value"),
    ("S1 greenpools.Pool (generic), ns", "s1", "gp-generic", "value"),
    ("S1 kombu Resource (generic), ns", "s1", "kombu-generic", "value"),
    ("S1 eventlet.pools.Pool, ns", "s1", "eventlet-pool", "value"),
    ("S1 SQLAlchemy QueuePool, ns", "s1", "sqlalchemy", "value"),
    ("S2 floor: minimal FIFO hand-off, cycles/s", "s2", "floor-fifo", "cycles_per_s"),
    ("S2 floor: minimal FIFO hand-off, max wait ms", "s2", "floor-fifo", "wait_max_ms"),
    ("S2 floor: FIFO hand-off with run-next, cycles/s", "s2", "floor-run-next", "cycles_per_s"),
    ("S2 floor: FIFO hand-off with run-next, max wait ms", "s2", "floor-run-next",
     "wait_max_ms"),
    ("S2 floor: backend semaphore, cycles/s", "s2", "floor-semaphore", "cycles_per_s"),
    ("S2 floor: backend semaphore, max wait ms", "s2", "floor-semaphore", "wait_max_ms"),
    ("S2 greenpools.Pool (generic), cycles/s", "s2", "gp-generic", "cycles_per_s"),
    ("S2 kombu Resource (generic), cycles/s", "s2", "kombu-generic", "cycles_per_s"),
    ("S2 eventlet.pools.Pool, cycles/s", "s2", "eventlet-pool", "cycles_per_s"),
    ("S2 eventlet.pools.Pool, max wait ms", "s2", "eventlet-pool", "wait_max_ms"),
    ("S2 eventlet.pools.Pool, overtaken grants", "s2", "eventlet-pool", "overtakes"),
    ("S2 SQLAlchemy QueuePool, cycles/s", "s2", "sqlalchemy", "cycles_per_s"),
    ("S2 SQLAlchemy QueuePool, max wait ms", "s2", "sqlalchemy", "wait_max_ms"),
]


def summary_tables(report: dict[str, Any]) -> str:
    names = list(report["backends"])

    def metric(name: str, scenario: str, contender: str, key: str) -> Any:
        return bench.metric(report["backends"][name]["summary"], scenario, contender, key)

    rows = []
    for caption, scenario, ours, theirs, key, with_ratio in PAIRED:
        cells = []
        for name in names:
            a, b = metric(name, scenario, ours, key), metric(name, scenario, theirs, key)
            if a is None and b is None:
                cells.append("n/a")
                continue
            ratio = f" ({a / b:.2f}x)" if with_ratio and a is not None and b else ""
            cells.append(f"{bench.fmt(a)} / {bench.fmt(b)}{ratio}")
        rows.append([caption, *cells])
    paired = bench.table(["greenpools / kombu", *names], rows, markdown=True)

    rows = []
    for caption, scenario, contender, key in OTHERS:
        cells = [bench.fmt(metric(name, scenario, contender, key)) for name in names]
        if any(cell != "-" for cell in cells):
            rows.append([caption, *cells])
    others = bench.table(["floors and other pools", *names], rows, markdown=True)
    return "\n\n".join([paired, others, bench.targets_table(report, markdown=True)])


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as saved:
            report = json.load(saved)
    except (OSError, ValueError) as exc:
        print(f"summary.py: cannot read a saved run from {argv[0]!r}: {exc}", file=sys.stderr)
        return 2
    print(summary_tables(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
