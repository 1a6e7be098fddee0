"""S5 end-to-end: many tasks publish through a producer pool to RabbitMQ.

Publisher confirms are on (``confirm_publish``), so every publish waits
for the broker's ack and the pool's connections are the bottleneck, as in
a real service.  Each run declares its own queue, publishes a bounded
number of messages within a bounded time, and deletes the queue.  Only a
loopback broker is accepted.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from greenpools.cli import bench

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def broker_url() -> str:
    url = os.environ.get("GREENPOOLS_BENCH_AMQP_URL") or os.environ.get(
        "GREENPOOLS_TEST_AMQP_URL", DEFAULT_URL)
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"S5 publishes to a loopback broker only, got host {host!r}")
    return url


def _connection(url: str, confirm: bool = True) -> Any:
    import kombu

    options = {"confirm_publish": True} if confirm else {}
    return kombu.Connection(url, transport_options=options, connect_timeout=5)


#: contender id -> builder of a producer pool over a kombu connection
PRODUCER_POOLS = {
    "gp-producer": bench.make_gp_producer_pool,
    "kombu-producer": bench.make_kombu_producer_pool,
}


def _close(pool: Any) -> None:
    for target in (pool, getattr(pool, "connections", None)):
        for name in ("close", "force_close_all"):
            method = getattr(target, name, None)
            if callable(method):
                try:
                    method()
                except Exception:
                    pass
                break


def publish(
    pool: Any, queue: str, tasks: int, messages: int, seconds: float
) -> tuple[int, float, float]:
    """``tasks`` tasks publish up to ``messages`` in ``seconds``: (sent, elapsed,
    this process's CPU seconds meanwhile)."""
    tickets = itertools.count()
    sent = [0] * tasks
    failures: list[BaseException] = []
    go = threading.Event()
    body = b"x" * 200
    deadline = 0.0

    def task(index: int) -> None:
        go.wait()
        try:
            while next(tickets) < messages and time.monotonic() < deadline:
                producer = pool.acquire(True, 30.0)
                try:
                    producer.publish(body, exchange="", routing_key=queue, retry=False)
                finally:
                    pool.release(producer)
                sent[index] += 1
        except BaseException as exc:
            failures.append(exc)

    workers = bench.start_tasks(tasks, task)
    time.sleep(0.01)
    deadline = time.monotonic() + seconds
    started, cpu_started = time.perf_counter(), time.process_time()
    go.set()
    finished = bench.join_tasks(workers, seconds + 30.0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if failures or not finished:
        raise RuntimeError(f"S5 publish failed: {failures[:1]!r}, all finished: {finished}")
    return sum(sent), elapsed, cpu


def run_s5(contender: bench.Contender, settings: bench.Settings) -> dict[str, Any]:
    """Messages per second through ``contender``'s producer pool, confirms on."""
    import kombu

    url = broker_url()
    queue = f"greenpools-bench-{os.getpid()}-{contender.id}-{time.monotonic_ns()}"
    with _connection(url, confirm=False) as admin:
        admin.ensure_connection(max_retries=1)
        bound = kombu.Queue(queue, exchange="", routing_key=queue, durable=False,
                            auto_delete=False)(admin.default_channel)
        bound.declare()
        pool = PRODUCER_POOLS[contender.id](settings["s5_limit"], _connection(url))
        try:
            # Warm up: every connection and channel of the pool opened.
            publish(pool, queue, settings["s5_tasks"], settings["s5_limit"] * 4, 30.0)
            sent, elapsed, cpu = publish(pool, queue, settings["s5_tasks"],
                                         settings["s5_messages"], settings["s5_seconds"])
        finally:
            _close(pool)
            try:
                bound.delete()
            except Exception:
                pass
    # The publishing process's CPU per message (the broker's is not counted):
    # what a pool can save, next to the rate, which the broker's share of the
    # cores moves from one repetition to the next.
    return {"messages_per_s": sent / elapsed, "messages": sent, "seconds": elapsed,
            "cpu_us_per_message": cpu / sent * 1e6}
