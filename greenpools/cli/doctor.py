"""``python -m greenpools doctor``: what greenpools sees in this environment."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence

import greenpools

from .. import backends
from .._freethreading import DOCTOR_LINE, gil_disabled
from .brokercheck import broker_url
from .demo import positive_seconds

GEVENT_ENTRY_POINT_GROUP = "gevent.plugins.monkey.did_patch_all"
GEVENT_ENTRY_POINT_VALUE = "greenpools.backends:on_gevent_patch_all"


def distribution_version(name: str) -> str:
    """Installed version of ``name``, without importing it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def backend_reason() -> str:
    """Why the active backend is the active one."""
    requested = os.environ.get(backends.ENV_VAR, "").strip()
    if requested and requested != "auto":
        return f"{backends.ENV_VAR}={requested} in the environment"
    detected = backends.detect()
    if detected == "gevent":
        return "gevent has monkey-patched the standard library"
    if detected == "eventlet":
        return "eventlet has monkey-patched the standard library"
    return (
        "nothing is monkey-patched in this process; a later gevent patch_all() "
        "switches the backend at once (through the gevent hook below), a later "
        "eventlet.monkey_patch() only when a pool next waits or a new pool is made "
        "(greenpools.use_backend('eventlet') switches at once)"
    )


def backend_row() -> tuple[bool, str]:
    """Whether the requested backend is usable, and doctor's line about it."""
    problem = backends.startup_error
    if problem is not None:
        requested = os.environ.get(backends.ENV_VAR, "").strip()
        return False, (
            f"{backends.ENV_VAR}={requested} cannot be used: {problem}; "
            f"unset it or name an installed backend (this report runs on threading)"
        )
    return True, f"{backends.get_backend().name}: {backend_reason()}"


def gevent_entry_point() -> tuple[bool, str]:
    """Whether greenpools' ``did_patch_all`` entry point is registered for gevent."""
    found = importlib.metadata.entry_points(group=GEVENT_ENTRY_POINT_GROUP)
    for entry_point in found:
        if entry_point.value == GEVENT_ENTRY_POINT_VALUE:
            try:
                entry_point.load()
            except Exception as exc:
                return False, f"registered but does not load: {exc}"
            return True, f"registered ({entry_point.group} -> {entry_point.value})"
    return False, (
        "NOT registered: reinstall greenpools (pip install -e .) so that gevent's "
        "patch_all() after import switches the backend"
    )


def broker_answers(url: str, timeout: float) -> tuple[bool, list[str]]:
    """Whether the broker at ``url`` accepts a connection, and what was seen
    (a line for each host tried, for a failover list)."""
    from .brokercheck import BrokerProblem, check_broker

    try:
        return True, list(check_broker(url, timeout).lines)
    except BrokerProblem as problem:
        return False, str(problem).splitlines()


def speedups_state() -> str:
    """Which build of the pool core runs, and why when it is not the compiled one."""
    from greenpools import _build

    if _build.COMPILED_BUILD:
        return "compiled (Cython: " + ", ".join(_build.COMPILED) + ")"
    return _build.BUILD


DOCTOR_LABELS = ("python", "gil", "greenpools", "kombu", "amqp", "gevent", "eventlet", "greenlet",
                 "backend", "build", "gevent hook", "broker")


def doctor(argv: Sequence[str]) -> int:
    """Print what greenpools sees, each row as soon as it is known; exit 1
    if something needs fixing."""
    parser = argparse.ArgumentParser(
        prog="python -m greenpools doctor",
        description="Versions, the active backend and why, the gevent hook, the broker.",
    )
    parser.add_argument("--broker", type=broker_url, help="kombu broker URL to try, e.g. amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--timeout", type=positive_seconds, default=5.0,
                        help="seconds to wait for the broker, for each host of a failover "
                        "list (default: %(default)s)")
    args = parser.parse_args(argv)

    width = max(map(len, DOCTOR_LABELS))

    def row(label: str, value: str) -> None:
        print(f"{label:<{width}}  {value}", flush=True)

    healthy = True
    row("python", f"{platform.python_version()} ({sys.executable})")
    if gil_disabled():  # only then: a standard interpreter has nothing to say here
        healthy = False
        row("gil", DOCTOR_LINE)
    row("greenpools", f"{greenpools.__version__} ({os.path.dirname(greenpools.__file__)})")
    for name in ("kombu", "amqp", "gevent", "eventlet", "greenlet"):
        row(name, distribution_version(name))
    usable, about_backend = backend_row()
    healthy = healthy and usable
    row("backend", about_backend)
    row("build", speedups_state())
    registered, about_hook = gevent_entry_point()
    healthy = healthy and registered
    row("gevent hook", about_hook)
    if args.broker is not None:
        answers, about_broker = broker_answers(args.broker, args.timeout)
        healthy = healthy and answers
        row("broker", about_broker[0])
        for line in about_broker[1:]:  # the other hosts of a failover list
            row("", line)
    return 0 if healthy else 1
