"""A WSGI app that publishes one message per request through greenpools.

    cd examples/gunicorn_gevent
    gunicorn -c gunicorn.conf.py app:app
    curl http://127.0.0.1:8000/

Every request publishes a JSON message ``{"id": ..., "path": ...}`` to the
queue ``QUEUE`` and answers with the message's id, the worker's pid and the
greenpools backend that worker runs on.  The broker confirms each message
before the response goes out (publisher confirms), the queue is durable and
the messages persistent: a 200 means the broker has the message.

While the broker blocks publishers (a RabbitMQ memory or disk alarm) the
app answers ``503`` with ``Retry-After`` instead of holding the request:
the pools raise ``greenpools.ConnectionBlocked`` within ``PUBLISH_TIMEOUT``.

Environment: ``BROKER_URL`` (default ``amqp://guest:guest@127.0.0.1:5672//``),
``QUEUE`` (default ``greenpools-example``), ``PUBLISH_TIMEOUT`` (seconds a
request may wait for a producer, and then for the confirm; default 5).
"""

import json
import os
import sys
import uuid

from amqp.exceptions import AMQPError
from kombu import Connection, Queue
from kombu.exceptions import KombuError
from kombu.utils.url import maybe_sanitize_url

import greenpools
from greenpools.pools import connections, producers

BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("QUEUE", "greenpools-example")
try:
    PUBLISH_TIMEOUT = float(os.environ.get("PUBLISH_TIMEOUT", "5"))
except ValueError:
    sys.exit(f"app.py: PUBLISH_TIMEOUT must be a number of seconds, "
             f"got {os.environ['PUBLISH_TIMEOUT']!r}")
#: What a 503 asks the client to wait before it tries again, in seconds.
RETRY_AFTER = "5"

queue = Queue(QUEUE, durable=True)

# Declare the queue once, at start-up.  With gunicorn's preload_app this runs
# in the master, before it forks the workers: the master's pooled connection
# stays the master's, and each worker opens connections of its own.  A broker
# that cannot be used ends the start-up in one line, not a traceback.
try:
    # confirm_publish: publish() returns only once the broker has confirmed
    # the message, and raises if it refuses it.  Every pool for this broker is
    # found through this connection (equal parameters share a pool).
    connection = Connection(BROKER_URL, transport_options={"confirm_publish": True})
    with connections[connection].acquire(block=True, timeout=10) as conn:
        queue(conn.default_channel).declare()
except (KeyError, KombuError, AMQPError, OSError) as exc:  # KeyError: an unknown transport
    sys.exit(f"app.py: cannot declare the queue {QUEUE!r} on {maybe_sanitize_url(BROKER_URL)}: "
             f"{type(exc).__name__}: {exc}")


def app(environ, start_response):
    """Publish one message, then answer with its id."""
    message_id = uuid.uuid4().hex
    try:
        # Waits (cooperatively: this is a gevent worker) while every producer
        # is busy, and then for the broker's confirm, each at most
        # PUBLISH_TIMEOUT seconds.
        with producers[connection].acquire(block=True, timeout=PUBLISH_TIMEOUT) as producer:
            producer.publish(
                {"id": message_id, "path": environ.get("PATH_INFO", "/")},
                routing_key=QUEUE,  # the default exchange routes by queue name
                serializer="json",
                delivery_mode="persistent",
                timeout=PUBLISH_TIMEOUT,
            )
    except greenpools.ConnectionBlocked:  # a PoolTimeout too: catch it first
        # The broker blocks publishers (a memory or disk alarm): come back later.
        return respond(start_response, "503 Service Unavailable",
                       {"error": "broker blocked publishing"}, [("Retry-After", RETRY_AFTER)])
    except greenpools.PoolTimeout:
        return respond(start_response, "503 Service Unavailable", {"error": "broker busy"})
    return respond(start_response, "200 OK", {
        "published": message_id,
        "worker": os.getpid(),
        "backend": greenpools.get_backend().name,
    })


def respond(start_response, status, document, headers=()):
    body = (json.dumps(document) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]
