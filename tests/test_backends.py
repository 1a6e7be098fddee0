"""Backends: detection, explicit choice, switching, patching and native threads.

Scenarios that need a process in a particular state (unpatched, patched
late, a library missing) run in a fresh interpreter; the rest run in the
test process, on the backend the runner chose.
"""

from __future__ import annotations

import textwrap
import threading
from typing import Any

import pytest
from helpers import (
    BACKEND,
    Factory,
    assert_balanced,
    join_all,
    native_runner,
    run_python,
    spawn,
    wait_until,
)

import greenpools
from greenpools import BackendUnavailable, backends


def run_scenario(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter; it must print OK last."""
    result = run_python(textwrap.dedent(code), env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def run_failing(code: str, **env: str) -> str:
    """Run ``code`` that must fail; return its stderr."""
    result = run_python(textwrap.dedent(code), env=env)
    assert result.returncode != 0, result.stdout
    return result.stderr


# -- the backend of this run ---------------------------------------------------


def test_runner_selected_backend_is_active(backend_name: str) -> None:
    assert greenpools.get_backend().name == backend_name
    assert backends.current().name == backend_name
    assert backends.detect() == backend_name


def test_backend_objects_have_names() -> None:
    for name in backends.BACKEND_NAMES:
        backend = backends.load(name)
        assert backend.name == name
        assert name in repr(backend)


# -- detection -------------------------------------------------------------


def test_plain_import_picks_threading_without_importing_green_libraries() -> None:
    run_scenario("""
        import sys, greenpools
        assert greenpools.get_backend().name == "threading", greenpools.get_backend()
        assert "gevent" not in sys.modules and "eventlet" not in sys.modules
        print("OK")
    """)


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_importing_a_library_without_patching_keeps_threading(library: str) -> None:
    run_scenario(f"""
        import {library}, greenpools
        assert greenpools.get_backend().name == "threading", greenpools.get_backend()
        print("OK")
    """)


def test_detects_gevent_patching() -> None:
    run_scenario("""
        from gevent import monkey; monkey.patch_all()
        import greenpools
        assert greenpools.get_backend().name == "gevent", greenpools.get_backend()
        print("OK")
    """)


def test_detects_eventlet_patching() -> None:
    run_scenario("""
        import eventlet; eventlet.monkey_patch()
        import greenpools
        assert greenpools.get_backend().name == "eventlet", greenpools.get_backend()
        print("OK")
    """)


# -- GREENPOOLS_BACKEND ----------------------------------------------------------


@pytest.mark.parametrize("name", ["threading", "gevent", "eventlet"])
def test_env_var_chooses_backend(name: str) -> None:
    run_scenario(f"""
        import greenpools
        from greenpools import backends
        assert greenpools.get_backend().name == {name!r}, greenpools.get_backend()
        assert backends.current().name == {name!r}  # explicit: no re-detection
        print("OK")
    """, GREENPOOLS_BACKEND=name)


def test_env_var_choice_survives_patching() -> None:
    run_scenario("""
        import greenpools
        from gevent import monkey; monkey.patch_all()
        from greenpools import backends
        assert backends.current().name == "threading", backends.current()
        print("OK")
    """, GREENPOOLS_BACKEND="threading")


def test_env_var_auto_detects() -> None:
    run_scenario("""
        from gevent import monkey; monkey.patch_all()
        import greenpools
        assert greenpools.get_backend().name == "gevent"
        print("OK")
    """, GREENPOOLS_BACKEND="auto")


def test_env_var_unknown_name_is_a_clear_error() -> None:
    stderr = run_failing("import greenpools", GREENPOOLS_BACKEND="bogus")
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError"), stderr
    for word in ("GREENPOOLS_BACKEND", "'bogus'", "threading", "gevent", "eventlet"):
        assert word in last, last


# -- use_backend / get_backend -------------------------------------------------


def test_use_backend_by_name_and_auto(backend_name: str) -> None:
    chosen = greenpools.use_backend(backend_name)
    assert chosen.name == backend_name
    assert greenpools.get_backend() is chosen
    assert not backends._state.automatic
    auto = greenpools.use_backend("auto")
    assert auto.name == backends.detect() == backend_name
    assert backends._state.automatic


@pytest.mark.parametrize("bad", ["bogus", "", "Gevent", "asyncio"])
def test_use_backend_unknown_name(bad: str) -> None:
    before = greenpools.get_backend()
    with pytest.raises(ValueError) as info:
        greenpools.use_backend(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in ("threading", "gevent", "eventlet", "auto"):
        assert name in message
    assert greenpools.get_backend() is before


def test_use_backend_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="name must be a str, got 3"):
        greenpools.use_backend(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_missing_library_names_the_library_to_install(library: str) -> None:
    run_scenario(f"""
        import sys
        sys.modules[{library!r}] = None  # as if not installed
        import greenpools
        try:
            greenpools.use_backend({library!r})
        except greenpools.BackendUnavailable as exc:
            assert isinstance(exc, ImportError)
            assert "pip install {library}" in str(exc), str(exc)
        else:
            raise AssertionError("no error")
        assert greenpools.get_backend().name == "threading"
        print("OK")
    """)


def test_missing_library_from_env_var() -> None:
    stderr = run_failing("""
        import sys
        sys.modules["gevent"] = None
        import greenpools
    """, GREENPOOLS_BACKEND="gevent")
    assert "BackendUnavailable" in stderr and "pip install gevent" in stderr


def test_backend_unavailable_is_an_import_error() -> None:
    assert issubclass(BackendUnavailable, ImportError)


# -- switching applies to existing pools -----------------------------------------


@pytest.mark.parametrize("target", ["gevent", "eventlet"])
def test_switch_applies_to_existing_pool(target: str) -> None:
    spawn_call = {"gevent": "gevent.spawn", "eventlet": "eventlet.spawn"}[target]
    get_result = {"gevent": "get", "eventlet": "wait"}[target]
    run_scenario(f"""
        import {target}, greenpools
        from greenpools.backends.threading import ThreadWaiter
        pool = greenpools.Pool(object, 1)
        assert pool._backend.name == "threading"
        held = pool.acquire()
        greenpools.use_backend({target!r})
        assert pool._backend.name == {target!r}

        def waiter():
            return pool.acquire(block=True, timeout=10)

        task = {spawn_call}(waiter)
        while not pool._waiting:
            {target}.sleep(0.001)
        hub_kind = type(pool._waiting[0].hub_operations())
        assert hub_kind.__module__ == "greenpools.backends.{target}", hub_kind
        pool.release(held)
        assert task.{get_result}() is held
        pool.release(held)

        # and back: a native thread now waits on a native waiter
        greenpools.use_backend("threading")
        import threading
        held = pool.acquire()
        got = []
        thread = threading.Thread(target=lambda: got.append(pool.acquire(True, 10)))
        thread.start()
        while not pool._waiting:
            pass
        assert isinstance(pool._waiting[0], ThreadWaiter)
        pool.release(held)
        thread.join(10)
        assert got == [held]
        print("OK")
    """)


def test_late_gevent_patching_switches_backend() -> None:
    """gunicorn -k gevent --preload: pools made before patch_all() keep working."""
    run_scenario("""
        import greenpools
        pool = greenpools.Pool(object, 2)
        held = [pool.acquire(), pool.acquire()]
        assert greenpools.get_backend().name == "threading"

        from gevent import monkey; monkey.patch_all()
        import gevent
        # switched by gevent's did_patch_all hook, before any pool call
        assert greenpools.backends._state.backend.name == "gevent"

        ticks = [0]
        def ticker():
            while True:
                ticks[0] += 1
                gevent.sleep(0)

        def worker():
            resource = pool.acquire(block=True, timeout=20)
            gevent.sleep(0)
            pool.release(resource)
            return resource

        tick = gevent.spawn(ticker)
        workers = [gevent.spawn(worker) for _ in range(10)]
        while len(pool._waiting) < 10:
            gevent.sleep(0.001)
        before = ticks[0]
        for resource in held:
            pool.release(resource)
        results = [w.get(timeout=20) for w in workers]
        assert set(map(id, results)) <= set(map(id, held)), results
        assert ticks[0] > before
        tick.kill()
        assert pool.get_stats()["pool_available"] == 2
        print("OK")
    """)


def test_late_gevent_patching_moves_upkeep_to_gevent() -> None:
    run_scenario("""
        import greenpools
        from greenpools.core import lifecycle
        lifecycle.MAX_INTERVAL = 0.01
        pool = greenpools.Pool(object, 3, min_size=1)
        old_upkeep = pool._upkeep
        assert old_upkeep is not None and old_upkeep._backend.name == "threading"

        from gevent import monkey; monkey.patch_all()
        import gevent
        assert pool._backend.name == "gevent" and old_upkeep._stopped
        assert pool._upkeep is not None and pool._upkeep._backend.name == "gevent"
        with gevent.Timeout(20):
            while pool.get_stats()["pool_available"] < 1:
                gevent.sleep(0.001)
        resource = pool.acquire()  # the lock-free path: it restarts nothing
        pool.replace(resource)
        with gevent.Timeout(20):
            while pool.get_stats()["pool_available"] < 1:  # refilled by the new upkeep
                gevent.sleep(0.001)
        print("OK")
    """)


def test_late_eventlet_patching_is_followed() -> None:
    run_scenario("""
        import greenpools
        pool = greenpools.Pool(object, 1)
        held = pool.acquire()
        import eventlet; eventlet.monkey_patch()
        from greenpools import backends
        assert greenpools.get_backend().name == "threading"  # no hook: noticed lazily
        assert backends.current().name == "eventlet"  # as every wait and new pool asks

        def waiter():
            return pool.acquire(block=True, timeout=10)

        task = eventlet.spawn(waiter)
        while not pool._waiting:
            eventlet.sleep(0.001)
        hub_kind = type(pool._waiting[0].hub_operations())
        assert hub_kind.__module__ == "greenpools.backends.eventlet", hub_kind
        pool.release(held)
        assert task.wait() is held
        print("OK")
    """)


def test_late_gevent_patching_when_gevent_was_imported_first() -> None:
    run_scenario("""
        import gevent, greenpools
        assert greenpools.get_backend().name == "threading"
        from gevent import monkey; monkey.patch_all()
        assert greenpools.backends._state.backend.name == "gevent"
        print("OK")
    """)


_COOPERATIVE = """
    import {library}, greenpools
    {select}
    assert greenpools.get_backend().name == {expected!r}
    pool = greenpools.Pool(object, 1)
    held = pool.acquire()
    ticks = [0]

    def ticker():
        # Runs only if the blocked acquire below yields to the hub.
        while ticks[0] < 100:
            ticks[0] += 1
            {library}.sleep(0)
        pool.release(held)

    def blocked():
        resource = pool.acquire(block=True, timeout=15)
        return resource, ticks[0]

    waiting = {library}.spawn(blocked)
    {library}.spawn(ticker)
    resource, ticks_seen = waiting.{get_result}()
    assert resource is held and ticks_seen == 100, (resource, ticks_seen)
    print("OK")
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
@pytest.mark.parametrize("how", ["use_backend", "env", "detected"])
def test_blocking_acquire_yields_without_patching(library: str, how: str) -> None:
    # "detected": nothing patched, so the backend is threading, yet a wait
    # made by one of the library's green threads parks on its hub.
    select = f"greenpools.use_backend({library!r})" if how == "use_backend" else ""
    env = {"GREENPOOLS_BACKEND": library} if how == "env" else {}
    code = _COOPERATIVE.format(
        library=library, select=select,
        expected="threading" if how == "detected" else library,
        get_result={"gevent": "get", "eventlet": "wait"}[library],
    )
    run_scenario(code, **env)


# -- a native thread next to green threads ------------------------------------------


def _native_ident() -> int:
    return backends.base.native_thread_ident()


def test_native_thread_waits_for_green_release(backend_name: str) -> None:
    pool = greenpools.Pool(object, 1)
    held = pool.acquire()
    main_thread = _native_ident()

    def native() -> tuple[object, int]:
        resource = pool.acquire(block=True, timeout=20)
        pool.release(resource)
        return resource, _native_ident()

    join = native_runner(backend_name)(native)
    wait_until(lambda: len(pool._waiting) == 1)
    pool.release(held)
    resource, thread = join()
    assert resource is held
    if backend_name != "threading":
        assert thread != main_thread  # it really ran in another OS thread
    assert_balanced(pool)


def test_green_thread_waits_for_native_release(backend_name: str) -> None:
    pool = greenpools.Pool(object, 1)
    held = pool.acquire()
    waiter = spawn(pool.acquire, True, 20)
    wait_until(lambda: len(pool._waiting) == 1)
    native_runner(backend_name)(pool.release, held)()
    assert waiter.join() is held
    pool.release(held)
    assert_balanced(pool)


def test_native_threads_and_green_threads_share_a_pool(backend_name: str) -> None:
    pool = greenpools.Pool(Factory(), 2)
    holders: dict[int, int] = {}
    overlaps: list[object] = []
    guard = threading.Lock() if backend_name == "threading" else None

    def cycle(rounds: int) -> int:
        me = object()
        for _ in range(rounds):
            resource = pool.acquire(block=True, timeout=20)
            if guard is None:  # a green thread or native thread: setdefault is atomic
                if holders.setdefault(id(resource), id(me)) != id(me):
                    overlaps.append(resource)
            else:
                with guard:
                    if holders.setdefault(id(resource), id(me)) != id(me):
                        overlaps.append(resource)
            del holders[id(resource)]
            pool.release(resource)
        return rounds

    start_native = native_runner(backend_name)
    natives = [start_native(cycle, 300) for _ in range(2)]
    greens = [spawn(cycle, 100) for _ in range(8)]
    assert join_all(greens) == [100] * 8
    assert [join() for join in natives] == [300, 300]
    assert not overlaps
    assert_balanced(pool)
    assert pool.get_stats()["pool_size"] <= 2


# -- the test machinery itself (once: it does not depend on the run's backend) ----------

if BACKEND == "threading":
    import os
    import subprocess
    import sys

    TESTS = os.path.dirname(os.path.abspath(__file__))

    def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("GREENPOOLS_BACKEND", "GREENPOOLS_TEST_BACKEND", "CI")}
        full_env.update(env)
        return subprocess.run(
            [sys.executable, *args], env=full_env, capture_output=True, text=True,
            timeout=120, cwd=os.path.dirname(TESTS),
        )

    @pytest.mark.parametrize("library", ["gevent", "eventlet"])
    def test_plain_pytest_with_backend_env_patches_in_conftest(library: str) -> None:
        result = _pytest("-m", "pytest", "-q", "-p", "no:cacheprovider",
                         os.path.join(TESTS, "test_backends.py"),
                         "-k", "runner_selected_backend_is_active",
                         GREENPOOLS_TEST_BACKEND=library)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 passed" in result.stdout

    def test_unknown_test_backend_is_a_usage_error() -> None:
        result = _pytest("-m", "pytest", "-q", "-p", "no:cacheprovider",
                         os.path.join(TESTS, "test_backends.py"),
                         GREENPOOLS_TEST_BACKEND="bogus")
        assert result.returncode != 0
        assert "GREENPOOLS_TEST_BACKEND must be one of" in result.stdout + result.stderr

    def test_runner_fails_when_nothing_is_collected() -> None:
        result = _pytest(os.path.join(TESTS, "runner.py"), "--backend", "threading",
                         "-q", "-p", "no:cacheprovider",
                         os.path.join(TESTS, "test_backends.py"), "-k", "no_test_has_this_name")
        assert result.returncode == 1
        assert "collected no tests" in result.stdout
        assert result.stdout.strip().splitlines()[-1] == "0 passed, 0 failed"

    def test_runner_sums_backends() -> None:
        result = _pytest(os.path.join(TESTS, "runner.py"), "-q", "-p", "no:cacheprovider",
                         os.path.join(TESTS, "test_backends.py"),
                         "-k", "runner_selected_backend_is_active or use_backend_rejects")
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.strip().splitlines()
        for name in ("threading", "gevent", "eventlet"):
            assert any(line.startswith(f"{name}: 2 passed, 0 failed") for line in lines), lines
            assert any(line.startswith(f"{name} (pure): 2 passed, 0 failed")
                       for line in lines), lines
        assert lines[-1] == "12 passed, 0 failed"

    def test_ci_turns_missing_service_skips_into_failures(tmp_path: Any) -> None:
        test_file = tmp_path / "test_service.py"
        test_file.write_text(
            "import pytest\n"
            "from helpers import require_service\n"
            "def test_needs_it():\n"
            "    require_service('Nothing', 'amqp://127.0.0.1:1//', 1)\n"
            "@pytest.mark.broker\n"
            "def test_marked():\n"
            "    pytest.skip('no broker')\n"
            "def test_unrelated():\n"
            "    pytest.skip('not about services')\n"
        )
        # our conftest, loaded as a plugin, for a test file outside tests/
        args = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                "--rootdir", str(tmp_path), str(test_file))
        env = {"PYTHONPATH": TESTS}
        plain = _pytest(*args, **env)
        assert "3 skipped" in plain.stdout, plain.stdout + plain.stderr
        ci = _pytest(*args, CI="true", **env)
        assert "2 failed, 1 skipped" in ci.stdout, ci.stdout + ci.stderr
