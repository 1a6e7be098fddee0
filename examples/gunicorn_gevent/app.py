"""A WSGI app that publishes one message per request through greenpools.

    cd examples/gunicorn_gevent
    gunicorn -c gunicorn.conf.py app:app
    curl http://127.0.0.1:8000/

Every request publishes a JSON message ``{"id": ..., "path": ...}`` to the
queue ``QUEUE`` and answers with the message's id, the worker's pid and the
greenpools backend that worker runs on.  The broker confirms each message
before the response goes out (publisher confirms), the queue is durable and
the messages persistent: a 200 means the broker has the message.

Environment: ``BROKER_URL`` (default ``amqp://guest:guest@127.0.0.1:5672//``),
``QUEUE`` (default ``greenpools-example``).
"""

import json
import os
import uuid

from kombu import Connection, Queue

import greenpools
from greenpools.pools import connections, producers

BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("QUEUE", "greenpools-example")

# confirm_publish: publish() returns only once the broker has confirmed the
# message, and raises if it refuses it.  Every pool for this broker is found
# through this connection (connections with equal parameters share a pool).
connection = Connection(BROKER_URL, transport_options={"confirm_publish": True})
queue = Queue(QUEUE, durable=True)

# Declare the queue once, at start-up.  With gunicorn's preload_app this runs
# in the master, before it forks the workers: the master's pooled connection
# stays the master's, and each worker opens connections of its own.
with connections[connection].acquire(block=True, timeout=10) as conn:
    queue(conn.default_channel).declare()


def app(environ, start_response):
    """Publish one message, then answer with its id."""
    message_id = uuid.uuid4().hex
    try:
        # Waits (cooperatively: this is a gevent worker) while every producer
        # is busy, but no longer than 10 s.
        with producers[connection].acquire(block=True, timeout=10) as producer:
            producer.publish(
                {"id": message_id, "path": environ.get("PATH_INFO", "/")},
                routing_key=QUEUE,  # the default exchange routes by queue name
                serializer="json",
                delivery_mode="persistent",
            )
    except greenpools.PoolTimeout:
        return respond(start_response, "503 Service Unavailable", {"error": "broker busy"})
    return respond(start_response, "200 OK", {
        "published": message_id,
        "worker": os.getpid(),
        "backend": greenpools.get_backend().name,
    })


def respond(start_response, status, document):
    body = (json.dumps(document) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]
