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

This module is the global state and the public names: the global limit,
the registered groups (:data:`connections`, :data:`producers`) and the
functions over them (:func:`set_limit`, :func:`reset`, ...).  The
classes live in :mod:`~greenpools.kombu.connections`,
:mod:`~greenpools.kombu.channels`, :mod:`~greenpools.kombu.producers` and
:mod:`~greenpools.kombu.groups`; their public path is this module, under
either of its names.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

from kombu.pools import use_global_limit

from ..core.options import check_limit
from ..core.resource import Resource
from . import groups
from .channels import ChannelPool
from .connections import HEARTBEAT_RATE as HEARTBEAT_RATE
from .connections import ConnectionPool, PooledConnection
from .groups import Connections, PoolGroup, Producers
from .producers import PooledProducer, ProducerPool

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

#: Passed as a group's ``limit``: the group's pools follow :func:`set_limit`.
#: The very object kombu uses, so either module's marker works with either.
use_default_limit = use_global_limit

_DEFAULT_LIMIT = 10  # kombu's real default (its docs say 200: kombu #1313)

_groups: list[PoolGroup] = []
_limit = _DEFAULT_LIMIT


G = TypeVar("G", bound=PoolGroup)


def register_group(group: G) -> G:
    """Put ``group`` under :func:`set_limit` and :func:`reset` (a decorator too).

    Returns ``group``.
    """
    _groups.append(group)
    return group


groups.follow(sys.modules[__name__])  # the groups read this module's globals afresh
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
    never disagree.  A pool of a registered group that is not a greenpools
    pool (a subclass's ``create`` may return kombu's own) is resized as
    kombu's ``set_limit`` does it: ``resize(limit)`` when the limit
    changes, nothing else.  Returns the limit.

    Raises ``TypeError`` or ``ValueError`` for a ``limit`` that is not a
    non-negative int or ``None``, ``ValueError`` (before anything changes)
    for one below a pool's ``min_size``, and the first error from closing
    unless ``ignore_errors``.
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
    old_limit, _limit = _limit, new_limit
    errors: list[Exception] = []
    for pool in pools:
        try:
            if isinstance(pool, Resource):
                pool.resize(new_limit, force=force, ignore_errors=ignore_errors,
                            reset=reset_after)
            elif new_limit != old_limit:
                # kombu's way: its ProducerPool.resize adds producers at every call
                pool.resize(new_limit)
        except Exception as exc:
            errors.append(exc)
    if errors and not ignore_errors:
        raise errors[0]
    return new_limit


def reset(*args: Any, **kwargs: Any) -> None:
    """Close every pool of every registered group and empty the groups.

    Connections in use are closed under their users' feet, as in kombu.
    The arguments are accepted and ignored, as kombu's are; errors from
    closing are swallowed.
    """
    for pool in list(_all_pools()):
        try:
            pool.force_close_all()
        except Exception:
            pass
    for group in list(_groups):
        group.clear()


# The public path of these classes is greenpools.pools (the same module object,
# see greenpools/pools.py): their reprs, pickles and logs keep saying so.
for _public in (ConnectionPool, ChannelPool, ProducerPool, PooledConnection, PooledProducer,
                PoolGroup, Connections, Producers):
    _public.__module__ = "greenpools.pools"
del _public
