"""The benchmark suite's arithmetic: overtakes, percentiles, summaries, verdicts."""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import pytest

from greenpools.cli import bench


def test_grants_in_request_order_overtake_nobody() -> None:
    records = [(0.0, 1.0), (0.1, 2.0), (0.2, 3.0)]
    assert bench.count_overtakes(records, margin=0.0) == 0


def test_a_grant_ahead_of_an_earlier_waiter_is_an_overtake() -> None:
    # The second caller is served before the first, which still waits.
    records = [(0.0, 5.0), (0.1, 2.0), (0.2, 6.0)]
    assert bench.count_overtakes(records, margin=0.0) == 1


def test_overtakes_within_the_margin_are_not_counted() -> None:
    records = [(0.0, 2.05), (0.1, 2.0)]
    assert bench.count_overtakes(records, margin=0.0) == 1
    assert bench.count_overtakes(records, margin=0.2) == 0


def test_simultaneous_requests_do_not_overtake_each_other() -> None:
    records = [(1.0, 3.0), (1.0, 2.0)]
    assert bench.count_overtakes(records, margin=0.0) == 0


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, 1), (0.5, 5), (0.99, 10), (1.0, 10)])
def test_percentile_is_nearest_rank(fraction: float, expected: int) -> None:
    assert bench.percentile(list(range(1, 11)), fraction) == expected


def test_percentile_of_nothing_is_nan() -> None:
    value = bench.percentile([], 0.5)
    assert value != value


def test_summary_takes_medians_and_keeps_the_spread_of_rates() -> None:
    raw = {"s2": {"gp-conn": [
        {"cycles_per_s": 300.0, "overtakes": 0, "wait_max_ms": 3.0},
        {"cycles_per_s": 100.0, "overtakes": 2, "wait_max_ms": 9.0},
        {"cycles_per_s": 200.0, "overtakes": 1, "wait_max_ms": 4.0},
    ]}}
    merged = bench.summarise(raw)["s2"]["gp-conn"]
    assert merged["cycles_per_s"] == 200.0
    assert merged["cycles_per_s_spread"] == [100.0, 300.0]
    assert merged["overtakes"] == 2  # the worst repetition, not the median
    assert merged["wait_max_ms"] == 4.0
    assert "wait_max_ms_spread" not in merged
    assert merged["reps"] == 3


def test_summary_of_plain_values_has_median_and_spread() -> None:
    merged = bench.summarise({"s1": {"gp-conn": [3.0, 1.0, 2.0]}})["s1"]["gp-conn"]
    assert merged == {"value": 2.0, "reps": 3, "spread": [1.0, 3.0]}


def test_ratio_target_judges_in_the_stated_direction() -> None:
    summary = bench.summarise({"s2": {
        "gp-conn": [{"cycles_per_s": 99.0}], "kombu-conn": [{"cycles_per_s": 100.0}],
    }})
    at_least = bench.ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0,
                                   at_most=False)
    at_most = bench.ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0,
                                  at_most=True)
    assert at_least(summary)[:2] == (False, "0.990x")
    assert at_most(summary)[0] is True
    assert at_least({})[0] is None  # not measured is neither met nor failed


@pytest.mark.parametrize(("ratio", "bound", "at_most", "expected"), [
    (0.99996, 1.0, False, (False, "0.99996x")),  # once printed "NOT MET 1.000x"
    (1.0, 1.0, False, (True, "1.000x")),
    (0.3000049, 0.30, True, (False, "0.300005x")),
    (0.2999996, 0.30, True, (True, "0.300x")),
    (0.5, 1.0, False, (False, "0.500x")),
])
def test_ratio_verdict_prints_the_side_of_the_bound_it_is_on(
    ratio: float, bound: float, at_most: bool, expected: tuple[bool, str]
) -> None:
    assert bench.judge_ratio(ratio, bound, at_most) == expected


def test_ratio_target_never_rounds_a_miss_onto_the_bound() -> None:
    summary = bench.summarise({"s2": {
        "gp-conn": [{"cycles_per_s": 99_996.0}], "kombu-conn": [{"cycles_per_s": 100_000.0}],
    }})
    judge = bench.ratio_target("s2", "gp-conn", "kombu-conn", "cycles_per_s", 1.0,
                                at_most=False)
    assert judge(summary)[:2] == (False, "0.99996x")


def full_report() -> dict[str, Any]:
    """A report with every column of the short run measured, wide figures included."""
    s2 = {"cycles_per_s": 18_697.3, "wait_p50_ms": 0.000551, "wait_p99_ms": 0.00146,
          "wait_p999_ms": 46.3, "wait_max_ms": 83.04, "overtakes": 1105,
          "no_progress_max_ms": 80.1}
    s3 = {"fifo": False, "back_to_releaser": 0.971, "churn_wait_max_ms": 25.9}
    raw: dict[str, dict[str, list[Any]]] = {"s1": {}, "s2": {}, "s3": {}}
    for contender in bench.CONTENDERS:
        raw["s1"][contender.id] = [37_272.4]
        raw["s2"][contender.id] = [s2]
        raw["s3"][contender.id] = [s3]
    results = {name: {"raw": raw} for name in bench.BACKENDS}
    return bench.build_report(results, bench.TARGETS, "quick", bench.PRESETS["quick"])


def test_the_report_fits_in_100_columns_when_the_output_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal
    text = bench.render_report(full_report(), bench.CONTENDERS, [bench.COLUMNS])
    too_wide = [line for line in text.splitlines() if len(line) > 100]
    assert too_wide == [], text
    for column in bench.COLUMNS:  # nothing left out to fit
        assert column.header in text, text
    assert text.count("kombu connection pool ") == 2 * len(bench.BACKENDS), text


def test_a_wide_terminal_gets_each_table_in_one_piece() -> None:
    text = bench.render_report(full_report(), bench.CONTENDERS, [bench.COLUMNS], width=200)
    header = next(line for line in text.splitlines() if line.startswith("contender"))
    assert all(column.header in header for column in bench.COLUMNS), header
    assert text.count("kombu connection pool ") == len(bench.BACKENDS), text


def test_a_table_too_wide_is_cut_into_pieces_that_repeat_the_first_column() -> None:
    rows = [["first row", "aaaa", "bbbb", "cccc"], ["second row", "", "-", "dddd"]]
    text = bench.table(["name", "A", "B", "C"], rows, width=22)
    assert text.split("\n\n") == [
        "name           A     B\nfirst row   aaaa  bbbb",  # nothing in A or B: no second row
        "name           C\nfirst row   cccc\nsecond row  dddd",
    ]


def test_output_width_is_100_when_not_a_terminal() -> None:
    assert bench.output_width(io.StringIO()) == 100


# -- planning: a scenario measured in parts ------------------------------------------------


def _contender(cid: str, scenarios: tuple[str, ...]) -> bench.Contender:
    return bench.Contender(cid, cid, "greenpools", "connection", lambda: None,
                           backends=("threading",), scenarios=scenarios)


PAIR = [_contender("ours", ("s1", "sweep")), _contender("theirs", ("s1", "sweep"))]


def test_parts_are_measured_side_by_side_with_the_order_alternating() -> None:
    settings = {"reps": 2, "sweep_parts": ("a", "b")}
    steps = bench.plan("threading", ["sweep"], settings, PAIR)
    assert [(s.rep, s.part, s.contender) for s in steps] == [
        (0, "a", "ours"), (0, "a", "theirs"), (0, "b", "theirs"), (0, "b", "ours"),
        (1, "a", "theirs"), (1, "a", "ours"), (1, "b", "ours"), (1, "b", "theirs"),
    ]
    assert steps[2].label == "SWEEP b theirs #1"


def test_a_scenario_without_parts_runs_whole_in_contender_order() -> None:
    steps = bench.plan("threading", ["s1"], {"reps": 2}, PAIR)
    assert [(s.rep, s.part, s.contender) for s in steps] == [
        (0, "", "ours"), (0, "", "theirs"), (1, "", "ours"), (1, "", "theirs")]


def test_the_parts_of_a_round_merge_into_one_result() -> None:
    rounds_of: dict[str, int] = {}

    def measure(contender: bench.Contender, settings: dict[str, Any]) -> dict[str, Any]:
        part = settings["sweep_part"]
        seen = rounds_of[contender.id + part] = rounds_of.get(contender.id + part, -1) + 1
        return {part: f"{contender.id} round {seen}"}

    settings = {"reps": 2, "sweep_parts": ("a", "b")}
    steps = bench.plan("threading", ["sweep"], settings, PAIR)
    result = bench.run_steps("threading", steps, settings, PAIR, {"sweep": measure},
                             lambda message: None)
    assert result["errors"] == {}
    assert result["raw"]["sweep"] == {
        "ours": [{"a": "ours round 0", "b": "ours round 0"},
                 {"a": "ours round 1", "b": "ours round 1"}],
        "theirs": [{"a": "theirs round 0", "b": "theirs round 0"},
                   {"a": "theirs round 1", "b": "theirs round 1"}],
    }


# -- S2's clock ----------------------------------------------------------------------------


def test_s2_times_its_tasks_not_the_joining_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # Joining is not the pool's work: under eventlet each join scans every
    # live thread, and a FIFO pool's tasks end in the order they are joined.
    slow_joins = 0.5

    def join_slowly(tasks: Any, timeout: float) -> bool:
        time.sleep(slow_joins)
        return real_join(tasks, timeout)

    real_join = bench.scenarios.join_tasks
    monkeypatch.setattr(bench.scenarios, "join_tasks", join_slowly)
    generic = next(c for c in bench.CONTENDERS if c.id == "gp-generic")
    settings = {**bench.PRESETS["quick"], "s2_threads": 4, "s2_tasks": 4, "s2_cycles": 50}
    result = bench.run_s2(generic, settings)
    assert result["grants"] == 200
    assert result["cycles_per_s"] > 200 / slow_joins


@pytest.mark.parametrize("failing_round", [0, 1])
def test_a_round_whose_part_fails_is_dropped_whole_and_the_error_names_the_part(
    failing_round: int
) -> None:
    rounds_of_b = [0]

    def measure(contender: bench.Contender, settings: dict[str, Any]) -> dict[str, Any]:
        part = settings["sweep_part"]
        if contender.id == "ours" and part == "b":
            if rounds_of_b[0] == failing_round:  # after part "a" of the round
                raise RuntimeError("S2 failed")
            rounds_of_b[0] += 1
        return {part: contender.id}

    settings = {"reps": 2, "sweep_parts": ("a", "b")}
    steps = bench.plan("threading", ["sweep"], settings, PAIR)
    result = bench.run_steps("threading", steps, settings, PAIR, {"sweep": measure},
                             lambda message: None)
    assert result["errors"] == {"sweep/ours": "b: RuntimeError: S2 failed"}
    ours = result["raw"]["sweep"].get("ours", [])
    assert ours == [{"a": "ours", "b": "ours"}] * failing_round  # whole rounds only
    assert result["raw"]["sweep"]["theirs"] == [{"a": "theirs", "b": "theirs"}] * 2
