"""The command line: ``python -m greenpools doctor|demo|bench``.

``doctor`` says what greenpools sees in this environment
(:mod:`greenpools.cli.doctor`), ``demo`` runs the demo
(:mod:`greenpools.cli.demo`), ``bench`` the short benchmark
(:mod:`greenpools.cli.bench`).  Each command's module is imported when
the command runs, so importing one of them (a benchmark worker imports
:mod:`greenpools.cli.bench` after patching) imports nothing else.  The
functions here are named ``*_command`` so that no name of this package
hides one of its modules (``from greenpools.cli import bench``).

A command whose reader goes away early (``python -m greenpools doctor |
head -1``) ends quietly with :data:`BROKEN_PIPE_STATUS`, not a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

USAGE = """\
usage: python -m greenpools COMMAND [options]

commands:
  doctor [--broker URL]   versions, the active backend and why, the gevent hook,
                          and whether the broker answers
  demo [options]          publish and consume through the pools from many tasks
                          (python -m greenpools demo --help)
  bench [options]         a short benchmark against kombu's pools
"""

#: The exit status when stdout's reader went away: 128 + SIGPIPE, what a
#: shell reports for a program that SIGPIPE ended.
BROKEN_PIPE_STATUS = 141


def run_main(command: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """``command(argv)``'s exit status, or :data:`BROKEN_PIPE_STATUS`, quietly,
    when the reader of stdout went away."""
    try:
        status = command(argv)
        if sys.stdout is not None:
            # Here, not at the interpreter's exit, where a closed pipe would
            # print "Exception ignored" and exit 120 (stdout is buffered
            # unless PYTHONUNBUFFERED is set).
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # a socket's (a broker's), not the reader's: not to be hidden
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe: the
        # interpreter's last flush of stdout would raise again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


def _stdout_gone() -> bool:
    """Whether stdout's reader went away: its pipe polls as in error (the
    system's poll: gevent's does not say so).  Where that cannot be asked
    (Windows), a broken pipe is taken to be stdout's."""
    import select

    from ..backends.base import unpatched

    if sys.stdout is None:
        return False
    try:
        poller = unpatched("select", "poll")()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):
        return True
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def doctor_command(argv: Sequence[str]) -> int:
    """Run the doctor (:func:`greenpools.cli.doctor.doctor`)."""
    from .doctor import doctor

    return doctor(argv)


def bench_command(argv: Sequence[str]) -> int:
    """Run the short benchmark (:func:`greenpools.cli.bench.main`)."""
    from .bench import main as bench_main

    return int(bench_main(list(argv)) or 0)


def demo_command(argv: Sequence[str]) -> int:
    """Run the demo (:func:`greenpools.cli.demo.main`)."""
    from .demo import main as demo_main

    return demo_main(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "doctor": doctor_command,
    "demo": demo_command,
    "bench": bench_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; each parses its own options."""
    return run_main(_dispatch, sys.argv[1:] if argv is None else argv)


def _dispatch(argv: Sequence[str]) -> int:
    import greenpools

    from .. import backends

    args = list(argv)
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
    if backends.startup_error is not None and command is not doctor_command:
        requested = os.environ.get(backends.ENV_VAR, "").strip()
        print(f"greenpools {args[0]}: {backends.ENV_VAR}={requested} cannot be used: "
              f"{backends.startup_error}; unset it or name an installed backend "
              f"(python -m greenpools doctor shows what is installed)", file=sys.stderr)
        return 2
    return command(args[1:])

