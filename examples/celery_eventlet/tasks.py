"""A Celery app whose tasks publish through greenpools' producer pool.

    cd examples/celery_eventlet
    celery -A tasks worker -P eventlet -c 50
    python -c 'from tasks import publish; print(publish.delay("hello").get(timeout=10))'

``publish(body)`` publishes ``body`` to the queue ``QUEUE`` through Celery's
producer pool, which ``greenpools.install()`` makes a greenpools pool, and
returns the name of the greenpools backend it ran on: ``eventlet`` in a
``-P eventlet`` worker.  Results come back through the ``rpc://`` backend.

Environment: ``BROKER_URL`` (default ``amqp://guest:guest@127.0.0.1:5672//``),
``QUEUE`` (default ``greenpools-example``).
"""

import os

import greenpools

# Before Celery builds its pools (app.pool, app.producer_pool): from here on
# kombu.pools is greenpools'.  `celery -P eventlet` has already called
# eventlet.monkey_patch() by the time it imports this module, so greenpools
# picks the eventlet backend by itself.  To pin it instead (and fail at
# start-up if eventlet is missing), add: greenpools.use_backend("eventlet")
greenpools.install()

from celery import Celery  # noqa: E402
from kombu import Connection, Queue  # noqa: E402

from greenpools.pools import producers  # noqa: E402

BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("QUEUE", "greenpools-example")

app = Celery("tasks", broker=BROKER_URL, backend="rpc://")
app.conf.update(
    # The limit of every pool in greenpools' global groups (Celery's and the
    # one below), per broker and process: 50 green threads share 10 here.
    broker_pool_limit=10,
    # How long Celery waits for a free connection or producer (sending a
    # task, say) before it raises OperationalError.
    broker_pool_acquire_timeout=10,
    broker_connection_retry_on_startup=True,
)

# Publisher confirms for what the task publishes: a connection whose
# publishes wait for the broker's confirm.  Its pools sit in the same global
# groups as Celery's, under the same limit.  (Confirms for all of Celery's
# messages, with broker_transport_options, make an eventlet worker hang in
# its warm shutdown: see the README.)
confirming = Connection(BROKER_URL, transport_options={"confirm_publish": True})
queue = Queue(QUEUE, durable=True)


@app.task
def publish(body):
    """Publish ``body`` to ``QUEUE``; the greenpools backend it ran on."""
    # Waits (cooperatively) while all 10 producers are busy, at most 10 s.
    with producers[confirming].acquire(block=True, timeout=10) as producer:
        producer.publish(
            body,
            routing_key=QUEUE,  # the default exchange routes by queue name
            declare=[queue],  # declared on first use of each connection
            serializer="json",
            delivery_mode="persistent",
        )
    return greenpools.get_backend().name
