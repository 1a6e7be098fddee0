"""What a publish on a pooled AMQP connection raises, and what becomes of
the connection.

Every channel a :class:`~greenpools.kombu.connections.PooledConnection`
opens on py-amqp has its ``basic_publish`` guarded by :func:`guard_publish`
(kombu's ``Producer.publish`` ends there, ``retry=True`` or not).  Four
outcomes leave the connection in a state nobody knows, so it is retired:
never lent again, closed when its holder gives it back (or, while the
broker blocks it, kept open only to hear the unblock):

- the broker blocked the connection (:mod:`~greenpools.kombu.blocking`):
  :class:`greenpools.ConnectionBlocked`, at once; a confirm may still come;
- the confirm wait ran out: ``TimeoutError``, or ``ConnectionBlocked``
  with it as the cause if the connection was blocked;
- an interruption that is not an ``Exception`` (``gevent.Timeout``,
  ``GreenletExit``, ``KeyboardInterrupt``) stopped the write, maybe
  mid-frame: raised as it is;
- the node refused the publish as it shut down, with 541 INTERNAL_ERROR
  (kombu counts it as irrecoverable, so ``retry=True`` would not retry it)
  or 320 CONNECTION_FORCED: :class:`NodeShuttingDown`, a recoverable
  connection error, which ``retry=True`` retries on a fresh connection
  and a ``with`` block replaces the connection for.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqp.exceptions import ConnectionForced, InternalError

from ..exceptions import ConnectionBlocked, NodeShuttingDown, is_interruption

__all__ = ["guard_publish"]


def _refusal(pool: Any, exc: Any) -> NodeShuttingDown:
    return NodeShuttingDown(
        f"pool {pool.name!r}: the broker refused the publish, it may be shutting down "
        f"({exc}); the message was not confirmed",
        reply_code=exc.reply_code,
    )


def guard_publish(conn: Any, publish: Callable[..., Any]) -> Callable[..., Any]:
    """``publish`` (a channel's ``basic_publish`` on ``conn``) raising as the
    module says, and retiring ``conn`` when its state is in doubt."""

    def basic_publish(*args: Any, **kwargs: Any) -> Any:
        if conn._broker_blocked:  # the notice came before: nothing is sent
            raise conn._blocked_error()
        conn._publishing += 1
        try:
            return publish(*args, **kwargs)
        except ConnectionBlocked:  # ended by the notice: its confirm may still come
            conn._pool._retire_lent_resource(conn)
            raise
        except TimeoutError as exc:  # so may this one's
            conn._pool._retire_lent_resource(conn)
            if conn._broker_blocked:
                raise conn._blocked_error() from exc
            raise
        except (InternalError, ConnectionForced) as exc:
            conn._pool._retire_lent_resource(conn)
            raise _refusal(conn._pool, exc) from exc
        except BaseException as exc:
            if is_interruption(exc):
                conn._pool._retire_lent_resource(conn)
            raise
        finally:
            conn._publishing -= 1

    return basic_publish
