"""greenpools for asyncio: :class:`Pool`, the same pool algorithm for asyncio tasks.

``greenpools.aio.Pool`` takes the options of :class:`greenpools.Pool` and
raises the same exceptions; ``greenpools.listen`` and
``greenpools.instrument`` cover it too.  See :mod:`greenpools.aio.pool`.
"""

from __future__ import annotations

from ..exceptions import LimitExceeded, PoolClosed, PoolError, PoolTimeout, TooManyRequests
from .acquiring import AsyncLease
from .pool import Pool

__all__ = [
    "AsyncLease", "LimitExceeded", "Pool", "PoolClosed", "PoolError", "PoolTimeout",
    "TooManyRequests",
]
