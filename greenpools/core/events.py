"""Pool events and their listeners.

``listen(target, event, fn)`` registers ``fn`` for one event of a pool, of
every pool of a group (present and future) or of every pool of a class
(and its subclasses).  A pool with no listener and metrics off is not
*watched*: it keeps its lock-free fast paths and emits nothing, so it pays
nothing for this module.  A watched pool's leases are not bare (see
:mod:`greenpools.core.resource`), so every acquire and release takes the
slow path, where the pool calls the listeners it was handed
(:func:`listeners_for`) itself.

This module sits below the pools: it never imports them.  The pool and
group classes register themselves as targets (:func:`accept_pool_type`,
:func:`accept_group_type`), and the open pools are found in
:mod:`greenpools.core.registry`.

Every listener is called as ``fn(pool, resource, seconds)``:

- ``connect``: a resource was created; ``seconds`` it took.
- ``checkout``: a resource was handed out; ``seconds`` the caller waited.
- ``checkin``: a resource came back; ``seconds`` it was held.
- ``invalidate``: a resource was found broken, replaced or lost.
- ``close``: a resource was closed (or dropped, in a forked child).
- ``timeout``: a wait ran out; ``resource`` is None, ``seconds`` waited.
- ``fork``: the pool was reset in a forked child; ``resource`` is None.
- ``blocked``: the broker blocked the pool's connections (a RabbitMQ
  resource alarm): the pool lends nothing until they are unblocked;
  ``resource`` is the connection that was told.
- ``unblocked``: the broker unblocked them and the pool lends again;
  ``resource`` is the connection that was told (or the last blocked one
  gone), ``seconds`` how long the pool was blocked.

``seconds`` is None where the list above gives none.  Listeners run
outside the pool's lock; one that raises is logged on the ``greenpools``
logger and changes nothing for the pool or its caller.  A ``fork``
listener runs in the child's at-fork callback: it must not block.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import registry

__all__ = ["EVENTS", "Sink", "emit", "listen", "remove_listener"]

logger = logging.getLogger("greenpools")

EVENTS = frozenset({
    "connect", "checkout", "checkin", "invalidate", "close", "timeout", "fork",
    "blocked", "unblocked",
})

Listener = Callable[[Any, Any, "float | None"], object]


class Sink(Protocol):
    """Something that listens to every pool (the metrics)."""

    def listeners(self, pool: Any) -> dict[str, Listener]:
        """``pool``'s listeners by event; called when the pool's are gathered."""
        ...


#: target (pool, group or class) -> event -> listeners, in registration order
_listeners: weakref.WeakKeyDictionary[Any, dict[str, list[Listener]]] = (
    weakref.WeakKeyDictionary()
)
#: pool -> the groups it belongs to
_memberships: weakref.WeakKeyDictionary[Any, list[weakref.ref[Any]]] = (
    weakref.WeakKeyDictionary()
)
_sink: Sink | None = None
#: Pool classes (:func:`accept_pool_type`): their instances and subclasses
#: are valid targets of :func:`listen`.
_pool_types: tuple[type, ...] = ()
#: Classes whose instances are pool groups, valid targets of :func:`listen`.  The
#: kombu layer registers its ``PoolGroup`` (:func:`accept_group_type`).
_group_types: tuple[type, ...] = ()
_lock = threading.Lock()  # registrations only; emit reads without it


def _check(target: Any, event: Any, fn: Any) -> None:
    if not (
        isinstance(target, (*_pool_types, *_group_types))
        or (isinstance(target, type) and issubclass(target, _pool_types))
    ):
        raise TypeError(
            f"target must be a pool, a pool group or a pool class, got {target!r}"
        )
    if event not in EVENTS:
        raise ValueError(f"event must be one of {sorted(EVENTS)}, got {event!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")


def listen(target: Any, event: str, fn: Listener) -> None:
    """Call ``fn(pool, resource, seconds)`` on ``event`` of ``target``'s pools.

    ``target`` is a pool, a pool group (its pools, present and future) or
    a pool class (its pools and its subclasses'); ``event`` one of
    ``connect``, ``checkout``, ``checkin``, ``invalidate``, ``close``,
    ``timeout`` and ``fork``.  Raises ``TypeError`` for any other ``target`` or a
    ``fn`` that is not callable, and ``ValueError`` for an unknown
    ``event``.
    """
    _check(target, event, fn)
    with _lock:
        by_event = _listeners.setdefault(target, {})
        by_event.setdefault(event, []).append(fn)
    _rewatch()


def remove_listener(target: Any, event: str, fn: Listener) -> None:
    """Undo one :func:`listen` of ``fn`` for ``event`` of ``target``.

    Raises ``ValueError`` if ``fn`` was not listening there, and what
    :func:`listen` raises for a bad argument.
    """
    _check(target, event, fn)
    with _lock:
        found = _listeners.get(target, {}).get(event, [])
        if fn not in found:
            raise ValueError(f"{fn!r} does not listen to {event!r} of {target!r}")
        found.remove(fn)
    _rewatch()


def set_sink(sink: Sink | None) -> None:
    """Add ``sink``'s listeners to every pool's, before the others (None: stop)."""
    global _sink
    _sink = sink
    _rewatch()


def accept_pool_type(cls: type) -> None:
    """Let instances of ``cls`` and its subclasses, and the classes
    themselves, be targets of :func:`listen`."""
    global _pool_types
    with _lock:
        if cls not in _pool_types:
            _pool_types = (*_pool_types, cls)


def accept_group_type(cls: type) -> None:
    """Let instances of ``cls`` (a group that makes pools) be targets of :func:`listen`."""
    global _group_types
    with _lock:
        if cls not in _group_types:
            _group_types = (*_group_types, cls)


def joined_group(pool: Any, group: Any) -> None:
    """``pool`` was made by ``group``: the group's listeners apply to it."""
    with _lock:
        _memberships.setdefault(pool, []).append(weakref.ref(group))
    pool._watch_changed()


def _targets(pool: Any) -> Iterable[Any]:
    yield pool
    for ref in _memberships.get(pool, ()):
        group = ref()
        if group is not None:
            yield group
    yield from type(pool).__mro__


def listeners_for(pool: Any) -> dict[str, tuple[Listener, ...]]:
    """``pool``'s listeners by event, from every target that covers it.

    The pool keeps this as ``_event_listeners`` and gets a fresh one on
    every :func:`listen` and :func:`remove_listener` and when the sink
    changes, so emitting an event looks nothing up.  The sink's listeners
    come first.
    """
    found: dict[str, list[Listener]] = {}
    with _lock:
        sink = _sink
        if sink is not None:
            for event, fn in sink.listeners(pool).items():
                found[event] = [fn]
        for target in _targets(pool):
            if not _is_weakrefable_key(target):
                continue
            for event, fns in _listeners[target].items():
                if fns:
                    found.setdefault(event, []).extend(fns)
    return {event: tuple(fns) for event, fns in found.items()}


def metrics_on() -> bool:
    """Whether a sink (the metrics) sees every pool's events."""
    return _sink is not None


def _is_weakrefable_key(target: Any) -> bool:
    try:
        return target in _listeners
    except TypeError:
        return False


def _rewatch() -> None:
    for pool in registry.live_pools():
        pool._watch_changed()


def emit(pool: Any, event: str, resource: Any = None, seconds: float | None = None) -> None:
    """Call ``event``'s listeners of ``pool`` (the metrics' first); never raises.

    For code outside the pools; the pools emit their own events
    (``SlotPool._emit``, compiled with the pool core), which is the same.
    """
    pool._emit(event, resource, seconds)


def listener_failed(fn: Listener, event: str, pool: Any) -> None:
    """Log a listener that raised (called from inside its ``except``)."""
    logger.exception("greenpools: listener %r for %r of pool %r raised", fn, event, pool.name)


