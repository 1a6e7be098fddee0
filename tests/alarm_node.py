"""The alarm node: a RabbitMQ node of the tests' own, for raising resource alarms.

An alarm blocks every publisher of a broker, so the tests never raise one
on the machine's broker: they raise it on this single node
(``tests/rabbit_cluster.py``), booted on first use and shared by the
runner's passes, which take turns on it.  A test gets it by asking for the
:func:`alarm_node` fixture (``tests/conftest.py`` offers it to every module)::

    from alarm_node import AlarmNode

    def test_something(alarm_node: AlarmNode) -> None:
        alarm_node.raise_memory_alarm()
        ...  # connect to alarm_node.amqp_url

The fixture clears an alarm the test left raised.  :func:`alarm_queue`
is a queue of the test's own on that node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from brokers import unique_name
from helpers import SERVICE_MISSING
from kombu import Connection, Queue
from rabbit_cluster import RabbitCluster, missing_reason, session_nodes

LABEL = "alarm"
#: A memory high watermark (fraction of RAM) below what any node uses: the alarm goes off.
ALARM_WATERMARK = "0.0000001"
#: RabbitMQ's default watermark: the alarm clears.
NORMAL_WATERMARK = "0.4"
ALARM_TIMEOUT = 30.0  # seconds for the node to report the alarm raised or cleared


class AlarmNode:
    """One RabbitMQ node of our own and its memory alarm."""

    def __init__(self, nodes: RabbitCluster) -> None:
        self.nodes = nodes
        self.node = nodes.nodes[0]
        self.alarm_raised = False  # by this object, and not cleared since

    @property
    def amqp_url(self) -> str:
        """The node's AMQP URL (guest/guest on loopback)."""
        return self.node.url

    @property
    def name(self) -> str:
        """The node's Erlang name (what ``rabbitmqctl -n`` takes)."""
        return self.node.name

    def raise_memory_alarm(self) -> None:
        """Raise the node's memory alarm; return once the node reports it."""
        self.nodes.ctl(self.node, "set_vm_memory_high_watermark", ALARM_WATERMARK)
        self.alarm_raised = True
        self._await_memory_alarm(True)

    def clear_memory_alarm(self) -> None:
        """Clear the node's memory alarm; return once the node reports it gone."""
        self.nodes.ctl(self.node, "set_vm_memory_high_watermark", NORMAL_WATERMARK)
        self._await_memory_alarm(False)
        self.alarm_raised = False

    def memory_alarm(self) -> bool:
        """Whether the node has its memory alarm raised now."""
        alarms = self.nodes.ctl(self.node, "eval", "rabbit_alarm:get_alarms().")
        return "resource_limit,memory" in alarms

    def _await_memory_alarm(self, raised: bool) -> None:
        # A CLI call takes about a second: polling needs no pause.
        deadline = time.monotonic() + ALARM_TIMEOUT
        while self.memory_alarm() != raised:
            if time.monotonic() > deadline:
                state = "raise" if raised else "clear"
                raise AssertionError(f"node {self.name} did not {state} its memory alarm "
                                     f"within {ALARM_TIMEOUT}s")


@pytest.fixture
def alarm_node() -> Iterator[AlarmNode]:
    """The alarm node, held alone for the test, with no alarm left raised after it."""
    reason = missing_reason()
    if reason:
        pytest.skip(f"{SERVICE_MISSING} {reason}")
    node = AlarmNode(session_nodes(LABEL, 1))
    with node.nodes.turn():
        try:
            yield node
        finally:
            if node.alarm_raised:
                node.clear_memory_alarm()


@pytest.fixture
def alarm_queue(alarm_node: AlarmNode) -> Iterator[Queue]:
    """A queue of the test's own on the alarm node, deleted after the test."""
    name = unique_name("greenpools-alarm")
    declared = Queue(name, routing_key=name)
    with Connection(alarm_node.amqp_url) as conn:
        declared(conn.default_channel).declare()
        yield declared
        declared(conn.default_channel).delete()
