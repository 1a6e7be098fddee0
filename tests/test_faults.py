"""Faults between the pools and the real RabbitMQ, injected by tests/faultproxy.py.

Every scenario checks what a caller is promised: nothing confirmed is lost
(each publish that returned, with publisher confirms on, is in the queue
afterwards; retries may add duplicates, which are counted and bounded), no
wait outlives its timeout (generous upper bounds, the machine is noisy),
and the pools' books balance afterwards.  The proxy sits between the pools
and the broker; queues are declared and drained on the broker directly.
The fork scenario (a task blocked on a pooled socket at ``fork()``) is in
test_fork_storm.py.
"""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kombu.exceptions
import pytest
from brokers import amqp_url, clean_global_pools, make_proxy  # noqa: F401  (fixtures)
from e2e import support
from faultproxy import FaultProxy
from helpers import HANG_TIMEOUT, Task, assert_balanced, join_all, spawn

from greenpools import PoolTimeout, pools

pytestmark = pytest.mark.broker

LIMIT = 10  # the global default, which clean_global_pools restores
#: Bounds each publish (the write, then the confirm wait) in the loads below.
PUBLISH_TIMEOUT = 10.0
RETRYING = {
    "retry": True, "timeout": PUBLISH_TIMEOUT,
    "retry_policy": {"max_retries": 5, "interval_start": 0, "interval_step": 0.2,
                     "interval_max": 0.5},
}


class Load:
    """``tasks`` tasks publishing ``total`` numbered messages through
    ``pools.producers[conn]``, one acquire per message.

    A test waits for ``reached(n)`` (``n`` publishes confirmed), injects a
    fault, then calls ``resume(m)``: messages from number ``m`` on wait for
    that call, so the fault always lands while the load is running, with
    the publishes between ``n`` and ``m`` in flight.
    """

    def __init__(self, conn: Any, queue: str, tasks: int, total: int,
                 options: dict[str, Any], acquire_timeout: float = HANG_TIMEOUT) -> None:
        self.conn, self.queue, self.tasks, self.total = conn, queue, tasks, total
        self.options, self.acquire_timeout = options, acquire_timeout
        self.confirmed: list[str] = []
        self.failed: list[str] = []
        self.longest = 0.0  # seconds, of one acquire + publish
        self._lock = threading.Lock()
        self._numbers = iter(range(total))
        self._milestones: dict[int, threading.Event] = {}
        self._gates: dict[int, threading.Event] = {}

    def reached(self, count: int) -> None:
        event = self._milestones[count]
        if not event.wait(HANG_TIMEOUT):
            raise AssertionError(f"only {len(self.confirmed)} of {count} publishes confirmed "
                                 f"in {HANG_TIMEOUT}s; failures: {self.failed[:5]}")

    def resume(self, number: int) -> None:
        self._gates[number].set()

    def start(self, milestones: tuple[int, ...] = (), gates: tuple[int, ...] = ()) -> list[Task]:
        self._milestones = {count: threading.Event() for count in milestones}
        self._gates = {number: threading.Event() for number in gates}
        return [spawn(self._task) for _ in range(self.tasks)]

    def _task(self) -> None:
        while True:
            with self._lock:
                number = next(self._numbers, None)
            if number is None:
                return
            for gate, event in self._gates.items():
                if number >= gate and not event.wait(HANG_TIMEOUT):
                    raise AssertionError(f"message {number} waited for gate {gate} in vain")
            self._publish(f"m{number}")

    def _publish(self, body: str) -> None:
        started = time.monotonic()
        try:
            with pools.producers[self.conn].acquire(block=True,
                                                    timeout=self.acquire_timeout) as producer:
                producer.publish(body, exchange="", routing_key=self.queue, serializer="raw",
                                 content_type="text/plain", content_encoding="utf-8",
                                 **self.options)
        except Exception as exc:
            with self._lock:
                self.failed.append(f"{body}: {exc!r}")
        else:
            with self._lock:
                self.confirmed.append(body)
                count = len(self.confirmed)
            for milestone, event in self._milestones.items():
                if count >= milestone:
                    event.set()
        finally:
            with self._lock:
                self.longest = max(self.longest, time.monotonic() - started)

    def attempted(self) -> set[str]:
        return {f"m{number}" for number in range(self.total)}


def assert_nothing_confirmed_lost(queue: str, confirmed: list[str], attempted: set[str],
                                  max_duplicates: int) -> int:
    """Every confirmed body is in ``queue``, nothing else arrived, and at most
    ``max_duplicates`` extra copies (a retried publish whose first attempt
    reached the broker but whose confirm was lost).  Returns the duplicates."""
    bodies = collections.Counter(
        body.decode() for body in support.drain_queue(queue, 3 * len(attempted) + 10))
    lost = set(confirmed) - set(bodies)
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:10]}"
    unexpected = set(bodies) - attempted
    assert not unexpected, f"never published: {sorted(unexpected)[:10]}"
    duplicates = sum(count - 1 for count in bodies.values())
    assert duplicates <= max_duplicates, (
        f"{duplicates} duplicates, more than {max_duplicates}: "
        f"{[body for body, count in bodies.items() if count > 1][:10]}")
    return duplicates


def assert_pools_balanced(conn: Any) -> None:
    assert_balanced(pools.producers[conn])
    assert_balanced(pools.connections[conn])


#: How long a healed pool may take to publish again (see assert_publishes_again).
HEAL_DEADLINE = 30.0


def assert_publishes_again(conn: Any, queue: str, body: str) -> None:
    """After healing, the same pools publish ``body`` and it arrives, alone.

    The connection's sub-second ``connect_timeout`` also bounds the healed
    handshake, which a loaded machine (the other pass booting RabbitMQ
    nodes) can overrun.  A caller would publish again, so a handshake that
    times out is retried until :data:`HEAL_DEADLINE`, each failure leaving
    the books balanced; any other error, or no success by then, fails.
    """
    deadline = time.monotonic() + HEAL_DEADLINE
    while True:
        try:
            with pools.producers[conn].acquire(block=True, timeout=10) as producer:
                support.publish_one(producer, queue, body)
            break
        except kombu.exceptions.OperationalError as exc:
            if not _timed_out(exc) or time.monotonic() > deadline:
                raise
            print(f"healed pool: the handshake timed out, publishing again: {exc!r}")
            assert_pools_balanced(conn)
    assert [received.decode() for received in support.drain_queue(queue, 10)] == [body]
    assert_pools_balanced(conn)


def _timed_out(exc: BaseException) -> bool:
    """Whether kombu's error wraps a socket timeout (not a refusal, say)."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (TimeoutError, socket.timeout)) or "timed out" in str(exc)


@pytest.fixture
def queue() -> Iterator[str]:
    with support.temporary_queue("faults") as name:
        yield name


def test_publishing_with_retry_survives_two_cuts(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """Every connection through the proxy is reset twice while 50 tasks
    publish with confirms and ``retry=True``: kombu reconnects the pooled
    connection inside ``publish``, every publish returns, none is lost."""
    proxy = make_proxy()
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=5)
    total = 200
    load = Load(conn, queue, tasks=50, total=total, options=RETRYING)
    started = time.monotonic()
    tasks = load.start(milestones=(60, 130), gates=(80, 150))
    cuts = []
    for milestone, gate in ((60, 80), (130, 150)):
        load.reached(milestone)
        assert proxy.stats()["open"] > 0
        cuts.append(proxy.cut())
        load.resume(gate)
    join_all(tasks, timeout=2 * HANG_TIMEOUT)
    elapsed = time.monotonic() - started

    # kombu retries a publish whose connection broke, but not the channel
    # open right after its reconnect: a cut landing there escapes as
    # kombu's OperationalError.  The caller is told; at most one such
    # failure per pooled connection and cut.
    assert len(load.confirmed) + len(load.failed) == total
    assert len(load.failed) <= 2 * LIMIT, load.failed
    assert all("OperationalError" in failure for failure in load.failed), load.failed
    # The cuts hit live connections: the pools connected again after each.
    assert proxy.stats()["accepted"] > cuts[1]["accepted"] > cuts[0]["accepted"] > 0
    # A publish in flight at a cut may reach the broker, lose its confirm
    # and go out again: at most one per pooled connection and cut.
    duplicates = assert_nothing_confirmed_lost(queue, load.confirmed, load.attempted(),
                                               max_duplicates=2 * LIMIT)
    print(f"two cuts: {len(load.confirmed)} confirmed, {len(load.failed)} failed, "
          f"{duplicates} duplicates, {elapsed:.1f}s, "
          f"longest publish {load.longest:.1f}s")
    assert load.longest < 60, "a publish hung well past its timeout and retry policy"
    assert_pools_balanced(conn)


def test_cut_without_retry_fails_one_publish_and_the_pool_replaces_the_connection(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """An idle pooled connection is cut: the next publish on it raises one of
    its connection errors (nothing retried), the pool replaces it, and the
    publish after that goes out on a new connection."""
    proxy = make_proxy()
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=5)
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "before")
        cut = producer.connection
    proxy.cut()
    with pytest.raises(tuple(cut.connection_errors)):
        with pools.producers[conn].acquire(block=True, timeout=10) as producer:
            assert producer.connection is cut  # the warm one, now dead
            support.publish_one(producer, queue, "unconfirmed")
    assert pools.connections[conn].get_stats()["connections_lost"] == 1
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is not cut
        support.publish_one(producer, queue, "after")
    bodies = [body.decode() for body in support.drain_queue(queue, 10)]
    assert sorted(set(bodies)) in (["after", "before"], ["after", "before", "unconfirmed"])
    assert len(bodies) == len(set(bodies))
    assert_pools_balanced(conn)


def test_black_hole_fails_acquire_and_publish_within_their_timeouts(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """The proxy accepts connections and never answers: the AMQP handshake
    gives up after ``connect_timeout``, callers queued for a connection
    give up after the pool's ``timeout``; healed, the same pool publishes."""
    proxy = make_proxy()
    proxy.blackhole()
    connect_timeout, pool_timeout = 0.5, 0.5
    pools.set_limit(2)
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=connect_timeout)
    outcomes: list[tuple[str, float]] = []

    def publish_once(body: str) -> None:
        started = time.monotonic()
        try:
            with pools.producers[conn].acquire(block=True, timeout=pool_timeout) as producer:
                support.publish_one(producer, queue, body)
            outcome = "published"
        except PoolTimeout:
            outcome = "PoolTimeout"
        except Exception as exc:
            outcome = type(exc).__name__
        outcomes.append((outcome, time.monotonic() - started))

    join_all([spawn(publish_once, f"dark{n}") for n in range(4)])

    print(f"black hole: {sorted(outcomes)}")
    assert len(outcomes) == 4
    assert not [o for o, _ in outcomes if o == "published"], outcomes
    assert proxy.stats()["accepted"] >= 2  # the handshakes really went into the hole
    # A wait for a connection, or one handshake: each gives up on time.  The
    # bound is generous for a noisy machine, yet below kombu's default
    # connect_timeout (4 s), which a pool not passing the option on would use.
    for outcome, seconds in outcomes:
        assert outcome in ("PoolTimeout", "OperationalError"), outcomes
        assert seconds < connect_timeout + pool_timeout + 2.5, outcomes
    assert_pools_balanced(conn)

    proxy.pass_through()
    assert_publishes_again(conn, queue, "healed")


def test_refused_connect_fails_within_connect_timeout_and_recovers(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """Nothing listens: kombu retries the connect for ``connect_timeout``,
    then the caller gets kombu's ``OperationalError``; the unconnected
    connection goes back to the pool, and once the broker listens again
    the same pool publishes."""
    proxy = make_proxy()
    proxy.refuse()
    connect_timeout = 0.5
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=connect_timeout)

    def publish_refused() -> float:
        started = time.monotonic()
        with pytest.raises(kombu.exceptions.OperationalError, match=r"(?i)refused"):
            with pools.producers[conn].acquire(block=True, timeout=5) as producer:
                support.publish_one(producer, queue, "refused")
        return time.monotonic() - started

    assert spawn(publish_refused).join() < connect_timeout + 2.5
    assert_pools_balanced(conn)
    proxy.pass_through()
    assert_publishes_again(conn, queue, "listening")


def test_failover_to_the_second_broker_url_when_the_first_dies_mid_load(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """``Connection("amqp://...:P1//;amqp://...:P2//")`` through two proxies:
    P1 stops listening and drops its connections mid-load; publishing with
    ``retry=True`` carries on through P2 and loses nothing."""
    first, second = make_proxy(), make_proxy()
    url = f"{first.url(amqp_url)};{second.url(amqp_url)}"
    conn = support.confirming_connection(url, connect_timeout=2)
    total = 150
    load = Load(conn, queue, tasks=30, total=total, options=RETRYING)
    tasks = load.start(milestones=(50,), gates=(70,))
    load.reached(50)
    # The pool spreads its connections over both URLs (greenpools.kombu.placement):
    # those on the first one must fail over when it dies.
    assert first.stats()["open"] > 0
    first.refuse()
    first.cut()
    load.resume(70)
    join_all(tasks, timeout=2 * HANG_TIMEOUT)

    assert len(load.confirmed) + len(load.failed) == total
    assert len(load.failed) <= LIMIT, load.failed  # as with a cut: see the test above
    assert len(load.confirmed) > 70  # publishing went on after the first URL died
    assert second.stats()["accepted"] > 0
    assert_nothing_confirmed_lost(queue, load.confirmed, load.attempted(),
                                  max_duplicates=LIMIT)
    assert load.longest < 60
    assert_pools_balanced(conn)
    # A connection made now starts at the dead first URL and fails over too.
    later = pools.ConnectionPool(conn, limit=1)
    try:
        with later.acquire(block=True, timeout=10) as fresh:
            fresh.default_channel  # noqa: B018 - connects
            assert fresh.connection.sock.getpeername()[1] == second.port
    finally:
        later.close()


def test_publish_timeout_bounds_a_confirm_wait_on_a_silent_broker(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """The broker falls silent after the connection is up: ``publish(...,
    timeout=T)`` bounds the write and the confirm wait, the pool replaces
    the connection, and after healing the same pool publishes again."""
    proxy = make_proxy()
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=2)
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "before")
        silenced = producer.connection
    proxy.blackhole()
    timeout = 1.0

    def publish_into_the_hole() -> float:
        started = time.monotonic()
        with pytest.raises(socket.timeout):
            with pools.producers[conn].acquire(block=True, timeout=10) as producer:
                assert producer.connection is silenced  # the warm one, now in the hole
                producer.publish("unconfirmed", exchange="", routing_key=queue,
                                 serializer="raw", content_type="text/plain",
                                 content_encoding="utf-8", timeout=timeout)
        return time.monotonic() - started

    # The publish gives up after ``timeout``; leaving the block then closes
    # the connection, which waits at most a second for each of two answers.
    elapsed = spawn(publish_into_the_hole).join(timeout + 2 + 20)
    print(f"publish into a black hole raised after {elapsed:.1f}s")
    assert_pools_balanced(conn)
    stats = pools.connections[conn].get_stats()
    assert stats["connections_lost"] == 1, stats  # replaced, not returned

    proxy.pass_through()
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is not silenced
        support.publish_one(producer, queue, "after")
    # The black hole swallowed the unconfirmed message: it never arrived.
    assert sorted(body.decode() for body in support.drain_queue(queue, 10)) == [
        "after", "before"]
    assert_pools_balanced(conn)


def test_a_connection_whose_confirm_wait_ran_out_is_never_lent_again(
    amqp_url: str, make_proxy: Callable[[], FaultProxy], queue: str
) -> None:
    """A caller catches the ``TimeoutError`` of a publish and gives the
    producer back as if nothing happened: its connection may still get
    that message's confirm (and take it for the next one's), so the pool
    closes it instead of lending it again."""
    proxy = make_proxy()
    conn = support.confirming_connection(proxy.url(amqp_url), connect_timeout=2)
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        support.publish_one(producer, queue, "before")
        in_doubt = producer.connection
    proxy.blackhole()
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is in_doubt
        with pytest.raises(socket.timeout):
            support.publish_one(producer, queue, "unconfirmed", timeout=1.0)
    proxy.pass_through()
    with pools.producers[conn].acquire(block=True, timeout=10) as producer:
        assert producer.connection is not in_doubt
        support.publish_one(producer, queue, "after")
    assert pools.connections[conn].get_stats()["connections_lost"] == 1
    assert_pools_balanced(conn)
