"""Backend for eventlet green threads.

The waiter parks the calling green thread on eventlet's hub directly.  A
wake from another native thread (``eventlet.tpool``, a real thread) cannot
touch that hub, so it rings a per-hub doorbell: a pipe the hub watches,
which runs the wake-up in the hub's own thread.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Hashable
from typing import Any

import eventlet
from eventlet import hubs
from eventlet.patcher import original
from greenlet import getcurrent

from .base import Backend, Task, Waiter, native_thread_ident

_real_os = original("os")


def _ignore(*args: Any) -> None:
    return None


class _Doorbell:
    """Runs callbacks in a hub's thread on behalf of other native threads."""

    def __init__(self, hub: Any) -> None:
        self._pid = os.getpid()
        self._calls: collections.deque[tuple[Callable[..., Any], Any]] = collections.deque()
        self._read_fd, self._write_fd = _real_os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        hub.add(hub.READ, self._read_fd, self._ring, _ignore, _ignore)

    def call(self, func: Callable[..., Any], arg: Any) -> None:
        self._calls.append((func, arg))
        try:
            _real_os.write(self._write_fd, b"x")
        except BlockingIOError:  # the pipe is full: the hub is already due to ring
            pass

    def _ring(self, fd: int) -> None:
        try:
            while _real_os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        calls = self._calls
        while calls:
            func, arg = calls.popleft()
            func(arg)


def _doorbell(hub: Any) -> _Doorbell:
    bell: _Doorbell | None = getattr(hub, "_greenpools_doorbell", None)
    if bell is None or bell._pid != os.getpid():
        bell = hub._greenpools_doorbell = _Doorbell(hub)
    return bell


class EventletWaiter(Waiter):
    """Parks one green thread on its hub until woken or timed out.

    ``wait`` publishes its greenlet before it reads ``_woken`` and ``wake``
    sets ``_woken`` before it reads the greenlet, so a wake from another
    native thread is never missed; ``_resume`` runs in the hub's thread and
    switches only into a greenlet that is still parked here.
    """

    __slots__ = ("_bell", "_greenlet", "_hub", "_thread", "_woken")

    def __init__(self) -> None:
        self._woken = False
        self._greenlet: Any = None
        self._hub: Any = None
        self._bell: _Doorbell | None = None
        self._thread = 0

    def wait(self, timeout: float | None) -> bool:
        if self._woken:
            return True
        if timeout is not None and timeout <= 0:
            return False
        hub = self._hub = hubs.get_hub()
        # Made here, in the hub's thread: hub.add is not thread-safe.
        self._bell = _doorbell(hub)
        self._thread = native_thread_ident()
        self._greenlet = getcurrent()
        if self._woken:
            self._greenlet = None
            return True
        timer = None
        if timeout is not None:
            timer = hub.schedule_call_global(timeout, self._resume, False)
        try:
            return bool(hub.switch())
        finally:
            self._greenlet = None
            if timer is not None:
                timer.cancel()

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
            self._hub.schedule_call_global(0, self._resume, True)
        else:
            assert self._bell is not None
            self._bell.call(self._resume, True)


class EventletBackend(Backend):
    name = "eventlet"

    def waiter(self) -> Waiter:
        return EventletWaiter()

    def sleep(self, seconds: float) -> None:
        eventlet.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> Task:
        task: Task = eventlet.spawn(func, *args)
        return task

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(getcurrent)  # type: ignore[assignment]


backend = EventletBackend()
