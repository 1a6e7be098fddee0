"""Cost of watching pools: acquire+release cycles with and without metrics.

    python benchmarks/observability.py SCENARIO CYCLES [--metrics] [--listener]

SCENARIO: ``s1`` (one task, uncontended) or ``s2`` (8 green threads on a
pool of 2, each yielding while it holds one), always on gevent; or
``record``: one OpenTelemetry SDK histogram ``record()`` alone.  Prints
the seconds per cycle.  Instruction counts, stable on a shared machine:
run it under ``valgrind --tool=callgrind`` with CYCLES and with 0 and
divide the difference by CYCLES (see README, "Observability").
"""

from __future__ import annotations

import sys

from greenpools.startup import patch_first

patch_first("gevent")

import time  # noqa: E402

import gevent  # noqa: E402

import greenpools  # noqa: E402


def s1(pool: greenpools.Pool[object], cycles: int) -> None:
    acquire, release = pool.acquire, pool.release
    for _ in range(cycles):
        release(acquire())


def s2(pool: greenpools.Pool[object], cycles: int) -> None:
    def worker(n: int) -> None:
        for _ in range(n):
            r = pool.acquire(True)
            gevent.sleep(0)
            pool.release(r)

    gevent.joinall([gevent.spawn(worker, cycles // 8) for _ in range(8)])


def sdk_record(cycles: int) -> None:
    """The OpenTelemetry SDK's own cost: one histogram ``record()``."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    histogram = meter.create_histogram("h", unit="s")
    attributes = {"db.client.connection.pool.name": "pool-1"}
    record = histogram.record
    for _ in range(1000):
        record(0.001, attributes)
    started = time.perf_counter()
    for _ in range(cycles):
        record(0.001, attributes)
    elapsed = time.perf_counter() - started
    print(f"record {elapsed / max(cycles, 1) * 1e6:.3f} us/call")


def main(argv: list[str]) -> None:
    scenario, cycles = argv[0], int(argv[1])
    if scenario == "record":
        sdk_record(cycles)
        return
    if "--metrics" in argv:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        greenpools.instrument(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    pool: greenpools.Pool[object] = greenpools.Pool(object, 2 if scenario == "s2" else 10)
    if "--listener" in argv:
        greenpools.listen(pool, "checkout", lambda p, r, s: None)
    run = s1 if scenario == "s1" else s2
    run(pool, 1000)  # warm up
    started = time.perf_counter()
    run(pool, cycles)
    elapsed = time.perf_counter() - started
    print(f"{scenario} {elapsed / max(cycles, 1) * 1e6:.3f} us/cycle")


if __name__ == "__main__":
    main(sys.argv[1:])
