"""The thread sweep of issue 20: S2's cycle on OS threads, 4 to 256 threads
against limits 1 and 10, greenpools' connection pool next to kombu's.

Each point runs the same total of cycles (split over its threads), so
that the 256-thread points stay as short as the 4-thread ones.  The
target: at least 0.9x kombu's cycles per second at every point, and at
least 1.0x wherever kombu's longest wait is over 20 ms (where kombu buys
its throughput with starvation).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .contenders import Contender
from .scenarios import Settings, run_s2
from .tables import fmt, table
from .targets import NOT_MEASURED, Verdict, judge_ratio

#: (threads, limit) of each point.
POINTS: list[tuple[int, int]] = [(t, limit) for limit in (1, 10) for t in (4, 16, 64, 256)]

#: The contenders the sweep compares: (greenpools, kombu).
PAIR = ("gp-conn", "kombu-conn")

#: A kombu wait longer than this is starvation: greenpools must be at least as fast there.
STARVED_MS = 20.0


def point_key(threads: int, limit: int) -> str:
    return f"{threads}t/{limit}"


#: The sweep's parts, for :func:`greenpools.cli.bench.plan`: one per point.
PARTS: tuple[str, ...] = tuple(point_key(t, limit) for t, limit in POINTS)


def run_sweep(contender: Contender, settings: Settings) -> dict[str, Any]:
    """Every point once, or only ``settings["sweep_part"]`` if given:
    ``"<threads>t/<limit> cycles_per_s"`` and ``"... wait_max_ms"``."""
    only = settings.get("sweep_part")
    results = {}
    for threads, limit in POINTS:
        if only and point_key(threads, limit) != only:
            continue
        point = {**settings, "s2_threads": threads, "s2_limit": limit,
                 "s2_cycles": max(2, settings["sweep_cycles"] // threads)}
        measured = run_s2(contender, point)
        key = point_key(threads, limit)
        results[f"{key} cycles_per_s"] = measured["cycles_per_s"]
        results[f"{key} wait_max_ms"] = measured["wait_max_ms"]
    return results


def sweep_points(raw: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Per point, from the repetitions of both contenders: each side's median
    cycles/s, greenpools' longest wait over all rounds and kombu's median one,
    and greenpools/kombu per round (median, lowest, highest)."""
    rounds = list(zip(raw.get(PAIR[0], []), raw.get(PAIR[1], []), strict=False))
    out: dict[str, dict[str, Any]] = {}
    for threads, limit in POINTS if rounds else []:
        rate, wait = (f"{point_key(threads, limit)} {k}" for k in ("cycles_per_s", "wait_max_ms"))
        ratios = [a[rate] / b[rate] for a, b in rounds]
        out[point_key(threads, limit)] = {
            "ours": statistics.median(a[rate] for a, _ in rounds),
            "theirs": statistics.median(b[rate] for _, b in rounds),
            "ours_wait_ms": max(a[wait] for a, _ in rounds),
            "theirs_wait_ms": statistics.median(b[wait] for _, b in rounds),
            "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
        }
    return out


def judge_sweep(points: dict[str, dict[str, Any]]) -> Verdict:
    """Met when every point's median ratio reaches its bound (1.0x where
    kombu's longest wait is over 20 ms, else 0.9x)."""
    if not points:
        return NOT_MEASURED
    met, misses, worst = True, [], float("inf")
    for key, p in points.items():
        bound = 1.0 if p["theirs_wait_ms"] > STARVED_MS else 0.9
        ok, figure = judge_ratio(p["ratio"], bound, at_most=False)
        worst = min(worst, p["ratio"])
        if not ok:
            met = False
            misses.append(f"{key}: {figure} (needs {bound:.1f}x)")
    detail = "; ".join(misses) if misses else "every point meets its bound"
    return met, f"lowest {worst:.3f}x", detail


def sweep_table(points: dict[str, dict[str, Any]], markdown: bool = False,
                width: int | None = None) -> str:
    """One row per point: cycles/s of both, the ratio with its spread, the longest waits."""
    headers: Sequence[str] = ["threads/limit", "greenpools cycles/s", "kombu cycles/s",
                              "ratio (low-high)", "greenpools max ms", "kombu max ms"]
    rows = [[key, fmt(p["ours"]), fmt(p["theirs"]),
             f"{p['ratio']:.3f} ({p['low']:.2f}-{p['high']:.2f})",
             fmt(p["ours_wait_ms"]), fmt(p["theirs_wait_ms"])] for key, p in points.items()]
    return table(headers, rows, markdown, width)
