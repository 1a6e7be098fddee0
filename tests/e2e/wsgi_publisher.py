"""WSGI app for the gunicorn end-to-end test: one confirmed publish per request.

The pools are made and used at import: with ``gunicorn --preload`` that
happens once, in the master, before it forks the workers, and before the
gevent worker monkey-patches.  Every worker then inherits a warm pool whose
connection is the master's socket; greenpools must give each worker
connections of its own.  Each response says which process answered and the
local port of the connection it published on, and the greenpools backend in use there.

Environment: ``E2E_QUEUE`` (where to publish), ``GREENPOOLS_TEST_AMQP_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import support

import greenpools
from greenpools import pools

QUEUE = os.environ["E2E_QUEUE"]
connection = support.confirming_connection()


def publish(body: str) -> int:
    """Publish ``body`` (confirmed); the local port of the connection used."""
    with pools.producers[connection].acquire(block=True, timeout=20) as producer:
        support.publish_one(producer, QUEUE, body)
        return int(support.socket_identity(producer.connection)["local_port"])


#: Published at import: once per --preload master.
WARMUP_PID = os.getpid()
WARMUP_PORT = publish(f"warmup:{WARMUP_PID}")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    number = environ.get("QUERY_STRING", "")
    port = publish(f"request:{number}")
    backend = greenpools.get_backend().name
    body = f"{os.getpid()} {port} {WARMUP_PID} {WARMUP_PORT} {backend}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
