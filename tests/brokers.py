"""Fixtures for the kombu-layer tests: broker URLs, unique queues, clean pools.

Import the fixtures into a test module (``from brokers import amqp_url``);
pytest puts ``tests/`` on ``sys.path``.  A broker that cannot be reached
skips the test with a reason starting with ``service unavailable:``, which
conftest turns into a failure under ``CI=true``.
"""

from __future__ import annotations

import os
import posix
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import require_amqp, require_redis
from kombu import Connection, Exchange, Queue

from greenpools import pools

#: Queues a crashed run leaves behind expire on the broker by themselves.
QUEUE_EXPIRES_MS = 5 * 60 * 1000


def unique_name(prefix: str = "greenpools-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def amqp_url() -> str:
    """The RabbitMQ URL (skips, or fails under CI, if it is unreachable)."""
    return require_amqp()


@pytest.fixture
def redis_url() -> str:
    """The Redis URL (skips, or fails under CI, if it is unreachable)."""
    return require_redis()


def declare_queue(url: str, **connection_options: Any) -> Queue:
    """A fresh direct queue with a unique name, declared on the broker at ``url``."""
    name = unique_name()
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name,
                  queue_arguments={"x-expires": QUEUE_EXPIRES_MS}
                  if url.startswith("amqp") else None)
    with Connection(url, **connection_options) as conn:
        queue(conn.default_channel).declare()
    return queue


def delete_queue(url: str, queue: Queue) -> None:
    with Connection(url) as conn:
        channel = conn.default_channel
        bound = queue(channel)
        try:
            if not url.startswith("amqp"):
                # kombu's virtual transports delete only the bindings this
                # connection knows of: declare first, or Redis keeps the
                # _kombu.binding.* keys.
                bound.declare()
            bound.delete()
        except Exception:
            pass
        if url.startswith("amqp"):
            try:
                bound.exchange.delete()
            except Exception:
                pass


@pytest.fixture
def make_queue() -> Iterator[Callable[..., Queue]]:
    """``make_queue(url)``: a declared queue, deleted after the test."""
    made: list[tuple[str, Queue]] = []

    def make(url: str, **connection_options: Any) -> Queue:
        queue = declare_queue(url, **connection_options)
        made.append((url, queue))
        return queue

    yield make
    for url, queue in made:
        delete_queue(url, queue)


def drain(url: str, queue: Queue, expected: int, timeout: float = 20.0) -> list[Any]:
    """Consume until ``expected`` messages arrived (or ``timeout``); then make
    sure no extra one follows.  Returns the payloads."""
    payloads: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        payloads.append(body)
        message.ack()

    deadline = time.monotonic() + timeout
    with Connection(url) as conn:
        with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
            while len(payloads) < expected and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
            # A duplicate would be delivered right behind the others.
            for _ in range(2):
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    break
    return payloads


@pytest.fixture(autouse=True)
def clean_global_pools() -> Iterator[None]:
    """Every test starts and ends with empty global groups and limit 10."""
    pools.reset()
    pools.set_limit(10)
    yield
    pools.reset()
    pools.set_limit(10)


def run_in_child(check: Callable[[], object]) -> str:
    """Run ``check()`` in a forked child; fail the test if it fails there,
    else return what it returned, as a string (``""`` for ``None``).

    The child reports through a pipe and leaves with ``os._exit``.  Pipes
    are closed with ``posix.close``: gevent's patched ``os.close`` only
    closes on the hub's next loop turn, and a blocking read would wait
    for a close that never comes.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        posix.close(read)
        code = 0
        try:
            result = check()
            if result is not None:
                os.write(write, str(result).encode()[:4000])
        except BaseException as exc:
            os.write(write, f"{type(exc).__name__}: {exc}".encode()[:4000])
            code = 1
        os._exit(code)
    posix.close(write)
    message = b""
    while chunk := os.read(read, 4096):
        message += chunk
    posix.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"in the child: {message.decode()}"
    return message.decode()


@pytest.fixture
def make_proxy(amqp_url: str) -> Iterator[Callable[[], Any]]:
    """``make_proxy()``: a started ``faultproxy.FaultProxy`` in front of the
    RabbitMQ at ``amqp_url``, stopped after the test."""
    from urllib.parse import urlsplit

    from faultproxy import FaultProxy

    parts = urlsplit(amqp_url)
    made: list[FaultProxy] = []

    def make() -> FaultProxy:
        proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5672, lifetime=300)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
