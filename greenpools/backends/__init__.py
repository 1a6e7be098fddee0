"""Choosing the concurrency backend: detection, switching, the registry.

The active backend is chosen when this module is first imported (by
``import greenpools`` when ``GREENPOOLS_BACKEND`` is set, else on first use
of the package's names): the
``GREENPOOLS_BACKEND`` environment variable if set, otherwise gevent when
gevent has monkey-patched the standard library, eventlet when eventlet
has, otherwise threading.  ``use_backend()`` switches explicitly.  While
the choice is automatic, a later ``gevent.monkey.patch_all()`` switches
to gevent through gevent's patch events, and every blocking wait checks
the patch state again, so pools made before patching never freeze a hub.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from .base import Backend, Waiter

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailable",
    "Waiter",
    "current",
    "detect",
    "get_backend",
    "on_switch",
    "use_backend",
    "waiter",
    "waiter_factory",
]

BACKEND_NAMES = ("threading", "gevent", "eventlet")
ENV_VAR = "GREENPOOLS_BACKEND"


class BackendUnavailable(ImportError):
    """The library behind a backend is not installed."""


def detect() -> str:
    """Name of the backend that matches the process's monkey patching.

    Never imports gevent or eventlet: a library that is not imported yet
    cannot have patched anything.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return "gevent"
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return "eventlet"
    return "threading"


def needs_library(name: str) -> str:
    """What to tell a user whose ``name`` backend's library is missing.

    The library's own name, not the extra: greenpools is installed from a
    checkout (``pip install -e '.[gevent]'`` there does the same), and
    ``greenpools[gevent]`` is no package on PyPI yet.
    """
    return f"the {name} backend needs the {name} library: pip install {name}"


def load(name: str) -> Backend:
    """The backend called ``name``, importing its library."""
    if name not in BACKEND_NAMES:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, (*BACKEND_NAMES, 'auto')))}, "
            f"got {name!r}"
        )
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise BackendUnavailable(f"{needs_library(name)} ({exc})") from exc
    backend: Backend = module.backend
    return backend


class _State:
    """The active backend and whether it follows the patch state."""

    __slots__ = ("automatic", "backend")

    def __init__(self) -> None:
        self.backend: Backend
        self.automatic = True


_state = _State()
_switch_listeners: list[Callable[[Backend], None]] = []


def _activate(backend: Backend, automatic_changed: bool = False) -> Backend:
    previous = getattr(_state, "backend", None)
    _state.backend = backend
    if previous is not None and (previous is not backend or automatic_changed):
        for listener in list(_switch_listeners):
            listener(backend)
    return backend


def on_switch(listener: Callable[[Backend], None]) -> None:
    """Call ``listener(new_backend)`` after every backend switch (and after
    ``use_backend`` turns following the patch state on or off)."""
    _switch_listeners.append(listener)


def use_backend(name: str) -> Backend:
    """Switch every pool, existing and future, to the backend ``name``.

    ``"auto"`` detects it again from the monkey patching and keeps
    following it.  Raises ``ValueError`` for an unknown name and
    :class:`BackendUnavailable` (an ``ImportError``) when the library is
    not installed.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    automatic = name == "auto"
    backend = load(detect() if automatic else name)
    changed = automatic != _state.automatic
    _state.automatic = automatic
    return _activate(backend, automatic_changed=changed)


def get_backend() -> Backend:
    """The active backend."""
    return _state.backend


def current() -> Backend:
    """The backend a wait starting now must use.

    While the choice is automatic and still threading, detect again (two
    dictionary look-ups) so that patching done after a pool was made is
    always followed.
    """
    state = _state
    # Once a green library has patched, nothing un-patches it: look again
    # only while still on threads.
    if state.automatic and state.backend.name == "threading":
        name = detect()
        if name != state.backend.name:
            _activate(load(name))
    return state.backend


def waiter() -> Waiter:
    """A waiter for the running task, on the backend a wait must use now.

    While the choice is automatic and nothing is patched (threading), a
    task that is itself a gevent or eventlet green thread still gets its
    library's waiter: blocking its native thread would freeze that hub.
    """
    backend = current()
    if backend.name == "threading" and _state.automatic:
        green = _green_library_of_running_task()
        if green is not None:
            return load(green).waiter()
    return backend.waiter()


def waiter_factory() -> Callable[[], Waiter]:
    """What makes the waiters of waits starting now, until the next switch.

    The active backend's ``waiter``; while the choice is automatic and
    still threading, :func:`waiter` itself, which looks at the patch state
    and the running task on every call.
    """
    backend = current()
    if backend.name == "threading" and _state.automatic:
        return waiter
    return backend.waiter_factory()


def _green_library_of_running_task() -> str | None:
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    task = greenlet.getcurrent()
    if task.parent is None:  # a thread's own main greenlet: a plain thread
        return None
    gevent = sys.modules.get("gevent")
    if gevent is not None and isinstance(task, gevent.Greenlet):
        return "gevent"
    greenthread = sys.modules.get("eventlet.greenthread")
    if greenthread is not None and isinstance(task, greenthread.GreenThread):
        return "eventlet"
    return None


def on_gevent_patch_all(event: Any = None) -> None:
    """gevent's ``did_patch_all`` hook: follow the patching if automatic."""
    if _state.automatic:
        _activate(load(detect()))


def _subscribe_to_gevent() -> None:
    # Only when gevent is already imported: importing it here would slow
    # down and change every threaded program.  The entry point in setup.cfg
    # covers a gevent imported later.
    if "gevent" not in sys.modules:
        return
    try:
        import zope.event
        from gevent.events import IGeventDidPatchAllEvent
    except ImportError:  # pragma: no cover - gevent always ships both
        return

    def subscriber(event: Any) -> None:
        if IGeventDidPatchAllEvent.providedBy(event):
            on_gevent_patch_all(event)

    if subscriber not in zope.event.subscribers:
        zope.event.subscribers.append(subscriber)


#: Why ``GREENPOOLS_BACKEND`` could not be honoured when ``python -m
#: greenpools`` started (the command line reports it instead of failing at
#: import; see :func:`_initial`); ``None`` otherwise.
startup_error: Exception | None = None


def _running_the_command_line() -> bool:
    """Whether this interpreter was started as ``python -m greenpools``."""
    argv: list[str] = list(getattr(sys, "orig_argv", ()))  # Python 3.10+
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) == "greenpools"
        if arg.startswith("-m"):
            return arg == "-mgreenpools"
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            next(args, None)  # the option's value
        elif not arg.startswith("-") or arg.startswith("-c"):
            return False  # a script or -c code runs, not the command line
    return False


def _initial() -> Backend:
    """The backend chosen at import: ``GREENPOOLS_BACKEND``, else detected.

    A bad ``GREENPOOLS_BACKEND`` fails the import, except under ``python
    -m greenpools``, whose ``doctor`` must be able to say what is wrong:
    there the error is kept in :data:`startup_error` and the process runs
    on threading until the command reports it.
    """
    global startup_error
    try:
        return _requested_or_detected()
    except (ValueError, BackendUnavailable) as exc:
        if not _running_the_command_line():
            raise
        startup_error = exc
        _state.automatic = False
        return load("threading")


def _requested_or_detected() -> Backend:
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested and requested != "auto":
        if requested not in BACKEND_NAMES:
            raise ValueError(
                f"{ENV_VAR} must be one of {', '.join((*BACKEND_NAMES, 'auto'))}, "
                f"got {requested!r}"
            )
        _state.automatic = False
        return load(requested)
    return load(detect())


_state.backend = _initial()
_subscribe_to_gevent()
