"""Monkey-patching first, the way servers start: before anything else is imported.

gunicorn's gevent worker calls ``gevent.monkey.patch_all()`` and Celery's
eventlet pool ``eventlet.monkey_patch()`` before the application imports
anything.  The test runner, the benchmark workers and the command line's
fresh interpreters start the same way, by calling :func:`patch_first` as
their first statement.

This module imports only the standard library, and importing the
``greenpools`` package loads nothing (see its ``__init__``; only a
``GREENPOOLS_BACKEND`` set in the environment loads that backend at
import), so calling it imports no pool module, no kombu and no backend
library before the patching.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["BACKEND_NAMES", "EVENTLET_DEPRECATION", "patch_first", "patched_for"]

BACKEND_NAMES = ("threading", "gevent", "eventlet")

#: eventlet's import-time deprecation warning (its text starts with a newline).
EVENTLET_DEPRECATION = r"\s*[Ee]ventlet is deprecated"


def patch_first(backend_name: str) -> None:
    """Monkey-patch this process for ``backend_name`` as its library requires.

    ``"gevent"``: ``gevent.monkey.patch_all()``; ``"eventlet"``:
    ``eventlet.monkey_patch()`` (its import-time deprecation warning
    silenced); ``"threading"``: nothing.  Call it before importing anything
    else; an unknown name raises ``ValueError``.
    """
    if backend_name not in BACKEND_NAMES:
        raise ValueError(
            f"backend_name must be one of {', '.join(BACKEND_NAMES)}, got {backend_name!r}"
        )
    if backend_name == "gevent":
        from gevent import monkey

        monkey.patch_all()
    elif backend_name == "eventlet":
        warnings.filterwarnings("ignore", message=EVENTLET_DEPRECATION)
        import eventlet

        eventlet.monkey_patch()


def patched_for(backend_name: str) -> bool:
    """Whether this process is monkey-patched as :func:`patch_first` would do it."""
    if backend_name == "gevent":
        monkey = sys.modules.get("gevent.monkey")
        return monkey is not None and bool(monkey.is_module_patched("threading"))
    if backend_name == "eventlet":
        patcher = sys.modules.get("eventlet.patcher")
        return patcher is not None and bool(patcher.is_monkey_patched("thread"))
    return True
