"""What the kombu pools share: kombu's meaning of limit 0, and which errors
mean a broken connection.

kombu does not pool when a limit is 0 or ``None``: :class:`KombuResource`
is :class:`greenpools.Resource` with that meaning, and the connection,
channel and producer pools (:mod:`~greenpools.kombu.connections`,
:mod:`~greenpools.kombu.channels`, :mod:`~greenpools.kombu.producers`) all
build on it.  The helpers here are the other things more than one of them
needs: a connection from a URL, a pool's name from its connection, and
whether an exception means a connection is broken (then it is replaced,
never pooled again: celery #9259).  One module, so those three share one
text of each without importing one another.
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kombu.connection import Connection

from ..core.options import check_limit
from ..core.resource import Resource
from ..core.slotpool import skip_frames_of
from ..exceptions import NotCheckedOut, is_interruption, not_checked_out

T = TypeVar("T")


class SelfLeasing:
    """What the pools lend is its own context manager (kombu's connections,
    channels and producers): ``with pool.acquire() as conn:``.

    kombu code often releases inside that block too (``conn.release()``).
    The exit must then end nothing, even when the object has been lent
    again meanwhile, to another task.  So the object counts the blocks open
    on it, a release by hand inside one is noted on the pool for the task
    that made it, and that task's exit finds the note and does nothing.
    An exit that finds the object no longer lent (``pool.release(conn)`` or
    ``pool.replace(conn)`` inside the block; kombu's ``Producer.__exit__``
    replaces its pooled connection on any error) ends nothing either: it
    must not hide the error it is unwinding with a ``NotCheckedOut``.  If
    the pool lent the object again meanwhile, that exit ends the other
    task's lease: only a release by hand (``conn.release()``) is noted.
    Blocks without such a release pay a counter and one test, written
    into each ``__exit__`` (``_open_withs -= 1``, then
    :meth:`_released_in_block` only while the pool holds notes): a method
    call there would cost the common exit more than the rest of it.
    """

    _open_withs = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # An attribute of the instance from the start, not added at the first
        # ``with``: adding one later makes CPython's attribute access slower.
        self._open_withs = 0
        super().__init__(*args, **kwargs)

    def _lending_pool(self) -> KombuResource[Any]:
        """The pool this object was lent by."""
        return self._pool  # type: ignore[attr-defined, no-any-return]

    def release(self) -> None:
        """Return it to its pool (once: a second time is a ``ValueError``,
        unless a pooling pool has dropped it since, as after ``replace``)."""
        pool = self._lending_pool()
        try:
            pool.release(self)
        except NotCheckedOut:
            # Replaced or closed meanwhile: kombu's Producer replaces its
            # pooled connection on any error, and kombu code then releases
            # it.  Without pooling every release drops the object, so there
            # a second one cannot be told from that and is refused.
            if not pool._limit or pool._holds(self):
                raise
            return
        if self._open_withs > 0:  # inside a block: its exit must end nothing
            pool._ended_in_with.add((id(self), pool._backend.current_task()))

    def __enter__(self) -> Any:
        self._open_withs += 1
        return self

    def _refused_at_exit(self, refused: NotCheckedOut) -> None:
        """An exit's release or replace was refused: nothing to end if this
        very object is back already (ended inside the block); a refusal about
        another object (the producer's connection, given back by hand) is a
        real mistake, and raised."""
        if refused.resource_id != id(self):
            raise refused

    def _released_in_block(self, pool: KombuResource[Any]) -> bool:
        """At ``__exit__``, while the pool holds notes: whether this task
        released by hand inside the block (the note is used up)."""
        key = (id(self), pool._backend.current_task())
        if key in pool._ended_in_with:
            pool._ended_in_with.discard(key)
            return True
        return False


def as_connection(connection: Any) -> Any:
    """A ``kombu.Connection`` from a connection or a URL string."""
    if isinstance(connection, str):
        return Connection(connection)
    if not isinstance(connection, Connection):
        raise TypeError(
            f"connection must be a kombu.Connection or a URL string, got {connection!r}"
        )
    return connection


def pool_label(connection: Any) -> str:
    """``transport://host:port/virtual_host`` of ``connection``, for pool names
    (and so for the metrics' pool-name attribute): no user, no password."""
    try:
        port = f":{connection.port}" if connection.port else ""
        return (f"{connection.transport_cls}://{connection.hostname or 'localhost'}{port}"
                f"/{connection.virtual_host or ''}")
    except Exception:
        return type(connection).__name__


def is_connection_error(connection: Any, exc: BaseException) -> bool:
    """Whether ``exc`` means ``connection`` (or its channel) is broken, or
    may be: an interruption (``greenpools.exceptions.is_interruption``)
    can stop a write mid-frame, and the broker would then read the next
    publish on that socket as the rest of the cut one."""
    if is_interruption(exc):
        return True
    try:
        errors = errors_of(connection)
    except Exception:  # the transport cannot even say: do not trust it
        return True
    return isinstance(exc, errors)


class LazyErrors:
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


def errors_of(connection: Any) -> tuple[type[BaseException], ...]:
    """The errors ``connection``'s transport declares: its connection and
    channel errors (asking loads the transport)."""
    return tuple(connection.connection_errors) + tuple(connection.channel_errors)


def errors_of_template(pool: Any) -> tuple[type[BaseException], ...]:
    return errors_of(pool.connection)


class KombuResource(Resource[T]):
    """What kombu's pools share here: kombu's limit-0 meaning.

    kombu does not pool at all when the limit is 0 or ``None``: each
    acquire makes a resource and each release closes it (Celery's
    ``broker_pool_limit=None`` relies on it).  Here that is one instance
    attribute: ``release`` closes instead of returning, so the pooled fast
    path is untouched.  ``limit`` reads ``None`` when it was given as
    ``None``, as kombu's pools keep it.
    """

    #: Whether the limit was last given as None (``limit`` then reads None).
    _limit_none = False

    def __init__(
        self, limit: int | None, preload: int | None, close_after_fork: bool | None = None,
        **options: Any,
    ) -> None:
        self._set_pooling(bool(limit))
        self._limit_none = limit is None
        super().__init__(limit, preload, close_after_fork, **options)

    @property  # type: ignore[override]  # kombu's: None as given, not only an int
    def limit(self) -> int | None:
        """How many resources may be lent and idle at once; 0, or ``None``
        when given as ``None`` (kombu keeps the value given), means no limit
        and no pooling.

        Setting it is :meth:`resize` with the new limit, and raises what
        that raises.
        """
        return None if self._limit_none and not self._limit else self._limit

    @limit.setter
    def limit(self, limit: int | None) -> None:
        self.resize(limit)


    def _set_pooling(self, pooled: bool) -> None:
        if pooled:
            self.__dict__.pop("release", None)
        else:
            self.release = self._release_unpooled  # type: ignore[method-assign]

    def _release_unpooled(self, resource: T) -> None:
        try:
            self._discard_lent_resource(resource, False)  # done with, not broken
        except NotCheckedOut:
            raise not_checked_out(
                resource, self.name, "released twice, or never acquired from it") from None

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
            if self._limit == new_limit:  # it took: read back as it was given
                self._limit_none = limit is None


# The kombu pools' own frames are left out of leak reports, as the core's are.
skip_frames_of(*(f"greenpools.kombu.{name}" for name in (
    "base", "connections", "channels", "producers", "groups", "pools")))
