"""The build of the pool core under test is the one asked for.

The runner runs the suite on the compiled build and again on the
plain-Python one, and says which it wants in ``GREENPOOLS_TEST_BUILD``;
without this check a compiled build that is missing (no compiler, a
failed build) would pass every test as plain Python, unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from greenpools import _build

EXPECTED = os.environ.get("GREENPOOLS_TEST_BUILD")


@pytest.mark.skipif(EXPECTED is None, reason="not run by tests/runner.py (no build asked for)")
def test_the_build_asked_for_is_the_one_that_runs() -> None:
    import greenpools.core.resource  # noqa: F401  (loads every core module)

    assert _build.active() == EXPECTED, (_build.BUILD, _build.active())
    assert _build.COMPILED_BUILD == (EXPECTED == "compiled"), _build.BUILD


def test_every_core_module_comes_from_one_build() -> None:
    import greenpools.backends._green
    import greenpools.backends.threading
    import greenpools.core.resource  # noqa: F401

    assert _build.active() in ("compiled", "pure"), _build.active()


def test_the_switch_selects_the_sources_even_where_compiled_modules_sit() -> None:
    code = ("import greenpools.core.resource, greenpools._build as b, "
            "greenpools.core.slotpool as s; print(b.active(), s.__file__.endswith('.py'))")
    env = {**os.environ, "GREENPOOLS_NO_SPEEDUPS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["pure", "True"], out


def test_the_plain_python_build_needs_no_cython_installed() -> None:
    # Cython builds greenpools; running the plain-Python build must not need it.
    code = (
        "import sys; sys.modules['cython'] = None\n"  # any `import cython` now fails
        "import greenpools, greenpools._build as b\n"
        "pool = greenpools.Pool(object, 1)\n"
        "first = pool.acquire()\n"
        "try:\n"
        "    pool.acquire(True, 0.01)\n"
        "except greenpools.PoolTimeout:\n"
        "    pass\n"
        "pool.release(first)\n"
        "assert pool.acquire() is first\n"
        "print(b.active())\n"
    )
    env = {**os.environ, "GREENPOOLS_NO_SPEEDUPS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pure"], result.stdout
