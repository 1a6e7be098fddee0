"""kombu's pools (``kombu.pools``) on greenpools' pool algorithm.

A drop-in for ``kombu.pools``: the same classes, groups and functions,
built on :class:`greenpools.Resource`, so every wait yields on the active
backend, waiters are served in order, limits can shrink, and a forked
child starts afresh without touching the parent's sockets.

What the pools hand out are real kombu objects: a ``kombu.Connection``
subclass, a ``kombu.Producer`` subclass, a transport channel.  Their
``release()`` is bound once, when the object is created, and returns the
object to its pool exactly once: a second release is a ``ValueError``.
Leaving a ``with pool.acquire() as obj:`` block releases it, unless the
block raised one of the connection's ``connection_errors`` or
``channel_errors``: then the connection is closed and replaced, so a
broken connection never goes back to the pool (celery #9259).

A limit of 0 (or ``None``) on any of these pools means what it means in
kombu: no pooling, every release closes (a producer is dropped and its
connection given back).
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import functools
import itertools
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kombu.connection import Connection
from kombu.connection import PooledConnection as _KombuPooledConnection
from kombu.exceptions import ChannelLimitExceeded, ConnectionLimitExceeded
from kombu.messaging import Producer as _KombuProducer
from kombu.pools import use_global_limit
from kombu.utils.collections import EqualityDict, eqhash
from kombu.utils.functional import ChannelPromise

from .. import backends
from ..backends.base import native_lock
from ..core import events
from ..core.resource import Resource, check_limit, check_seconds
from ..exceptions import PoolTimeout
from ..forking import fork_guard
from .fork import forget_connection
from .placement import HostSpread, hosts_of

__all__ = [
    "ChannelPool",
    "ConnectionPool",
    "Connections",
    "PoolGroup",
    "PooledConnection",
    "PooledProducer",
    "ProducerPool",
    "Producers",
    "connections",
    "get_limit",
    "producers",
    "register_group",
    "reset",
    "set_limit",
    "use_default_limit",
    "use_global_limit",
]

T = TypeVar("T")

#: Passed as a group's ``limit``: the group's pools follow :func:`set_limit`.
#: The very object kombu uses, so either module's marker works with either.
use_default_limit = use_global_limit

_DEFAULT_LIMIT = 10  # kombu's real default (its docs say 200: kombu #1313)

#: Heartbeat checks per heartbeat interval, as kombu's ``heartbeat_check``
#: and Celery's worker (``broker_heartbeat_checkrate``) do it.
HEARTBEAT_RATE = 2

#: Most frames one keepalive pass reads from an idle connection (heartbeats).
_MAX_IDLE_FRAMES = 100


def _as_connection(connection: Any) -> Any:
    """A ``kombu.Connection`` from a connection or a URL string."""
    if isinstance(connection, str):
        return Connection(connection)
    if not isinstance(connection, Connection):
        raise TypeError(
            f"connection must be a kombu.Connection or a URL string, got {connection!r}"
        )
    return connection


def _pool_label(connection: Any) -> str:
    """``transport://host:port/virtual_host`` of ``connection``, for pool names
    (and so for the metrics' pool-name attribute): no user, no password."""
    try:
        port = f":{connection.port}" if connection.port else ""
        return (f"{connection.transport_cls}://{connection.hostname or 'localhost'}{port}"
                f"/{connection.virtual_host or ''}")
    except Exception:
        return type(connection).__name__


def _is_connection_error(connection: Any, exc: BaseException) -> bool:
    """Whether ``exc`` means ``connection`` (or its channel) is broken."""
    try:
        errors = _errors_of(connection)
    except Exception:  # the transport cannot even say: do not trust it
        return True
    return isinstance(exc, errors)


class _LazyErrors:
    """A pool's ``connection_errors``, worked out on first use (asking needs
    the transport) and settable like the plain attribute it replaces."""

    def __init__(self, compute: Callable[[Any], tuple[type[BaseException], ...]]) -> None:
        self._compute = compute

    def __get__(self, pool: Any, owner: Any = None) -> tuple[type[BaseException], ...]:
        if pool is None:
            return ()
        errors: tuple[type[BaseException], ...] | None = pool.__dict__.get("_connection_errors")
        if errors is None:
            errors = pool.__dict__["_connection_errors"] = self._compute(pool)
        return errors

    def __set__(self, pool: Any, errors: tuple[type[BaseException], ...]) -> None:
        pool.__dict__["_connection_errors"] = tuple(errors)


def _errors_of(connection: Any) -> tuple[type[BaseException], ...]:
    return tuple(connection.connection_errors) + tuple(connection.channel_errors)


def _errors_of_template(pool: Any) -> tuple[type[BaseException], ...]:
    return _errors_of(pool.connection)


def _errors_of_connections(pool: Any) -> tuple[type[BaseException], ...]:
    return tuple(getattr(pool.connections, "connection_errors", ()))


# -- pools of connections and channels ----------------------------------------


class _KombuResource(Resource[T]):
    """What kombu's pools share here: kombu's limit-0 meaning.

    kombu does not pool at all when the limit is 0 or ``None``: each
    acquire makes a resource and each release closes it (Celery's
    ``broker_pool_limit=None`` relies on it).  Here that is one instance
    attribute: ``release`` closes instead of returning, so the pooled fast
    path is untouched.
    """

    def __init__(
        self, limit: int | None, preload: int | None, close_after_fork: bool | None = None,
        **options: Any,
    ) -> None:
        self._set_pooling(bool(limit))
        super().__init__(limit, preload, close_after_fork, **options)

    def _set_pooling(self, pooled: bool) -> None:
        if pooled:
            self.__dict__.pop("release", None)
        else:
            self.release = self._release_unpooled  # type: ignore[method-assign]

    def _release_unpooled(self, resource: T) -> None:
        try:
            self._discard_lent_resource(resource, False)  # done with, not broken
        except ValueError:
            raise ValueError(
                f"resource {resource!r} is not checked out of pool {self.name!r}: "
                f"released twice, or never acquired from it"
            ) from None

    def resize(
        self, limit: int | None, force: bool = False, ignore_errors: bool = False,
        reset: bool = False,
    ) -> None:
        """Change the limit (see :meth:`greenpools.Resource.resize`).

        Going to 0 stops pooling: every existing resource is retired.
        Leaving 0 starts it: the resources lent meanwhile close when they
        come back and do not count against the new limit.
        """
        new_limit = check_limit("limit", limit)
        if bool(new_limit) != bool(self._limit):
            reset = True
        try:
            super().resize(new_limit, force, ignore_errors, reset)
        finally:
            self._set_pooling(bool(self._limit))


class PooledConnection(_KombuPooledConnection):  # type: ignore[misc]
    """A ``kombu.Connection`` that belongs to a :class:`ConnectionPool`.

    ``release()`` returns it to the pool; ``close()`` really closes it.
    As a context manager it releases on exit, or replaces itself when the
    block raised one of its connection or channel errors.
    """

    def release(self) -> None:
        """Return the connection to its pool (once: a second time is a ``ValueError``)."""
        self._pool.release(self)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:  # the common case first: it is on the hot path
            self._pool.release(self)
        elif _is_connection_error(self, exc):
            self._pool.replace(self)
        else:
            self._pool.release(self)


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


class ConnectionPool(_KombuResource[PooledConnection]):
    """A pool of connections made like ``connection`` (a URL works too).

    ``ConnectionPool(connection, limit=None, preload=None, **options)``
    with the options of :class:`greenpools.Resource` (``timeout``,
    ``max_waiting``, ``min_size``, ``max_idle``, ...).  Raises
    ``kombu.exceptions.ConnectionLimitExceeded`` (also a greenpools
    ``LimitExceeded``) when no connection is free and the caller would not
    wait.  A limit of 0 or ``None`` means what it means in kombu: no limit
    and no pooling, each release closes the connection.
    """

    LimitExceeded = ConnectionLimitExceeded
    close_after_fork = True
    connection_errors = _LazyErrors(_errors_of_template)  # type: ignore[assignment]

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
        self.connection = _as_connection(connection)
        self._hosts = HostSpread(
            hosts_of(self.connection), self.placement if placement is None else placement)
        options.setdefault("name", f"connections {_pool_label(self.connection)}")
        self._heartbeat_interval = _heartbeat_check_interval(self.connection)
        super().__init__(limit, preload, **options)

    def new(self) -> PooledConnection:
        # Its release() returns it here: nothing is bound per acquire.
        info = dict(self.connection._info(resolve=False))
        # kombu's publish(retry_policy=...) writes into this dict: one each.
        info["transport_options"] = dict(info.get("transport_options") or {})
        info = self._hosts.place(info)
        conn: PooledConnection = self.Connection(self, **info)
        return conn

    def close_resource(self, resource: PooledConnection) -> None:
        _bound_close_waits(resource)
        resource._close()

    def collect_resource(self, resource: PooledConnection, socket_timeout: float = 0.1) -> None:
        resource.collect(socket_timeout)

    def forget_resource(self, resource: PooledConnection) -> None:
        forget_connection(resource)

    # Upkeep (min_size, keepalive) works on connected connections; acquire
    # still hands out lazy ones, as kombu does.

    def _make_ready(self, resource: PooledConnection) -> None:
        # One attempt per host (failover URLs), no sleeps: upkeep backs off.
        hosts = len(getattr(resource, "alt", None) or ()) or 1
        resource.ensure_connection(max_retries=hosts - 1)

    def _is_ready(self, resource: PooledConnection) -> bool:
        return bool(resource.connected)

    def _keepalive_interval(self) -> float | None:
        intervals = [i for i in (self.keepalive, self._heartbeat_interval) if i is not None]
        return min(intervals) if intervals else None

    def _keep_alive(self, resource: PooledConnection) -> None:
        """Read what the broker sent an idle connection (its heartbeats; an
        error if it is gone) and send ours when due."""
        if resource.connected and resource.supports_heartbeats:
            for _ in range(_MAX_IDLE_FRAMES):
                try:
                    resource.drain_events(timeout=0)
                except TimeoutError:
                    break
            if resource.get_heartbeat_interval():
                resource.heartbeat_check(rate=HEARTBEAT_RATE)
        super()._keep_alive(resource)

    def acquire_channel(self, block: bool = False) -> _ChannelLease:
        """``with pool.acquire_channel() as (connection, channel):`` as in kombu."""
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
        try:
            return conn, conn.default_channel
        except BaseException as exc:
            conn.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._conn.__exit__(exc_type, exc, tb)


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


class _PooledChannelMixin:
    _greenpools_pool: ChannelPool

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.release()  # type: ignore[attr-defined]
        elif isinstance(exc, self._greenpools_pool.connection_errors):
            self._greenpools_pool.replace(self)
        else:
            self.release()  # type: ignore[attr-defined]


class ChannelPool(_KombuResource[Any]):
    """A pool of channels of one connection (``connection.ChannelPool``).

    Raises ``kombu.exceptions.ChannelLimitExceeded`` (also a greenpools
    ``LimitExceeded``) when no channel is free and the caller would not
    wait.  In a forked child the pool also drops the parent's socket under
    ``connection``, which then reconnects on first use.  A limit of 0 or
    ``None`` means what it means in kombu: no limit and no pooling, each
    release closes the channel.
    """

    LimitExceeded = ChannelLimitExceeded
    close_after_fork = True
    connection_errors = _LazyErrors(_errors_of_template)  # type: ignore[assignment]

    def __init__(
        self, connection: Any, limit: int | None = None, preload: int | None = None,
        **options: Any,
    ) -> None:
        self.connection = _as_connection(connection)
        options.setdefault("name", f"channels {_pool_label(self.connection)}")
        super().__init__(limit, preload, **options)

    def new(self) -> Any:
        channel = self.connection.channel()
        try:
            channel.__class__ = _pooled_channel_class(type(channel))
            channel._greenpools_pool = self
            channel.release = functools.partial(self.release, channel)
        except (TypeError, AttributeError):  # a channel type that refuses: plain then
            pass
        return channel

    def close_resource(self, resource: Any) -> None:
        resource.close()


    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        if self.close_after_fork:
            try:
                forget_connection(self.connection)
            except Exception:  # pragma: no cover - must not kill the child, nor log here
                pass


# -- producers -------------------------------------------------------------------


class _PooledProducerMixin:
    """``release()`` and ``__exit__`` for pooled producers: back to the pool,
    or replaced after a connection error."""

    _pool: ProducerPool

    def release(self) -> None:
        """Return the producer and its connection (once: a second time is a ``ValueError``)."""
        self._pool.release(self)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self._pool.release(self)
        else:
            self._pool._release_after_error(self, exc)


class PooledProducer(_PooledProducerMixin, _KombuProducer):  # type: ignore[misc]
    """A ``kombu.Producer`` that belongs to a :class:`ProducerPool`."""


_pooled_producer_classes: dict[type, type] = {_KombuProducer: PooledProducer}


def _pooled_producer_class(cls: type) -> type:
    pooled = _pooled_producer_classes.get(cls)
    if pooled is None:
        if issubclass(cls, _PooledProducerMixin):
            pooled = cls
        else:
            pooled = type(cls.__name__, (_PooledProducerMixin, cls),
                          {"__module__": cls.__module__})
        _pooled_producer_classes[cls] = pooled
    return pooled


class ProducerPool(_KombuResource[Any]):
    """A pool of ``kombu.Producer`` on the connections of a connection pool.

    ``ProducerPool(connections, limit=None, Producer=None, **options)``;
    kombu's positional ``(connections, limit, preload, close_after_fork)``
    works too.  ``Producer`` is any callable, as in kombu (a class, a
    ``functools.partial``, a method of a subclass), called with the
    channel ``None`` whenever a producer is made, so setting
    ``pool.Producer`` later applies to the producers made after.  A
    producer holds a connection only while lent: ``acquire`` takes one
    from ``connections`` and ``release`` returns both.  An idle
    producer stays bound to the channel it last used, and when its
    connection comes back on the next acquire (the warmest one usually
    does) it is not revived again.  If taking the connection or binding to
    it fails, the connection goes back and the producer too: nothing leaks
    (celery #1009).  A limit of 0 or ``None`` means what it means in kombu:
    no limit and no pooling, each release drops the producer (its
    connection goes back to ``connections`` either way).
    """

    Producer: Callable[..., Any] = _KombuProducer
    close_after_fork = True
    connection_errors = _LazyErrors(_errors_of_connections)  # type: ignore[assignment]

    def __init__(
        self, connections: Any, limit: int | None = None, preload: Any = None,
        close_after_fork: bool | None = None, Producer: Callable[..., Any] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(preload, type):  # ProducerPool(connections, limit, Producer)
            Producer, preload = preload, None
        if not callable(getattr(connections, "acquire", None)):
            raise TypeError(f"connections must be a connection pool, got {connections!r}")
        self.connections = connections
        if Producer is not None:
            if not callable(Producer):
                raise TypeError(f"Producer must be callable, got {Producer!r}")
            self.Producer = Producer
        template = getattr(connections, "connection", None)
        if template is not None:
            options.setdefault("name", f"producers {_pool_label(template)}")
        super().__init__(limit, preload, close_after_fork, **options)

    def create_producer(self) -> Any:
        """A new producer, not bound to any connection yet.

        ``acquire`` binds it (``revive``) to the connection it takes, so
        making a producer never waits for a connection nor holds one.
        """
        factory = self.Producer
        if isinstance(factory, type):
            return _pooled_producer_class(factory)(None)
        return factory(None)

    def new(self) -> Any:
        producer = self.create_producer()
        producer._pool = self  # its release() returns it here
        if not isinstance(producer, _PooledProducerMixin):
            # Made by a factory that is not a class: bind release on the
            # object, as kombu does for every resource it lends.
            producer.release = functools.partial(self.release, producer)
        return producer

    def acquire(self, block: bool = False, timeout: float | None = None) -> Any:
        """A producer bound to a connection from ``connections``.

        ``block`` and ``timeout`` cover both waits: for a producer, then
        for a connection within what is left of ``timeout``.  With ``block``
        false neither waits (kombu's would block for the connection): a
        connection pool at its limit raises its ``LimitExceeded``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        producer = Resource.acquire(self, block, timeout)
        try:
            conn = self.connections.acquire(
                block, None if deadline is None else max(0.0, deadline - time.monotonic())
            )
        except BaseException as exc:
            self._give_back(producer)
            if isinstance(exc, PoolTimeout) and timeout:
                # Say the caller's timeout, not the part left for this wait.
                source = getattr(self.connections, "name", self.connections)
                raise type(exc)(
                    f"pool {self.name!r}: no connection of pool {source!r} became free "
                    f"within {timeout:g} s"
                ) from exc
            raise
        channel = producer._channel
        if conn is not producer.__connection__ or (
            channel is not conn._default_channel and type(channel) is not ChannelPromise
        ):
            try:
                producer.revive(conn)
            except BaseException:
                conn.release()
                Resource.replace(self, producer)  # half revived: not to be reused
                raise
        return producer

    def release(self, resource: Any, /) -> None:
        """Return a producer and the connection it holds."""
        conn = resource.__connection__
        Resource.release(self, resource)  # refuses a second release first
        if conn is not None:
            conn.release()

    def _release_unpooled(self, resource: Any) -> None:
        conn = resource.__connection__
        _KombuResource._release_unpooled(self, resource)
        if conn is not None:
            conn.release()

    def _give_back(self, producer: Any) -> None:
        """Return a producer that holds no connection."""
        if self._limit:
            Resource.release(self, producer)
        else:
            _KombuResource._release_unpooled(self, producer)

    def replace(self, resource: Any) -> None:
        """Discard a lent producer and replace its (broken) connection."""
        conn = resource.__connection__
        Resource.replace(self, resource)  # refuses a producer not lent first
        if conn is not None:
            pool = getattr(conn, "_pool", None)
            if pool is not None:
                pool.replace(conn)
            else:
                conn.release()

    def _release_after_error(self, producer: Any, exc: BaseException) -> None:
        conn = producer.__connection__
        if conn is None or not _is_connection_error(conn, exc):
            self.release(producer)
        else:
            self.replace(producer)


    def close_resource(self, resource: Any) -> None:
        # Idle producers hold no connection; lent ones give theirs back on
        # release, so there is nothing to close.
        pass

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until ``min_size`` producers exist and ``connections`` is
        ready too (its own ``min_size`` connections connected): producers
        hold no connection while idle, so a producer pool's ``min_size``
        makes producers only.  Raises :class:`greenpools.PoolTimeout`."""
        timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        Resource.wait(self, timeout)
        wait = getattr(self.connections, "wait", None)
        if callable(wait):
            wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def forget_resource(self, resource: Any) -> None:
        pass


# -- groups ------------------------------------------------------------------------


_live_groups: list[weakref.ref[PoolGroup]] = []


def _forget_group_ref(ref: weakref.ref[PoolGroup]) -> None:
    try:
        _live_groups.remove(ref)
    except ValueError:  # pragma: no cover - already pruned after a fork
        pass


class PoolGroup(EqualityDict):  # type: ignore[misc]
    """A mapping from connection parameters to pools, made on first use.

    Keys are ``kombu.Connection`` objects or URL strings; connections with
    equal parameters share one pool.  Creation is race free under threads
    and green threads: one caller creates, the others wait for it (never
    under a lock: creating may do I/O).  ``limit`` may be
    :data:`use_global_limit`; the other keyword options go to every pool
    the group creates.  With ``close_after_fork`` (the default) a forked
    child starts with the group empty.
    """

    def __init__(self, limit: Any = None, close_after_fork: bool = True, **options: Any) -> None:
        super().__init__()
        self.limit = limit
        self.close_after_fork = close_after_fork
        self.options = options
        self._mutex = native_lock()
        self._creating: dict[Any, list[backends.Waiter]] = {}
        self._url_keys: dict[str, tuple[Any, Any]] = {}
        _live_groups.append(weakref.ref(self, _forget_group_ref))

    # A group is a registry, not a value: two groups are never equal just
    # because both are empty (``_groups.remove(group)`` must remove that one).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def create(self, resource: Any, limit: int | None) -> Any:
        """Make the pool for ``resource`` (subclasses implement this)."""
        raise NotImplementedError("PoolGroup subclasses must implement create(resource, limit)")

    def _key(self, resource: Any) -> tuple[Any, Any]:
        """The dictionary key for ``resource``, and ``resource`` as a connection."""
        if isinstance(resource, str):
            known = self._url_keys.get(resource)
            if known is None:
                conn = Connection(resource)
                known = self._url_keys[resource] = (eqhash(conn), conn)
            return known
        return eqhash(resource), resource

    def __getitem__(self, resource: Any) -> Any:
        key, resource = self._key(resource)
        pool = dict.get(self, key)  # not dict.__getitem__: it calls __missing__(key)
        if pool is None:
            return self.__missing__(resource)
        return pool

    def __setitem__(self, resource: Any, pool: Any) -> None:
        dict.__setitem__(self, self._key(resource)[0], pool)

    def __delitem__(self, resource: Any) -> None:
        dict.__delitem__(self, self._key(resource)[0])

    def __contains__(self, resource: object) -> bool:
        return dict.__contains__(self, self._key(resource)[0])

    def get(self, resource: Any, default: Any = None) -> Any:
        return dict.get(self, self._key(resource)[0], default)

    def __missing__(self, resource: Any) -> Any:
        key, resource = self._key(resource)
        while True:
            with self._mutex:
                pool = dict.get(self, key)
                if pool is not None:
                    return pool
                waiters = self._creating.get(key)
                if waiters is None:
                    self._creating[key] = []
                    break
                waiter = backends.current().waiter()
                waiters.append(waiter)
            waiter.wait(None)  # the creator finished (or failed): look again
        try:
            limit = self.limit
            if limit is use_global_limit:
                limit = get_limit()
            pool = self.create(resource, limit)
            events.joined_group(pool, self)
            with self._mutex:
                dict.__setitem__(self, key, pool)
        finally:
            with self._mutex:
                waiters = self._creating.pop(key, [])
            for waiter in waiters:
                waiter.wake()
        return pool

    def clear(self) -> None:
        dict.clear(self)
        self._url_keys.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} limit={self.limit!r} pools={len(self)}>"

    def _after_fork_in_child(self) -> None:
        self._mutex = native_lock()
        self._creating = {}
        if self.close_after_fork:
            dict.clear(self)  # the pools themselves reset on their own


events.accept_group_type(PoolGroup)


class Connections(PoolGroup):
    """A group of :class:`ConnectionPool`, one per connection parameters."""

    def create(self, connection: Any, limit: int | None) -> ConnectionPool:
        return ConnectionPool(connection, limit, **self.options)


class Producers(PoolGroup):
    """A group of :class:`ProducerPool`, one per connection parameters.

    Producers take their connections from ``connections`` (a
    :class:`Connections` group; default: the global :data:`connections`).
    """

    def __init__(
        self, limit: Any = None, close_after_fork: bool = True,
        connections: Connections | None = None, **options: Any,
    ) -> None:
        super().__init__(limit, close_after_fork, **options)
        self.connections = connections

    def create(self, connection: Any, limit: int | None) -> ProducerPool:
        group = self.connections if self.connections is not None else connections
        return ProducerPool(group[connection], limit=limit, **self.options)


# -- the global groups and limit -------------------------------------------------


_groups: list[PoolGroup] = []
_limit = _DEFAULT_LIMIT


G = TypeVar("G", bound=PoolGroup)


def register_group(group: G) -> G:
    """Put ``group`` under :func:`set_limit` and :func:`reset` (a decorator too)."""
    _groups.append(group)
    return group


connections = register_group(Connections(limit=use_global_limit))
producers = register_group(Producers(limit=use_global_limit))


def _all_pools() -> Iterator[Any]:
    return itertools.chain.from_iterable(list(group.values()) for group in list(_groups))


def get_limit() -> int:
    """The global limit of the pools in registered groups (default 10)."""
    return _limit


def set_limit(
    limit: int | None, force: bool = False, reset_after: bool = False,
    ignore_errors: bool = False,
) -> int:
    """Set the global limit and resize every pool of every registered group.

    Shrinking works while connections are in use: idle ones over the new
    limit close now, busy ones when they come back.  ``force`` makes the
    limit hold at once, as in :meth:`greenpools.Resource.resize`: it is
    applied even when it equals the current one (bringing pools that
    drifted back in line), and a pool with more connections in use than
    the limit retires them all (they close when they come back and stop
    counting at once); ``reset_after`` also retires every existing connection
    (idle ones close now, busy ones on return) so that all are made anew;
    ``ignore_errors`` swallows errors from closing.  Every pool gets the new
    limit before any error is raised, so the pools and the global limit
    never disagree.  Returns the limit.
    """
    global _limit
    new_limit = check_limit("limit", limit)
    if new_limit == _limit and not (force or reset_after):
        return new_limit
    pools = list(_all_pools())
    for pool in pools:  # refuse before changing anything
        min_size = getattr(pool, "min_size", 0)
        if new_limit and min_size > new_limit:
            raise ValueError(
                f"limit must not be below min_size {min_size} of pool {pool!r}, got {limit!r}"
            )
    _limit = new_limit
    errors: list[Exception] = []
    for pool in pools:
        try:
            pool.resize(new_limit, force=force, ignore_errors=ignore_errors, reset=reset_after)
        except Exception as exc:
            errors.append(exc)
    if errors and not ignore_errors:
        raise errors[0]
    return new_limit


def reset(*args: Any, **kwargs: Any) -> None:
    """Close every pool of every registered group and empty the groups.

    Connections in use are closed under their users' feet, as in kombu.
    """
    for pool in list(_all_pools()):
        try:
            pool.force_close_all()
        except Exception:
            pass
    for group in list(_groups):
        group.clear()


@fork_guard.after_fork_in_child
def _reset_groups_in_child() -> None:
    alive = []
    for ref in _live_groups:
        group = ref()
        if group is not None:
            group._after_fork_in_child()
            alive.append(ref)
    _live_groups[:] = alive


# The public path of these classes is greenpools.pools (the same module object,
# see greenpools/pools.py): their reprs, pickles and logs keep saying so.
for _public in (ConnectionPool, ChannelPool, ProducerPool, PooledConnection, PooledProducer,
                PoolGroup, Connections, Producers):
    _public.__module__ = "greenpools.pools"
del _public
