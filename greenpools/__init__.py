"""Connection and producer pools for services that run on green threads.

kombu's pool API on a swappable concurrency backend (threading, gevent,
eventlet), with psycopg_pool's lifecycle options and fork safety.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _build  # noqa: F401  (first: chooses the compiled or plain-Python core)
from .backends import Backend, BackendUnavailable, get_backend, use_backend
from .events import listen, remove_listener
from .exceptions import LimitExceeded, PoolClosed, PoolError, PoolTimeout, TooManyRequests
from .resource import Lease, Pool, Resource

if TYPE_CHECKING:
    from .kombu_patch import install, uninstall
    from .otel import instrument, uninstrument
    from .pools import connections, producers

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
    "connections",
    "get_backend",
    "install",
    "instrument",
    "listen",
    "producers",
    "remove_listener",
    "uninstall",
    "uninstrument",
    "use_backend",
]

# The kombu layer loads on first use: importing greenpools stays cheap.
_LAZY = {
    "connections": "pools",
    "producers": "pools",
    "install": "kombu_patch",
    "uninstall": "kombu_patch",
    "instrument": "otel",
    "uninstrument": "otel",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
