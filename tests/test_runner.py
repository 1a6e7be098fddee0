"""tests/runner.py itself: skip reasons are printed, an all-skipped backend fails.

Runs the runner on a small test file of its own, once, in the threading run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")


def run_runner(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPOOLS_")}
    return subprocess.run([sys.executable, RUNNER, "--backend", "threading", *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def skipping_tests(tmp_path: Path) -> str:
    path = tmp_path / "test_all_skip.py"
    path.write_text(
        "import pytest\n\n"
        "def test_one():\n    pytest.skip('no frobnicator on this machine')\n\n"
        "def test_two():\n    pytest.skip('no frobnicator on this machine')\n\n"
        "@pytest.mark.skip(reason='not written yet')\ndef test_three():\n    pass\n"
    )
    return str(path)


def test_a_backend_whose_tests_all_skipped_fails_with_the_reasons(skipping_tests: str) -> None:
    result = run_runner("--build", "compiled", "-q", "-p", "no:cacheprovider", skipping_tests)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: every test skipped" in result.stdout
    assert "    skipped 2: no frobnicator on this machine" in result.stdout
    assert "    skipped 1: not written yet" in result.stdout
    # The last line stays what .ci/run greps for.
    assert result.stdout.splitlines()[-1] == "0 passed, 0 failed, 3 skipped"


def test_all_skipped_is_accepted_when_asked_for(skipping_tests: str) -> None:
    result = run_runner("--allow-all-skipped", "-q", "-p", "no:cacheprovider", skipping_tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "    skipped 2: no frobnicator on this machine" in result.stdout
