"""Backend for eventlet green threads.

A blocking wait parks only the calling green thread on eventlet's hub.  A
wake from another native thread (``eventlet.tpool``, a real thread) cannot
touch that hub, so it rings a per-hub doorbell: a pipe the hub watches,
which runs the wake-up in the hub's own thread.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Callable, Hashable
from typing import Any

import eventlet
from eventlet import hubs
from eventlet.patcher import original
from greenlet import getcurrent

from ..forking import fork_guard
from ._green import HubWaiters
from .base import Backend, HubOperations, Waiter

_real_os = original("os")


def _ignore(*args: Any) -> None:
    return None


class _Doorbell:
    """Runs callbacks in a hub's thread on behalf of other native threads."""

    def __init__(self, hub: Any) -> None:
        self._pid = fork_guard.pid
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
    if bell is None or bell._pid != fork_guard.pid:  # a syscall per wait otherwise
        bell = hub._greenpools_doorbell = _Doorbell(hub)
    return bell


class EventletHub(HubOperations):
    """eventlet's hub, as the green waiter uses it."""

    def __init__(self) -> None:
        # hubs.get_hub() is Python; the thread-local it reads is cheaper to
        # ask directly once the thread has a hub.
        local = getattr(hubs, "_threadlocal", None)
        if local is not None:
            self.peek_hub = functools.partial(getattr, local, "hub", None)
        self.get_hub = hubs.get_hub  # type: ignore[method-assign]

    def get_hub(self) -> Any:
        return hubs.get_hub()

    def prepare_hub(self, hub: Any) -> None:
        # Made here, in the hub's thread: hub.add is not thread-safe.
        _doorbell(hub)

    def call_soon(self, hub: Any, func: Callable[[bool], object]) -> None:
        hub.schedule_call_global(0, func, True)

    def call_soon_threadsafe(self, hub: Any, func: Callable[[bool], object]) -> None:
        _doorbell(hub).call(func, True)

    def call_later(self, hub: Any, seconds: float, func: Callable[[bool], object]) -> Any:
        return hub.schedule_call_global(seconds, func, False)

    def cancel(self, handle: Any) -> None:
        handle.cancel()


#: What makes this backend's waiters (green waiters over EventletHub).
WAITERS = HubWaiters(EventletHub())


class EventletBackend(Backend):
    name = "eventlet"

    def waiter_factory(self) -> Callable[[], Waiter]:
        return WAITERS

    def sleep(self, seconds: float) -> None:
        eventlet.sleep(seconds)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        eventlet.spawn(func, *args)

    #: A builtin, not a method: the pool calls it on every acquire.
    current_task: Callable[[], Hashable] = staticmethod(getcurrent)  # type: ignore[assignment]


backend = EventletBackend()
