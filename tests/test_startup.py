"""greenpools.startup: the one "monkey-patch before anything else" start-up.

Each scenario runs in a fresh interpreter, since patching cannot be undone.
"""

from __future__ import annotations

import textwrap

import pytest
from helpers import run_python


def run_scenario(code: str) -> str:
    result = run_python(textwrap.dedent(code))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_startup_loads_no_pool_module_kombu_or_backend_library() -> None:
    out = run_scenario("""
        import sys
        from greenpools.startup import patch_first
        print(sorted(m for m in sys.modules
                     if m.split(".")[0] in ("greenpools", "kombu", "gevent", "eventlet")))
    """)
    # greenpools._build (which build of the core runs) and greenpools._freethreading
    # (whether the GIL is there) import only the standard library.
    assert out == ("['greenpools', 'greenpools._build', 'greenpools._freethreading', "
                   "'greenpools.startup']")


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_patch_first_patches_so_that_pools_then_run_on_that_library(library: str) -> None:
    out = run_scenario(f"""
        from greenpools.startup import patch_first, patched_for
        assert not patched_for({library!r})
        patch_first({library!r})
        import threading, greenpools
        pool = greenpools.Pool(object, 1)
        print(patched_for({library!r}), greenpools.get_backend().name,
              type(threading.Lock()).__module__.split(".")[0])
    """)
    assert out == f"True {library} {library}"


def test_patch_first_threading_patches_nothing() -> None:
    out = run_scenario("""
        import sys
        from greenpools.startup import patch_first
        patch_first("threading")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("gevent", "eventlet")))
    """)
    assert out == "[]"


def test_patch_first_rejects_an_unknown_backend_naming_it() -> None:
    from greenpools.startup import patch_first

    with pytest.raises(ValueError, match=r"backend_name must be one of .*, got 'asyncio'"):
        patch_first("asyncio")
