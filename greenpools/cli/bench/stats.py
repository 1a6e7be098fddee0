"""The arithmetic of the results: percentiles, overtakes, inversions, medians over repetitions."""

from __future__ import annotations

import itertools
import math
import statistics
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

#: Per scenario, per contender: each metric combined over repetitions.
Summary = dict[str, dict[str, Any]]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def count_overtakes(records: Sequence[tuple[float, float]], margin: float) -> int:
    """Grants that went to a caller while an earlier one still waited.

    ``records`` holds ``(requested_at, granted_at)`` per acquire.  A grant
    to B overtakes when some A requested more than ``margin`` before B
    and was granted more than ``margin`` after B.
    """
    records = sorted(records)
    requested = [r for r, _ in records]
    latest_grant: list[float] = []  # running max of granted_at, by request order
    top = float("-inf")
    for _, granted in records:
        top = max(top, granted)
        latest_grant.append(top)
    overtakes = 0
    for requested_at, granted_at in records:
        earlier = bisect_left(requested, requested_at - margin)
        if margin == 0.0:
            # No margin: only callers strictly before this one count.
            while earlier > 0 and requested[earlier - 1] >= requested_at:
                earlier -= 1
        if earlier and latest_grant[earlier - 1] > granted_at + margin:
            overtakes += 1
    return overtakes


def inversions(order: Sequence[int]) -> int:
    """Pairs granted in the opposite order to their request."""
    return sum(1 for a, b in itertools.combinations(order, 2) if a > b)


#: How repetitions combine, by metric; everything else takes the median.
_AGGREGATE: dict[str, Callable[[list[Any]], Any]] = {
    "fifo": all, "queued_in_order": all, "overtakes": max, "inversions": max,
    "churn_timeouts": max, "order": lambda values: values[0],
}
#: Rates whose lowest and highest repetition are kept too (``<key>_spread``).
_SPREAD = frozenset({"cycles_per_s", "messages_per_s"})


def summarise(raw: dict[str, dict[str, list[Any]]]) -> Summary:
    """Medians (or the stated aggregate) over repetitions."""
    summary: Summary = {}
    for scenario, per_contender in raw.items():
        for contender, values in per_contender.items():
            if not values:
                continue
            if isinstance(values[0], dict):
                merged = {}
                for key in values[0]:
                    series = [v[key] for v in values if key in v]
                    merged[key] = _AGGREGATE.get(key, statistics.median)(series)
                    if key in _SPREAD:
                        merged[f"{key}_spread"] = [min(series), max(series)]
                merged["reps"] = len(values)
            else:
                merged = {"value": statistics.median(values), "reps": len(values),
                          "spread": [min(values), max(values)]}
            summary.setdefault(scenario, {})[contender] = merged
    return summary



def metric(summary: Summary, scenario: str, contender: str,
           key: str = "value") -> Any:
    """One figure of a run's summary, or ``None`` where it was not measured."""
    return summary.get(scenario, {}).get(contender, {}).get(key)
