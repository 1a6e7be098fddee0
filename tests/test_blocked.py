"""The pools when RabbitMQ blocks publishers: a real memory alarm on the
suite's own node (``tests/alarm_node.py``, never the shared broker).

What a caller is promised: a publish that meets the block ends with
``greenpools.ConnectionBlocked`` (never a bare ``TimeoutError``, never
later than its timeout); callers after it get ``ConnectionBlocked`` at
their acquire timeout, and those still waiting when the alarm clears are
served; the pool lends nothing meanwhile and publishing resumes once the
broker unblocks; every publish that returned (confirmed) is in the queue.
Every wait here is bounded; nothing sleeps to synchronise.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from alarm_node import AlarmNode
from brokers import clean_global_pools, unique_name  # noqa: F401  (fixture)
from helpers import HANG_TIMEOUT, join_all, spawn, wait_until
from kombu import Connection, Queue

import greenpools
from greenpools import ConnectionBlocked, pools

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

TIMEOUT = 2.0  # of the acquires and publishes that meet the block
CALLERS = 3  # callers after the first publisher


class Publisher:
    """Publishes numbered messages through ``pools.producers[conn]`` and
    records which were confirmed and what each failure raised."""

    def __init__(self, conn: Connection, queue: Queue) -> None:
        self.conn, self.queue = conn, queue
        self.confirmed: list[str] = []
        self.errors: list[BaseException] = []
        self._numbers = iter(range(1_000_000))
        self._lock = threading.Lock()

    def publish(self, timeout: float = TIMEOUT) -> None:
        with self._lock:
            body = f"message {next(self._numbers)}"
        try:
            with pools.producers[self.conn].acquire(block=True, timeout=timeout) as producer:
                producer.publish(body, routing_key=self.queue.routing_key, timeout=timeout)
        except Exception as exc:
            self.errors.append(exc)
            raise
        self.confirmed.append(body)

    def try_publish(self) -> bool:
        try:
            self.publish()
        except (ConnectionBlocked, TimeoutError):
            return False
        return True


@pytest.fixture
def conn(alarm_node: AlarmNode) -> Connection:
    return Connection(alarm_node.amqp_url, connect_timeout=5,
                      transport_options={"confirm_publish": True})


def bodies_in(url: str, queue: Queue) -> list[str]:
    """Every message in ``queue`` (taken off it), read on a connection of its own."""
    found: list[str] = []
    with Connection(url) as reader:
        channel = reader.default_channel
        while True:
            message = channel.basic_get(queue.name, no_ack=True)
            if message is None:
                return found
            body = message.body
            found.append(body if isinstance(body, str) else body.decode())


def watch(target: Any, *names: str) -> list[tuple[str, Any]]:
    heard: list[tuple[str, Any]] = []
    for name in names:
        greenpools.listen(target, name, lambda pool, resource, seconds, name=name:
                          heard.append((name, seconds)))
    return heard


def test_a_blocked_publish_and_the_callers_after_it_raise_connection_blocked(
    alarm_node: AlarmNode, alarm_queue: Queue, conn: Connection,
) -> None:
    events = watch(pools.connections, "blocked", "unblocked")
    publisher = Publisher(conn, alarm_queue)
    publisher.publish()  # one confirmed before the alarm
    connections = pools.connections[conn]

    alarm_node.raise_memory_alarm()
    first = spawn(publisher.publish)
    with pytest.raises(ConnectionBlocked) as raised:
        first.join(HANG_TIMEOUT)
    assert "connection blocked" in str(raised.value), raised.value  # the broker's reason
    assert connections.name in str(raised.value)
    assert connections.get_stats()["connections_blocked"] == 1
    assert [name for name, _ in events] == ["blocked"]

    # The pool lends nothing now: each caller gets ConnectionBlocked at its acquire timeout.
    callers = [spawn(publisher.publish) for _ in range(CALLERS)]
    for caller in callers:
        with pytest.raises(ConnectionBlocked):
            caller.join(HANG_TIMEOUT)
    assert all(isinstance(e, ConnectionBlocked) for e in publisher.errors), publisher.errors
    assert connections.get_stats()["connections_num"] == 1  # nothing made to get round it

    alarm_node.clear_memory_alarm()
    wait_until(publisher.try_publish, HANG_TIMEOUT, "publishing did not resume after the clear")
    assert [name for name, _ in events] == ["blocked", "unblocked"]
    assert events[1][1] > 0  # seconds blocked
    assert connections.get_stats()["connections_blocked"] == 0

    in_queue = bodies_in(alarm_node.amqp_url, alarm_queue)
    assert set(publisher.confirmed) <= set(in_queue), (publisher.confirmed, in_queue)


def test_callers_waiting_through_the_alarm_are_served_after_it(
    alarm_node: AlarmNode, alarm_queue: Queue, conn: Connection,
) -> None:
    publisher = Publisher(conn, alarm_queue)
    connections = pools.connections[conn]
    alarm_node.raise_memory_alarm()
    with pytest.raises(ConnectionBlocked):
        publisher.publish()
    waiting = [spawn(publisher.publish, HANG_TIMEOUT) for _ in range(CALLERS)]
    wait_until(lambda: connections.get_stats()["requests_waiting"] == CALLERS, HANG_TIMEOUT,
               "the callers did not queue")
    assert not any(task.done.is_set() for task in waiting)  # held, not served

    alarm_node.clear_memory_alarm()  # upkeep reads the blocked connection: it hears the unblock
    join_all(waiting)
    assert len(publisher.confirmed) == CALLERS
    in_queue = bodies_in(alarm_node.amqp_url, alarm_queue)
    assert set(publisher.confirmed) <= set(in_queue), (publisher.confirmed, in_queue)


def test_a_connection_whose_publish_was_cut_short_is_never_lent_again(
    alarm_node: AlarmNode, alarm_queue: Queue, conn: Connection,
) -> None:
    connections = pools.connections[conn]
    with connections.acquire(block=True, timeout=TIMEOUT) as first:
        first.Producer().publish("warm", routing_key=alarm_queue.routing_key, timeout=TIMEOUT)
    alarm_node.raise_memory_alarm()
    with connections.acquire(block=True, timeout=TIMEOUT) as blocked:
        assert blocked is first
        with pytest.raises(ConnectionBlocked):
            blocked.Producer().publish("cut", routing_key=alarm_queue.routing_key, timeout=TIMEOUT)
    assert blocked.connected  # kept open, unlent: it hears the unblock
    with pytest.raises(ConnectionBlocked):
        connections.acquire(block=False)

    alarm_node.clear_memory_alarm()
    wait_until(lambda: not blocked.connected, HANG_TIMEOUT,
               "the blocked connection was not closed after the unblock")
    with connections.acquire(block=True, timeout=HANG_TIMEOUT) as after:
        assert after is not blocked
        after.Producer().publish("after", routing_key=alarm_queue.routing_key, timeout=HANG_TIMEOUT)
    stats = connections.get_stats()
    assert stats["connections_lost"] == 1 and stats["connections_blocked"] == 0


def test_without_a_timeout_the_stall_warning_names_the_block(
    alarm_node: AlarmNode, alarm_queue: Queue, conn: Connection, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenpools.core import lifecycle

    monkeypatch.setattr(lifecycle.StallWatch, "after", 0.2)
    publisher = Publisher(conn, alarm_queue)
    alarm_node.raise_memory_alarm()
    with pytest.raises(ConnectionBlocked):
        publisher.publish()
    forever = spawn(lambda: pools.connections[conn].acquire(block=True, timeout=None))
    wait_until(lambda: "broker has blocked the pool's connections" in caplog.text,
               HANG_TIMEOUT, "no stall warning about the block")
    alarm_node.clear_memory_alarm()
    forever.join().release()  # served once the broker unblocked the pool


def test_a_blocked_publish_ends_although_heartbeats_keep_its_wait_going(
    alarm_node: AlarmNode, alarm_queue: Queue,
) -> None:
    # py-amqp restarts a confirm wait's timeout on every frame it reads, and
    # the broker sends a blocked connection heartbeats more often than this
    # publish's timeout: without the pool ending it, it would never end.
    conn = Connection(alarm_node.amqp_url, connect_timeout=5, heartbeat=2,
                      transport_options={"confirm_publish": True})
    publisher = Publisher(conn, alarm_queue)
    publisher.publish(timeout=5)
    alarm_node.raise_memory_alarm()
    with pytest.raises(ConnectionBlocked):
        spawn(publisher.publish, 5).join(HANG_TIMEOUT)
    alarm_node.clear_memory_alarm()
    wait_until(publisher.try_publish, HANG_TIMEOUT, "publishing did not resume after the clear")
