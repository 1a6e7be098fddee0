"""Resetting pools in the child after any ``os.fork()``.

``os.register_at_fork`` fires for every fork (a plain ``os.fork``,
gunicorn and uwsgi workers, multiprocessing's fork start method,
billiard), unlike kombu's hook, which only multiprocessing children run.

The child-side callback must never block or yield: under gevent it runs
before the hub is re-initialised, and a switch there would run copies of
the parent's greenlets.  So every reset below only drops references,
creates fresh locks and closes file descriptors; a descriptor a green
task may still wait on is handed to its library's own close, which under
gevent finishes on the child's first turn of the hub (see
:mod:`greenpools._kombu_fork`).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_callbacks: list[Callable[[], None]] = []

#: Process id as of the last fork, cheaper than ``os.getpid()`` to compare.
pid = os.getpid()


def track(obj: ForkAware) -> None:
    """Reset ``obj`` in every forked child, for as long as it lives."""
    _objects.add(obj)


def untrack(obj: ForkAware) -> None:
    _objects.discard(obj)


def after_fork_in_child(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback()`` in every forked child (usable as a decorator)."""
    _callbacks.append(callback)
    return callback


def _in_child() -> None:
    global pid
    pid = os.getpid()
    for obj in list(_objects):
        try:
            obj._after_fork_in_child()
        except Exception:  # pragma: no cover - a reset must never kill the child
            logger.exception("greenpools: resetting %r after fork failed", obj)
    for callback in _callbacks:
        try:
            callback()
        except Exception:  # pragma: no cover
            logger.exception("greenpools: after-fork callback %r failed", callback)


os.register_at_fork(after_in_child=_in_child)
