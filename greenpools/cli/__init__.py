"""The command line: ``python -m greenpools doctor|demo|bench``.

``doctor`` says what greenpools sees in this environment
(:mod:`greenpools.cli.doctor`), ``demo`` runs the demo
(:mod:`greenpools.cli.demo`), ``bench`` the short benchmark
(:mod:`greenpools.cli.bench`).  Each command's module is imported when
the command runs, so importing one of them (a benchmark worker imports
:mod:`greenpools.cli.bench` after patching) imports nothing else.  The
functions here are named ``*_command`` so that no name of this package
hides one of its modules (``from greenpools.cli import bench``).
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
    import greenpools

    from .. import backends

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
    if backends.startup_error is not None and command is not doctor_command:
        requested = os.environ.get(backends.ENV_VAR, "").strip()
        print(f"greenpools {args[0]}: {backends.ENV_VAR}={requested} cannot be used: "
              f"{backends.startup_error}; unset it or name an installed backend "
              f"(python -m greenpools doctor shows what is installed)", file=sys.stderr)
        return 2
    return command(args[1:])

