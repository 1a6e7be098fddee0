"""The command line: ``python -m greenpools doctor|demo``, in fresh interpreters.

They start processes of their own, so they run once, in the threading run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)


def greenpools_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("GREENPOOLS_BACKEND", "GREENPOOLS_TEST_BACKEND",
                             "GREENPOOLS_NO_SPEEDUPS")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "greenpools", *args], env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_doctor_reports_backend_and_fast_path() -> None:
    result = greenpools_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line[:12].strip(): line[12:].strip() for line in result.stdout.splitlines()}
    assert rows["backend"].startswith("threading: nothing is monkey-patched"), rows
    assert rows["fast path"].startswith(("C (greenpools._speedups)", "pure Python (")), rows


def test_doctor_says_when_the_fast_path_is_pure_python() -> None:
    result = greenpools_cli("doctor", GREENPOOLS_NO_SPEEDUPS="1")
    assert "pure Python (GREENPOOLS_NO_SPEEDUPS is set)" in result.stdout


def test_doctor_fails_on_a_broker_that_does_not_answer() -> None:
    result = greenpools_cli("doctor", "--broker", "amqp://guest:secret@127.0.0.1:1//",
                            "--timeout", "1")
    assert result.returncode != 0
    assert "secret" not in result.stdout  # the password is masked


@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_demo_delivers_every_message_exactly_once(backend: str) -> None:
    result = greenpools_cli("demo", "--backend", backend, "--tasks", "20", "--messages", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consumed             200 (lost 0, duplicated 0)" in result.stdout
    assert "OK: every message arrived exactly once" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = greenpools_cli("bogus")
    assert result.returncode == 2
    assert "unknown command 'bogus'" in result.stderr
