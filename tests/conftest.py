"""pytest configuration: the backend under test, services, backend hygiene.

``tests/runner.py`` monkey-patches before pytest starts.  When someone runs
plain ``pytest`` with ``GREENPOOLS_TEST_BACKEND`` set instead, the patching
happens here, at import, as a fallback (later than a server would do it,
but before any test module is imported).

With ``CI=true`` (or ``--fail-on-missing-services``) a test skipped because
RabbitMQ or Redis is unreachable fails instead: CI must never go green
without having run them.

SIGTERM and SIGHUP end a session like Ctrl-C (``tests/termination.py``),
so that it stops the RabbitMQ nodes it booted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from runner import BACKEND_ENV, BACKENDS, under_ci  # tests/ is on sys.path
from termination import exit_cleanly_on_signals

from greenpools.startup import EVENTLET_DEPRECATION, patch_first, patched_for

_requested = os.environ.get(BACKEND_ENV)
if _requested:
    if _requested not in BACKENDS:
        raise pytest.UsageError(
            f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {_requested!r}"
        )
    if not patched_for(_requested):
        patch_first(_requested)

from alarm_node import alarm_node, alarm_queue  # noqa: E402, F401  (fixtures for every test module)
from helpers import BACKEND, SERVICE_MISSING  # noqa: E402

import greenpools  # noqa: E402  (after the patching above)
from greenpools import backends  # noqa: E402

SERVICE_MARKERS = ("broker", "redis")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-missing-services", action="store_true", default=under_ci(),
        help="fail, instead of skip, tests whose broker or Redis is unreachable "
             "(the default when CI=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    exit_cleanly_on_signals()
    # pyproject's filter does not match: the warning's text starts with "\n".
    config.addinivalue_line("filterwarnings", f"ignore:{EVENTLET_DEPRECATION}")


def pytest_report_header(config: pytest.Config) -> str:
    from greenpools import _build

    return (f"greenpools backend under test: {BACKEND} "
            f"(active: {greenpools.get_backend().name}, patched: {patched_for(BACKEND)}, "
            f"build: {_build.BUILD})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if not item.config.getoption("--fail-on-missing-services"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(
        report.longrepr)
    needs_service = any(item.get_closest_marker(m) for m in SERVICE_MARKERS)
    if needs_service or SERVICE_MISSING in reason:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, but missing services are failures under CI=true "
            f"(or --fail-on-missing-services): {reason}"
        )


@pytest.fixture
def backend_name() -> str:
    """Name of the backend this run tests: threading, gevent or eventlet."""
    return BACKEND


@pytest.fixture(autouse=True)
def _restore_backend() -> Iterator[None]:
    """Undo any use_backend() a test made, so the next test runs on ours."""
    state = backends._state
    backend, automatic = state.backend, state.automatic
    yield
    if state.backend is not backend or state.automatic != automatic:
        backends.use_backend("auto" if automatic else backend.name)


@pytest.fixture
def make_pool() -> Iterator[Any]:
    """``make_pool(create, limit, **options)``: a ``greenpools.Pool`` closed after the test."""
    made: list[greenpools.Pool[Any]] = []

    def make(create: Any, limit: int | None = None, **options: Any) -> greenpools.Pool[Any]:
        pool: greenpools.Pool[Any] = greenpools.Pool(create, limit, **options)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()
