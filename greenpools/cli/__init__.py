"""The command line: ``python -m greenpools doctor|demo|bench``.

``doctor`` says what greenpools sees in this environment, ``demo`` runs
the demo (:mod:`greenpools.demo`), ``bench`` the short benchmark
(:mod:`greenpools.bench`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Sequence

import greenpools

from . import backends
from .demo import positive_seconds

GEVENT_ENTRY_POINT_GROUP = "gevent.plugins.monkey.did_patch_all"
GEVENT_ENTRY_POINT_VALUE = "greenpools.backends:on_gevent_patch_all"

USAGE = """\
usage: python -m greenpools COMMAND [options]

commands:
  doctor [--broker URL]   versions, the active backend and why, the gevent hook,
                          and whether the broker answers
  demo [options]          publish and consume through the pools from many tasks
                          (python -m greenpools demo --help)
  bench [options]         a short benchmark against kombu's pools
"""


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
        "nothing is monkey-patched in this process; patching with gevent or "
        "eventlet (even after import) switches the backend"
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


def broker_answers(url: str, timeout: float) -> tuple[bool, str]:
    """Whether the broker at ``url`` accepts a connection, and what was seen."""
    from .brokercheck import BrokerProblem, check_broker

    try:
        return True, check_broker(url, timeout)
    except BrokerProblem as problem:
        return False, str(problem)


def speedups_state() -> str:
    """Which build of the pool core runs, and why when it is not the compiled one."""
    from greenpools import _build

    if _build.COMPILED_BUILD:
        return "compiled (Cython: " + ", ".join(_build.COMPILED) + ")"
    return _build.BUILD


DOCTOR_LABELS = ("python", "greenpools", "kombu", "amqp", "gevent", "eventlet", "greenlet",
                 "backend", "build", "gevent hook", "broker")


def doctor(argv: Sequence[str]) -> int:
    """Print what greenpools sees, each row as soon as it is known; exit 1
    if something needs fixing."""
    parser = argparse.ArgumentParser(
        prog="python -m greenpools doctor",
        description="Versions, the active backend and why, the gevent hook, the broker.",
    )
    parser.add_argument("--broker", help="kombu broker URL to try, e.g. amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--timeout", type=positive_seconds, default=5.0,
                        help="seconds to wait for the broker (default: %(default)s)")
    args = parser.parse_args(argv)

    width = max(map(len, DOCTOR_LABELS))

    def row(label: str, value: str) -> None:
        print(f"{label:<{width}}  {value}", flush=True)

    healthy = True
    row("python", f"{platform.python_version()} ({sys.executable})")
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
    if args.broker:
        answers, about_broker = broker_answers(args.broker, args.timeout)
        healthy = healthy and answers
        row("broker", about_broker)
    return 0 if healthy else 1


def bench(argv: Sequence[str]) -> int:
    """Run the short benchmark (:func:`greenpools.bench.main`)."""
    from . import bench as bench_module

    return int(bench_module.main(list(argv)) or 0)


def demo(argv: Sequence[str]) -> int:
    """Run the demo (:func:`greenpools.demo.main`)."""
    from . import demo as demo_module

    return demo_module.main(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "doctor": doctor,
    "demo": demo,
    "bench": bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; each parses its own options."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"greenpools {greenpools.__version__}")
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"unknown command {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    if backends.startup_error is not None and command is not doctor:
        requested = os.environ.get(backends.ENV_VAR, "").strip()
        print(f"greenpools {args[0]}: {backends.ENV_VAR}={requested} cannot be used: "
              f"{backends.startup_error}; unset it or name an installed backend "
              f"(python -m greenpools doctor shows what is installed)", file=sys.stderr)
        return 2
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
