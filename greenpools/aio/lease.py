"""The ``async with pool.acquired() as r:`` of :class:`greenpools.aio.Pool`.

A small object per lease, made and entered on every acquire: compiled by
Cython when built (see ``lease.pxd``), so that making it and taking the
core's lock-free path cost no Python frames; plain Python otherwise.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import native_thread_ident
from ..core.slotpool import SlotPool

__all__ = ["AsyncLease"]


class AsyncLease:
    """Acquires from ``pool`` on entry (waiting up to ``timeout``); on exit
    returns the resource, or replaces it when the block raised one of the
    pool's ``connection_errors``."""

    def __init__(self, pool: Any, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._resource: Any = None

    async def __aenter__(self) -> Any:
        pool = self._pool
        # Pool.acquire, without its frame: the same lock-free path first.
        if pool._lock_free and pool._idle and pool._lock_free_thread == native_thread_ident():
            resource = SlotPool.acquire(pool, False)
        else:
            resource = await pool._acquire_queued(self._timeout)
        self._resource = resource
        return resource

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pool = self._pool
        if exc is None and pool._reset_hook is None:  # nothing to await
            try:
                SlotPool.release(pool, self._resource)
            except ValueError:  # released (or replaced) inside the block already
                pass
            return
        broken = exc is not None and isinstance(exc, pool.connection_errors)
        await pool._end_lease_async(self._resource, broken)
