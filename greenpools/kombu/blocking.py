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
publish on its channels: one that meets a block (the notice arrives while
it writes or waits for the confirm, or came before it) raises
:class:`greenpools.ConnectionBlocked` there and then, and one whose wait
ran out raises it too if the connection was blocked (the ``TimeoutError``
as its cause).  Either way a confirm for that message may still come, so
the connection is retired: never lent again, closed when given back, or,
while blocked, kept open only to hear the unblock.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import ConnectionBlocked

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
            connection.on_blocked = _then(self._heard_blocked, connection.on_blocked)
            connection.on_unblocked = _then(self._heard_unblocked, connection.on_unblocked)
        return connection

    def channel(self) -> Any:
        channel = super().channel()  # type: ignore[misc]
        publish = getattr(channel, "basic_publish", None)
        if publish is not None and hasattr(self.connection, "on_blocked"):  # type: ignore[attr-defined]
            channel.basic_publish = self._guarded(publish)
        return channel

    def _guarded(self, publish: Callable[..., Any]) -> Callable[..., Any]:
        """``publish`` (a channel's ``basic_publish``) raising ConnectionBlocked
        when it meets a block."""

        def basic_publish(*args: Any, **kwargs: Any) -> Any:
            if self._broker_blocked:  # the notice came before: nothing is sent
                raise self._blocked_error()
            self._publishing += 1
            try:
                return publish(*args, **kwargs)
            except ConnectionBlocked:  # from _heard_blocked: its confirm may still come
                self._pool._retire_lent_resource(self)
                raise
            except TimeoutError as exc:  # so may this one's
                self._pool._retire_lent_resource(self)
                if self._broker_blocked:
                    raise self._blocked_error() from exc
                raise
            finally:
                self._publishing -= 1

        return basic_publish

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


def _then(first: Callable[..., object], then: Callable[..., object] | None) -> Callable[..., Any]:
    """Call ``first`` and then ``then`` (a callback of the user's, if any)
    with the same arguments; ``first`` may raise, after ``then`` ran."""

    def both(*args: Any) -> None:
        try:
            if then is not None:
                then(*args)
        finally:
            first(*args)

    return both
