"""What the full suite runs: contenders, scenarios, sizes, targets, columns.

The short run's pieces (greenpools.cli.bench) plus eventlet.pools, SQLAlchemy
and kombu's generic Resource, S4 (cooperative waiting), S5 (RabbitMQ) and
memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from broker import run_s5
from contenders import EXTRA_CONTENDERS
from memory import MEMORY_CONTENDERS, run_memory

from greenpools.cli import bench

#: Scenarios run inside each backend's patched worker, in this order.
WORKER_SCENARIOS = ("s1", "s2", "s3", "sweep", "memory", "s5")
#: Scenarios that load the broker: run after every backend's others.
BROKER_SCENARIOS = ("s5",)
#: S4 runs in unpatched processes of its own (benchmarks/cooperative.py).
ALL_SCENARIOS = ("s1", "s2", "s3", "sweep", "s4", "s5", "memory")

_EXTRA_SETTINGS = {
    "full": {"s5_limit": 10, "s5_tasks": 50, "s5_messages": 10000, "s5_seconds": 15.0,
             "s5_reps": 5, "memory_reps": 3, "mem_pools": 200, "mem_resources": 200,
             "mem_waiters": 100, "sweep_cycles": 20_000, "sweep_reps": 5},
    "quick": {"s5_limit": 10, "s5_tasks": 50, "s5_messages": 1000, "s5_seconds": 5.0,
              "s5_reps": 1, "memory_reps": 1, "mem_pools": 50, "mem_resources": 100,
              "mem_waiters": 50, "sweep_cycles": 4000, "sweep_reps": 2},
}

PRESETS: dict[str, bench.Settings] = {
    name: {**bench.PRESETS[name], **extra} for name, extra in _EXTRA_SETTINGS.items()
}
# The full suite's quick run keeps S2 at least a little contended for longer.
PRESETS["quick"]["s2_cycles"] = 200


def _with_scenarios(contender: bench.Contender) -> bench.Contender:
    scenarios = list(contender.scenarios)
    if contender.id in MEMORY_CONTENDERS:
        scenarios.append("memory")
    if contender.id in ("gp-producer", "kombu-producer"):
        scenarios.append("s5")
    if contender.id in bench.sweep.PAIR:
        scenarios.append("sweep")
    return dataclasses.replace(contender, scenarios=tuple(scenarios))


_ORDER = ["gp-conn", "kombu-conn", "gp-producer", "kombu-producer", "gp-generic",
          "kombu-generic", "eventlet-pool", "sqlalchemy"]

#: Measured by S4 only: the backend left to detection, nothing patched.
AUTO_DETECTED = bench.Contender(
    "gp-conn-auto", "greenpools connection pool, backend auto-detected", "greenpools",
    "connection", bench.make_gp_connection, backends=("gevent", "eventlet"), scenarios=("s4",))

CONTENDERS: list[bench.Contender] = sorted(
    (_with_scenarios(c) for c in [*bench.CONTENDERS, *EXTRA_CONTENDERS, AUTO_DETECTED]),
    key=lambda c: _ORDER.index(c.id) if c.id in _ORDER else len(_ORDER),
)

SCENARIOS: dict[str, bench.ScenarioFunc] = {
    **bench.SCENARIOS, "memory": run_memory, "s5": run_s5, "sweep": bench.run_sweep,
}
for _preset in PRESETS.values():
    _preset["sweep_backends"] = ("threading",)  # the sweep is of OS threads
    _preset["sweep_parts"] = bench.sweep.PARTS  # both sides of a point seconds apart

COLUMN_GROUPS: list[list[bench.Column]] = [bench.COLUMNS, [
    bench.Column("s4", "hub_ran", "S4 hub ran", ratio=False),
    bench.Column("s5", "messages_per_s", "S5 msgs/s"),
    bench.Column("s5", "cpu_us_per_message", "S5 CPU us/msg"),
    bench.Column("memory", "pool_bytes", "B/idle pool"),
    bench.Column("memory", "resource_bytes", "B/resource"),
    bench.Column("memory", "connection_bytes", "B/connection"),
    bench.Column("memory", "waiter_bytes", "B/waiting task"),
]]

PAIRS = [*bench.PAIRS, ("gp-generic", "kombu-generic", "ratio generic pools")]


def _s4(summary: bench.Summary) -> bench.Verdict:
    ours = bench.metric(summary, "s4", "gp-conn", "hub_ran")
    if ours is None:
        return bench.NOT_MEASURED
    ticks = bench.metric(summary, "s4", "gp-conn", "ticks_during_wait")
    theirs = bench.metric(summary, "s4", "kombu-conn", "hub_ran")
    kombu_ticks = bench.metric(summary, "s4", "kombu-conn", "ticks_during_wait")
    auto = bench.metric(summary, "s4", "gp-conn-auto", "hub_ran")
    return bool(ours), f"hub ran {bench.yes_no(ours)}", (
        f"{_fmt_int(ticks)} ticks during the wait; kombu: hub ran {bench.yes_no(theirs)} "
        f"({_fmt_int(kombu_ticks)} ticks); greenpools with the backend left to "
        f"detection (nothing patched, so threading): hub ran {bench.yes_no(auto)}")


def _fmt_int(value: Any) -> str:
    return "-" if value is None else str(int(value))


def _all_at_most(pairs: list[tuple[str, str, str]]) -> Any:
    def judge(summary: bench.Summary) -> bench.Verdict:
        figures, details, verdict = [], [], True
        for ours, theirs, key in pairs:
            a = bench.metric(summary, "memory", ours, key)
            b = bench.metric(summary, "memory", theirs, key)
            if a is None or b is None:
                return bench.NOT_MEASURED
            met, figure = bench.judge_ratio(a / b if b else float("inf"), 1.0, at_most=True,
                                            digits=2)
            verdict &= met
            figures.append(figure)
            details.append(f"{ours} {a:.0f} B vs {theirs} {b:.0f} B")
        return verdict, " / ".join(figures), "; ".join(details)

    return judge


_s2_ratio = bench.ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0,
                                at_most=False)


def _spreads(summary: bench.Summary, scenario: str, key: str, unit: str,
             contenders: tuple[str, str]) -> str:
    """'; greenpools a-b, kombu c-d <unit> over the repetitions' (or nothing)."""
    parts = []
    for contender, name in zip(contenders, ("greenpools", "kombu"), strict=True):
        spread = bench.metric(summary, scenario, contender, f"{key}_spread")
        if spread:
            parts.append(f"{name} {bench.fmt(spread[0])}-{bench.fmt(spread[1])}")
    return f"; {', '.join(parts)} {unit} over the repetitions" if parts else ""


def _s2_throughput(summary: bench.Summary) -> bench.Verdict:
    """The S2 ratio, with its spread and how close the fair floors get."""
    met, figure, detail = _s2_ratio(summary)
    detail += _spreads(summary, "s2", "cycles_per_s", "cycles/s", ("gp-conn", "kombu-conn"))
    kombu = bench.metric(summary, "s2", "kombu-conn", "cycles_per_s")
    for floor_id, label in (("floor-fifo", "the minimal FIFO hand-off"),
                            ("floor-run-next", "the FIFO hand-off with run-next")):
        floor = bench.metric(summary, "s2", floor_id, "cycles_per_s")
        if floor and kombu:
            detail += (f"; {label} reaches {floor / kombu:.2f}x kombu "
                       f"({bench.fmt(floor)} cycles/s)")
    return met, figure, detail


_s5_ratio = bench.ratio_target("s5", "gp-producer", "kombu-producer", "messages_per_s", 1.0,
                                at_most=False)


def _s5_rate(summary: bench.Summary) -> bench.Verdict:
    """The S5 ratio, with its spread and each side's CPU per message."""
    pair = ("gp-producer", "kombu-producer")
    met, figure, detail = _s5_ratio(summary)
    detail += _spreads(summary, "s5", "messages_per_s", "msgs/s", pair)
    cpu = [bench.metric(summary, "s5", contender, "cpu_us_per_message") for contender in pair]
    if None not in cpu:
        detail += f"; CPU per message: greenpools {cpu[0]:.0f} us, kombu {cpu[1]:.0f} us"
    return met, figure, detail


def _sweep(summary: bench.Summary) -> bench.Verdict:
    """The sweep's target, on the medians of each side."""
    medians = {c: [summary.get("sweep", {}).get(c)] for c in bench.sweep.PAIR}
    if None in (m[0] for m in medians.values()):
        return bench.NOT_MEASURED
    return bench.judge_sweep(bench.sweep_points(medians))


TARGETS: list[bench.Target] = [
    *(t if t.id != "s2-throughput" else dataclasses.replace(t, judge=_s2_throughput)
      for t in bench.TARGETS),
    bench.Target("sweep", "Sweep 4-256 threads x limit 1, 10: >= 0.9x kombu, "
                 ">= 1.0x where kombu waits > 20 ms", _sweep),
    bench.Target("s4-hub", "S4 hub keeps running (gevent/eventlet, unpatched)", _s4),
    bench.Target("s5-rate", "S5 publish rate >= 1.0x kombu", _s5_rate),
    bench.Target("mem-pool", "Memory per idle pool <= kombu",
                 _all_at_most([("gp-conn", "kombu-conn", "pool_bytes"),
                               ("gp-producer", "kombu-producer", "pool_bytes")])),
    bench.Target("mem-resource", "Memory per pooled resource <= kombu",
                 _all_at_most([("gp-generic", "kombu-generic", "resource_bytes"),
                               ("gp-conn", "kombu-conn", "connection_bytes")])),
]
