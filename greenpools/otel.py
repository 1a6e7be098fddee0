"""OpenTelemetry metrics for every pool, by the semantic conventions.

``instrument()`` publishes the database client connection-pool metrics
(``db.client.connection.*``) for every pool, existing and future, each
with the attribute ``db.client.connection.pool.name`` (the pool's
``name``), and ``greenpools.connection.blocked``: the connections the
broker has blocked now (a RabbitMQ resource alarm; the pool lends none
while any is).  The gauges (count, idle.max, idle.min, max,
pending_requests, blocked) are observable: read from the pools when the SDK collects, they cost
nothing per acquire.  The timeouts counter and the create, wait and use
time histograms follow the pool's events (see :mod:`greenpools.core.events`),
which only watched pools emit.

A histogram ``record()`` in the OpenTelemetry SDK costs about 61,000
instructions (callgrind, SDK 1.x; 7 to 10 us on the clock on a development
machine), and a cycle has two (wait and use time), so the pool does not
call it: each
pool appends its samples to plain lists (:class:`_PoolSamples`), and the
first observable callback of every collection hands them to the SDK.  The
SDK runs every observable callback before it reads the synchronous
instruments' storage (``SynchronousMeasurementConsumer.collect`` in
``opentelemetry/sdk/metrics/_internal/measurement_consumer.py``, 1.45: the
loop over ``_async_instruments``, then ``MetricReaderStorage.collect()``),
and ``Histogram.record()`` from inside a callback takes no lock that
``collect`` holds (``consume_measurement`` reads ``_reader_storages``
unlocked), so a collection reports every sample taken before it began.

Needs ``opentelemetry-api``: ``pip install opentelemetry-api`` (the ``otel`` extra).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .core import events

__all__ = ["instrument", "uninstrument"]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

#: Histogram buckets in seconds: the SDK's default ones (0, 5, 10 ... 10000)
#: suit milliseconds and would put every pool wait in the first bucket.
SECONDS_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]

#: Samples one pool keeps per histogram until the next collection.  Past it
#: (nothing collects, or too rarely for the pool's rate) a sample goes to the
#: SDK's ``record()`` at once: memory stays bounded and no sample is lost,
#: at the SDK's own price per sample.  10,000 floats are about 320 kB.
BUFFER_LIMIT = 10_000

_active: _Metrics | None = None


class _PoolSamples:
    """One pool's histogram samples not yet handed to the SDK.

    Its methods are the pool's metrics listeners (``fn(pool, resource,
    seconds)``, see :meth:`_Metrics.listeners`): the attributes are built
    once per pool, and a sample costs a list append (``seconds`` is a float
    for every event they listen to).  It holds the pool
    weakly and outlives it until its samples are handed over.
    """

    __slots__ = ("_metrics", "attributes", "create", "pool", "use", "wait")

    def __init__(self, metrics: _Metrics, pool: Any) -> None:
        self._metrics = metrics
        self.pool = weakref.ref(pool)
        self.attributes = {POOL_NAME: pool.name}
        self.create: list[float] = []
        self.wait: list[float] = []
        self.use: list[float] = []

    def connect(self, pool: Any, resource: Any, seconds: Any) -> None:
        if len(self.create) < BUFFER_LIMIT:
            self.create.append(seconds)
        else:
            self._metrics.create_time.record(seconds, self.attributes)

    def checkout(self, pool: Any, resource: Any, seconds: Any) -> None:
        if len(self.wait) < BUFFER_LIMIT:
            self.wait.append(seconds)
        else:
            self._metrics.wait_time.record(seconds, self.attributes)

    def checkin(self, pool: Any, resource: Any, seconds: Any) -> None:
        if len(self.use) < BUFFER_LIMIT:
            self.use.append(seconds)
        else:
            self._metrics.use_time.record(seconds, self.attributes)

    def timeout(self, pool: Any, resource: Any, seconds: Any) -> None:
        self._metrics.timeouts.add(1, self.attributes)  # rare, and after a wait anyway
        self.checkout(pool, resource, seconds)

    def fork(self, pool: Any, resource: Any, seconds: Any) -> None:
        # The parent reports what it sampled before the fork; the child must not.
        self.create.clear()
        self.wait.clear()
        self.use.clear()

    def empty(self) -> bool:
        return not (self.create or self.wait or self.use)

    def hand_over(self) -> None:
        """Record every sample into the SDK's histograms (one caller at a time)."""
        metrics, attributes = self._metrics, self.attributes
        for samples, histogram in (
            (self.create, metrics.create_time),
            (self.wait, metrics.wait_time),
            (self.use, metrics.use_time),
        ):
            # Listeners only ever append, so the first n are the ones taken
            # even while another thread appends: delete exactly those.
            n = len(samples)
            if n:
                taken = samples[:n]
                del samples[:n]
                record = histogram.record
                for seconds in taken:
                    record(seconds, attributes)


class _Metrics:
    """The instruments of one meter, and every pool's samples for them."""

    def __init__(self, meter_provider: Any) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise ImportError(
                "greenpools.instrument() needs OpenTelemetry: "
                "pip install opentelemetry-api"
            ) from exc
        from . import __version__

        meter = metrics.get_meter("greenpools", __version__, meter_provider=meter_provider)
        self._by_pool: weakref.WeakKeyDictionary[Any, _PoolSamples] = (
            weakref.WeakKeyDictionary()
        )
        self._samples: list[_PoolSamples] = []  # also of pools gone since the last collection
        self._lock = threading.Lock()  # the two above, and one hand-over at a time
        gauge = meter.create_observable_up_down_counter
        # _hand_over first: it has to run before the SDK reads the histograms,
        # which it does after every callback (see the module's docs).
        gauge("db.client.connection.count", [self._hand_over, self._count],
              unit="{connection}",
              description="Connections in the pool, by state (idle or used).")
        gauge("db.client.connection.idle.max", [self._reading(lambda p: p._limit)],
              unit="{connection}", description="The most idle connections the pool keeps.")
        gauge("db.client.connection.idle.min", [self._reading(lambda p: p.min_size)],
              unit="{connection}", description="The fewest idle connections the pool keeps.")
        gauge("db.client.connection.max", [self._reading(lambda p: p._limit)],
              unit="{connection}", description="The most connections the pool allows.")
        gauge("db.client.connection.pending_requests",
              [self._reading(lambda p: len(p._waiting) + len(p._held))], unit="{request}",
              description="Callers waiting for a connection.")
        gauge("greenpools.connection.blocked", [self._reading(lambda p: p._n_blocked)],
              unit="{connection}",
              description="Connections the broker has blocked now (a resource alarm); "
                          "the pool lends none while any is.")
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

    def listeners(self, pool: Any) -> dict[str, events.Listener]:
        """``pool``'s metrics listeners by event (see :mod:`greenpools.core.events`)."""
        with self._lock:
            samples = self._by_pool.get(pool)
            if samples is None:
                samples = self._by_pool[pool] = _PoolSamples(self, pool)
                # Samples of pools that are gone get no more: hand them over now
                # rather than keep them for a collection that may never come.
                for gone in self._samples:
                    if gone.pool() is None:
                        gone.hand_over()
                self._samples = [s for s in self._samples if s.pool() is not None]
                self._samples.append(samples)
        return {"connect": samples.connect, "checkout": samples.checkout,
                "checkin": samples.checkin, "timeout": samples.timeout, "fork": samples.fork}

    def _hand_over(self, options: Any) -> Iterable[Any]:
        """Observable callback that observes nothing: feeds the histograms."""
        with self._lock:
            for samples in self._samples:
                samples.hand_over()
        return ()

    def _attributes(self, pool: Any) -> dict[str, str]:
        samples = self._by_pool.get(pool)
        return samples.attributes if samples is not None else {POOL_NAME: pool.name}

    def _pools(self) -> list[Any]:
        from .core.resource import live_pools

        return live_pools() if self._live else []

    def _count(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        for pool in self._pools():
            attrs = self._attributes(pool)
            idle = len(pool._idle)
            yield Observation(idle, {**attrs, STATE: "idle"})
            yield Observation(max(0, pool._size - idle), {**attrs, STATE: "used"})

    def _reading(self, read: Callable[[Any], int]) -> Any:
        def observe(options: Any) -> Iterable[Any]:
            from opentelemetry.metrics import Observation

            for pool in self._pools():
                yield Observation(read(pool), self._attributes(pool))

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
    """Stop recording metrics; the pools go back to their fast paths.

    Samples taken before it still reach the old meter provider at its next
    collection (``shutdown()`` collects a last time).
    """
    global _active
    if _active is not None:
        _active._live = False  # its observable callbacks report nothing from now on
        _active = None
        events.set_sink(None)
