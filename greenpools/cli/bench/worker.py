"""The worker protocol: a freshly patched process runs a plan and reports it line by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .contenders import CONTENDERS
from .plan import plan, run_steps
from .scenarios import PRESETS, SCENARIOS

#: Lines a worker writes for its parent start with this marker.
MARKER = "@@greenpools-bench "

#: Runs in a fresh interpreter: patch first, import greenpools after.
_WORKER_CODE = """\
import sys
from greenpools.startup import patch_first
patch_first(sys.argv[1])
from greenpools.cli.bench import worker_main
sys.exit(worker_main(sys.argv[1:]))
"""


def worker_command(backend: str, preset: str, scenarios: Sequence[str]) -> list[str]:
    """The command that runs :func:`worker_main` in a fresh interpreter patched for ``backend``."""
    return [sys.executable, "-c", _WORKER_CODE, backend, preset, ",".join(scenarios)]


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of a worker (already patched): run, report on stdout."""
    backend, preset, scenarios = argv[0], argv[1], argv[2].split(",")
    settings = PRESETS[preset]
    steps = plan(backend, scenarios, settings, CONTENDERS)
    result = run_steps(backend, steps, settings, CONTENDERS, SCENARIOS, emit_line)
    emit_line({"event": "result", "data": result})
    return 0


def emit_line(message: dict[str, Any]) -> None:
    """Write one protocol line for the parent process."""
    sys.stdout.write(MARKER + json.dumps(message) + "\n")
    sys.stdout.flush()


def run_worker(command: list[str], on_step: Callable[[dict[str, Any]], None],
               timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker process; pass its progress on; return its result."""
    env = {**os.environ, **(env or {})}
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    result: dict[str, Any] | None = None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)
    drain.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout or ():
            if not line.startswith(MARKER):
                continue
            message = json.loads(line[len(MARKER):])
            if message["event"] == "result":
                result = message["data"]
            else:
                on_step(message)
        proc.wait()
    finally:
        killer.cancel()
    drain.join(5)
    if result is None:
        tail = "".join(stderr[-20:])
        raise RuntimeError(f"worker {command[3:]!r} exited {proc.returncode} "
                           f"without a result:\n{tail}")
    return result
