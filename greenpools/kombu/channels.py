"""Pools of the channels of one kombu connection: :class:`ChannelPool`
(what ``connection.ChannelPool()`` makes).

A transport channel closes itself when its ``with`` block ends; a pooled
one must go back to its pool instead, or be replaced after a connection
error.  The transport makes the channels, so each new one has its class
swapped for a subclass of its own class (made once per transport class)
whose ``__exit__`` does that; a channel whose class cannot be swapped is
lent as it is.  That swap and the pool are this module.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from typing import Any

from kombu.exceptions import ChannelLimitExceeded

from ..exceptions import NotCheckedOut, is_interruption
from .base import (
    KombuResource,
    LazyErrors,
    SelfLeasing,
    as_connection,
    errors_of_template,
    pool_label,
)
from .fork import forget_connection

_pooled_channel_classes: dict[type, type] = {}


def _pooled_channel_class(cls: type) -> type:
    """``cls`` with ``__exit__`` returning the channel to its pool.

    A transport channel closes itself on ``__exit__``; a pooled one must go
    back instead (or be replaced after a connection error).
    """
    pooled = _pooled_channel_classes.get(cls)
    if pooled is None:
        pooled = type(cls.__name__, (_PooledChannelMixin, cls), {"__module__": cls.__module__})
        _pooled_channel_classes[cls] = pooled
    return pooled


class _PooledChannelMixin(SelfLeasing):
    _greenpools_pool: ChannelPool

    def _lending_pool(self) -> ChannelPool:
        return self._greenpools_pool

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._open_withs -= 1
        pool = self._greenpools_pool
        if pool._ended_in_with and self._released_in_block(pool):
            return
        try:
            if exc_type is None or not (is_interruption(exc)
                                        or isinstance(exc, pool.connection_errors)):
                pool.release(self)
            else:
                pool.replace(self)
        except NotCheckedOut as refused:
            self._refused_at_exit(refused)


class ChannelPool(KombuResource[Any]):
    """A pool of channels of one connection (``connection.ChannelPool``).

    Raises ``kombu.exceptions.ChannelLimitExceeded`` (also a greenpools
    ``LimitExceeded``) when no channel is free and the caller would not
    wait.  In a forked child the pool also drops the parent's socket under
    ``connection``, which then reconnects on first use.  A limit of 0 or
    ``None`` means what it means in kombu: no limit and no pooling, each
    release closes the channel.

    Raises ``TypeError`` when ``connection`` is neither a
    ``kombu.Connection`` nor a URL string, and the errors of
    :class:`greenpools.Resource` for a bad option.
    """

    LimitExceeded = ChannelLimitExceeded
    close_after_fork = True
    connection_errors = LazyErrors(errors_of_template)  # type: ignore[assignment]

    def __init__(
        self, connection: Any, limit: int | None = None, preload: int | None = None,
        **options: Any,
    ) -> None:
        self.connection = as_connection(connection)
        options.setdefault("name", f"channels {pool_label(self.connection)}")
        super().__init__(limit, preload, **options)

    def new(self) -> Any:
        """A new channel of ``connection`` (which connects if it must), made
        to go back to this pool at the end of its ``with`` block."""
        channel = self.connection.channel()
        try:
            channel.__class__ = _pooled_channel_class(type(channel))
            channel._greenpools_pool = self
        except (TypeError, AttributeError):  # a channel type that refuses: plain then
            pass
        return channel

    def close_resource(self, resource: Any) -> None:
        """Close the channel (the connection stays open)."""
        resource.close()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        if self.close_after_fork:
            try:
                forget_connection(self.connection)
            except Exception:  # pragma: no cover - must not kill the child, nor log here
                pass
