"""Pooled connections the broker blocks (RabbitMQ's resource alarms).

A RabbitMQ node short of memory or disk raises an alarm, cluster wide: it
stops reading from every connection that publishes, and tells each of them
``connection.blocked`` when it publishes; ``connection.unblocked`` follows
when the alarm clears.  Idle connections hear nothing.  A publish into a
blocked connection waits for a confirm that does not come before the clear
(and py-amqp restarts its wait on every frame read, so a heartbeat can
stretch it past the publish's ``timeout``).

:class:`HearsBlocks` is what a pooled connection does about it.  It tells
its pool of every block and unblock (the pool then lends nothing, see
:meth:`greenpools.core.slotpool.SlotPool._block`), and it guards every
publish on its channels (:mod:`~greenpools.kombu.publishing`): one that
meets a block (the notice arrives while it writes or waits for the
confirm, or came before it) raises :class:`greenpools.ConnectionBlocked`
there and then, and one whose wait ran out raises it too if the
connection was blocked (the ``TimeoutError`` as its cause).  Either way a
confirm for that message may still come, so the connection is retired:
never lent again, closed when given back, or, while blocked, kept open
only to hear the unblock.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .publishing import guard_publish

__all__ = ["HearsBlocks", "read_waiting_frames"]

#: Most frames one read of an idle or blocked connection takes (heartbeats).
MAX_FRAMES = 100


def read_waiting_frames(conn: Any) -> None:
    """Read, without waiting, what the broker has sent ``conn`` (heartbeats,
    ``connection.unblocked``); raises if the connection is gone."""
    for _ in range(MAX_FRAMES):
        try:
            conn.drain_events(timeout=0)
        except TimeoutError:
            break


class HearsBlocks:
    """Mixin of :class:`greenpools.kombu.connections.PooledConnection`."""

    _pool: Any
    #: The broker has blocked this connection's socket and not unblocked it.
    _broker_blocked = False
    #: Why, as the broker said.
    _block_reason = ""
    #: Publishes under way on this connection now.
    _publishing = 0

    def _establish_connection(self) -> Any:
        connection = super()._establish_connection()  # type: ignore[misc]
        self._forget_block()  # a new socket: the old one's block went with it
        if hasattr(connection, "on_blocked"):  # py-amqp
            connection.on_blocked = _after(connection.on_blocked, self._heard_blocked)
            connection.on_unblocked = _after(connection.on_unblocked, self._heard_unblocked)
        return connection

    def channel(self) -> Any:
        channel = super().channel()  # type: ignore[misc]
        publish = getattr(channel, "basic_publish", None)
        if publish is not None and hasattr(self.connection, "on_blocked"):  # type: ignore[attr-defined]
            channel.basic_publish = guard_publish(self, publish)
        return channel

    def _blocked_error(self) -> Exception:
        pool = self._pool
        error: Exception = pool._connection_blocked(
            f"pool {pool.name!r}: the broker has blocked the connection "
            f"({self._block_reason}); the publish was not confirmed"
        )
        return error

    def _heard_blocked(self, reason: str) -> None:
        """py-amqp read ``connection.blocked``: tell the pool; end a publish
        under way on this connection (from inside its read)."""
        self._block_reason = str(reason)
        if not self._broker_blocked:
            self._broker_blocked = True
            self._pool._heard_blocked(self, self._block_reason)
        if self._publishing:
            raise self._blocked_error()

    def _heard_unblocked(self) -> None:
        """py-amqp read ``connection.unblocked``: tell the pool."""
        self._forget_block()

    def _forget_block(self) -> None:
        """The block is over for this connection (unblocked, or its socket gone)."""
        if self._broker_blocked:
            self._broker_blocked = False
            self._pool._heard_unblocked(self)


def _after(theirs: Callable[..., object] | None, ours: Callable[..., object]) -> Callable[..., Any]:
    """A callback that calls ``theirs`` (one given in ``transport_options``,
    if any) and then ``ours``, which may raise, with the same arguments;
    ``ours`` runs even if ``theirs`` raised."""

    def both(*args: Any) -> None:
        try:
            if theirs is not None:
                theirs(*args)
        finally:
            ours(*args)

    return both
