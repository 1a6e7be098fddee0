"""Benchmarks of greenpools next to kombu's pools: the engine and the short run.

``python -m greenpools bench`` runs a short version of the repository's
``benchmarks/`` suite: S1 (uncontended cycle cost), S2 (contended
throughput and waits) and S3 (fairness), greenpools next to kombu and
next to floors (a native lock pair, a deque pop+append, the backend's
semaphore pair), on the current process's backend or on all three, each
in its own freshly monkey-patched interpreter.

The full suite in ``benchmarks/`` reuses everything here through the
names this package exports (the contenders, the scenario functions, the
worker protocol, ``metric``/``fmt``/``yes_no``/``ratio_target`` for
summaries and targets, ``start_tasks``/``join_tasks``, ``kombu_subject``),
and adds its own contenders and scenarios.  Its modules, one idea each:
:mod:`.environment` (backends, versions), :mod:`.contenders`,
:mod:`.scenarios`, :mod:`.sweep` (threads against limits), :mod:`.stats`,
:mod:`.plan`, :mod:`.worker` (the line protocol), :mod:`.targets`, :mod:`.tables`, :mod:`.report`,
:mod:`.progress` and :mod:`.command` (``main``).

Importing this package imports neither gevent nor eventlet nor kombu:
each contender imports what it needs when it is built, after the worker
process has been monkey-patched.
"""

from __future__ import annotations

from .command import main
from .contenders import (
    CONTENDERS,
    Contender,
    Subject,
    WaitTimedOut,
    backend_semaphore,
    kombu_subject,
    make_deque,
    make_gp_connection,
    make_gp_connection_pool,
    make_gp_generic,
    make_gp_producer,
    make_gp_producer_pool,
    make_kombu_connection,
    make_kombu_connection_pool,
    make_kombu_producer,
    make_kombu_producer_pool,
    make_native_lock,
    make_semaphore,
    queue_waiting,
)
from .environment import BACKENDS, backend_problem, installed_backends, running_backend, versions
from .plan import Emit, Step, plan, run_steps
from .progress import ProgressBar
from .report import (
    COLUMNS,
    PAIRS,
    Column,
    backend_table,
    build_report,
    render_report,
    targets_table,
)
from .scenarios import (
    OVERTAKE_MARGIN,
    PRESETS,
    SCENARIOS,
    ScenarioFunc,
    Settings,
    join_tasks,
    run_s1,
    run_s2,
    run_s3,
    run_s3_churn,
    run_s3_order,
    start_tasks,
)
from .stats import Summary, count_overtakes, inversions, metric, percentile, summarise
from .sweep import judge_sweep, run_sweep, sweep_points, sweep_table
from .tables import DEFAULT_WIDTH, fmt, output_width, table, wrap, yes_no
from .targets import (
    NOT_MEASURED,
    TARGETS,
    Target,
    Verdict,
    judge_ratio,
    judge_targets,
    ratio_target,
)
from .worker import MARKER, emit_line, run_worker, worker_command, worker_main

__all__ = [
    "BACKENDS",
    "COLUMNS",
    "CONTENDERS",
    "DEFAULT_WIDTH",
    "MARKER",
    "NOT_MEASURED",
    "OVERTAKE_MARGIN",
    "PAIRS",
    "PRESETS",
    "SCENARIOS",
    "TARGETS",
    "Column",
    "Contender",
    "Emit",
    "ProgressBar",
    "ScenarioFunc",
    "Settings",
    "Step",
    "Subject",
    "Summary",
    "Target",
    "Verdict",
    "WaitTimedOut",
    "backend_problem",
    "backend_semaphore",
    "backend_table",
    "build_report",
    "count_overtakes",
    "emit_line",
    "fmt",
    "installed_backends",
    "inversions",
    "join_tasks",
    "judge_ratio",
    "judge_sweep",
    "judge_targets",
    "kombu_subject",
    "main",
    "make_deque",
    "make_gp_connection",
    "make_gp_connection_pool",
    "make_gp_generic",
    "make_gp_producer",
    "make_gp_producer_pool",
    "make_kombu_connection",
    "make_kombu_connection_pool",
    "make_kombu_producer",
    "make_kombu_producer_pool",
    "make_native_lock",
    "make_semaphore",
    "metric",
    "output_width",
    "percentile",
    "plan",
    "queue_waiting",
    "ratio_target",
    "render_report",
    "run_s1",
    "run_s2",
    "run_s3",
    "run_s3_churn",
    "run_s3_order",
    "run_steps",
    "run_sweep",
    "run_worker",
    "running_backend",
    "start_tasks",
    "summarise",
    "sweep_points",
    "sweep_table",
    "table",
    "targets_table",
    "versions",
    "worker_command",
    "worker_main",
    "wrap",
    "yes_no",
]
