"""Serve greenpools' metrics to Prometheus while threads publish through the pools.

    python examples/prometheus_metrics.py
    python examples/prometheus_metrics.py --port 9464 --messages 5000
    BROKER_URL=amqp://guest:guest@127.0.0.1:5672// python examples/prometheus_metrics.py

The OpenTelemetry SDK's Prometheus exporter serves every pool's metrics
(``db_client_connection_count``, ``db_client_connection_wait_time_seconds``,
...) at ``http://127.0.0.1:PORT/metrics``.  The script prints that address,
publishes ``--messages`` messages from 8 threads through
``greenpools.producers`` (on kombu's in-memory transport unless
``BROKER_URL`` or ``--broker`` names a broker), prints ``published: N``,
and keeps serving until interrupted (Ctrl-C).

``--port`` defaults to ``METRICS_PORT``, else 0: a free port chosen by the
system.  Needs ``pip install opentelemetry-sdk opentelemetry-exporter-prometheus``
(``prometheus_client`` comes with the exporter).
"""

import argparse
import os
import sys
import threading
import uuid

try:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server
except ImportError:
    sys.exit("prometheus_metrics.py needs: pip install opentelemetry-sdk "
             "opentelemetry-exporter-prometheus")

from kombu import Connection, Queue
from kombu.exceptions import OperationalError

import greenpools
from greenpools.pools import connections, producers

THREADS = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("BROKER_URL", "memory://"),
                        help="kombu broker URL (default: BROKER_URL, else memory://)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("METRICS_PORT", "0")),
                        help="port of /metrics on 127.0.0.1 (default: METRICS_PORT, else free)")
    parser.add_argument("--messages", type=int, default=1000, help="messages to publish (1000)")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.messages < 1:
        parser.error(f"--messages must be at least 1, got {args.messages}")

    # The SDK with a Prometheus reader, then instrument() for every pool.
    try:
        server, _ = start_http_server(args.port, addr="127.0.0.1")
    except OSError as exc:
        sys.exit(f"prometheus_metrics.py: cannot serve on 127.0.0.1:{args.port}: {exc}")
    greenpools.instrument(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    print(f"metrics: http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)

    connection = Connection(args.broker, connect_timeout=5)
    queue = Queue(f"greenpools-metrics-{uuid.uuid4().hex[:8]}", auto_delete=False)
    try:
        with connections[connection].acquire(block=True, timeout=10) as conn:
            queue(conn.default_channel).declare()
    except (OperationalError, OSError) as exc:
        sys.exit(f"prometheus_metrics.py: cannot reach the broker {connection.as_uri()}: {exc}")

    def publish(count: int) -> None:
        for n in range(count):
            with producers[connection].acquire(block=True, timeout=30) as producer:
                producer.publish({"n": n}, routing_key=queue.name)

    shares = [args.messages // THREADS + (i < args.messages % THREADS) for i in range(THREADS)]
    threads = [threading.Thread(target=publish, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"published: {args.messages}", flush=True)

    try:
        threading.Event().wait()  # serve /metrics until interrupted
    except KeyboardInterrupt:
        pass
    finally:
        with connections[connection].acquire(block=True, timeout=10) as conn:
            queue(conn.default_channel).delete()
        greenpools.uninstrument()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
