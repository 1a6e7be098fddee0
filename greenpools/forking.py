"""The fork guard: which process this is, and what to reset after ``os.fork()``.

One object, :data:`fork_guard`, answers "which process am I in?" for the
whole package (``fork_guard.pid``, a plain attribute: cheap to compare on
hot paths) and runs the child-side resets.  ``os.register_at_fork`` fires
for every fork (a plain ``os.fork``, gunicorn and uwsgi workers,
multiprocessing's fork start method, billiard), unlike kombu's hook, which
only multiprocessing children run.

The child-side callback must never block or yield: under gevent it runs
before the hub is re-initialised, and a switch there would run copies of
the parent's greenlets.  So every reset only drops references, creates
fresh locks and closes file descriptors; a descriptor a green task may
still wait on is handed to its library's own close, which under gevent
finishes on the child's first turn of the hub (see
:mod:`greenpools.kombu.fork`).  For the same reason a reset that raises
is not logged here (a log handler may block on its stream): the guard
keeps the error in :attr:`ForkGuard.failures` and goes on with the next.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["ForkAware", "ForkGuard", "fork_guard"]


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


class ForkGuard:
    """The current process id and the resets a forked child runs.

    Resets are tracked objects (held weakly, reset by their
    ``_after_fork_in_child()``) and plain callbacks; the child runs them in
    registration order, after ``pid`` is already the child's, and then the
    callbacks registered with :meth:`after_resets`.
    """

    __slots__ = ("_last", "_order", "_resets", "failures", "pid")

    def __init__(self) -> None:
        #: This process's id; updated in a forked child before any reset runs.
        self.pid = os.getpid()
        #: ``(what, exception)`` for each reset that raised in this process.
        self.failures: list[tuple[object, BaseException]] = []
        self._order = itertools.count()
        # registration number -> a weak reference to a tracked object, or a callback
        self._resets: dict[int, weakref.ref[ForkAware] | Callable[[], None]] = {}
        self._last: list[Callable[[], None]] = []

    def track(self, obj: ForkAware) -> None:
        """Reset ``obj`` in every forked child, for as long as it lives."""
        key = next(self._order)
        resets = self._resets
        resets[key] = weakref.ref(obj, lambda _ref: resets.pop(key, None))

    def after_fork_in_child(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback()`` in every forked child (usable as a decorator)."""
        self._resets[next(self._order)] = callback
        return callback

    def after_resets(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback()`` in every forked child once every other reset ran.

        For the event loop's own state: a reset may close descriptors the
        loop watches, and the loop must see them closed (usable as a
        decorator).
        """
        self._last.append(callback)
        return callback

    def _in_child(self) -> None:
        self.pid = os.getpid()
        self.failures = []
        # Resolve every weak reference first: a reset that drops the last
        # reference to another tracked object (a group dropping its pools)
        # must not let that object be collected before its own reset.
        resets: list[Callable[[], None]] = []
        for entry in list(self._resets.values()):
            if isinstance(entry, weakref.ref):
                obj = entry()
                if obj is not None:
                    resets.append(obj._after_fork_in_child)
            else:
                resets.append(entry)
        resets += self._last
        for reset in resets:
            try:
                reset()
            except Exception as exc:  # a reset must never kill the child
                self.failures.append((reset, exc))


fork_guard = ForkGuard()
os.register_at_fork(after_in_child=fork_guard._in_child)
