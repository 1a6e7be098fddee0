"""The open pools of this process.

Both :mod:`~greenpools.core.resource` (which adds and removes pools) and
:mod:`~greenpools.core.events` (which tells every pool when listeners
change) need the list; keeping it here lets neither import the other.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["add", "discard", "live_pools"]

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def add(pool: Any) -> None:
    """``pool`` is open (held weakly: a pool nobody holds drops out)."""
    _live.add(pool)


def discard(pool: Any) -> None:
    """``pool`` closed."""
    _live.discard(pool)


def live_pools() -> list[Any]:
    """Every open pool of this process (a snapshot)."""
    return list(_live)
