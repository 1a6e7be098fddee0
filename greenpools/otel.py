"""OpenTelemetry metrics for every pool, by the semantic conventions.

``instrument()`` publishes the database client connection-pool metrics
(``db.client.connection.*``) for every pool, existing and future, each
with the attribute ``db.client.connection.pool.name`` (the pool's
``name``).  The gauges (count, idle.max, idle.min, max, pending_requests)
are observable: read from the pools when the SDK collects, they cost
nothing per acquire.  The timeouts counter and the create, wait and use
time histograms are recorded from the pool's events (see
:mod:`greenpools.events`), which only watched pools emit.

Needs ``opentelemetry-api``: ``pip install 'greenpools[otel]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import events

__all__ = ["instrument", "uninstrument"]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

#: Histogram buckets in seconds: the SDK's default ones (0, 5, 10 ... 10000)
#: suit milliseconds and would put every pool wait in the first bucket.
SECONDS_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]

_active: _Metrics | None = None


class _Metrics:
    """The instruments of one meter, and the event sink that records them."""

    def __init__(self, meter_provider: Any) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise ImportError(
                "greenpools.instrument() needs OpenTelemetry: "
                "pip install 'greenpools[otel]'"
            ) from exc
        from . import __version__

        meter = metrics.get_meter("greenpools", __version__, meter_provider=meter_provider)
        self._attrs: dict[int, dict[str, str]] = {}
        gauge = meter.create_observable_up_down_counter
        gauge("db.client.connection.count", [self._count], unit="{connection}",
              description="Connections in the pool, by state (idle or used).")
        gauge("db.client.connection.idle.max", [self._reading(lambda p: p.limit)],
              unit="{connection}", description="The most idle connections the pool keeps.")
        gauge("db.client.connection.idle.min", [self._reading(lambda p: p.min_size)],
              unit="{connection}", description="The fewest idle connections the pool keeps.")
        gauge("db.client.connection.max", [self._reading(lambda p: p.limit)],
              unit="{connection}", description="The most connections the pool allows.")
        gauge("db.client.connection.pending_requests",
              [self._reading(lambda p: len(p._waiting))], unit="{request}",
              description="Callers waiting for a connection.")
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts", unit="{timeout}",
            description="Waits for a connection that ran out.")
        histogram = meter.create_histogram
        self.create_time = histogram(
            "db.client.connection.create_time", unit="s",
            description="Time it took to create a connection.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.wait_time = histogram(
            "db.client.connection.wait_time", unit="s",
            description="Time it took to obtain a connection from the pool.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.use_time = histogram(
            "db.client.connection.use_time", unit="s",
            description="Time a connection was held out of the pool.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self._live = True

    def attributes(self, pool: Any) -> dict[str, str]:
        return {POOL_NAME: pool.name}

    def __call__(self, pool: Any, event: str, resource: Any, seconds: float | None) -> None:
        if seconds is None and event != "timeout":
            return
        attrs = self.attributes(pool)
        if event == "checkout":
            self.wait_time.record(seconds, attrs)  # type: ignore[arg-type]
        elif event == "checkin":
            self.use_time.record(seconds, attrs)  # type: ignore[arg-type]
        elif event == "connect":
            self.create_time.record(seconds, attrs)  # type: ignore[arg-type]
        elif event == "timeout":
            self.timeouts.add(1, attrs)
            if seconds is not None:
                self.wait_time.record(seconds, attrs)

    def _pools(self) -> list[Any]:
        from .resource import live_pools

        return live_pools() if self._live else []

    def _count(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        for pool in self._pools():
            attrs = self.attributes(pool)
            idle = len(pool._idle)
            yield Observation(idle, {**attrs, STATE: "idle"})
            yield Observation(max(0, pool._size - idle), {**attrs, STATE: "used"})

    def _reading(self, read: Any) -> Any:
        def observe(options: Any) -> Iterable[Any]:
            from opentelemetry.metrics import Observation

            for pool in self._pools():
                yield Observation(read(pool), self.attributes(pool))

        return observe


def instrument(meter_provider: Any = None) -> None:
    """Publish OpenTelemetry metrics for every pool, now and later.

    ``meter_provider``: default the global one.  Calling it again switches
    to the new provider.  Raises ``ImportError`` without ``opentelemetry-api``.
    """
    global _active
    metrics = _Metrics(meter_provider)
    uninstrument()
    _active = metrics
    events.set_sink(metrics)


def uninstrument() -> None:
    """Stop recording metrics; the pools go back to their fast paths."""
    global _active
    if _active is not None:
        _active._live = False  # its observable callbacks report nothing from now on
        _active = None
        events.set_sink(None)
