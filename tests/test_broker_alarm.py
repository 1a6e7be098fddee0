"""What RabbitMQ does to AMQP connections during a resource alarm, as real
kombu/py-amqp connections see it, on a node of the tests' own
(``tests/alarm_node.py``).

The pools' handling of blocked connections is built on these facts: a
connection hears ``connection.blocked`` only when it publishes during the
alarm, its publish waits for the confirm until the alarm clears, idle
connections hear nothing, and a publish that times out meanwhile raises a
bare ``TimeoutError`` although the broker still takes the message later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from alarm_node import AlarmNode
from helpers import spawn, wait_until
from kombu import Connection, Producer, Queue

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

WAIT = 30.0  # bound on every wait for the broker
PUBLISH_TIMEOUT = 2.0  # of the publish that is meant to time out


class Watched:
    """A kombu connection with publisher confirms that records, in order,
    what the broker told it about blocking and when."""

    def __init__(self, url: str) -> None:
        self.blocked = threading.Event()
        self.unblocked = threading.Event()
        self.reasons: list[str] = []
        self.log: list[tuple[str, float]] = []
        self.connection = Connection(url, connect_timeout=5, transport_options={
            "confirm_publish": True,
            "on_blocked": self._on_blocked,
            "on_unblocked": self._on_unblocked,
        })
        self.connection.connect()

    def _on_blocked(self, reason: str) -> None:
        self.reasons.append(reason)
        self.log.append(("blocked", time.monotonic()))
        self.blocked.set()

    def _on_unblocked(self) -> None:
        self.log.append(("unblocked", time.monotonic()))
        self.unblocked.set()

    def publish(self, queue: Queue, body: str, timeout: float = WAIT) -> None:
        """Publish and wait for the confirm (at most ``timeout`` seconds)."""
        Producer(self.connection.default_channel).publish(
            body, routing_key=queue.routing_key, timeout=timeout)
        self.log.append(("confirmed", time.monotonic()))

    def messages_in(self, queue: Queue) -> int:
        """A round trip to the broker: whatever it sent before the answer
        (a ``connection.blocked``, say) is read and dispatched first."""
        return int(self.connection.default_channel.queue_declare(
            queue.name, passive=True).message_count)

    def heard(self) -> list[str]:
        return [what for what, _ in self.log if what != "confirmed"]


@pytest.fixture
def watched(alarm_node: AlarmNode) -> Iterator[list[Watched]]:
    """Make watched connections to the alarm node; all closed after the test."""
    made: list[Watched] = []
    yield made
    for conn in made:
        conn.connection.release()


def test_only_a_publishing_connection_is_blocked_and_its_publish_waits_for_the_clear(
    alarm_node: AlarmNode, watched: list[Watched], alarm_queue: Queue,
) -> None:
    url = alarm_node.amqp_url
    idle, published_before, publisher = (Watched(url) for _ in range(3))
    watched += [idle, published_before, publisher]
    published_before.publish(alarm_queue, "before the alarm")

    alarm_node.raise_memory_alarm()
    started = time.monotonic()
    publishing = spawn(publisher.publish, alarm_queue, "during the alarm")
    assert publisher.blocked.wait(WAIT), "the publishing connection heard no connection.blocked"
    assert publisher.reasons and all(publisher.reasons), publisher.reasons
    # Idle connections, fresh or having published before, are told nothing.
    assert idle.messages_in(alarm_queue) == published_before.messages_in(alarm_queue) == 1
    assert idle.heard() == published_before.heard() == []
    assert not publishing.done.is_set(), "the publish was confirmed during the alarm"

    clearing = time.monotonic()
    alarm_node.clear_memory_alarm()
    publishing.join(WAIT)
    assert publisher.heard() == ["blocked", "unblocked"]
    assert [what for what, _ in publisher.log] == ["blocked", "unblocked", "confirmed"]
    assert idle.messages_in(alarm_queue) == published_before.messages_in(alarm_queue) == 2
    assert idle.heard() == published_before.heard() == []
    times = dict(publisher.log)
    print(f"publish -> blocked {times['blocked'] - started:.2f}s; "
          f"clearing -> unblocked {times['unblocked'] - clearing:.2f}s, "
          f"-> confirmed {times['confirmed'] - clearing:.2f}s; reason {publisher.reasons}")


def test_a_publish_timing_out_in_an_alarm_raises_timeout_error_and_still_arrives_after(
    alarm_node: AlarmNode, watched: list[Watched], alarm_queue: Queue,
) -> None:
    publisher, reader = Watched(alarm_node.amqp_url), Watched(alarm_node.amqp_url)
    watched += [publisher, reader]
    alarm_node.raise_memory_alarm()
    with pytest.raises(TimeoutError) as raised:
        publisher.publish(alarm_queue, "timed out", timeout=PUBLISH_TIMEOUT)
    assert type(raised.value) is TimeoutError  # bare: nothing says the broker blocked it
    assert publisher.heard() == ["blocked"]

    alarm_node.clear_memory_alarm()
    # The broker reads the message it had stopped reading: "timed out" is not "lost".
    wait_until(lambda: reader.messages_in(alarm_queue) == 1, WAIT,
               "the timed-out message never reached the queue")
