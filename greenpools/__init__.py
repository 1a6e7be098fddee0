"""Connection and producer pools for services that run on green threads.

kombu's pool API on a swappable concurrency backend (threading, gevent,
eventlet), with psycopg_pool's lifecycle options and fork safety.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import _build  # noqa: F401  (standard library only: which build of the core runs)
from ._freethreading import warn_if_gil_disabled

warn_if_gil_disabled()  # once, at import: the pools are not safe without the GIL yet

if os.environ.get("GREENPOOLS_BACKEND", "").strip() not in ("", "auto"):
    # A backend named in the environment is loaded (or refused) at import.
    from . import backends  # noqa: F401

if TYPE_CHECKING:
    from .backends import Backend, BackendUnavailable, get_backend, use_backend
    from .core.events import listen, remove_listener
    from .core.leases import Lease
    from .core.pool import Pool
    from .core.resource import Resource
    from .exceptions import (
        ConnectionBlocked,
        LimitExceeded,
        NodeShuttingDown,
        NotCheckedOut,
        PoolClosed,
        PoolError,
        PoolTimeout,
        TooManyRequests,
    )
    from .kombu.install import install, uninstall
    from .kombu.pools import connections, producers
    from .otel import instrument, uninstrument

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailable",
    "ConnectionBlocked",
    "Lease",
    "LimitExceeded",
    "NodeShuttingDown",
    "NotCheckedOut",
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

# Every name loads on first use, so that importing the package (or
# greenpools.startup, which must run before anything is monkey-patched)
# imports no pool module, no backend library and no kombu.  Unless the
# environment names a backend, it is chosen on first use of these names.
_LAZY = {
    "Backend": "backends",
    "BackendUnavailable": "backends",
    "get_backend": "backends",
    "use_backend": "backends",
    "listen": "core.events",
    "remove_listener": "core.events",
    "ConnectionBlocked": "exceptions",
    "NodeShuttingDown": "exceptions",
    "NotCheckedOut": "exceptions",
    "LimitExceeded": "exceptions",
    "PoolClosed": "exceptions",
    "PoolError": "exceptions",
    "PoolTimeout": "exceptions",
    "TooManyRequests": "exceptions",
    "Lease": "core.leases",
    "Pool": "core.pool",
    "Resource": "core.resource",
    "connections": "kombu.pools",
    "producers": "kombu.pools",
    "install": "kombu.install",
    "uninstall": "kombu.install",
    "instrument": "otel",
    "uninstrument": "otel",
}


#: Subpackages that load on first use as attributes (``greenpools.aio.Pool``).
_LAZY_SUBPACKAGES = frozenset({"aio"})


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    if module_name not in ("kombu.pools", "kombu.install", "otel"):
        globals()[name] = value  # the next lookup is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _LAZY_SUBPACKAGES)
