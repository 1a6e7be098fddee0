"""SIGTERM and SIGHUP end a test process the way Ctrl-C does.

By default those signals kill a Python process on the spot: no ``finally``
block, fixture teardown or ``atexit`` handler runs, and the RabbitMQ nodes
the process started keep running.  :func:`exit_cleanly_on_signals` makes
them raise :class:`Terminated` (a ``KeyboardInterrupt``, which pytest and
the runner already unwind cleanly) instead.  A second signal kills at
once; a forked child gets the default behaviour back.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The status a shell reports for a process the signal killed."""
        return 128 + self.signum


def exit_cleanly_on_signals() -> None:
    """In this process (its main thread), turn SIGTERM and SIGHUP into :class:`Terminated`."""
    for signum in SIGNALS:
        signal.signal(signum, _terminate)
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_default_in_child)
        _fork_hook_registered = True


_fork_hook_registered = False


def _terminate(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one kills at once
    raise Terminated(signum)


def _default_in_child() -> None:
    # A forked worker (multiprocessing's, say) dies at once, as it would
    # have: a Python handler waits for its main thread to run bytecode.
    for signum in SIGNALS:
        if signal.getsignal(signum) is _terminate:
            signal.signal(signum, signal.SIG_DFL)
