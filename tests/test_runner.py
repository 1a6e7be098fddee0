"""tests/runner.py itself: skip reasons are printed, an all-skipped backend fails,
passes side by side keep their output apart, the shared cluster takes turns.

Runs the runner on a small test file of its own, once, in the threading run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")


def run_runner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
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


def test_passes_side_by_side_print_their_output_whole_under_their_own_header(
    tmp_path: Path,
) -> None:
    path = tmp_path / "test_says_where.py"
    path.write_text(
        "import os\n\n"
        "def test_says_where():\n"
        "    for _ in range(20):\n"
        "        print('ran-on', os.environ['GREENPOOLS_TEST_BACKEND'],"
        " os.environ['GREENPOOLS_TEST_BUILD'], flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPOOLS_")}
    result = subprocess.run(
        [sys.executable, RUNNER, "--backend", "all", "--jobs", "3", "-q", "-s",
         "-p", "no:cacheprovider", str(path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    headers = {
        f"==== greenpools tests: {backend} backend, {build} build ====": (backend, build)
        for build in ("compiled", "pure") for backend in ("threading", "gevent", "eventlet")
    }
    under: tuple[str, str] | None = None
    seen: dict[tuple[str, str], int] = {}
    for line in result.stdout.splitlines():
        if line in headers:
            under = headers[line]
        elif line.startswith("ran-on"):
            _, backend, build = line.split()
            assert (backend, build) == under, result.stdout
            seen[under] = seen.get(under, 0) + 1
    assert seen == {key: 20 for key in headers.values()}, result.stdout
    # The summary keeps its order, whatever order the passes ended in.
    summary = [line.split(":")[0] for line in result.stdout.splitlines() if " passed, " in line
               and line.endswith(" - ok")]
    assert summary == ["threading", "gevent", "eventlet",
                       "threading (pure)", "gevent (pure)", "eventlet (pure)"]


def test_the_usage_line_shows_every_option_and_the_pytest_separator() -> None:
    result = run_runner("--help")
    assert result.returncode == 0, result.stderr
    usage, _, rest = result.stdout.partition("\n\n")
    options = set(re.findall(r"^  (--[a-z-]+)", rest, re.MULTILINE)) - {"--help"}
    assert options == {"--backend", "--build", "--jobs", "--allow-all-skipped"}, rest
    for option in options:
        assert f"[{option}" in usage, usage
    assert "[--build compiled|pure|both]" in usage, usage
    assert usage.endswith(" [--] [pytest args...]"), usage


def test_the_shared_cluster_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    import fcntl

    from rabbit_cluster import turn

    state = str(tmp_path / "cluster.json")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); from rabbit_cluster import turn\n"
         "with turn(sys.argv[2]):\n"
         "    print('holding', flush=True); sys.stdin.readline()\n",
         os.path.dirname(RUNNER), state],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "holding\n"
        with open(state + ".lock", "a") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    with turn(state):  # free again once the holder let go
        pass


def test_the_probe_reads_the_installed_build() -> None:
    """Against the real installation: compiled wherever its modules are there
    (also in a plain-Python pass, whose GREENPOOLS_NO_SPEEDUPS the probe drops)."""
    from runner import installed_build

    from greenpools import _build

    if _build.compiled_modules_present():
        assert installed_build() == "compiled"
    else:
        assert installed_build().startswith("pure Python (not compiled"), installed_build()


@pytest.fixture
def without_compiled_build(tmp_path: Path) -> dict[str, str]:
    """An environment whose greenpools is a copy of the sources without the
    compiled modules, first on the path: what an install without a C compiler
    leaves."""
    import shutil

    import greenpools

    shutil.copytree(os.path.dirname(greenpools.__file__), tmp_path / "site" / "greenpools",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GREENPOOLS_") and k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                      os.environ.get("PYTHONPATH")]))
    return env


@pytest.fixture
def build_reporting_test(tmp_path: Path) -> str:
    path = tmp_path / "test_build_seen.py"
    path.write_text(
        "import os\nfrom greenpools import _build\n\n"
        "def test_build_seen():\n"
        "    print('build-seen', os.environ['GREENPOOLS_TEST_BUILD'], _build.BUILD, flush=True)\n"
    )
    return str(path)


def test_without_a_compiled_build_only_the_plain_python_passes_run(
    without_compiled_build: dict[str, str], build_reporting_test: str
) -> None:
    result = run_runner("-q", "-s", "-p", "no:cacheprovider", build_reporting_test,
                        env=without_compiled_build)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("no compiled build (no C compiler at install?): "
                        "running the plain-Python passes only"), result.stdout
    assert [line for line in lines if line.startswith("build-seen")] == [
        "build-seen pure pure Python (GREENPOOLS_NO_SPEEDUPS is set)"], result.stdout
    assert [line.split(":")[0] for line in lines if line.endswith(" - ok")] == [
        "threading (pure)"], result.stdout


@pytest.mark.parametrize(("ci", "build"), [("true", "both"), ("", "compiled")])
def test_a_missing_compiled_build_fails_in_one_line_under_ci_or_when_asked_for(
    without_compiled_build: dict[str, str], build_reporting_test: str, ci: str, build: str
) -> None:
    result = run_runner("--build", build, "-q", build_reporting_test,
                        env={**without_compiled_build, "CI": ci})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "", result.stdout  # no pass ran
    [line] = result.stderr.splitlines()
    assert line.startswith("tests/runner.py: "), line
    assert "there is no compiled build: pure Python (not compiled" in line, line
