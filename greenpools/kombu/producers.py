"""Pools of kombu producers: :class:`ProducerPool` and what it lends,
:class:`PooledProducer`.

A producer pool pools producers, not connections: an idle producer has
given its connection back, and ``acquire`` binds it to one borrowed from
a connection pool for as long as it is lent.  That pairing is this
module: both waits under the caller's one timeout, both given back on
release, and a broken connection replaced together with its producer.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from kombu.messaging import Producer as _KombuProducer
from kombu.utils.functional import ChannelPromise

from ..core.resource import Resource, check_seconds
from ..core.slotpool import SlotPool
from ..exceptions import ConnectionBlocked, NotCheckedOut, PoolTimeout
from .base import KombuResource, LazyErrors, SelfLeasing, is_connection_error, pool_label


def _errors_of_connections(pool: Any) -> tuple[type[BaseException], ...]:
    return tuple(getattr(pool.connections, "connection_errors", ()))


def _check_producer(factory: Any) -> Any:
    """``factory`` if it can make producers (is callable), or a clear error."""
    if not callable(factory):
        raise TypeError(f"Producer must be callable, got {factory!r}")
    return factory


class _PooledProducerMixin(SelfLeasing):
    """``release()`` and ``__exit__`` for pooled producers: back to the pool,
    or replaced after a connection error; after a ``release()`` inside the
    block the exit does nothing."""

    _pool: ProducerPool

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        """kombu's ``publish``, refused with :class:`~greenpools.NotCheckedOut`
        once the producer is back in its pool: its connection may be another
        task's by then, and the two tasks' frames would mix on one channel
        (kombu's pool sets the channel to ``None``).  Checked here, once a
        publish, so that the pool's acquire and release pay nothing."""
        pool = self._pool
        key = id(self)  # retired while lent (a reset, a force-close): still its holder's
        if pool._lease_of(self) < 0 and key not in pool._retiring and key not in pool._retired:
            raise NotCheckedOut(
                f"producer {self!r} is not checked out of pool {pool.name!r}: it was "
                f"released, and its connection may be another task's now; acquire one again")
        return super().publish(*args, **kwargs)  # type: ignore[misc]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._open_withs -= 1
        pool = self._pool
        if pool._ended_in_with and self._released_in_block(pool):
            return
        try:
            if exc_type is None:
                pool.release(self)
            else:
                pool._release_after_error(self, exc)
        except NotCheckedOut as refused:
            self._refused_at_exit(refused)


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


class ProducerPool(KombuResource[Any]):
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
    does) it is not revived again.  If taking the connection fails, the
    producer goes back; if binding to it fails, the connection goes back
    and the half-bound producer is discarded: nothing leaks (celery
    #1009).  A limit of 0 or ``None`` means what it means in kombu:
    no limit and no pooling, each release drops the producer (its
    connection goes back to ``connections`` either way).

    Raises ``TypeError`` when ``connections`` is not a connection pool or
    ``Producer`` is not callable, and the errors of
    :class:`greenpools.Resource` for a bad option.
    """

    Producer: Callable[..., Any] = _KombuProducer
    close_after_fork = True
    _creator = "Producer"
    connection_errors = LazyErrors(_errors_of_connections)  # type: ignore[assignment]

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
            self.Producer = _check_producer(Producer)
        template = getattr(connections, "connection", None)
        if template is not None:
            options.setdefault("name", f"producers {pool_label(template)}")
        super().__init__(limit, preload, close_after_fork, **options)

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_options(options)
        if options.get("Producer") is not None:
            checked["Producer"] = _check_producer(options["Producer"])
        return checked

    def prepare(self, p: Any) -> Any:
        """Called by :meth:`acquire` once ``p`` holds the connection it took;
        returns what ``acquire`` hands out.

        As in kombu, a subclass may override it, call ``p =
        super().prepare(p)`` and then use the bound producer (declare an
        exchange, say); the producer holds the connection by then.  Here it
        returns ``p`` as it is, bound by ``acquire`` (with its ``block``
        and ``timeout``); a producer bound to no channel is bound to a
        connection from ``connections`` first, waiting as long as it takes,
        as kombu's does.  If an override raises, or returns an object the
        pool holds already (``ValueError``), the producer and its
        connection go back (both replaced after a connection error).
        """
        if p._channel is None:
            conn = self.connections.acquire(block=True)
            try:
                p.revive(conn)
            except BaseException:
                conn.release()
                raise
        return p

    def _set_hook_flags(self) -> None:
        # The core hands a producer out before acquire binds it to a
        # connection, so the core runs no prepare (_core_hook): an overridden
        # one (on the class or on the pool) runs after the binding, in
        # _acquire_prepared, which is then this pool's acquire.  A pool
        # without one keeps the plain acquire: not even a test on its path.
        super()._set_hook_flags()
        if type(self).prepare is ProducerPool.prepare and "prepare" not in self.__dict__:
            self.__dict__.pop("acquire", None)
        else:
            self.acquire = self._acquire_prepared  # type: ignore[method-assign]

    def _core_hook(self, name: str) -> Any:
        return None if name == "prepare" else super()._core_hook(name)

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
        """A new producer (:meth:`create_producer`) whose ``release()``
        returns it to this pool; :meth:`acquire` binds it to a connection."""
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
        connection pool at its limit raises its ``LimitExceeded``.  While the
        broker blocks the connections, either wait that runs out raises
        :class:`greenpools.ConnectionBlocked`.

        A :meth:`prepare` overridden by a subclass or on the pool runs
        last, on the bound producer, as kombu's does.

        Raises what :meth:`greenpools.Resource.acquire` raises, for either
        wait (a connection wait that runs out names the caller's whole
        ``timeout``), what binding the producer to the connection raised,
        and what an overridden :meth:`prepare` raised; in every case
        nothing stays taken.
        """
        deadline = None
        if timeout is not None and block:  # without block, kombu ignores a timeout
            timeout = check_seconds("timeout", timeout)
            deadline = time.monotonic() + timeout  # type: ignore[operator]  # a number in, a number out
        try:
            producer = Resource.acquire(self, block, timeout)
        except PoolTimeout as exc:
            blocked = getattr(self.connections, "_blocked", None)
            if blocked is None:
                raise
            # Waiting behind callers held by the blocked connection pool.
            raise self._connection_blocked(
                f"pool {self.name!r}: the broker has blocked the connections of pool "
                f"{self.connections.name!r} ({blocked}); no producer was free"
            ) from exc
        try:
            conn = self.connections.acquire(
                block, None if deadline is None else max(0.0, deadline - time.monotonic())
            )
        except BaseException as exc:
            self._give_back(producer)
            if isinstance(exc, PoolTimeout) and not isinstance(exc, ConnectionBlocked) and timeout:
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

    def _acquire_prepared(self, block: bool = False, timeout: float | None = None) -> Any:
        """:meth:`acquire` (a subclass's, if it has one), then an overridden
        :meth:`prepare` on the producer bound to its connection: what that
        returns takes the producer's place."""
        producer = type(self).acquire(self, block, timeout)
        try:
            prepared = self.prepare(producer)
            if prepared is not producer:
                SlotPool._adopt_prepared(self, self._slots[id(producer)], prepared)
        except BaseException as exc:
            self._release_after_error(producer, exc)
            raise
        return prepared

    def release(self, resource: Any, /) -> None:
        """Return a producer and the connection it holds.

        Raises ``ValueError`` (and changes nothing) when ``resource`` is not
        lent by this pool now: released twice, or never acquired.
        """
        conn = resource.__connection__
        Resource.release(self, resource)  # refuses a second release first
        if conn is not None:
            conn.release()

    def _release_unpooled(self, resource: Any) -> None:
        conn = resource.__connection__
        KombuResource._release_unpooled(self, resource)
        if conn is not None:
            conn.release()

    def _give_back(self, producer: Any) -> None:
        """Return a producer that holds no connection."""
        if self._limit:
            Resource.release(self, producer)
        else:
            KombuResource._release_unpooled(self, producer)

    def replace(self, resource: Any) -> None:
        """Discard a lent producer and replace its (broken) connection.

        Raises ``ValueError`` (and changes nothing) when ``resource`` is not
        lent by this pool now.
        """
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
        if conn is None or not is_connection_error(conn, exc):
            self.release(producer)
        else:
            self.replace(producer)

    def close_resource(self, resource: Any) -> None:
        """Nothing to close: a producer holds a connection only while lent."""
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
        """Nothing to drop in a forked child: a producer owns no socket (its
        connection pool drops the parent's)."""
        pass
