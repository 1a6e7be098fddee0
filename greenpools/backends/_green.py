"""The waiter shared by the green-thread backends (gevent, eventlet).

It parks the calling greenlet on its hub with a bare ``hub.switch()`` and
is resumed by a callback the hub runs: the cheapest hand-off either
library offers (a gevent ``Event`` costs about four times as much).  A
backend module subclasses it with its hub's three operations.

``wait`` publishes its greenlet before it reads ``_woken`` and ``wake``
sets ``_woken`` before it reads the greenlet, so a wake from another
native thread is never missed; ``_resume`` runs in the hub's own thread
and switches only into a greenlet that is still parked here, so a late
timer or a second callback can never resume it at a wrong point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from .base import Waiter, native_thread_ident


class HubWaiter(Waiter):
    __slots__ = ("_greenlet", "_hub", "_thread", "_woken")

    def __init__(self) -> None:
        self._woken = False
        self._greenlet: Any = None
        self._hub: Any = None
        self._thread = 0

    # -- what a backend supplies -------------------------------------------

    @staticmethod
    def _get_hub() -> Any:
        raise NotImplementedError

    @staticmethod
    def _call_soon(hub: Any, func: Callable[[bool], None]) -> None:
        """Run ``func(True)`` from ``hub``'s loop (same native thread)."""
        raise NotImplementedError

    @staticmethod
    def _call_soon_threadsafe(hub: Any, func: Callable[[bool], None]) -> None:
        """Run ``func(True)`` from ``hub``'s loop, called from another thread."""
        raise NotImplementedError

    @staticmethod
    def _call_later(hub: Any, seconds: float, func: Callable[[bool], None]) -> Any:
        """Run ``func(False)`` after ``seconds``; returns a handle for ``_cancel``."""
        raise NotImplementedError

    @staticmethod
    def _cancel(handle: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def _prepare_hub(hub: Any) -> None:
        """Called in the hub's thread before parking; does nothing by default."""

    # -- the waiter ---------------------------------------------------------

    def wait(self, timeout: float | None) -> bool:
        if self._woken:
            return True
        if timeout is not None and timeout <= 0:
            return False
        hub = self._hub = self._get_hub()
        self._prepare_hub(hub)
        self._thread = native_thread_ident()
        self._greenlet = getcurrent()
        if self._woken:
            self._greenlet = None
            return True
        timer = None if timeout is None else self._call_later(hub, timeout, self._resume)
        try:
            return bool(hub.switch())
        finally:
            self._greenlet = None
            if timer is not None:
                self._cancel(timer)

    def _resume(self, woken: bool) -> None:
        greenlet = self._greenlet
        if greenlet is not None:
            self._greenlet = None
            greenlet.switch(woken)

    def wake(self) -> None:
        self._woken = True
        if self._greenlet is None:
            return
        if native_thread_ident() == self._thread:
            self._call_soon(self._hub, self._resume)
        else:
            self._call_soon_threadsafe(self._hub, self._resume)
