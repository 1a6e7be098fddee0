"""Celery app for the end-to-end tests, running on greenpools' pools.

``greenpools.install()`` runs before Celery is imported, so ``app.pool``
and ``app.producer_pool`` are greenpools pools in every process that
imports this module: the worker, its prefork children, and the client.

Two tasks: ``e2e.fanout(n)`` publishes ``fanout:<n>`` to the result queue
through ``app.producer_pool`` and sends ``e2e.leaf(n)`` with
``app.send_task``; ``e2e.leaf(n)`` publishes ``leaf:<n>``.  Each message
also carries the local port of the connection it went out on.  No result
backend: the test counts the result queue.

Environment: ``E2E_TASK_QUEUE``, ``E2E_RESULT_QUEUE``, optional
``E2E_WARMUP=1`` (publish ``warmup:<pid>`` at import, so that a prefork
worker forks its children with a warm pool) and ``E2E_READY_FD`` (the
worker writes one line there when it is ready).
"""

from __future__ import annotations

import os

import greenpools

greenpools.install()

import support  # noqa: E402
from celery import Celery, signals  # noqa: E402
from kombu import Exchange, Queue  # noqa: E402

TASK_QUEUE = os.environ["E2E_TASK_QUEUE"]
RESULT_QUEUE = os.environ["E2E_RESULT_QUEUE"]

app = Celery("greenpools_e2e", broker=support.AMQP_URL, set_as_current=True)
app.conf.update(
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    task_queues=[Queue(
        TASK_QUEUE, Exchange(TASK_QUEUE, type="direct", durable=False), routing_key=TASK_QUEUE,
        durable=False, queue_arguments={"x-expires": support.QUEUE_EXPIRES_MS},
    )],
    task_default_queue=TASK_QUEUE,
    task_default_exchange=TASK_QUEUE,
    task_default_routing_key=TASK_QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


def publish_result(name: str) -> None:
    """Publish ``"<name> <local port of the connection used>"`` to the result queue."""
    with app.producer_pool.acquire(block=True, timeout=30) as producer:
        port = support.socket_identity(producer.connection)["local_port"]
        support.publish_one(producer, RESULT_QUEUE, f"{name} {port}")


@app.task(name="e2e.fanout")
def fanout(number: int) -> None:
    publish_result(f"fanout:{number}")
    app.send_task("e2e.leaf", args=(number,))


@app.task(name="e2e.leaf")
def leaf(number: int) -> None:
    publish_result(f"leaf:{number}")


def describe() -> str:
    """Which pools this process uses, and on which backend."""
    return (f"pid={os.getpid()} pool={type(app.pool).__module__} "
            f"producer_pool={type(app.producer_pool).__module__} "
            f"backend={greenpools.get_backend().name}")


if os.environ.get("E2E_WARMUP") == "1":
    publish_result(f"warmup:{os.getpid()}")


@signals.worker_ready.connect
def _report_ready(sender: object = None, **kwargs: object) -> None:
    fd = os.environ.get("E2E_READY_FD")
    if fd:
        os.write(int(fd), f"ready {describe()}\n".encode())
