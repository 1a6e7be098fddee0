"""The lease a ``with pool.acquired() as r:`` block holds.

A lease is a resource's slot and the slot's release count when the
block began (``SlotPool._lease_of``), so that the block's exit ends that
lease and no other: a resource released or replaced inside the block
already is left alone, even if it has been lent again since.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["Lease"]

T = TypeVar("T")


class Lease(Generic[T]):
    """The context manager returned by :meth:`Resource.acquired`.

    Its entry calls ``pool.acquire(block, timeout)`` and raises what that
    raises.  Its exit ends the lease it began: a resource released (or
    replaced) inside the block already is left alone, even if it was lent
    again.
    """

    __slots__ = ("_block", "_lease", "_pool", "_resource", "_timeout")

    def __init__(self, pool: Any, block: bool, timeout: float | None) -> None:
        self._pool = pool
        self._block = block
        self._timeout = timeout

    def __enter__(self) -> T:
        pool = self._pool
        self._resource = resource = pool.acquire(self._block, self._timeout)
        self._lease = pool._lease_of(resource)
        return resource  # type: ignore[no-any-return]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pool = self._pool
        broken = exc is not None and isinstance(exc, pool.connection_errors)
        pool._end_lease(self._resource, self._lease, broken)
