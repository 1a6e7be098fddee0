"""``greenpools.Pool``: a pool of anything, built from callables.

:class:`~greenpools.core.resource.Resource` is kombu's class, extended by
subclassing (``new()`` and the hooks); this is the same pool for code that
would rather hand over two functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .options import check_callable
from .resource import Resource

__all__ = ["Pool"]

T = TypeVar("T")


class Pool(Resource[T]):
    """A pool of anything, built from callables.

    ``create()`` makes a resource; ``close(r)`` disposes of one (default:
    ``r.close()`` if it has one).  ``limit`` (``None`` or 0: no limit)
    and ``preload`` (resources made in ``__init__``) are
    :class:`Resource`'s, as is every keyword option.  Raises
    ``TypeError`` when ``create`` or ``close`` is not callable, and the
    errors of :class:`Resource` for a bad option.  ``create`` must return
    a new object each call: one the pool holds already is refused, with a
    ``ValueError`` from the acquire that made it.
    """

    _creator = "create"

    def __init__(
        self,
        create: Callable[[], T],
        limit: int | None = None,
        *,
        close: Callable[[T], object] | None = None,
        preload: int | None = None,
        **options: Any,
    ) -> None:
        if not callable(create):
            raise TypeError(f"create must be callable, got {create!r}")
        self._create = create
        self._close = check_callable("close", close)
        super().__init__(limit, preload, **options)

    def new(self) -> T:
        """Create a resource: ``create()``, whose errors propagate."""
        return self._create()

    def close_resource(self, resource: T) -> None:
        """Close a resource: ``close(resource)``, or the resource's own
        ``close()`` when no ``close`` was given."""
        if self._close is not None:
            self._close(resource)
        else:
            super().close_resource(resource)
