"""Pool groups: mappings from connection parameters to pools, each pool
made on first use.

:class:`PoolGroup` is kombu's ``PoolGroup``: ``group[connection]`` finds
or makes the pool for the connection's parameters, one creator at a time
and never under a lock (making a pool may connect).  :class:`Connections`
and :class:`Producers` are its two kinds.

The global state the groups follow lives in :mod:`greenpools.kombu.pools`
(public as ``greenpools.pools``), which hands itself over
(:func:`follow`) rather than being imported here, and they read it there
each time they make a pool: a group whose ``limit`` is ``use_global_limit`` takes
``get_limit()``, a :class:`Producers` group without connections of its
own takes them from the global ``connections``.  So whatever is set on
that module, through either name, applies here.  In a forked child every
group with ``close_after_fork`` starts empty.

A group checks its ``limit`` and ``options`` as its pools would, when they
are given and whenever they change (:class:`GroupOptions`), so that a bad
option fails where it is set, naming the group, and not at the first pool
the group makes (in a service: at the first publish of a request).
"""

# kombu's functions are mostly untyped.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import inspect
import weakref
from collections.abc import Collection, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from kombu.connection import Connection
from kombu.utils.collections import EqualityDict, eqhash

from .. import backends
from ..backends.base import native_lock
from ..core import events
from ..core.options import check_names, option_names
from ..core.resource import Resource
from ..exceptions import PoolClosed
from ..forking import fork_guard
from .connections import ConnectionPool
from .producers import ProducerPool

_live_groups: list[weakref.ref[PoolGroup]] = []
_MISSING = object()


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

    A group whose :attr:`pool_class` is set (:class:`Connections`,
    :class:`Producers`) checks ``limit`` and ``options`` as that class
    does, when they are given and whenever they change, and raises its
    ``TypeError`` or ``ValueError`` naming the group
    (``Connections(): timeout must be a number of seconds or None, got
    'x'``); an unknown option is a ``TypeError`` too.

    As in kombu, the group stores and returns whatever :meth:`create`
    returns.  What only greenpools pools have (listeners and metrics
    through the group, :meth:`drain`, the ``force`` and ``reset_after`` of
    :func:`~greenpools.pools.set_limit`) applies to those; anything else
    a subclass's ``create`` returns (kombu's own pools, say) is left to
    kombu's ways.
    """

    #: The class of the pools the group makes, whose checks its ``limit`` and
    #: ``options`` pass; ``None`` (a group whose ``create`` makes something
    #: else): they are not checked.
    pool_class: type[Any] | None = None

    def __init__(self, limit: Any = None, close_after_fork: bool = True, **options: Any) -> None:
        super().__init__()
        # Its own parameters too, for the nearest name to a misspelt one.
        own = inspect.signature(type(self).__init__).parameters.values()
        self._check(f"{type(self).__name__}()", limit, options, {
            p.name for p in own if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)})
        self._limit = limit
        self.close_after_fork = close_after_fork
        self._options = GroupOptions(self, options)
        self._mutex = native_lock()
        self._creating: dict[Any, list[backends.Waiter]] = {}
        self._url_keys: dict[str, Any] = {}  # URL -> its key
        _live_groups.append(weakref.ref(self, _forget_group_ref))

    @property
    def limit(self) -> Any:
        """The limit of the pools the group makes from now on (the pools it
        made keep theirs): an int, ``None`` or :data:`use_global_limit`."""
        return self._limit

    @limit.setter
    def limit(self, limit: Any) -> None:
        self._check(f"{type(self).__name__}.limit", limit, self._options)
        self._limit = limit

    @property
    def options(self) -> GroupOptions:
        """The keyword options the group passes to each pool it makes from
        now on: a mapping that checks every change (see :class:`GroupOptions`);
        setting it to another mapping checks that one."""
        return self._options

    @options.setter
    def options(self, options: Mapping[str, Any]) -> None:
        self._check(f"{type(self).__name__}.options", self._limit, options)
        self._options = GroupOptions(self, options)

    def _check(
        self, where: str, limit: Any, options: Mapping[str, Any], own: Collection[str] = (),
    ) -> None:
        """Refuse ``limit`` and ``options`` as :attr:`pool_class` would, the
        error naming ``where`` (``"Connections()"``); ``own``: the names the
        group's constructor takes itself."""
        pool_class = self.pool_class
        if pool_class is None:
            return
        if "limit" in options:
            raise TypeError(
                f"{where}: limit is the group's own, not an option it passes on: "
                f"set {type(self).__name__}.limit")
        names = option_names(pool_class)
        if names is not None:  # the group passes the connection and the limit itself
            check_names(where, options,
                        (names - {"connection", "connections", "limit"}) | set(own))
        given = dict(options)
        if limit is not _global_state.use_global_limit:  # that one is read at each creation
            given["limit"] = limit
        try:
            check = getattr(pool_class, "_check_options", None)
            if check is not None:  # not greenpools' (kombu's own pools): kombu's ways
                check(given)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None

    # A group is a registry, not a value: two groups are never equal just
    # because both are empty (``_groups.remove(group)`` must remove that one).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def create(self, resource: Any, limit: int | None) -> Any:
        """Make the pool for ``resource`` with ``limit``; the group calls it
        once per connection parameters and stores what it returns.

        ``resource`` is the key as given, as kombu passes it: a
        ``kombu.Connection``, or a URL string when the first lookup of those
        parameters was by URL.  Subclasses implement it: here it raises
        ``NotImplementedError``.
        """
        raise NotImplementedError("PoolGroup subclasses must implement create(resource, limit)")

    def _key(self, resource: Any) -> Any:
        """The dictionary key for ``resource``: a URL's is its connection's."""
        if isinstance(resource, str):
            key = self._url_keys.get(resource, _MISSING)
            if key is _MISSING:
                key = self._url_keys[resource] = eqhash(Connection(resource))
            return key
        return eqhash(resource)

    def __getitem__(self, resource: Any) -> Any:
        # Not dict.__getitem__, which calls __missing__(key); a pool stored
        # as None (a subclass's create may return anything) is a pool too.
        pool = dict.get(self, self._key(resource), _MISSING)
        if pool is _MISSING:
            return self.__missing__(resource)
        return pool

    def __setitem__(self, resource: Any, pool: Any) -> None:
        dict.__setitem__(self, self._key(resource), pool)

    def __delitem__(self, resource: Any) -> None:
        dict.__delitem__(self, self._key(resource))

    def __contains__(self, resource: object) -> bool:
        return dict.__contains__(self, self._key(resource))

    def get(self, resource: Any, default: Any = None) -> Any:
        """The pool for ``resource`` (a ``kombu.Connection`` or a URL) if the
        group made one already, else ``default``; makes none."""
        return dict.get(self, self._key(resource), default)

    def __missing__(self, resource: Any) -> Any:
        key = self._key(resource)
        while True:
            with self._mutex:
                pool = dict.get(self, key, _MISSING)
                if pool is not _MISSING:
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
            if limit is _global_state.use_global_limit:
                limit = _global_state.get_limit()
            pool = self.create(resource, limit)
            if isinstance(pool, Resource):  # the group's listeners apply to it
                events.joined_group(pool, self)
            with self._mutex:
                dict.__setitem__(self, key, pool)
        finally:
            with self._mutex:
                waiters = self._creating.pop(key, [])
            for waiter in waiters:
                waiter.wake()
        return pool

    def drain(self) -> None:
        """Replace the resources of every pool of the group (see
        :meth:`greenpools.Resource.drain`): idle ones close now, lent ones
        when they come back.  Pools closed meanwhile are passed over.

        ``connections.drain()`` gives every publisher new sockets (after
        rotating credentials or moving the broker); producers follow on
        their next acquire, bound to a new connection.  Draining a
        :class:`Producers` group alone replaces the producer objects, not
        the sockets.  Raises nothing for a closed pool, and passes over
        what is not a greenpools pool (kombu's pools cannot drain).
        """
        for pool in list(dict.values(self)):
            if not isinstance(pool, Resource):
                continue
            try:
                pool.drain()
            except PoolClosed:
                pass

    def clear(self) -> None:
        """Forget every pool (kombu's meaning: nothing is closed); the next
        ``group[connection]`` makes a new one."""
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


class GroupOptions(MutableMapping[str, Any]):
    """A group's ``options``: a mapping whose every change is checked first,
    as a whole and as the group's constructor checks them, and refused
    whole: ``connections.options.update(timeout="x")`` raises there and
    changes nothing."""

    __slots__ = ("_group", "_options")

    def __init__(self, group: PoolGroup, options: Mapping[str, Any]) -> None:
        self._group = weakref.ref(group)  # no cycle: the group's collection stays prompt
        self._options = dict(options)

    def _change(self, options: dict[str, Any]) -> None:
        group = self._group()
        if group is not None:
            group._check(f"{type(group).__name__}.options", group.limit, options)
        self._options = options

    def __getitem__(self, name: str) -> Any:
        return self._options[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __setitem__(self, name: str, value: Any) -> None:
        self._change({**self._options, name: value})

    def __delitem__(self, name: str) -> None:
        options = dict(self._options)
        del options[name]
        self._change(options)

    def update(self, other: Any = (), /, **more: Any) -> None:
        """Set several options at once: checked together, applied together."""
        options = dict(self._options)
        options.update(other, **more)
        self._change(options)

    def clear(self) -> None:
        self._change({})

    def copy(self) -> dict[str, Any]:
        """The options as a plain dict."""
        return dict(self._options)

    def __repr__(self) -> str:
        return repr(self._options)


class Connections(PoolGroup):
    """A group of :class:`ConnectionPool`, one per connection parameters."""

    pool_class: type[ConnectionPool] = ConnectionPool

    def create(self, connection: Any, limit: int | None) -> ConnectionPool:
        """A :attr:`pool_class` (:class:`ConnectionPool`) of ``connection``
        with ``limit`` and the group's options; raises what it raises."""
        return self.pool_class(connection, limit, **self.options)


class Producers(PoolGroup):
    """A group of :class:`ProducerPool`, one per connection parameters.

    Producers take their connections from ``connections`` (a
    :class:`Connections` group; default: the global :data:`connections`).
    """

    pool_class: type[ProducerPool] = ProducerPool

    def __init__(
        self, limit: Any = None, close_after_fork: bool = True,
        connections: Connections | None = None, **options: Any,
    ) -> None:
        super().__init__(limit, close_after_fork, **options)
        self.connections = connections

    def create(self, connection: Any, limit: int | None) -> ProducerPool:
        """A :attr:`pool_class` (:class:`ProducerPool`) with ``limit`` and the
        group's options, on the pool of ``connection`` in the group's
        ``connections`` (made there if need be); raises what it raises."""
        group = self.connections if self.connections is not None else _global_state.connections
        return self.pool_class(group[connection], limit=limit, **self.options)


class GlobalState(Protocol):
    """What the groups read of the global state, each time they make a pool."""

    use_global_limit: object
    connections: Connections

    def get_limit(self) -> int: ...


#: :mod:`greenpools.kombu.pools` itself (it registers with :func:`follow`),
#: read afresh each time: what is set on that module (or on
#: ``greenpools.pools``, the same object) counts at once.
_global_state: GlobalState


def follow(state: GlobalState) -> None:
    """Read the global limit, its marker and the default connections group from
    ``state`` (:mod:`greenpools.kombu.pools` passes itself; this module
    never imports it, which imports this one)."""
    global _global_state
    _global_state = state


@fork_guard.after_fork_in_child
def _reset_groups_in_child() -> None:
    alive = []
    for ref in _live_groups:
        group = ref()
        if group is not None:
            group._after_fork_in_child()
            alive.append(ref)
    _live_groups[:] = alive
