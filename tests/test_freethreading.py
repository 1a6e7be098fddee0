"""On a free-threaded interpreter running without the GIL, greenpools says it
is not supported yet: ``import greenpools`` warns once, ``doctor`` says so.

No free-threaded CPython is installed here, so each test runs the normal
interpreter in a fresh process whose ``sys._is_gil_enabled`` is replaced
before greenpools is imported: the very check a free-threaded build answers.
"""

from __future__ import annotations

import pytest
from helpers import BACKEND, run_python

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)

#: The first lines of each process: the GIL is disabled, as far as anyone can ask.
GIL_DISABLED = "import sys\nsys._is_gil_enabled = lambda: False\n"


IMPORT_AND_USE = """\
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import greenpools
    pool = greenpools.Pool(object, 1)  # loads the pool modules and the backend
    pool.release(pool.acquire())
    import greenpools.pools
for warning in caught:
    print(warning.category.__name__, warning.message, sep=": ")
"""


def test_importing_greenpools_without_the_gil_warns_once() -> None:
    result = run_python(GIL_DISABLED + IMPORT_AND_USE)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("RuntimeWarning: greenpools: this free-threaded interpreter "
                               "runs without the GIL"), lines
    assert "not safe there yet" in lines[0], lines


def test_importing_greenpools_with_the_gil_does_not_warn() -> None:
    result = run_python("import sys\nsys._is_gil_enabled = lambda: True\n" + IMPORT_AND_USE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "", result.stdout


DOCTOR = """\
import runpy
sys.argv = ["greenpools", "doctor"]
runpy.run_module("greenpools", run_name="__main__", alter_sys=True)
"""


def test_doctor_says_a_free_threaded_interpreter_is_not_supported_yet() -> None:
    result = run_python(GIL_DISABLED + "import warnings\nwarnings.simplefilter('ignore')\n"
                        + DOCTOR)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    rows = {line[:12].strip(): line[12:].strip() for line in result.stdout.splitlines()}
    assert rows["gil"].startswith("free-threaded interpreter: not supported yet"), rows
    assert rows["backend"].startswith("threading"), rows  # the other rows still come


def test_doctor_says_nothing_about_the_gil_when_it_is_enabled() -> None:
    result = run_python("import sys\nsys._is_gil_enabled = lambda: True\n" + DOCTOR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gil" not in {line[:12].strip() for line in result.stdout.splitlines()}
