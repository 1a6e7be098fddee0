"""The targets of issue 4 and how each is judged on one backend's summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .stats import Summary, metric
from .tables import fmt, yes_no

#: (met, or None when not measured; the figure judged; a longer explanation)
Verdict = tuple[bool | None, str, str]
NOT_MEASURED: Verdict = (None, "-", "not measured")


@dataclass
class Target:
    """One target of issue 4, judged on one backend's summary."""

    id: str
    text: str
    judge: Callable[[Summary], Verdict]


def judge_ratio(ratio: float, bound: float, at_most: bool, digits: int = 3) -> tuple[bool, str]:
    """Whether ``ratio`` meets ``bound``, and the ratio printed as ``"0.999x"``.

    Judged on the unrounded ratio, and printed with as many digits as it
    takes for the figure to fall on the same side of the bound: never
    "NOT MET 1.000x".
    """
    met = ratio <= bound if at_most else ratio >= bound
    text = f"{ratio:.{digits}f}"
    while digits < 12:
        shown = float(text)
        if (shown <= bound if at_most else shown >= bound) == met:
            break
        digits += 1
        text = f"{ratio:.{digits}f}"
    return met, f"{text}x"


def ratio_target(scenario: str, ours: str, theirs: str, key: str, bound: float,
                 at_most: bool) -> Callable[[Summary], Verdict]:
    """A target met when ``ours / theirs`` of ``key`` is at most (or least) ``bound``."""
    def judge(summary: Summary) -> Verdict:
        a, b = metric(summary, scenario, ours, key), metric(summary, scenario, theirs, key)
        if a is None or b is None or not b:
            return NOT_MEASURED
        met, figure = judge_ratio(a / b, bound, at_most)
        return met, figure, f"greenpools {fmt(a)}, kombu {fmt(b)}"

    return judge


def _s2_fifo(summary: Summary) -> Verdict:
    overtakes = metric(summary, "s2", "gp-conn", "overtakes")
    if overtakes is None:
        return NOT_MEASURED
    theirs = metric(summary, "s2", "kombu-conn", "overtakes")
    return overtakes == 0, f"{overtakes} overtakes", f"kombu: {theirs} overtakes"


def _s2_max_wait(summary: Summary) -> Verdict:
    wait = metric(summary, "s2", "gp-conn", "wait_max_ms")
    if wait is None:
        return NOT_MEASURED
    theirs = metric(summary, "s2", "kombu-conn", "wait_max_ms")
    stall = metric(summary, "s2", "gp-conn", "no_progress_max_ms")
    return wait <= 20.0, f"{wait:.1f} ms", (
        f"kombu: {fmt(theirs)} ms; longest time in which no task got a resource: "
        f"{fmt(stall)} ms (a stall of the whole process, not of the pool, if close)")


def _s3_fifo(summary: Summary) -> Verdict:
    fifo = metric(summary, "s3", "gp-conn", "fifo")
    if fifo is None:
        return NOT_MEASURED
    theirs = metric(summary, "s3", "kombu-conn", "fifo")
    back = metric(summary, "s3", "gp-conn", "back_to_releaser")
    kombu_back = metric(summary, "s3", "kombu-conn", "back_to_releaser")
    return bool(fifo), f"FIFO {yes_no(fifo)}", (
        f"kombu FIFO {yes_no(theirs)}; churn: share of grants back to the releaser "
        f"{fmt(back)} (kombu {fmt(kombu_back)})")


TARGETS: list[Target] = [
    Target("s1-connection", "S1 connection pool cycle <= 0.30x kombu",
           ratio_target("s1", "gp-conn", "kombu-conn", "value", 0.30, at_most=True)),
    Target("s1-producer", "S1 producer pool cycle <= 0.125x kombu",
           ratio_target("s1", "gp-producer", "kombu-producer", "value", 0.125, at_most=True)),
    Target("s2-throughput", "S2 throughput >= 1.0x kombu",
           ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0, at_most=False)),
    Target("s2-fifo", "S2 strict FIFO grants", _s2_fifo),
    Target("s2-max-wait", "S2 max wait <= 20 ms", _s2_max_wait),
    Target("s3-fifo", "S3 FIFO grant order", _s3_fifo),
]


def judge_targets(summary: Summary, targets: Sequence[Target]) -> list[dict[str, Any]]:
    verdicts = []
    for target in targets:
        met, figure, detail = target.judge(summary)
        verdicts.append({"id": target.id, "target": target.text, "met": met,
                         "figure": figure, "detail": detail})
    return verdicts
