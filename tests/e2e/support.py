"""Shared helpers for the fork and end-to-end tests and their child scripts.

Imported by the pytest modules (as ``e2e.support``) and by the scripts in
this directory that run as their own processes (as ``support``), so it
imports nothing from pytest at module level and nothing from greenpools.

Everything here talks to the loopback broker only, and every wait is
bounded: a helper that would otherwise block forever takes a timeout and
raises :class:`Overrun` when it runs out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posix
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import kombu

AMQP_URL = os.environ.get("GREENPOOLS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
E2E_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(E2E_DIR)
REPO_ROOT = os.path.dirname(TESTS_DIR)
EXAMPLES_DIR = os.path.join(REPO_ROOT, "examples")
PYTHON = sys.executable
BACKEND = os.environ.get("GREENPOOLS_TEST_BACKEND", "threading")

#: Queues left behind by a crashed run disappear on their own (ms).
QUEUE_EXPIRES_MS = 10 * 60 * 1000

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Overrun(AssertionError):
    """A bounded wait ran out of time."""


# -- the broker -------------------------------------------------------------


def broker_address(url: str = AMQP_URL) -> tuple[str, int]:
    """Host and port of ``url``; refuses anything but a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host not in _LOOPBACK:
        raise ValueError(f"tests only talk to a loopback broker, got host {host!r} in {url!r}")
    return host, parts.port or 5672


ONCE_PER_SUITE = "runs once per suite in the threading run"


def threading_run_only(reason: str = ONCE_PER_SUITE) -> Any:
    """Decorator: the test needs the broker, and runs in the threading run only.

    On the other backends it is skipped with ``reason`` and carries no
    ``broker`` marker, because conftest turns every skip of a
    broker-marked test into a failure under ``CI=true``.
    """
    import pytest

    if BACKEND == "threading":
        return pytest.mark.broker
    return pytest.mark.skip(reason=reason)


def confirming_connection(url: str = AMQP_URL, **options: Any) -> kombu.Connection:
    """A kombu connection whose publishes wait for the broker's confirm."""
    broker_address(url)
    transport_options = {"confirm_publish": True, **options.pop("transport_options", {})}
    return kombu.Connection(url, transport_options=transport_options, **options)


def unique_queue_name(tag: str) -> str:
    """A queue name no other test, process or run uses."""
    return f"greenpools.test.{tag}.{os.getpid()}.{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def admin_channel(url: str = AMQP_URL) -> Iterator[Any]:
    """A channel on a private, unpooled connection, closed on exit."""
    broker_address(url)
    conn = kombu.Connection(url, connect_timeout=10)
    try:
        conn.ensure_connection(max_retries=2)
        yield conn.default_channel
    finally:
        conn.release()


def declare_queue(name: str, url: str = AMQP_URL) -> None:
    """Declare a non-durable queue that expires if a crashed run leaves it."""
    with admin_channel(url) as channel:
        channel.queue_declare(
            queue=name, durable=False, auto_delete=False,
            arguments={"x-expires": QUEUE_EXPIRES_MS},
        )


def queue_count(name: str, url: str = AMQP_URL) -> int:
    """Messages ready in queue ``name`` (the queue must exist)."""
    with admin_channel(url) as channel:
        ok = channel.queue_declare(queue=name, passive=True)
        return int(ok.message_count)


def delete_queue(name: str, url: str = AMQP_URL) -> None:
    """Delete ``name`` if it exists; never raises (used in cleanups)."""
    try:
        with admin_channel(url) as channel:
            channel.queue_delete(queue=name)
    except Exception as exc:  # cleanup must not hide the test's own failure
        print(f"warning: could not delete queue {name!r}: {exc!r}", file=sys.stderr)


def delete_exchange(name: str, url: str = AMQP_URL) -> None:
    """Delete exchange ``name`` if it exists; never raises (used in cleanups)."""
    try:
        with admin_channel(url) as channel:
            channel.exchange_delete(exchange=name)
    except Exception as exc:
        print(f"warning: could not delete exchange {name!r}: {exc!r}", file=sys.stderr)


@contextlib.contextmanager
def temporary_queue(tag: str, url: str = AMQP_URL) -> Iterator[str]:
    """A fresh queue for one test, deleted afterwards whatever happens."""
    name = unique_queue_name(tag)
    declare_queue(name, url)
    try:
        yield name
    finally:
        delete_queue(name, url)


def drain_queue(name: str, limit: int, url: str = AMQP_URL) -> list[bytes]:
    """Take (and ack) up to ``limit`` ready messages from ``name``; their bodies."""
    bodies: list[bytes] = []
    with admin_channel(url) as channel:
        while len(bodies) < limit:
            message = channel.basic_get(queue=name, no_ack=True)
            if message is None:
                break
            body = message.body
            bodies.append(body.encode() if isinstance(body, str) else bytes(body))
    return bodies


def collect_messages(name: str, expected: int, timeout: float, url: str = AMQP_URL) -> list[bytes]:
    """Consume (and ack) from ``name`` until ``expected`` messages came or
    ``timeout`` passed; their bodies.

    For messages other processes publish without telling us when they are
    done (Celery workers): it waits on deliveries, not on a clock.
    """
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    broker_address(url)
    with kombu.Connection(url, connect_timeout=10) as conn:
        channel = conn.default_channel
        channel.basic_qos(0, 200, False)

        def on_message(message: Any) -> None:
            body = message.body
            bodies.append(body.encode() if isinstance(body, str) else bytes(body))
            channel.basic_ack(message.delivery_tag)

        tag = channel.basic_consume(queue=name, callback=on_message)
        while len(bodies) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                conn.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        channel.basic_cancel(tag)
    return bodies


#: Longest a single publish (and its confirm) may take before it raises.
PUBLISH_TIMEOUT = 20.0


def publish_one(producer: Any, queue: str, body: str, timeout: float = PUBLISH_TIMEOUT) -> None:
    """Publish ``body`` straight to ``queue`` (default exchange), bounded by ``timeout``."""
    producer.publish(
        body, exchange="", routing_key=queue, serializer="raw",
        content_type="text/plain", content_encoding="utf-8", retry=False,
        timeout=timeout, confirm_timeout=timeout,
    )


def peek_messages(name: str, limit: int = 20, url: str = AMQP_URL) -> list[dict[str, Any]]:
    """Headers, properties and body of up to ``limit`` messages in ``name``,
    taken and requeued (for failure messages)."""
    found: list[dict[str, Any]] = []
    with admin_channel(url) as channel:
        for _ in range(limit):
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            found.append({
                "headers": message.headers,
                "redelivered": message.delivery_info.get("redelivered"),
                "body": message.body[:300],
            })
        # Closing the channel requeues everything taken above.
    return found


# -- Redis --------------------------------------------------------------------

REDIS_URL = os.environ.get("GREENPOOLS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def temporary_redis_queue(tag: str, url: str = REDIS_URL) -> Iterator[str]:
    """A kombu queue on the Redis transport, deleted afterwards."""
    broker_address(url)
    name = unique_queue_name(tag)
    with kombu.Connection(url) as conn:
        simple = conn.SimpleQueue(name)  # declares queue and binding
        try:
            yield name
        finally:
            with contextlib.suppress(Exception):
                simple.queue.delete()
            simple.close()


def drain_redis_queue(name: str, limit: int, url: str = REDIS_URL) -> list[bytes]:
    """Take (and ack) up to ``limit`` messages from kombu queue ``name`` on Redis."""
    bodies: list[bytes] = []
    with kombu.Connection(url) as conn:
        simple = conn.SimpleQueue(name)
        try:
            while len(bodies) < limit:
                try:
                    message = simple.get(block=True, timeout=0.5)
                except simple.Empty:
                    break
                body = message.body
                bodies.append(body.encode() if isinstance(body, str) else bytes(body))
                message.ack()
        finally:
            simple.close()
    return bodies


# -- sockets ------------------------------------------------------------------


def amqp_socket(conn: kombu.Connection) -> socket.socket:
    """The TCP socket under a connected kombu (pyamqp) connection."""
    sock = conn.connection.sock
    if sock is None:
        raise AssertionError(f"{conn!r} has no socket (not connected)")
    return sock  # type: ignore[no-any-return]


def socket_identity(conn: kombu.Connection) -> dict[str, Any]:
    """fd and local port of ``conn``'s socket: equal means the same TCP connection."""
    sock = amqp_socket(conn)
    return {"fd": sock.fileno(), "local_port": sock.getsockname()[1]}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- forked children ----------------------------------------------------------


def run_forked_child(body: Any, report_fd: int | None = None, watchdog: int = 90) -> None:
    """In a fresh ``os.fork()`` child: run ``body()`` and leave with ``os._exit``.

    Never returns.  Exit status 0 when ``body`` returned, 1 with the
    traceback on stderr when it raised.  ``body``'s result (a str) goes to
    ``report_fd`` if given.  A watchdog alarm kills a hung child, so it can
    never outlive the test run: pending alarms and timers are not
    inherited across fork, and pytest-timeout's handler must not run here.
    """
    status = 1
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(watchdog)
        signal.signal(DUMP_AND_EXIT, _dump_stacks_and_exit)
        result = body()
        if report_fd is not None and result is not None:
            os.write(report_fd, (str(result) + "\n").encode())
        status = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


#: Sent to a child of :func:`run_forked_child` that overran its time: it
#: prints where each of its tasks waits, then exits.
DUMP_AND_EXIT = signal.SIGUSR1
#: How long an overrunning child gets to print its stacks before SIGKILL.
DUMP_GRACE = 5.0


def _dump_stacks_and_exit(signum: int, frame: Any) -> None:
    import traceback

    lines = [f"=== child {os.getpid()} overran its time; where its tasks wait:\n"]
    greenlet = sys.modules.get("greenlet")
    if greenlet is not None:
        import gc

        for task in gc.get_objects():
            if isinstance(task, greenlet.greenlet) and task.gr_frame is not None:
                lines.append(f"--- {task!r}\n")
                lines += traceback.format_stack(task.gr_frame)
    lines.append("--- the running code\n")
    lines += traceback.format_stack(frame)
    posix.write(2, "".join(lines).encode(errors="replace"))  # os.write may be green
    os._exit(3)


def wait_pid(pid: int, timeout: float) -> int:
    """Wait for child ``pid`` up to ``timeout`` seconds; its exit code.

    A child still running at the deadline is asked to print its stacks
    (:data:`DUMP_AND_EXIT`, for children of :func:`run_forked_child`),
    killed if it has not exited a few seconds later, and :class:`Overrun`
    raised.  A child killed by a signal gives ``-signum``.  Polls with
    ``WNOHANG`` so that it yields under every backend.
    """
    deadline = time.monotonic() + timeout
    asked = False
    delay = 0.001
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            raise AssertionError(f"pid {pid} is not our child (already reaped?)") from None
        if done:
            if asked:
                raise Overrun(f"child {pid} still running after {timeout}s; its stacks are "
                              f"in the captured stderr")
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            if asked:
                kill_quietly(pid)
                raise Overrun(f"child {pid} still running after {timeout}s; killed")
            asked = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, DUMP_AND_EXIT)
            deadline = time.monotonic() + DUMP_GRACE
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def kill_quietly(pid: int) -> None:
    """SIGKILL ``pid`` and reap it, if it is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def read_reports(fd: int) -> list[str]:
    """Every line written to the read end ``fd`` of a pipe whose writers all exited."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            break
        chunks.append(chunk)
    return [line for line in b"".join(chunks).decode().splitlines() if line]


# -- subprocesses ---------------------------------------------------------------


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for our helper processes: broker URL, import path, quiet eventlet."""
    env = dict(os.environ)
    for key in ("GREENPOOLS_BACKEND", "GREENPOOLS_RUNNER_REPORT"):
        env.pop(key, None)
    env["GREENPOOLS_TEST_AMQP_URL"] = AMQP_URL
    path = [E2E_DIR, REPO_ROOT]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    env.update(extra)
    return env


def example_env(**extra: str) -> dict[str, str]:
    """Environment for running an example as a user would: the test's broker
    as ``BROKER_URL``, no test-only import path, no backend chosen for it."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("GREENPOOLS_BACKEND", "GREENPOOLS_TEST_BACKEND",
                          "GREENPOOLS_RUNNER_REPORT", "PYTHONPATH")}
    env["BROKER_URL"] = AMQP_URL
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    env.update(extra)
    return env


def wait_for_log_lines(path: str, pattern: str, wanted: int, timeout: float,
                       proc: subprocess.Popen[Any]) -> list[str]:
    """The first match of regex ``pattern``'s group 1 on each of the first
    ``wanted`` matching lines of the log at ``path``.

    For processes whose only signal of readiness is their log (examples,
    which carry no test hooks): polls the file until then, bounded by
    ``timeout``, and fails early if ``proc`` exits first.
    """
    import re

    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as log:
            found = [m.group(1) for m in map(regex.search, log) if m]
        if len(found) >= wanted:
            return found[:wanted]
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode} before "
                                 f"logging {wanted} lines matching {pattern!r}")
        if time.monotonic() > deadline:
            raise Overrun(f"{len(found)} of {wanted} lines matching {pattern!r} "
                          f"in {path} after {timeout}s")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` and wait up to ``timeout``; kill on overrun (then raise)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        raise Overrun(
            f"{proc.args!r} did not exit within {timeout}s of signal {sig}; killed"
        ) from None


def kill_process_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc`` and every process in its group (started with a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def read_ready_lines(
    fd: int, wanted: int, timeout: float, proc: subprocess.Popen[Any]
) -> list[str]:
    """Lines from pipe ``fd`` until ``wanted`` arrived; bounded, and fails
    early if ``proc`` exits first."""
    import select

    deadline = time.monotonic() + timeout
    buffer = b""
    while buffer.count(b"\n") < wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            got = buffer.count(b"\n")
            raise Overrun(f"only {got} of {wanted} ready lines after {timeout}s")
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode} before ready")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
    return buffer.decode().splitlines()


def show_log(path: str, tail: int = 20000) -> str:
    """The text of a subprocess's log; its tail also goes to stdout, which
    pytest shows when the test fails."""
    with open(path, errors="replace") as log:
        text = log.read()
    print(f"---- {path} (last {tail} characters) ----\n{text[-tail:]}")
    return text


def bad_log_lines(text: str, extra: Sequence[str] = ()) -> list[str]:
    """Lines of a process log that show a shared or broken AMQP socket."""
    markers = (
        "while expecting 0xce",
        "ConnectionResetError",
        "Connection reset by peer",
        "UnexpectedFrame",
        "Broken pipe",
        "Traceback (most recent call last)",
        *extra,
    )
    return [line for line in text.splitlines() if any(m in line for m in markers)]
