"""Backend for eventlet green threads.

A blocking wait parks only the calling green thread on eventlet's hub.  A
wake from another native thread (``eventlet.tpool``, a real thread) cannot
touch that hub, so it rings a per-hub doorbell: a pipe the hub watches,
which runs the wake-up in the hub's own thread.

After ``os.fork()`` eventlet's hub lives on in the child (green threads
survive a fork by design), still polling the parent's epoll instance: the
kernel object is shared, so each process's registrations change the
other's, and a descriptor both inherited (a pipe to the parent, say) has
a single registration for all of them.  One child unregistering it when
its write is done leaves a sibling waiting for ever to write to it.  This
module gives a forked child's hub an epoll instance of its own, as gevent
does for its loop, and drops the parent's doorbell there.
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
_real_select = original("select")


def _ignore(*args: Any) -> None:
    return None


class _Doorbell:
    """Runs callbacks in a hub's thread on behalf of other native threads."""

    def __init__(self, hub: Any) -> None:
        self._calls: collections.deque[tuple[Callable[..., Any], Any]] = collections.deque()
        self._read_fd, self._write_fd = _real_os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._listener = hub.add(hub.READ, self._read_fd, self._ring, _ignore, _ignore)

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

    def forget(self, hub: Any) -> None:
        """In a forked child: stop watching the parent's doorbell, whose
        bytes are the parent's to read, and close this process's ends."""
        hub.remove(self._listener)
        self._calls.clear()
        for fd in (self._read_fd, self._write_fd):
            try:
                _real_os.close(fd)
            except OSError:
                pass


def _doorbell(hub: Any) -> _Doorbell:
    bell: _Doorbell | None = getattr(hub, "_greenpools_doorbell", None)
    if bell is None:
        bell = hub._greenpools_doorbell = _Doorbell(hub)
    return bell


def _epoll_of_its_own(hub: Any) -> None:
    """Move ``hub`` off the epoll instance it shares with the parent."""
    shared = getattr(hub, "poll", None)
    epoll_type = getattr(_real_select, "epoll", None)
    # eventlet's poll and select hubs keep no kernel state, and its kqueue
    # hub renews its own after a fork.
    if epoll_type is None or not isinstance(shared, epoll_type):
        return
    fresh = _real_select.epoll()  # first: should this fail, the hub still polls
    # The fresh instance takes over the shared one's descriptor number (the
    # parent keeps its own descriptor): the number the kernel picked may be
    # a socket's that a reset just closed, under which a copied task may
    # still be registered.
    number = shared.fileno()
    shared.close()
    _real_os.dup2(fresh.fileno(), number, inheritable=False)
    fresh.close()
    hub.poll = epoll_type.fromfd(number)
    gone = []
    for fd in {*hub.listeners[hub.READ], *hub.listeners[hub.WRITE]}:
        try:
            hub.register(fd, new=True)
        except OSError:  # closed in this process: no event can come for it
            gone.append(fd)
    for fd in gone:
        # The task waiting on it gets IOClosed on the hub's next turn rather
        # than waiting for ever (eventlet's rule for a descriptor closed
        # under a waiting task, applied now).
        hub._obsolete(fd)
    if gone:  # and that turn comes now, not after the hub's current sleep
        hub.schedule_call_global(0, _ignore)


@fork_guard.after_resets  # the resets close inherited sockets; register the rest
def _hub_of_its_own() -> None:
    hub = getattr(hubs._threadlocal, "hub", None)
    if hub is None:
        return
    _epoll_of_its_own(hub)
    bell = vars(hub).pop("_greenpools_doorbell", None)
    if bell is not None:
        bell.forget(hub)


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

    def hub_greenlet(self, hub: Any) -> Any:
        return hub.greenlet

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
