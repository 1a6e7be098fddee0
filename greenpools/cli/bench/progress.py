"""A progress bar for runs that take minutes."""

from __future__ import annotations

import sys
import time
from typing import IO


class ProgressBar:
    """A one-line progress bar on a terminal; sparse plain lines otherwise."""

    def __init__(self, total: int, stream: IO[str] | None = None, width: int = 28) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._started = time.monotonic()

    def advance(self, label: str, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        self._draw(label)

    def _draw(self, label: str) -> None:
        fraction = self.done / self.total
        elapsed = time.monotonic() - self._started
        if self._tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {fraction:4.0%} {elapsed:5.0f}s {label[:40]:<40}")
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(f"[{fraction:4.0%}] {elapsed:5.0f}s {label}\n")
        self.stream.flush()

    def finish(self) -> None:
        self.done = self.total
        self._draw("finished")
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()
