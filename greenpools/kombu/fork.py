"""Dropping kombu connections inherited across ``fork()``, parent unharmed.

After a fork the child holds copies of the parent's broker sockets.  Using
one corrupts both protocol streams ("Received 0x01 while expecting
0xce"); closing one through kombu is just as bad: py-amqp sends
``Connection.Close`` and calls ``shutdown()``, which tears the socket
down for the parent too.  What is safe is closing the *child's* copy of
the file descriptor: the parent keeps its own.

So :func:`forget_connection` detaches every socket it can find under a
``kombu.Connection`` (py-amqp's transport socket; the redis-py sockets and
the epoll object of kombu's Redis transport), closes only the child's
descriptors, and unhooks the objects so that nothing later (a ``close()``
call, garbage collection) can send a byte or shut a socket down.  The
``kombu.Connection`` itself is left unconnected: used again in the child,
it opens a fresh connection.

A green task of the parent that was waiting on one of these sockets lives
on in the child, and so does its hub's watcher on the descriptor: see
:func:`detach_socket` for why a green socket is closed through its own
library.

Everything here runs in an at-fork callback: it only drops references and
closes descriptors (or has the hub close them), never blocks, never
yields, never logs.
"""

from __future__ import annotations

import _socket
import posix  # the raw close(): gevent's os.close defers the close to its hub
from typing import Any

__all__ = ["detach_socket", "forget_connection"]


def _raw_socket(sock: Any) -> Any:
    """The ``_socket.socket`` under a stdlib, ssl, gevent or eventlet socket."""
    for _ in range(4):  # a wrapper of a wrapper at most, in practice
        if sock is None or isinstance(sock, _socket.socket):
            return sock
        # eventlet keeps the real socket in ``fd`` (its ``_sock`` is itself),
        # gevent in ``_sock``.
        inner = getattr(sock, "fd", None)
        if inner is None or isinstance(inner, int) or inner is sock:
            inner = getattr(sock, "_sock", None)
        if inner is sock:
            return None
        sock = inner
    return None


def detach_socket(sock: Any) -> None:
    """Close this process's descriptor of ``sock`` without any I/O.

    No ``shutdown()``: that would reach the parent.  A plain socket is
    detached with ``_socket.socket.detach`` (the C method, bypassing the
    wrappers' overrides), so that neither a later ``close()`` nor the
    garbage collector touches a descriptor number the child may have
    reused, and its descriptor is closed with ``posix.close`` (gevent's
    patched ``os.close`` defers the close to its hub).

    A green socket (gevent's, eventlet's, or an ssl socket over one) is
    closed through its own ``close()``, which does no I/O either.  A task
    that was waiting on it in the parent is copied into the child, still
    registered with the hub.  Under gevent, closing the descriptor under
    that watcher kills the child: this callback runs inside ``os.fork()``,
    before gevent's ``reinit()``, and on the hub's first turn in the child
    libev re-registers every watched descriptor with a fresh epoll and
    aborts on a closed one ("I/O watcher with invalid fd found in
    epoll_ctl", SIGABRT; gevent #2100 is the same abort without a fork).
    While a task waits on the socket, gevent's ``close()`` hands the work
    to the hub: cancel the wait (the copied task gets ``OSError(EBADF)``),
    close the watchers, and only then close the descriptor, so libev never
    meets a watcher on a closed descriptor.  Keeping the number valid some
    other way (``dup2`` of ``/dev/null`` over it) would also stop the
    abort, but leaves a descriptor open for ever and the copied task woken
    in a loop.  eventlet's ``close()`` closes at once; the child's hub
    fails the copied task's wait on its next turn, once greenpools' eventlet
    backend has moved it to an epoll of its own after every reset (see
    :mod:`greenpools.backends.eventlet`).
    """
    raw = _raw_socket(sock)
    if raw is None:
        return
    if sock is not raw:
        try:
            sock.close()
            return
        except Exception:
            pass  # a wrapper that cannot close: detach the real socket below
    try:
        fd = _socket.socket.detach(raw)
    except Exception:
        return
    if fd >= 0:
        try:
            posix.close(fd)
        except OSError:
            pass


def _forget_amqp(connection: Any) -> None:
    """Unhook a py-amqp ``Connection`` from its socket and its channels."""
    transport = vars(connection).get("_transport")
    if transport is not None:
        detach_socket(getattr(transport, "sock", None))
        transport.sock = None
        transport.connected = False
    # ``amqp.Connection.close()`` returns at once without a transport.
    connection._transport = None
    channels = vars(connection).get("channels") or {}
    for channel in list(channels.values()):
        if channel is not connection:
            # Sending on it now raises RecoverableConnectionError, one of
            # the transport's connection errors, instead of writing.
            channel.connection = None
            channel.is_open = False


def _forget_redis_pool(pool: Any) -> None:
    if pool is None:
        return
    connections = list(getattr(pool, "_available_connections", ()) or ())
    connections += list(getattr(pool, "_in_use_connections", ()) or ())
    for connection in connections:
        _forget_redis_connection(connection)


def _forget_redis_connection(connection: Any) -> None:
    sock = getattr(connection, "_sock", None)
    if sock is not None:
        detach_socket(sock)
        connection._sock = None


def _forget_virtual_transport(transport: Any) -> None:
    """Drop the channels of a kombu virtual transport (Redis and the like)."""
    channels = list(getattr(transport, "channels", ()) or ())
    channels += list(getattr(transport, "_avail_channels", ()) or ())
    for channel in channels:
        state = vars(channel)
        for name in ("_pool", "_async_pool"):
            _forget_redis_pool(state.get(name))
        for name in ("client", "subclient"):  # cached properties, if made
            client = state.get(name)
            if client is not None:
                connection = getattr(client, "connection", None)
                if connection is not None:
                    _forget_redis_connection(connection)
                _forget_redis_pool(getattr(client, "connection_pool", None))
    # The epoll instance is shared with the parent: unregistering a socket
    # here would unregister it there.  Closing the child's descriptor of it
    # first makes kombu's later unregister calls fail harmlessly.
    cycle = vars(transport).get("cycle")
    poller = getattr(cycle, "poller", None)
    epoll = getattr(poller, "_epoll", None)
    close = getattr(epoll, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass


def forget_connection(connection: Any) -> None:
    """Drop what a ``kombu.Connection`` inherited from the parent process.

    Closes only this process's descriptors; sends nothing; shuts nothing
    down.  The connection object stays usable: it reconnects when used.
    """
    state = vars(connection)
    established = state.get("_connection")
    if established is not None and hasattr(established, "channels") and hasattr(
        established, "frame_writer"
    ):
        _forget_amqp(established)
    transport = state.get("_transport")
    if transport is not None:
        _forget_virtual_transport(transport)
        try:
            transport.client = None
        except Exception:
            pass
    connection._connection = None
    connection._default_channel = None
    connection._transport = None
    entities = state.get("declared_entities")
    if entities is not None:
        entities.clear()
