"""SIGTERM and SIGHUP end a test process the way Ctrl-C does.

By default those signals kill a Python process on the spot: no ``finally``
block, fixture teardown or ``atexit`` handler runs, and the RabbitMQ nodes
the process started keep running.  :func:`exit_cleanly_on_signals` makes
them raise :class:`Terminated` (a ``KeyboardInterrupt``, which pytest and
the runner already unwind cleanly) instead.  A second signal kills at
once; a forked child of the process gets the default behaviour back.
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
    owner = os.getpid()

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second one kills at once
        if os.getpid() != owner:  # a fork: die as it would have
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    for signum in SIGNALS:
        signal.signal(signum, terminate)
