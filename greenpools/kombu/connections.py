"""Pools of kombu connections: :class:`ConnectionPool` and what it lends,
:class:`PooledConnection`.

The connection pool is the one that opens sockets: a producer pool
borrows its connections from one, a channel pool opens channels on a
connection.  So what only connections need lives here: making each new
connection like the pool's template (placed over the template's hosts by
:mod:`~greenpools.kombu.placement`), keeping idle ones alive (reading the
broker's heartbeats, sending ours), lending nothing while the broker
blocks the pool's connections and reading the blocked ones until it
unblocks them (:mod:`~greenpools.kombu.blocking`), bounding how long a
close waits for a broker that stopped answering, and dropping the
parent's sockets in a forked child (:mod:`~greenpools.kombu.fork`).
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import logging
from typing import Any

from kombu.connection import PooledConnection as _KombuPooledConnection
from kombu.exceptions import ConnectionLimitExceeded

from ..exceptions import NotCheckedOut
from .base import (
    KombuResource,
    LazyErrors,
    SelfLeasing,
    as_connection,
    errors_of_template,
    is_connection_error,
    pool_label,
)
from .blocking import HearsBlocks, read_waiting_frames
from .fork import forget_connection
from .placement import HostSpread, check_placement, hosts_of

#: Heartbeat checks per heartbeat interval, as kombu's ``heartbeat_check``
#: and Celery's worker (``broker_heartbeat_checkrate``) do it.
HEARTBEAT_RATE = 2

logger = logging.getLogger("greenpools")

#: How often, at most, upkeep reads the blocked connections (to hear the unblock).
BLOCKED_READ_INTERVAL = 0.5


class PooledConnection(SelfLeasing, HearsBlocks, _KombuPooledConnection):  # type: ignore[misc]
    """A ``kombu.Connection`` that belongs to a :class:`ConnectionPool`.

    ``release()`` returns it to the pool; ``close()`` really closes it.
    As a context manager it releases on exit, or replaces itself when the
    block raised one of its connection or channel errors; after a
    ``release()`` inside the block the exit does nothing.  A publish on it
    that meets a broker's block raises :class:`greenpools.ConnectionBlocked`
    (see :mod:`~greenpools.kombu.blocking`).
    """

    #: True while the pool's upkeep connects it: the pool counts that itself.
    _readying = False

    def _ensure_connection(self, *args: Any, **kwargs: Any) -> Any:
        # kombu connects on first use, in the holder's hands: a broker that
        # refuses would never show in the pool's statistics without min_size.
        try:
            return super()._ensure_connection(*args, **kwargs)
        except Exception:
            if not self._readying:
                pool = self._pool
                with pool._mutex:
                    pool._n_connection_errors += 1
            raise

    def __eqhash__(self) -> Any:
        # A pool group keys it as the connection its pool was made from,
        # whatever host it was placed on (HostSpread) or failed over to:
        # ``producers[conn]`` and ``connections[conn]`` must find that pool.
        return self._pool.connection.__eqhash__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._open_withs -= 1
        pool = self._pool
        if pool._ended_in_with and self._released_in_block(pool):
            return
        try:
            if exc_type is None:  # the common case first: it is on the hot path
                pool.release(self)
            elif is_connection_error(self, exc):
                pool.replace(self)
            else:
                pool.release(self)
        except NotCheckedOut as refused:
            self._refused_at_exit(refused)


def _bound_close_waits(conn: Any) -> None:
    """Make a polite close of ``conn`` give up on a broker that stopped answering.

    py-amqp's close sends ``Channel.Close`` and ``Connection.Close`` and
    waits for each answer with the socket's own timeout, which is none once
    connected: a silent broker (a black-holed network path) would hold the
    caller of ``replace()``, or the upkeep, for ever.  So each of those
    waits is bounded (by ``_CLOSE_TIMEOUT``, or the connection's shorter
    ``connect_timeout``); on a timeout py-amqp drops the socket and kombu
    carries on closing.  A close is a courtesy: a broker that misses it
    sees the TCP connection end instead.
    """
    established = vars(conn).get("_connection")  # never connect just to close
    sock = getattr(getattr(established, "_transport", None), "sock", None)
    if sock is None:
        return
    try:
        sock.settimeout(min(conn.connect_timeout or _CLOSE_TIMEOUT, _CLOSE_TIMEOUT))
    except (OSError, ValueError, TypeError):
        pass


#: The longest a pooled connection's close waits for each of the broker's
#: two answers (``Channel.CloseOk``, ``Connection.CloseOk``).
_CLOSE_TIMEOUT = 1.0


class ConnectionPool(KombuResource[PooledConnection]):
    """A pool of connections made like ``connection`` (a URL works too).

    ``ConnectionPool(connection, limit=None, preload=None, **options)``
    with the options of :class:`greenpools.Resource` (``timeout``,
    ``max_waiting``, ``min_size``, ``max_idle``, ...).  Raises
    ``kombu.exceptions.ConnectionLimitExceeded`` (also a greenpools
    ``LimitExceeded``) when no connection is free and the caller would not
    wait.  A limit of 0 or ``None`` means what it means in kombu: no limit
    and no pooling, each release closes the connection.

    ``placement`` (default: the class attribute, ``"spread"``) says where
    new connections go when ``connection`` has alternate hosts.  Raises
    ``TypeError`` when ``connection`` is neither a ``kombu.Connection`` nor
    a URL string, ``ValueError`` for an unknown ``placement``, and the
    errors of :class:`greenpools.Resource` for a bad option.

    While the broker blocks the pool's connections (a RabbitMQ resource
    alarm, heard by a publish) the pool lends and makes none: an acquire
    waits for the unblock within its timeout, then raises
    :class:`greenpools.ConnectionBlocked`; upkeep reads the blocked
    connections until the broker unblocks them.
    """

    LimitExceeded = ConnectionLimitExceeded
    close_after_fork = True
    connection_errors = LazyErrors(errors_of_template)  # type: ignore[assignment]

    #: The class of the pooled connections.
    Connection: type[PooledConnection] = PooledConnection

    #: Where new connections go when the connection has alternates:
    #: ``"spread"`` (round-robin over the hosts, see :mod:`greenpools.kombu.placement`)
    #: or ``"first"`` (kombu's way: the first host, then failover).
    placement = "spread"

    def __init__(
        self, connection: Any, limit: int | None = None, preload: int | None = None,
        *, placement: str | None = None, **options: Any,
    ) -> None:
        self.connection = as_connection(connection)
        self._hosts = HostSpread(
            hosts_of(self.connection), self.placement if placement is None else placement)
        options.setdefault("name", f"connections {pool_label(self.connection)}")
        self._heartbeat_interval = _heartbeat_check_interval(self.connection)
        #: Blocked connections out of the pool's books (their publish was cut
        #: short), kept open and unlent only to hear the unblock, by id.
        self._blocked_watch: dict[int, PooledConnection] = {}
        super().__init__(limit, preload, **options)

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_options(options)
        if options.get("placement") is not None:  # None: the class's
            checked["placement"] = check_placement(options["placement"])
        return checked

    def new(self) -> PooledConnection:
        """A new :class:`PooledConnection` with the template's parameters, on
        the host that ``placement`` picks.  Not connected yet: it connects
        on first use, as kombu's do (upkeep connects the ones that
        ``min_size`` keeps ready)."""
        # Its release() returns it here: nothing is bound per acquire.
        info = dict(self.connection._info(resolve=False))
        # kombu's publish(retry_policy=...) writes into this dict: one each.
        info["transport_options"] = dict(info.get("transport_options") or {})
        info = self._hosts.place(info)
        conn: PooledConnection = self.Connection(self, **info)
        return conn

    def close_resource(self, resource: PooledConnection) -> None:
        """Close the connection politely, waiting at most 1 s (or its
        shorter ``connect_timeout``) for each of the broker's answers, so
        that a broker that stopped answering cannot hold the caller.  A
        connection the broker blocks stays open, unlent and out of the
        books, for upkeep to read until the unblock."""
        if resource._broker_blocked and not self._closed:
            # Unlent, out of the books: upkeep reads it until the unblock.
            self._blocked_watch[id(resource)] = resource
            return
        self._blocked_watch.pop(id(resource), None)
        try:
            _bound_close_waits(resource)
            resource._close()
        finally:
            resource._forget_block()

    def collect_resource(self, resource: PooledConnection, socket_timeout: float = 0.1) -> None:
        """Close the connection quickly, as kombu's ``collect()`` does, with
        ``socket_timeout`` seconds for each socket operation (from
        ``force_close_all``)."""
        try:
            resource.collect(socket_timeout)
        finally:
            resource._forget_block()

    def forget_resource(self, resource: PooledConnection) -> None:
        """In a forked child, drop the parent's socket under ``resource``:
        this process's descriptors close, nothing is sent to the broker."""
        forget_connection(resource)

    # Upkeep (min_size, keepalive) works on connected connections; acquire
    # still hands out lazy ones, as kombu does.

    def _make_ready(self, resource: PooledConnection) -> None:
        # One attempt per host (failover URLs), no sleeps: upkeep backs off.
        hosts = len(getattr(resource, "alt", None) or ()) or 1
        resource._readying = True
        try:
            resource.ensure_connection(max_retries=hosts - 1)
        finally:
            resource._readying = False

    def _is_ready(self, resource: PooledConnection) -> bool:
        return bool(resource.connected)

    def _keepalive_interval(self) -> float | None:
        intervals = [i for i in (self.keepalive, self._heartbeat_interval) if i is not None]
        if self._blocked is not None:  # read the blocked ones: the unblock is news
            intervals.append(BLOCKED_READ_INTERVAL)
        return min(intervals) if intervals else None

    def _keep_alive(self, resource: PooledConnection) -> None:
        """Read what the broker sent an idle connection (its heartbeats, its
        block or unblock; an error if it is gone) and send ours when due."""
        if resource.connected and resource.supports_heartbeats:
            read_waiting_frames(resource)
            if resource.get_heartbeat_interval():
                resource.heartbeat_check(rate=HEARTBEAT_RATE)
        super()._keep_alive(resource)

    # The broker's block: the connections tell the pool (HearsBlocks), the
    # pool lends nothing meanwhile (SlotPool._block), and keepalive reads
    # the blocked connections, idle or watched, every BLOCKED_READ_INTERVAL.

    def _heard_blocked(self, resource: PooledConnection, reason: str) -> None:
        """``resource`` heard the broker block it."""
        self._block(resource, reason)
        self._replan_upkeep()  # keepalive, for the unblock

    def _heard_unblocked(self, resource: PooledConnection) -> None:
        """``resource`` heard the broker unblock it, or its socket is gone."""
        self._unblock(resource)
        if self._blocked is None:
            self._replan_upkeep()

    def _idle_resources(self) -> list[Any]:
        """The idle connections, and the blocked ones watched for the unblock."""
        return [*super()._idle_resources(), *list(self._blocked_watch.values())]

    def _keep_idle_alive(self, resource: PooledConnection) -> bool:
        """Keep an idle connection alive; read a watched blocked one, and
        close it once the broker unblocked it (or it died)."""
        if self._blocked_watch.get(id(resource)) is not resource:
            return super()._keep_idle_alive(resource)
        try:
            read_waiting_frames(resource)
        except Exception:
            logger.info("greenpools: pool %r closes a blocked connection that died",
                        self.name, exc_info=True)
            resource._forget_block()
        if not resource._broker_blocked:  # unblocked (or dead): its work is done
            self._close_quietly(resource)
        return True

    def close(self) -> None:
        super().close()
        self._close_watched()

    def force_close_all(self, close_pool: bool = True) -> None:
        super().force_close_all(close_pool)
        if close_pool:
            self._close_watched()

    def _close_watched(self) -> None:
        """The pool closed: close the blocked connections it watched."""
        for resource in list(self._blocked_watch.values()):
            self._close_quietly(resource)

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        watched, self._blocked_watch = list(self._blocked_watch.values()), {}
        for resource in watched:  # the parent's
            forget_connection(resource)

    def acquire_channel(self, block: bool = False) -> _ChannelLease:
        """``with pool.acquire_channel() as (connection, channel):`` as in kombu.

        Acquires a connection (``block`` as for :meth:`acquire`, whose errors
        it raises) and gives its default channel; the exit returns the
        connection, or replaces it after a connection error.
        """
        return _ChannelLease(self, block)


def _heartbeat_check_interval(connection: Any) -> float | None:
    """How often a pool of connections like ``connection`` must check heartbeats."""
    heartbeat = getattr(connection, "heartbeat", 0)
    try:
        supported = heartbeat and connection.supports_heartbeats
    except Exception:  # a transport that cannot say: no heartbeats then
        return None
    return float(heartbeat) / HEARTBEAT_RATE if supported else None


class _ChannelLease:
    __slots__ = ("_block", "_conn", "_pool")

    def __init__(self, pool: ConnectionPool, block: bool) -> None:
        self._pool = pool
        self._block = block

    def __enter__(self) -> tuple[PooledConnection, Any]:
        conn = self._conn = self._pool.acquire(block=self._block)
        conn.__enter__()
        try:
            return conn, conn.default_channel
        except BaseException as exc:
            conn.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._conn.__exit__(exc_type, exc, tb)
