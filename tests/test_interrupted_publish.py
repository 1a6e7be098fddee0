"""A publish interrupted mid-write (``gevent.Timeout``, ``eventlet.Timeout``,
a killed green thread) must not leave its connection in the pool.

The interruption is not an ``Exception``, so it is none of the
connection's ``connection_errors``; but it can stop py-amqp's write in the
middle of a frame, and the broker then reads the next publish on that
socket as the rest of this one: the next publishes "succeed" and are lost
(and, with confirms, their confirm never comes).  Real RabbitMQ, real
green threads; the connection goes through tests/faultproxy.py, which
stalls (stops reading) while a 64 MiB body is written, so the write has
to wait, and a 1 ms timeout fires in the middle of it.  (Straight to the
broker, a loaded machine's broker could read fast enough that the write
never waited: green threads yield only when it does.)
"""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from brokers import amqp_url, clean_global_pools, make_proxy  # noqa: F401  (fixtures)
from e2e import support
from faultproxy import FaultProxy
from helpers import BACKEND
from kombu import Connection, Producer

from greenpools import pools

# A thread's write cannot be interrupted: the green runs only (a skip of a
# broker-marked test would fail under CI=true, so the threading run's carries none).
pytestmark = (pytest.mark.skip(reason="interrupting a write takes a green timeout: "
                               "the gevent and eventlet runs") if BACKEND == "threading"
              else pytest.mark.broker)

BIG = b"x" * (64 << 20)
AFTER = 10
TRIES = 5
#: How long the proxy stops reading while a big body is written: far
#: longer than filling the socket buffers takes, however loaded the machine.
STALL = 1.0


@pytest.fixture
def interruption() -> type[BaseException]:
    """The backend's own timeout, an interruption that is not an Exception."""
    timeout: type[BaseException] = importlib.import_module(BACKEND).Timeout
    assert not issubclass(timeout, Exception)
    return timeout


@pytest.fixture
def queue(amqp_url: str) -> Iterator[str]:
    name = support.unique_queue_name("interrupted-publish")
    with Connection(amqp_url) as admin:
        admin.default_channel.queue_declare(name, durable=False, auto_delete=False)
    try:
        yield name
    finally:
        support.delete_queue(name)


def publish_big(producer: Any, queue: str) -> None:
    producer.publish(BIG, routing_key=queue, exchange="", serializer=None,
                     content_type="application/octet-stream", content_encoding="binary",
                     timeout=5)


def publish_after(connection: Connection, queue: str) -> None:
    """``AFTER`` confirmed publishes through the pool, each within 5 s."""
    for number in range(AFTER):
        with pools.producers[connection].acquire(block=True, timeout=5) as producer:
            producer.publish({"n": number}, routing_key=queue, exchange="", timeout=5)


@pytest.fixture
def proxy(make_proxy: Callable[[], FaultProxy]) -> FaultProxy:
    return make_proxy()


def interrupt_one(
    proxy: FaultProxy, publish: Callable[[], None], interruption: type[BaseException],
) -> int:
    """Run ``publish`` under a 1 ms timeout, the proxy stalled, until the
    timeout cuts it; how many of the tries completed first."""
    for completed in range(TRIES):
        proxy.stall(STALL)
        try:
            with interruption(0.001):
                publish()
        except interruption:
            return completed
    pytest.fail(f"none of {TRIES} publishes of {len(BIG) >> 20} MiB outlasted a 1 ms timeout")


def assert_all_arrived(amqp_url: str, queue: str, completed: int) -> None:
    """The ``AFTER`` publishes are queued, after the big ones that completed,
    and the cut one too if the timeout came only after its write (while it
    waited for the confirm)."""
    with Connection(amqp_url) as admin:
        queued = int(admin.default_channel.queue_declare(queue, passive=True).message_count)
    assert queued in (AFTER + completed, AFTER + completed + 1)


def connected(amqp_url: str, proxy: FaultProxy) -> Connection:
    """A confirming connection through ``proxy`` whose pooled AMQP connection
    is open, its channel in confirm mode (so that the timeout fires in the
    write, not in the connect or in the wait for ``Confirm.SelectOk``)."""
    connection = Connection(proxy.url(amqp_url), transport_options={"confirm_publish": True})
    pools.set_limit(1)  # one connection: the next publishes would get the cut one
    with pools.producers[connection].acquire(block=True, timeout=5) as producer:
        producer.publish(b"", routing_key=support.unique_queue_name("nowhere"), exchange="",
                         timeout=5)  # unroutable: dropped by the broker, and confirmed
    return connection


@pytest.mark.parametrize("through", ["producers", "connections"])
def test_a_publish_interrupted_inside_with_replaces_the_connection(
    amqp_url: str, queue: str, interruption: type[BaseException], clean_global_pools: None,
    through: str, proxy: FaultProxy,
) -> None:
    connection = connected(amqp_url, proxy)

    def publish() -> None:
        if through == "producers":
            with pools.producers[connection].acquire(block=True, timeout=5) as producer:
                publish_big(producer, queue)
        else:
            with pools.connections[connection].acquire(block=True, timeout=5) as conn:
                publish_big(Producer(conn), queue)

    completed = interrupt_one(proxy, publish, interruption)
    publish_after(connection, queue)
    assert_all_arrived(amqp_url, queue, completed)


def test_a_producer_released_after_an_interrupted_publish_takes_its_connection_out(
    amqp_url: str, queue: str, interruption: type[BaseException], clean_global_pools: None,
    proxy: FaultProxy,
) -> None:
    connection = connected(amqp_url, proxy)
    producer = pools.producers[connection].acquire(block=True, timeout=5)
    try:
        completed = interrupt_one(proxy, lambda: publish_big(producer, queue), interruption)
    finally:
        producer.release()  # no with: the publish itself retired the connection
    publish_after(connection, queue)
    assert_all_arrived(amqp_url, queue, completed)
