"""The demo behind ``python -m greenpools demo``.

Many tasks (green threads under gevent or eventlet, OS threads otherwise)
publish messages through greenpools' global producer pool while one task
consumes them on a pooled connection; then the demo reports what the
pools did and checks that every message arrived exactly once.  It runs on
kombu's in-memory transport unless given a broker URL.

gevent and eventlet must patch the standard library before kombu (and
``ssl``) are imported, and ``python -m greenpools`` has imported both by
the time this module runs.  So for those backends the demo starts itself
again in a fresh interpreter that patches first, the way a gevent or
eventlet program does on its first line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backends
from ..core.events import listen, remove_listener
from .brokercheck import BrokerProblem, broker_url, check_broker, failure_in_use, masked_url

DEFAULT_BROKER = "memory://"
#: How long the demo gives a broker to answer before it starts.
BROKER_CHECK_SECONDS = 5.0
BACKEND_CHOICES = ("auto", *backends.BACKEND_NAMES)

#: Set in the re-started interpreter, so that it never starts another.
_BOOTSTRAPPED_ENV = "GREENPOOLS_DEMO_BOOTSTRAPPED"

#: What the re-started interpreter runs: patch first, then the demo.
_BOOTSTRAP = """\
import sys
from greenpools.startup import patch_first
patch_first(sys.argv[1])
from greenpools.cli import run_main
from greenpools.cli.demo import main
sys.exit(run_main(main, sys.argv[2:]))
"""


def choose_backend(requested: str) -> str:
    """The backend the demo runs on: ``auto`` means gevent when installed."""
    if requested not in BACKEND_CHOICES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {requested!r}")
    if requested != "auto":
        return requested
    patched = backends.detect()
    if patched != "threading":
        return patched
    return "gevent" if importlib.util.find_spec("gevent") else "threading"


def restart_patched(backend: str, argv: Sequence[str]) -> int:
    """Run the demo again in a new interpreter that patches for ``backend`` first."""
    if os.environ.get(_BOOTSTRAPPED_ENV):
        raise RuntimeError(f"the demo could not monkey-patch the process for {backend}")
    if importlib.util.find_spec(backend) is None:
        raise backends.BackendUnavailable(backends.needs_library(backend))
    command = [sys.executable, "-c", _BOOTSTRAP, backend, *argv]
    env = {**os.environ, _BOOTSTRAPPED_ENV: "1"}
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None when started with that descriptor closed
            stream.flush()
    if os.name == "posix":
        os.execve(sys.executable, command, env)
    return subprocess.call(command, env=env)


class OpenConnections:
    """Counts broker connections opened, and the most ever open at once.

    Tracked by identity: a connection closed twice counts once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()
        self.most = 0
        self.opened = 0

    def opening(self, connection: object) -> None:
        with self._lock:
            self._open.add(id(connection))
            self.opened += 1
            self.most = max(self.most, len(self._open))

    def closing(self, connection: object) -> None:
        with self._lock:
            self._open.discard(id(connection))


class HighWater:
    """How many tasks hold something at once, and the most that ever did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.now -= 1


def counting_transport(url: str, counter: OpenConnections) -> type[Any]:
    """The kombu transport class of ``url``, reporting opens and closes to ``counter``.

    Counting in the transport sees every broker connection, whatever
    class of ``kombu.Connection`` the pools clone.
    """
    from kombu.connection import Connection
    from kombu.transport import resolve_transport

    base: type[Any] | None = resolve_transport(Connection(url).transport_cls)
    if base is None:
        raise ValueError(f"broker URL names no kombu transport: {url!r}")

    class CountingTransport(base):  # type: ignore[valid-type,misc]
        def establish_connection(self) -> Any:
            established = super().establish_connection()
            counter.opening(established)
            return established

        def close_connection(self, connection: Any) -> Any:
            counter.closing(connection)
            return super().close_connection(connection)

    if hasattr(base, "_collect"):
        # Only where the base has it: kombu closes differently without.
        def _collect(self: Any, connection: Any) -> Any:
            counter.closing(connection)
            return base._collect(self, connection)

        CountingTransport._collect = _collect
    return CountingTransport


@dataclass
class DemoResult:
    """What one demo run did."""

    backend: str
    broker: str
    limit: int
    tasks: int
    messages_per_task: int
    published: int = 0
    consumed: int = 0
    duplicated: int = 0
    lost: int = 0
    most_connections_open: int = 0
    connections_opened: int = 0
    most_producers_held: int = 0
    connection_pool_stats: dict[str, int] = field(default_factory=dict)
    producer_pool_stats: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: "connection wait", "producer use"... -> seconds, from the pool events
    timings: dict[str, list[float]] = field(default_factory=dict)
    elapsed: float = 0.0
    queue: str = ""
    #: Ctrl-C stopped the tasks before they were done.
    interrupted: bool = False

    @property
    def expected(self) -> int:
        return self.tasks * self.messages_per_task

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and not self.interrupted
            and self.lost == 0
            and self.duplicated == 0
            and self.published == self.consumed == self.expected
        )


class Stop:
    """Ctrl-C, while entered (in the main thread): the demo's tasks stop at
    their next message and the demo cleans up; a second Ctrl-C quits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Stop:
        try:
            self._previous = signal.signal(signal.SIGINT, self._interrupted)
        except ValueError:  # not the main thread: Ctrl-C is not for us
            pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _interrupted(self, signum: int, frame: Any) -> None:
        if self.requested:
            _say("greenpools demo: interrupted again, quitting")
            os._exit(130)
        self.requested = True
        _say("greenpools demo: interrupted; stopping the tasks and deleting the demo queue "
             "(Ctrl-C again to quit at once)")


def _say(message: str) -> None:
    """``message`` on stderr, from the signal handler: raised there (stderr
    piped to a reader that went away), an error would end the demo's main
    thread mid-wait, before it joins its tasks and deletes its queue."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, RuntimeError):  # RuntimeError: the main thread was writing to it
        pass


def _say_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"greenpools demo: {line}", file=sys.stderr)


def run(
    broker: str = DEFAULT_BROKER,
    tasks: int = 100,
    messages: int = 20,
    limit: int = 5,
    timeout: float = 60.0,
    stop: Stop | None = None,
) -> DemoResult:
    """Publish ``tasks * messages`` messages from ``tasks`` tasks and consume them.

    Uses the global groups ``greenpools.pools.connections`` and
    ``producers`` with their limit set to ``limit``, the way an
    application would, and closes every pool at the end.  ``timeout``
    bounds each wait for a pool, and the consumer stops once no message
    has come for ``timeout`` seconds after publishing ended (it never
    stops while messages still arrive).  Once ``stop.requested``, tasks
    publish no more and the consumer stops; the queue is deleted as ever.
    """
    from kombu.connection import Connection
    from kombu.entity import Exchange, Queue
    from kombu.messaging import Consumer

    from ..kombu import pools

    stop = stop or Stop()
    result = DemoResult(
        backend=backends.get_backend().name,
        broker=broker,
        limit=limit,
        tasks=tasks,
        messages_per_task=messages,
    )
    counter = OpenConnections()
    options: dict[str, Any] = {"connect_timeout": 10}
    if broker.split(":", 1)[0] == "memory":
        # The in-memory transport polls its queues; its default of one
        # second would make the consumer idle most of the demo.
        options["transport_options"] = {"polling_interval": 0.005}
    connection = Connection(broker, transport=counting_transport(broker, counter), **options)
    pools.set_limit(limit)
    timings = Timings(result.timings, {"connection": pools.connections,
                                       "producer": pools.producers})

    name = f"greenpools-demo-{uuid.uuid4().hex[:8]}"
    result.queue = name
    exchange = Exchange(name, type="direct", durable=False)
    # x-expires removes the queue from a real broker even if the demo dies.
    queue = Queue(name, exchange, routing_key=name, durable=False, expires=300.0)
    with pools.connections[connection].acquire(block=True, timeout=timeout) as conn:
        queue(conn.default_channel).declare()

    received: Counter[tuple[int, int]] = Counter()
    consumer_ready = threading.Event()
    publishers_done = threading.Event()
    producers_held = HighWater()
    lock = threading.Lock()

    def record(failure: BaseException) -> None:
        with lock:
            result.errors.append(f"{type(failure).__name__}: {failure}")

    last_heard = [time.monotonic()]  # the last message, or the end of publishing

    def on_message(body: dict[str, int], message: Any) -> None:
        # Only the consumer task runs this: no lock needed.
        received[body["task"], body["seq"]] += 1
        result.consumed += 1
        last_heard[0] = time.monotonic()
        message.ack()

    def all_received() -> bool:
        # Once publishing is over, wait only for what was published.
        target = result.published if publishers_done.is_set() else result.expected
        return result.consumed >= target

    def quiet_too_long() -> bool:
        # While tasks publish, more is coming; after, wait until the queue
        # has been quiet for ``timeout``: what is still queued is not lost.
        return publishers_done.is_set() and time.monotonic() - last_heard[0] > timeout

    def consume() -> None:
        try:
            with pools.connections[connection].acquire(block=True, timeout=timeout) as conn:
                with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"]):
                    consumer_ready.set()
                    while not (all_received() or quiet_too_long() or stop.requested):
                        try:
                            conn.drain_events(timeout=0.2)
                        except TimeoutError:
                            pass
        except Exception as exc:
            record(exc)
        finally:
            consumer_ready.set()

    def publish(task: int) -> None:
        try:
            for seq in range(messages):
                if stop.requested:
                    break
                with pools.producers[connection].acquire(block=True, timeout=timeout) as producer:
                    with producers_held:
                        producer.publish(
                            {"task": task, "seq": seq},
                            exchange=exchange,
                            routing_key=name,
                            serializer="json",
                        )
                        # Let other tasks run while this one holds the
                        # producer, as any I/O in a real task would.
                        time.sleep(0)
                with lock:
                    result.published += 1
        except Exception as exc:
            record(exc)

    started = time.monotonic()
    consumer = threading.Thread(target=consume, name="demo-consumer")
    consumer.start()
    consumer_ready.wait(timeout)
    publishers = [
        threading.Thread(target=publish, args=(task,), name=f"demo-publisher-{task}")
        for task in range(tasks)
    ]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join()
    last_heard[0] = max(last_heard[0], time.monotonic())
    publishers_done.set()
    consumer.join()
    result.elapsed = time.monotonic() - started
    result.interrupted = stop.requested

    result.duplicated = sum(count - 1 for count in received.values() if count > 1)
    result.lost = result.expected - len(received)
    result.most_connections_open = counter.most
    result.connections_opened = counter.opened
    result.most_producers_held = producers_held.most
    result.connection_pool_stats = _stats_of(pools.connections[connection])
    result.producer_pool_stats = _stats_of(pools.producers[connection])
    timings.stop()

    try:
        with pools.connections[connection].acquire(block=True, timeout=timeout) as conn:
            bound = queue(conn.default_channel)
            bound.delete()
            bound.exchange.delete()
    except Exception as exc:  # cleanup only: the counts above stand
        print(f"note: could not delete the demo queue {name}: {exc}", file=sys.stderr)
    pools.reset()
    return result


class Timings:
    """Collects the wait (checkout) and use (checkin) times of groups' pools."""

    def __init__(self, into: dict[str, list[float]], groups: dict[str, Any]) -> None:
        self._registered: list[tuple[Any, str, Any]] = []
        for label, group in groups.items():
            for event, kind in (("checkout", "wait"), ("checkin", "use")):
                times = into.setdefault(f"{label} {kind}", [])
                fn = self._collector(times)
                listen(group, event, fn)
                self._registered.append((group, event, fn))

    @staticmethod
    def _collector(times: list[float]) -> Any:
        def collect(pool: Any, resource: Any, seconds: float | None) -> None:
            if seconds is not None:
                times.append(seconds)
        return collect

    def stop(self) -> None:
        for group, event, fn in self._registered:
            remove_listener(group, event, fn)
        self._registered = []


def percentiles(times: list[float]) -> str:
    """``p50 p90 p99 max`` of ``times`` in milliseconds, for the report."""
    if not times:
        return "(none)"
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"p50 {at(0.5):.3f}  p90 {at(0.9):.3f}  p99 {at(0.99):.3f}  "
            f"max {ordered[-1] * 1000:.3f} ms ({len(ordered)} leases)")


def _stats_of(pool: Any) -> dict[str, int]:
    get_stats = getattr(pool, "get_stats", None)
    return dict(get_stats()) if get_stats is not None else {}


def tasks_on(backend: str) -> str:
    """What the demo's tasks are on ``backend``."""
    return "threads" if backend == "threading" else "green threads"


def report(result: DemoResult, patched: bool) -> str:
    """The demo's printed summary."""
    how = "monkey-patched at start" if patched else "OS threads, nothing patched"
    task_kind = tasks_on(result.backend)
    rate = result.consumed / result.elapsed if result.elapsed else 0.0
    lines = [
        "greenpools demo",
        f"  backend              {result.backend} ({how})",
        f"  broker               {masked_url(result.broker)}",
        f"  queue                {result.queue} (deleted at the end)",
        f"  pool limit           {result.limit} connections, {result.limit} producers",
        f"  tasks                {result.tasks} {task_kind} x {result.messages_per_task} messages",
        f"  published            {result.published} of {result.expected}",
        f"  consumed             {result.consumed} "
        f"(lost {result.lost}, duplicated {result.duplicated})",
        f"  connections          at most {result.most_connections_open} open at once, "
        f"{result.connections_opened} opened in all (the consumer holds one)",
        f"  producers            at most {result.most_producers_held} in use at once",
        f"  elapsed              {result.elapsed:.2f} s ({rate:.0f} messages/s)",
        f"  connection pool      {_format_stats(result.connection_pool_stats)}",
        f"  producer pool        {_format_stats(result.producer_pool_stats)}",
    ]
    for label, times in result.timings.items():
        lines.append(f"  {label + ' time':<21}{percentiles(times)}")
    lines.extend(f"  error                {error}" for error in result.errors[:10])
    if len(result.errors) > 10:
        lines.append(f"  ... and {len(result.errors) - 10} more errors")
    if result.ok:
        lines.append("OK: every message arrived exactly once")
    elif result.interrupted:
        lines.append(f"INTERRUPTED: stopped after {result.published} of {result.expected} "
                     "messages; the demo queue was deleted")
    else:
        lines.append("FAILED: messages were lost or duplicated, or a task failed")
    return "\n".join(lines)


def _format_stats(stats: dict[str, int]) -> str:
    if not stats:
        return "(no statistics)"
    pairs = " ".join(f"{key}={value}" for key, value in stats.items())
    indent = " " * 23  # the width of the labels in report()
    lines = textwrap.wrap(pairs, 100, initial_indent=indent, subsequent_indent=indent)
    return "\n".join(lines)[len(indent):]


def positive_int(text: str) -> int:
    """argparse type: an int of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """The demo's command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m greenpools demo",
        description="Publish and consume messages through greenpools' pools from many tasks.",
    )
    p.add_argument(
        "--broker",
        type=broker_url,
        default=DEFAULT_BROKER,
        help="kombu broker URL (default: %(default)s, kombu's in-memory transport; "
        "for RabbitMQ: amqp://guest:guest@127.0.0.1:5672//)",
    )
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="concurrency backend; auto: gevent when installed, else threads",
    )
    p.add_argument("--tasks", type=positive_int, default=100,
                   help="publishing tasks (default: %(default)s)")
    p.add_argument("--messages", type=positive_int, default=20,
                   help="messages per task (default: %(default)s)")
    p.add_argument("--limit", type=positive_int, default=5,
                   help="pool limit, connections and producers (default: %(default)s)")
    p.add_argument(
        "--timeout", type=positive_seconds, default=60.0,
        help="seconds to wait for a pool, and for the next message once publishing ended "
        "(default: %(default)s)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit status 0 when every message arrived exactly once."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(args_list)
    backend = choose_backend(args.backend)
    patched = backend != "threading"
    if patched and backends.detect() != backend:
        try:
            return restart_patched(backend, args_list)
        except (ImportError, RuntimeError) as exc:
            print(f"greenpools demo: {exc}", file=sys.stderr)
            return 2
    if not patched and backends.detect() != "threading":
        print(
            f"the process is monkey-patched for {backends.detect()}; "
            "run the threading demo in a plain interpreter",
            file=sys.stderr,
        )
        return 2
    if backends.get_backend().name != backend:
        backends.use_backend(backend)
    with Stop() as stop:  # from here on Ctrl-C stops the demo cleanly
        print(f"greenpools demo: {args.tasks} {tasks_on(backend)} publish "
              f"{args.tasks * args.messages} messages through {masked_url(args.broker)} "
              "(Ctrl-C stops them)", flush=True)
        try:
            answer = check_broker(args.broker, min(BROKER_CHECK_SECONDS, args.timeout))
        except BrokerProblem as problem:
            _say_lines(str(problem).splitlines())
            return 1
        if ";" in args.broker:
            _say_lines(answer.lines)  # which host of the failover list runs the demo, and why
        try:
            result = run(answer.url, args.tasks, args.messages, args.limit, args.timeout, stop)
        except Exception as exc:
            failure = failure_in_use(answer.url, exc)
            if failure is None:
                raise
            print(f"greenpools demo: during the demo, {failure}", file=sys.stderr)
            return 1
    print(report(result, patched))
    if result.interrupted:
        return 130
    return 0 if result.ok else 1
