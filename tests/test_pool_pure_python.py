"""The pool tests again on the pure-Python fast path (no C speedups).

``greenpools._speedups`` replaces the lock-free acquire/release when it is
built; installs without a compiler use ``greenpools._fastpath``'s Python
version, whose ordering arguments differ.  This runs the generic pool's
test modules once more, in a fresh process on this run's backend with
``GREENPOOLS_NO_SPEEDUPS=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = [
    "test_pool_basics.py", "test_pool_waiting.py", "test_pool_cancel.py",
    "test_pool_stress.py", "test_lifecycle.py", "test_stateful.py",
    "test_faults_lifecycle.py", "test_observability.py",
]
NESTED = "GREENPOOLS_PURE_PYTHON_RUN"


@pytest.mark.skipif(bool(os.environ.get(NESTED)), reason="already the pure-Python run")
def test_pool_suite_without_speedups() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GREENPOOLS_BACKEND"}
    env.update({"GREENPOOLS_NO_SPEEDUPS": "1", NESTED: "1"})
    env.pop("GREENPOOLS_RUNNER_REPORT", None)
    check = ("import greenpools._fastpath as f, sys; "
             "sys.exit(0 if not f.SPEEDUPS else 'speedups still on')")
    assert subprocess.run([sys.executable, "-c", check], env=env).returncode == 0
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "runner.py"), "--backend", BACKEND,
         "-q", "-p", "no:cacheprovider", *(os.path.join(HERE, m) for m in MODULES)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [""]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " 0 failed" in summary[0], summary
