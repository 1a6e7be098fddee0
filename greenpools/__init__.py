"""Connection and producer pools for services that run on green threads.

kombu's pool API on a swappable concurrency backend (threading, gevent,
eventlet), with psycopg_pool's lifecycle options and fork safety.
"""

from __future__ import annotations

from .backends import Backend, BackendUnavailable, get_backend, use_backend
from .exceptions import LimitExceeded, PoolClosed, PoolError, PoolTimeout, TooManyRequests
from .resource import Lease, Pool, Resource

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Lease",
    "LimitExceeded",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "Resource",
    "TooManyRequests",
    "get_backend",
    "use_backend",
]
