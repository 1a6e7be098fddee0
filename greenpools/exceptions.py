"""Exceptions raised by the pools.

Each is also an instance of the kombu class that kombu raises in the same
situation, so ``except kombu.exceptions.LimitExceeded`` (or
``ConnectionLimitExceeded``, ``RuntimeError`` for a closed pool) keeps
working after switching to greenpools; :class:`NodeShuttingDown` is a
py-amqp recoverable connection error, so kombu's retries retry it.
"""

from __future__ import annotations

import copyreg
from typing import Any, cast

from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import LimitExceeded as KombuLimitExceeded

__all__ = [
    "ConnectionBlocked", "LimitExceeded", "NodeShuttingDown", "NotCheckedOut", "PoolClosed",
    "PoolError", "PoolTimeout", "TooManyRequests",
]


def is_interruption(exc: BaseException) -> bool:
    """Whether ``exc`` interrupted the task rather than failed: not an
    ``Exception`` (``gevent.Timeout``, ``GreenletExit``, ``KeyboardInterrupt``).
    What it stopped may be half done, and it must go on up."""
    return not isinstance(exc, Exception)


class PoolError(Exception):
    """Base class of every greenpools error."""


class LimitExceeded(PoolError, KombuLimitExceeded):
    """Every resource is in use and the caller would not wait."""


class PoolTimeout(LimitExceeded):
    """A blocking acquire waited its whole timeout for a resource."""


class ConnectionBlocked(PoolTimeout):
    """The broker has blocked the pool's connections (a RabbitMQ resource alarm).

    Raised by a publish that met the block and ran out of time, and by an
    acquire that waited its whole timeout (or would not wait) while the
    pool was blocked.  The message names the pool and the broker's reason.
    """


class NodeShuttingDown(RecoverableConnectionError):  # type: ignore[misc]
    """The broker node refused a publish as it shut down (541 INTERNAL_ERROR
    or 320 CONNECTION_FORCED); the message was not confirmed.

    Raised from the broker's error (its ``__cause__``); a recoverable
    connection error, so ``publish(retry=True)`` retries on a fresh
    connection.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # py-amqp's errors store their arguments in another order than
        # __init__ takes them: unpickled as they are, ``args`` would shift.
        return (type(self), (self.reply_text, self.method_sig, self.method_name,
                             self.reply_code), self.__dict__)


class TooManyRequests(LimitExceeded):
    """``max_waiting`` callers are already queued for this pool."""


class PoolClosed(PoolError, RuntimeError):
    """The pool was closed; it hands out nothing more."""


class NotCheckedOut(PoolError, ValueError):
    """A release or replace of a resource the pool does not lend now:
    released twice, or never acquired from it (a ``ValueError``)."""

    #: ``id()`` of the object refused (in this process only: not pickled).
    resource_id: int | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "resource_id"}
        return type(self), self.args, state or None


def not_checked_out(resource: Any, pool_name: str, why: str) -> NotCheckedOut:
    """The error refusing ``resource``, which pool ``pool_name`` does not lend now."""
    error = NotCheckedOut(f"resource {resource!r} is not checked out of pool {pool_name!r}: {why}")
    error.resource_id = id(resource)
    return error


class _Specialised(type):
    """The metaclass of the classes :func:`specialise` makes.

    Such a class cannot be pickled by name (its name finds its base), so
    it pickles as the call that makes it again: Celery keeps an error's
    class only if the class pickles (``get_pickleable_etype``), and
    multiprocessing pickles the errors its workers raise.
    """


def _reduce_specialised(made: _Specialised) -> tuple[Any, ...] | str:
    made_from = _made_from.get(made)
    if made_from is None:  # a subclass of one, made elsewhere: by its name
        return made.__qualname__
    return specialise, made_from


copyreg.pickle(_Specialised, _reduce_specialised)

_specialised: dict[tuple[type[LimitExceeded], type[BaseException]], type[LimitExceeded]] = {}
#: What each class made by :func:`specialise` was made of, to pickle it.
_made_from: dict[type, tuple[type[LimitExceeded], type[BaseException]]] = {}


def specialise(error: type[LimitExceeded], kombu_class: type[BaseException]) -> type[LimitExceeded]:
    """``error`` made also an instance of a pool's own kombu ``LimitExceeded``.

    kombu's connection pool raises ``ConnectionLimitExceeded`` and its
    channel pool ``ChannelLimitExceeded``; a greenpools ``PoolTimeout`` from
    those pools must be caught by the same clauses.
    """
    if issubclass(error, kombu_class):
        return error
    key = (error, kombu_class)
    if key not in _specialised:
        made = cast("type[LimitExceeded]", _Specialised(
            error.__name__, (error, kombu_class), {"__module__": error.__module__}
        ))
        _specialised[key] = made
        _made_from[made] = key
    return _specialised[key]
