"""Run the test suite once per concurrency backend, each in a fresh process.

    python tests/runner.py [--backend threading|gevent|eventlet|all]
                           [--build compiled|pure|both] [--jobs N]
                           [--allow-all-skipped] [--] [pytest args...]

Each backend gets its own interpreter with ``GREENPOOLS_TEST_BACKEND`` set,
monkey-patched *first*, the way production servers do it (gunicorn's gevent
worker: ``monkey.patch_all()``; Celery's eventlet pool:
``eventlet.monkey_patch()``), and only then imports pytest and runs it
in-process.  The runner prints one summary line per backend and a last
line ``N passed, N failed[, N skipped]`` summed over all of them, with
the reasons tests were skipped under each backend's line.  It exits
non-zero if any backend failed, including one that collected no tests or
whose tests all skipped (unless ``--allow-all-skipped``).

Both builds of the pool core run the whole suite (``--build both``, the
default): the compiled one and the plain-Python one
(``GREENPOOLS_NO_SPEEDUPS=1``), including the end-to-end runs of
gunicorn, Celery and forked children, which inherit the switch.
``tests/test_build.py`` checks in every run that the build under test is
the one asked for, so a missing compiled build fails instead of passing
as plain Python.  Before any pass starts, the runner asks a fresh
interpreter which build is installed: without the compiled one (greenpools
installed where no C compiler was) it says so in one line and runs the
plain-Python passes only; under ``CI=true``, or with ``--build compiled``,
it fails in one line instead.

Passes run two at a time (``--jobs``): a pass spends most of its time
waiting for brokers, child processes and timeouts, not computing.  Each
then writes to a file of its own, printed whole when it ends; with
``--jobs 1`` (or a single pass) the output streams as it comes.  Tests
share the machine's broker under names of their own, and the RabbitMQ
nodes of the suite's own (the cluster, the alarm node), whose scenarios
stop nodes or raise alarms, take turns (``tests/rabbit_cluster.py``).

The runner stops those nodes when it ends, also when SIGTERM or SIGHUP
ends it (it then stops its passes first and exits with 128 + the
signal's number); and at start it stops nodes left by runs that were
killed outright.
"""

# Only the standard library's lightest modules (and greenpools.startup,
# which imports nothing else) at the top: in a child process nothing may be
# imported before the monkey patching.
from __future__ import annotations

import os
import sys
from typing import Any

from greenpools.startup import BACKEND_NAMES as BACKENDS
from greenpools.startup import patch_first

CHILD_FLAG = "--child"
REPORT_ENV = "GREENPOOLS_RUNNER_REPORT"
BACKEND_ENV = "GREENPOOLS_TEST_BACKEND"
BUILD_ENV = "GREENPOOLS_TEST_BUILD"  # the build tests/test_build.py expects
BUILDS = ("compiled", "pure")
PYTEST_NO_TESTS_COLLECTED = 5
#: Two passes side by side: most of a pass is spent waiting on brokers,
#: subprocesses and timeouts, not computing.
DEFAULT_JOBS = 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PURE_ONLY = "no compiled build (no C compiler at install?): running the plain-Python passes only"


def under_ci() -> bool:
    """Whether ``CI`` says this is a CI run (which must test everything)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def installed_build() -> str:
    """``greenpools._build.BUILD`` as a compiled pass would see it:
    ``"compiled"``, or ``"pure Python (<why>)"``.

    Read in a fresh interpreter started as a pass is (``tests/`` first on
    its path, without ``GREENPOOLS_NO_SPEEDUPS``), so that it is the
    greenpools the passes import.
    """
    import subprocess

    env = {k: v for k, v in os.environ.items()
           if k not in ("GREENPOOLS_NO_SPEEDUPS", "GREENPOOLS_BACKEND")}
    probe = subprocess.run(
        [sys.executable, "-c", "from greenpools import _build; print(_build.BUILD)"],
        cwd=TESTS_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot tell which build of greenpools is installed: {last}")
    return probe.stdout.strip()


def builds_to_run(asked: str) -> tuple[str, ...]:
    """The builds to test for ``--build asked``; raises RuntimeError (one
    line) when the compiled build is missing and must not be skipped."""
    builds = BUILDS if asked == "both" else (asked,)
    if "compiled" not in builds:
        return builds
    build = installed_build()
    if build == "compiled":
        return builds
    if under_ci():
        raise RuntimeError(f"CI=true must test both builds, but there is no compiled build: "
                           f"{build}")
    if asked == "compiled":
        raise RuntimeError(f"--build compiled: there is no compiled build: {build}")
    print(PURE_ONLY, flush=True)
    return ("pure",)


class Tally:
    """A pytest plugin that counts outcomes and writes them out as JSON."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.skip_reasons: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: object) -> None:
        when = getattr(report, "when", None)
        if getattr(report, "failed", False):
            self.counts["failed"] += 1
        elif getattr(report, "skipped", False):
            self.counts["skipped"] += 1
            reason = _skip_reason(report)
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1
        elif when == "call" and getattr(report, "passed", False):
            self.counts["passed"] += 1

    def pytest_collectreport(self, report: object) -> None:
        if getattr(report, "failed", False):
            self.counts["failed"] += 1

    def pytest_sessionfinish(self, session: object, exitstatus: int) -> None:
        if self.path:
            import json

            with open(self.path, "w") as fh:
                json.dump({**self.counts, "exitstatus": int(exitstatus),
                           "skip_reasons": self.skip_reasons}, fh)


def _skip_reason(report: object) -> str:
    """The reason pytest gives for a skip (its report's ``longrepr``)."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr or "no reason given")
    return reason.removeprefix("Skipped: ")


def run_child(backend: str, args: list[str]) -> int:
    """Inside the per-backend process: patch, then run pytest."""
    os.environ[BACKEND_ENV] = backend
    patch_first(backend)
    import pytest

    return int(pytest.main(args, plugins=[Tally(os.environ.get(REPORT_ENV))]))


Result = tuple[dict[str, int], int, float, dict[str, int]]


class Pass:
    """One run of the suite: one backend on one build, in a fresh interpreter.

    With ``log`` None the child writes to the runner's own output as it
    goes; otherwise to that file, which the runner prints when the pass
    ends (passes running side by side must not interleave their output).
    """

    def __init__(self, backend: str, build: str, log: str | None = None) -> None:
        self.backend = backend
        self.build = build
        self.log = log
        self.name = backend if build == "compiled" else f"{backend} ({build})"
        self.header = f"==== greenpools tests: {backend} backend, {build} build ===="
        self.report = ""
        self.started = 0.0
        self.proc: Any = None

    def start(self, args: list[str]) -> None:
        import subprocess
        import tempfile
        import time

        env = dict(os.environ)
        env[BACKEND_ENV] = self.backend
        env[BUILD_ENV] = self.build
        if self.build == "pure":
            env["GREENPOOLS_NO_SPEEDUPS"] = "1"
        else:
            env.pop("GREENPOOLS_NO_SPEEDUPS", None)
        # The backend must follow the patching, as in production.
        env.pop("GREENPOOLS_BACKEND", None)
        fd, self.report = tempfile.mkstemp(prefix=f"greenpools-{self.backend}-", suffix=".json")
        os.close(fd)
        env[REPORT_ENV] = self.report
        self.started = time.monotonic()
        command = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, self.backend, *args]
        if self.log is None:
            self.proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
            return
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)

    def result(self) -> Result:
        """Wait for the pass: the counts, the exit code, the seconds it took
        and how many tests skipped for each reason."""
        import json
        import time

        code = self.proc.wait()
        seconds = time.monotonic() - self.started
        try:
            with open(self.report) as fh:
                counts = json.load(fh)
        except (OSError, ValueError):
            counts = {}
        finally:
            os.unlink(self.report)
        reasons = {str(k): int(v) for k, v in dict(counts.get("skip_reasons") or {}).items()}
        counts = {key: int(counts.get(key, 0)) for key in ("passed", "failed", "skipped")}
        return counts, int(code), seconds, reasons

    def print_log(self) -> None:
        """Copy the pass's output file to the runner's output."""
        if self.log is None:
            return
        print(self.header, flush=True)
        with open(self.log, "rb") as fh:
            sys.stdout.buffer.write(fh.read())
        sys.stdout.buffer.flush()

    def stop(self) -> None:
        """Interrupt the pass (the runner itself was interrupted) and wait for it."""
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.report and os.path.exists(self.report):
            os.unlink(self.report)


def _wait_for_an_exit() -> None:
    """Block until some child process has exited, without reaping it (so
    that its ``Popen`` still collects its status)."""
    os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)


def run_passes(
    passes: list[tuple[str, str]], args: list[str], jobs: int
) -> list[tuple[Pass, Result]]:
    """Run every (backend, build) pass, ``jobs`` at a time; each with its
    result, in the order given.

    One at a time, a pass writes straight to the runner's output.  Side by
    side, each writes to a file of its own, printed whole when it ends.
    """
    import shutil
    import tempfile

    logs = tempfile.mkdtemp(prefix="greenpools-runner-") if min(jobs, len(passes)) > 1 else None
    order = [Pass(backend, build, logs and os.path.join(logs, f"{backend}-{build}.log"))
             for backend, build in passes]
    # The threading passes first: they also run the end-to-end tests, the longest.
    waiting = sorted(order, key=lambda p: p.backend != "threading")
    running: list[Pass] = []
    results: dict[int, Result] = {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                next_pass = waiting.pop(0)
                print(next_pass.header if logs is None else f"---- started: {next_pass.name}",
                      flush=True)
                next_pass.start(args)
                running.append(next_pass)
            finished = [p for p in running if p.proc.poll() is not None]
            if not finished:
                _wait_for_an_exit()
                continue
            for done in finished:
                running.remove(done)
                results[id(done)] = done.result()
                done.print_log()
    except BaseException:
        for still in running:
            still.stop()
        raise
    finally:
        if logs is not None:
            shutil.rmtree(logs, ignore_errors=True)
    return [(p, results[id(p)]) for p in order]


def _absolute_if_path(arg: str) -> str:
    if arg.startswith("-"):
        return arg
    path, sep, rest = arg.partition("::")
    if os.path.exists(path):
        return os.path.abspath(path) + sep + rest
    return arg


def _share_nodes() -> str:
    """Stop the RabbitMQ nodes killed runs left behind, then make the directory
    through which the passes share the nodes they boot, owned by this process."""
    from rabbit_cluster import share_nodes, stop_abandoned  # tests/ is on the path

    for base in stop_abandoned():
        print(f"runner: stopped the RabbitMQ nodes of a dead run in {base}", flush=True)
    return share_nodes()


def _jobs(text: str) -> int:
    import argparse

    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return jobs


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Every other argument, and everything after --, goes to pytest.",
        allow_abbrev=False,  # every other option belongs to pytest
    )
    backend_choices, build_choices = "|".join((*BACKENDS, "all")), "|".join((*BUILDS, "both"))
    indent = " " * len(f"usage: {parser.prog} ")
    parser.usage = (f"%(prog)s [--backend {backend_choices}] [--build {build_choices}]\n"
                    f"{indent}[--jobs N] [--allow-all-skipped] [--] [pytest args...]")
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--build", choices=(*BUILDS, "both"), default="both",
                        help="which build of the pool core to test (default: both)")
    parser.add_argument(
        "--jobs", type=_jobs, default=DEFAULT_JOBS, metavar="N",
        help=f"passes run side by side (default: {DEFAULT_JOBS}); 1 streams their output",
    )
    parser.add_argument(
        "--allow-all-skipped", action="store_true",
        help="a backend on which every test skipped is not a failure",
    )
    options, pytest_args = parser.parse_known_args(argv)
    chosen = BACKENDS if options.backend == "all" else (options.backend,)
    try:
        builds = builds_to_run(options.build)
    except RuntimeError as problem:
        print(f"tests/runner.py: {problem}", file=sys.stderr)
        return 1
    # The children run in the repository (for pytest's configuration), so
    # paths given relative to the caller's directory are made absolute.
    pytest_args = [_absolute_if_path(arg) for arg in pytest_args]

    totals = {"passed": 0, "failed": 0, "skipped": 0}
    lines = []
    ok = True
    from rabbit_cluster import stop_recorded
    from termination import Terminated, exit_cleanly_on_signals

    exit_cleanly_on_signals()
    # One RabbitMQ cluster (and alarm node) for all backends: the first that
    # needs it starts it, the runner stops it.
    shared = _share_nodes()
    passes = [(backend, build) for build in builds for backend in chosen]
    try:
        done = run_passes(passes, pytest_args, options.jobs)
    except Terminated as exc:
        stop_recorded(shared)
        print(f"runner: {exc}; stopped the test passes and the test RabbitMQ nodes",
              file=sys.stderr, flush=True)
        return exc.exit_status
    except BaseException:
        stop_recorded(shared)
        raise
    for finished, (counts, code, seconds, reasons) in done:
        for key in totals:
            totals[key] += counts[key]
        all_skipped = code == 0 and counts["skipped"] and not counts["passed"]
        if code == PYTEST_NO_TESTS_COLLECTED:
            verdict = "FAILED: collected no tests"
        elif code != 0:
            verdict = f"FAILED (pytest exit code {code})"
        elif all_skipped and not options.allow_all_skipped:
            verdict = "FAILED: every test skipped (--allow-all-skipped accepts that)"
            code = 1
        else:
            verdict = "ok"
        ok = ok and code == 0
        lines.append(
            f"{finished.name}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped in {seconds:.1f}s - {verdict}"
        )
        for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"    skipped {n}: {reason}")
    stop_recorded(shared)
    print()
    for line in lines:
        print(line)
    final = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        final += f", {totals['skipped']} skipped"
    print(final, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD_FLAG]:
        sys.exit(run_child(sys.argv[2], sys.argv[3:]))
    sys.exit(main(sys.argv[1:]))
