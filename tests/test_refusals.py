"""A broker node that refuses publishes as it shuts down: 541 INTERNAL_ERROR
(kombu counts it as irrecoverable and would not retry) or 320
CONNECTION_FORCED, sent by tests/faultproxy.py as a ``Connection.Close``
from the broker between two publishes, on the real RabbitMQ behind it.

With ``retry=True`` the publish goes through on a fresh connection;
without, the caller gets ``NodeShuttingDown`` naming the pool and the
broker's code, and the pool never lends that connection again.  Either
way every confirmed message is in the queue.
"""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from brokers import amqp_url, clean_global_pools, make_proxy  # noqa: F401  (fixtures)
from e2e import support
from faultproxy import FaultProxy
from kombu import Connection

from greenpools import NodeShuttingDown, pools

pytestmark = pytest.mark.broker

CODES = [541, 320]
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


@pytest.fixture
def queue() -> Iterator[str]:
    with support.temporary_queue("refusals") as name:
        yield name


def bodies(queue: str) -> list[str]:
    return sorted(body.decode() for body in support.drain_queue(queue, 10))


def refused_after_one_publish(
    proxy: FaultProxy, amqp_url: str, queue: str, code: int,
) -> tuple[Connection, Any]:
    """A confirming connection through ``proxy``, whose pooled connection
    published once before the proxy closed it with ``code`` as the broker
    would: (the connection, that pooled connection)."""
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=5)
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "before")
        refused = producer.connection
    proxy.close_as_broker(code)
    return conn, refused


@pytest.mark.parametrize("code", CODES)
def test_a_refused_publish_with_retry_goes_through_on_a_fresh_connection(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str, code: int,
) -> None:
    proxy = make_proxy()
    conn, refused = refused_after_one_publish(proxy, amqp_url, queue, code)

    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is refused
        producer.publish("after", exchange="", routing_key=queue, serializer="raw",
                         timeout=10, retry=True, retry_policy=RETRY_POLICY)
    assert proxy.stats()["accepted"] == 2  # the retry connected afresh

    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is not refused  # replaced, never lent again
        support.publish_one(producer, queue, "later")
    assert bodies(queue) == ["after", "before", "later"]


@pytest.mark.parametrize("code", CODES)
def test_a_refused_publish_without_retry_names_the_refusal_and_replaces_the_connection(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str, code: int,
) -> None:
    conn, refused = refused_after_one_publish(make_proxy(), amqp_url, queue, code)
    connections = pools.connections[conn]

    with pytest.raises(NodeShuttingDown) as raised:
        with pools.producers[conn].acquire(block=True, timeout=10) as producer:
            support.publish_one(producer, queue, "refused")
    assert f"({code})" in str(raised.value) and connections.name in str(raised.value)
    assert raised.value.__cause__ is not None

    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is not refused
        support.publish_one(producer, queue, "after")
    assert connections.get_stats()["connections_lost"] == 1
    assert bodies(queue) == ["after", "before"]
