"""Cores kept busy during a run: ``python benchmarks/run.py --busy N``.

Each busy core is a spinning process at the lowest priority (nice 19): it
takes little CPU time from anything else (Linux still gives it a small
share of a contended core), and the cores never go idle.  That is the
machine of a loaded service, and it matters at limit 1 with many threads,
where a cycle is mostly the holder's ``sleep(0)``: on an idle virtual machine a
core that has nothing to run goes idle, and waking it from there lengthens
the sleep by several microseconds (see docs/performance.rst).  A spinner
ends with the run, and by itself soon after if the run is killed (as soon
as it gets a few milliseconds of CPU).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

#: Spins at nice 19; every 100,000 turns (a few milliseconds of CPU) it
#: checks that the run that started it is still its parent, and ends if not.
_SPIN = """\
import os, sys
os.nice(19)
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[list[int]]:
    """``count`` cores kept busy at the lowest priority while the block runs
    (it gets the spinners' process ids)."""
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            spinners.append(subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid())]))
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
