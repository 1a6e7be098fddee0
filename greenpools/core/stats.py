"""Pool statistics with psycopg_pool's key names.

The counters are plain attributes of the pool, changed on the slow paths
only: the counts under the pool's lock, the time sums (``requests_wait_ms``,
``connections_ms``, ``usage_ms``) mostly outside it, where a lost addition
under a race between native threads only skews a statistic.
``requests_num`` is the pool's ``_n_requests``, a plain int that the
lock-free fast path bumps on every acquire and that ``get_stats`` reads
(and ``pop_stats`` zeroes) under the lock; racing native threads may lose
a bump, never corrupt the pool.
"""

from __future__ import annotations

#: Counter attribute -> stats key; ``*_s`` attributes are seconds, reported in ms.
COUNTERS = {
    "_n_queued": "requests_queued",
    "_wait_s": "requests_wait_ms",
    "_n_request_errors": "requests_errors",
    "_n_timeouts": "requests_timeouts",
    "_n_returns_bad": "returns_bad",
    "_n_connections": "connections_num",
    "_connect_s": "connections_ms",
    "_n_connection_errors": "connections_errors",
    "_n_connections_lost": "connections_lost",
    "_usage_s": "usage_ms",
}


class Counters:
    """The counters a pool keeps, and how to read and reset them."""

    _n_queued: int
    _wait_s: float
    _n_request_errors: int
    _n_timeouts: int
    _n_returns_bad: int
    _n_connections: int
    _connect_s: float
    _n_connection_errors: int
    _n_connections_lost: int
    _usage_s: float

    def _reset_counters(self) -> None:
        for attr in COUNTERS:
            setattr(self, attr, 0.0 if attr.endswith("_s") else 0)

    def _read_counters(self, reset: bool) -> dict[str, int]:
        stats = {}
        for attr, key in COUNTERS.items():
            value = getattr(self, attr)
            stats[key] = int(value * 1000) if attr.endswith("_s") else value
        if reset:
            self._reset_counters()
        return stats
