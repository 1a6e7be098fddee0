"""The command line: ``python -m greenpools doctor|demo``, in fresh interpreters.

They start processes of their own, so they run once, in the threading run.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import BACKEND, hiding, require_amqp, require_redis

from greenpools.cli.brokercheck import BrokerProblem, check_broker, failure_in_use, masked_url

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)


def cli_env(**env: str) -> dict[str, str]:
    """This environment as a user's shell would give it (stdout buffered: no
    ``PYTHONUNBUFFERED``), without the suite's settings."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("GREENPOOLS_BACKEND", "GREENPOOLS_TEST_BACKEND",
                             "GREENPOOLS_NO_SPEEDUPS", "PYTHONUNBUFFERED")}
    full_env.update(env)
    return full_env


def greenpools_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "greenpools", *args], env=cli_env(**env),
                          capture_output=True, text=True, timeout=120)


def assert_user_error(result: subprocess.CompletedProcess[str], *phrases: str,
                      code: int | None = None) -> str:
    """A non-zero exit, no traceback, and each phrase in the output."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    if code is not None:
        assert result.returncode == code, output
    assert "Traceback" not in output, output
    for phrase in phrases:
        assert phrase in output, output
    return output


def test_doctor_reports_backend_and_fast_path() -> None:
    result = greenpools_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line[:12].strip(): line[12:].strip() for line in result.stdout.splitlines()}
    assert rows["backend"].startswith("threading: nothing is monkey-patched"), rows
    assert rows["build"].startswith(("compiled (Cython", "pure Python (")), rows


def test_doctor_says_a_late_gevent_patch_switches_at_once_and_eventlet_lazily() -> None:
    """What test_backends' late-patching scenarios show, in doctor's words."""
    result = greenpools_cli("doctor")
    backend = next(line for line in result.stdout.splitlines() if line.startswith("backend "))
    assert "a later gevent patch_all() switches the backend at once" in backend, backend
    assert ("a later eventlet.monkey_patch() only when a pool next waits or a new pool "
            "is made") in backend, backend


def test_doctor_says_when_the_fast_path_is_pure_python() -> None:
    result = greenpools_cli("doctor", GREENPOOLS_NO_SPEEDUPS="1")
    assert "pure Python (GREENPOOLS_NO_SPEEDUPS is set)" in result.stdout


def test_doctor_fails_on_a_broker_that_does_not_answer() -> None:
    result = greenpools_cli("doctor", "--broker", "amqp://guest:secret@127.0.0.1:1//",
                            "--timeout", "1")
    assert result.returncode != 0
    assert "secret" not in result.stdout  # the password is masked


@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_demo_delivers_every_message_exactly_once(backend: str) -> None:
    result = greenpools_cli("demo", "--backend", backend, "--tasks", "20", "--messages", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consumed             200 (lost 0, duplicated 0)" in result.stdout
    assert "OK: every message arrived exactly once" in result.stdout
    assert re.search(r"producer wait time +p50 [0-9.]+ +p90 [0-9.]+ +p99 [0-9.]+ +max [0-9.]+ "
                     r"ms \(200 leases\)", result.stdout), result.stdout
    assert re.search(r"connection use time +p50 ", result.stdout), result.stdout


@pytest.mark.parametrize("broker", ["memory", "amqp"])
@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_ctrl_c_stops_the_demo_at_once_and_deletes_its_queue(backend: str, broker: str) -> None:
    url = require_amqp() if broker == "amqp" else "memory://"
    demo = subprocess.Popen(
        [sys.executable, "-m", "greenpools", "demo", "--backend", backend, "--broker", url,
         "--tasks", "20", "--messages", "1000000"],  # hours of work, unless stopped
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = demo.stdout.readline() if demo.stdout else ""
        assert "(Ctrl-C stops them)" in started, started  # the demo handles it from here
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=60)
    finally:
        demo.kill()
    output = started + stdout + stderr
    assert demo.returncode == 130, output
    assert "Traceback" not in output, output
    assert "greenpools demo: interrupted; stopping the tasks" in stderr, output
    assert "INTERRUPTED: stopped after " in stdout, output
    if broker == "amqp":
        queue = re.search(r"queue +(greenpools-demo-\w+) ", stdout)
        assert queue, stdout
        from amqp.exceptions import NotFound
        from kombu import Connection

        with Connection(url) as connection, pytest.raises(NotFound):
            connection.default_channel.queue_declare(queue.group(1), passive=True)


# -- a reader that goes away early (| head -1): silence and 141, never a traceback ---

BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE


@pytest.mark.parametrize("args", [
    ("doctor",),
    ("--help",),
    *(("demo", "--backend", backend, "--tasks", "5", "--messages", "5")
      for backend in ("threading", "gevent", "eventlet")),
], ids=["doctor", "help", "demo-threading", "demo-gevent", "demo-eventlet"])
def test_a_command_whose_reader_is_gone_ends_quietly(args: tuple[str, ...]) -> None:
    """``python -m greenpools ... | true``: the reader is gone before the first line."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "greenpools", *args], env=cli_env(),
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert result.returncode == BROKEN_PIPE_STATUS, result.stderr
    assert result.stderr == ""  # no traceback, not even at the interpreter's exit


@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_a_demo_whose_reader_stopped_after_a_line_still_stops_on_ctrl_c(backend: str) -> None:
    """``python -m greenpools demo | head -1``, then Ctrl-C: the demo stops its
    tasks (its handler says so, and it ends); only its report finds no reader."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "greenpools", "demo", "--backend", backend,
         "--tasks", "20", "--messages", "1000000"],  # hours of work, unless stopped
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    try:
        started = demo.stdout.readline()
        assert "(Ctrl-C stops them)" in started, started
        demo.stdout.close()  # as head -1 does
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=60)
    finally:
        demo.kill()
    assert demo.returncode == BROKEN_PIPE_STATUS, stderr
    assert "greenpools demo: interrupted; stopping the tasks" in stderr, stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_a_demo_started_with_stdout_closed_runs_quietly(backend: str) -> None:
    """``python -m greenpools demo >&-``: Python gives it no ``sys.stdout``
    (the green backends restart the demo in a patched interpreter, which
    flushed the streams it did not have)."""
    command = " ".join(shlex.quote(arg) for arg in (
        sys.executable, "-m", "greenpools", "demo", "--backend", backend,
        "--tasks", "5", "--messages", "5"))
    result = subprocess.run(["sh", "-c", f"exec {command} >&-"], env=cli_env(),
                            stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_broken_pipe_that_is_not_stdouts_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A broker socket's ``BrokenPipeError`` is an error, not a reader gone."""
    from greenpools.cli import run_main

    def command(argv: Sequence[str]) -> int:
        raise BrokenPipeError(32, "Broken pipe")  # as a socket's send would

    with open(tmp_path / "out", "w") as stdout:  # stdout still fine
        monkeypatch.setattr(sys, "stdout", stdout)
        with pytest.raises(BrokenPipeError):
            run_main(command, [])


def test_ctrl_c_while_stderr_is_gone_still_stops_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``demo 2>&1 | head -1``, then Ctrl-C: the handler's message cannot be
    written, and must not raise in the main thread before the demo has
    stopped its tasks and deleted its queue."""
    from greenpools.cli.demo import Stop

    class Gone:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stderr", Gone())
    stop = Stop()
    stop._interrupted(signal.SIGINT, None)
    assert stop.requested


def test_demo_help_shows_the_default_load() -> None:
    result = greenpools_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # as one line, whatever argparse wrapped
    for shown in ("--tasks TASKS publishing tasks (default: 100)",
                  "--messages MESSAGES messages per task (default: 20)",
                  "(default: 5) --timeout"):
        assert shown in text, text


def test_unknown_command_is_a_usage_error() -> None:
    result = greenpools_cli("bogus")
    assert result.returncode == 2
    assert "unknown command 'bogus'" in result.stderr


# -- a user's mistakes: a message and a non-zero exit, never a traceback --------------


@pytest.mark.parametrize("command", ["doctor", "demo"])
@pytest.mark.parametrize(("url", "message"), [
    ("", "must be a broker URL such as amqp://"),  # kombu would use its default
    ("notaurl", "must be a broker URL such as amqp://"),  # kombu: the host notaurl:None
    ("foo://127.0.0.1", "'foo' in 'foo://127.0.0.1' is not a kombu transport; known: amqp"),
    ("memory://;notaurl", "must be a broker URL such as amqp://"),  # each of a failover list
])
def test_a_broker_url_without_a_kombu_transport_is_a_usage_error(
    command: str, url: str, message: str
) -> None:
    result = greenpools_cli(command, "--broker", url)
    output = assert_user_error(result, code=2)
    errors = [line for line in result.stderr.splitlines() if "error: argument --broker: " in line]
    assert len(errors) == 1 and message in errors[0] and repr(url) in errors[0], output
    assert ":None" not in output and "\nbackend " not in output  # refused before anything ran


def test_a_refused_broker_url_is_shown_without_its_password() -> None:
    result = greenpools_cli("demo", "--broker", "foo://guest:s3cret@127.0.0.1//")
    output = assert_user_error(result, "argument --broker: ", "guest:**@127.0.0.1", code=2)
    assert "s3cret" not in output


def test_check_broker_names_an_unknown_transport() -> None:
    with pytest.raises(BrokerProblem, match=re.escape("foo://127.0.0.1 names no kombu transport")):
        check_broker("foo://127.0.0.1", timeout=1.0)


def test_demo_says_the_broker_refused_the_credentials() -> None:
    url = require_amqp()
    parts = urlsplit(url)
    wrong = f"amqp://guest:wrong-pw@{parts.hostname}:{parts.port or 5672}//"
    result = greenpools_cli("demo", "--backend", "threading", "--broker", wrong)
    output = assert_user_error(result, "refused the credentials",
                               f"{parts.hostname}:{parts.port or 5672}", code=1)
    assert "wrong-pw" not in output


@pytest.mark.parametrize("command", ["doctor", "demo"])
def test_an_unknown_virtual_host_is_named_as_such(command: str) -> None:
    url = require_amqp()
    parts = urlsplit(url)
    wrong = f"amqp://guest:guest@{parts.hostname}:{parts.port or 5672}/no-such-vhost-greenpools"
    options = ["--backend", "threading"] if command == "demo" else []
    output = assert_user_error(greenpools_cli(command, *options, "--broker", wrong),
                               "refused the virtual host", "no-such-vhost-greenpools",
                               "check the virtual host in the URL", code=1)
    assert "did not answer" not in output


def test_doctor_says_the_broker_refused_the_credentials() -> None:
    url = require_amqp()
    parts = urlsplit(url)
    wrong = f"amqp://guest:wrong-pw@{parts.hostname}:{parts.port or 5672}//"
    output = assert_user_error(greenpools_cli("doctor", "--broker", wrong),
                               "refused the credentials", code=1)
    assert "does not answer" not in output and "wrong-pw" not in output


@pytest.mark.parametrize("args", [
    ("demo", "--timeout", "-1"),
    ("demo", "--timeout", "0"),
    ("demo", "--timeout", "nan"),
    ("demo", "--timeout", "soon"),
    ("demo", "--tasks", "0"),
    ("demo", "--messages", "-3"),
    ("demo", "--limit", "many"),
    ("doctor", "--timeout", "-1"),
])
def test_bad_numeric_options_are_usage_errors(args: tuple[str, ...]) -> None:
    result = greenpools_cli(*args)
    assert_user_error(result, f"argument {args[1]}: ", repr(args[2]) if args[2].isalpha()
                      else args[2], code=2)


def test_doctor_reports_an_unknown_backend_in_the_environment() -> None:
    result = greenpools_cli("doctor", GREENPOOLS_BACKEND="foo")
    output = assert_user_error(result, "GREENPOOLS_BACKEND=foo cannot be used", code=1)
    assert "\nbuild " in output and "\ngevent hook " in output  # the other rows too


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_other_commands_refuse_an_unknown_backend_in_the_environment(command: str) -> None:
    result = greenpools_cli(command, GREENPOOLS_BACKEND="foo")
    assert_user_error(result, f"greenpools {command}: GREENPOOLS_BACKEND=foo cannot be used",
                      code=2)


@pytest.fixture
def without_gevent(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import gevent`` really fails."""
    return hiding(tmp_path, "gevent")


@pytest.fixture
def without_eventlet(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import eventlet`` really fails."""
    return hiding(tmp_path, "eventlet")


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_hiding_a_library_really_makes_importing_it_fail(library: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {library}"],
                            env=cli_env(**hiding(tmp_path, library)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "hidden by the test" in result.stderr


def test_doctor_reports_a_requested_backend_that_is_not_installed(
    without_gevent: dict[str, str]
) -> None:
    result = greenpools_cli("doctor", GREENPOOLS_BACKEND="gevent", **without_gevent)
    assert_user_error(result, "GREENPOOLS_BACKEND=gevent cannot be used",
                      "pip install gevent", code=1)


def test_demo_refuses_a_requested_backend_that_is_not_installed(
    without_gevent: dict[str, str]
) -> None:
    result = greenpools_cli("demo", GREENPOOLS_BACKEND="gevent", **without_gevent)
    assert_user_error(result, "pip install gevent", code=2)


def test_bench_refuses_a_backend_that_is_not_installed(without_gevent: dict[str, str]) -> None:
    result = greenpools_cli("bench", "--backend", "gevent", "--quick", "--no-progress",
                            **without_gevent)
    assert_user_error(result, "greenpools bench: ", "pip install gevent", code=2)


def test_bench_on_all_backends_says_which_it_leaves_out_and_why(
    without_eventlet: dict[str, str]
) -> None:
    result = greenpools_cli("bench", "--backend", "all", "--quick", "--scenario", "s1",
                            "--no-progress", **without_eventlet)
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("greenpools bench:")]
    assert len(notes) == 1, result.stderr
    assert "leaving out eventlet: " in notes[0], notes
    assert "pip install eventlet" in notes[0], notes
    assert notes[0].endswith("; running threading, gevent"), notes
    assert "== threading ==" in result.stdout and "== gevent ==" in result.stdout
    assert "== eventlet ==" not in result.stdout


def test_bench_refuses_a_json_path_it_cannot_write_before_it_runs(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "results.json"
    result = greenpools_cli("bench", "--backend", "current", "--quick", "--scenario", "s1",
                            "--no-progress", "--json", str(target))
    output = assert_user_error(result, f"greenpools bench: cannot write --json {target}",
                               "No such file or directory", code=2)
    assert "S1 ns/cycle" not in output  # refused before the benchmark ran


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
@pytest.mark.parametrize("hidden", [("redis",), ("redis", "packaging")])
@pytest.mark.parametrize("command", ["doctor", "demo"])
def test_a_redis_url_without_the_redis_client_says_so_and_how_to_install_it(
    tmp_path: Path, scheme: str, hidden: tuple[str, ...], command: str
) -> None:
    # Without redis-py, kombu's Redis transport fails to import with an
    # AttributeError (it subclasses redis.Redis with redis set to None);
    # without packaging too, with "No module named 'packaging'", its first import.
    options = ["--backend", "threading"] if command == "demo" else []
    result = greenpools_cli(command, *options, "--broker", f"{scheme}://127.0.0.1:1/0",
                            **hiding(tmp_path, *hidden))
    output = assert_user_error(result, "the redis client is not installed",
                               f"kombu's {scheme} transport, which {scheme}://127.0.0.1:1/0 needs",
                               f"pip install {' '.join(hidden)}\n", code=1)
    assert "is not valid" not in output and "No module named" not in output


def test_a_transport_missing_its_database_driver_in_use_says_so(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy", reason="kombu's sqla transport needs it (the test extra)")
    # The SQLAlchemy transport loads, and the broker check passes: the
    # driver is imported only when the demo's first channel needs it.
    result = greenpools_cli("demo", "--backend", "threading",
                            "--broker", "sqla+postgresql://127.0.0.1:1/x",
                            **hiding(tmp_path, "psycopg", "psycopg2"))
    assert_user_error(result, "greenpools demo: during the demo, kombu's sqla transport, "
                      "which sqla+postgresql://127.0.0.1:1/x needs, could not load a library",
                      "hidden by the test", code=1)


def test_a_broker_failing_in_use_with_its_own_error_is_reported_not_raised(
    tmp_path: Path
) -> None:
    pytest.importorskip("sqlalchemy", reason="kombu's sqla transport needs it (the test extra)")
    database = tmp_path / "no-such-folder" / "broker.db"
    result = greenpools_cli("demo", "--backend", "threading", "--broker", f"sqla+sqlite:///{database}")
    assert_user_error(result, f"the broker sqla+sqlite:///{database} failed: OperationalError: ",
                      code=1)


def test_an_error_the_transport_does_not_declare_is_a_bug_not_the_brokers() -> None:
    # A TypeError raised inside kombu's virtual transport (here: a bad
    # argument) must keep its traceback, not read as "the broker failed".
    from kombu import Connection

    with Connection("memory://") as connection:
        with pytest.raises(TypeError) as raised:
            connection.default_channel.basic_publish(object(), "exchange", "key")
    assert failure_in_use("memory://", raised.value) is None
    assert failure_in_use("memory://", ConnectionRefusedError()) is not None


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says anything."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_doctor_prints_each_row_as_it_learns_it_and_bounds_the_broker_wait(
    silent_server: int,
) -> None:
    # A Redis URL: redis-py alone would wait for a silent server's reply forever.
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenpools", "doctor", "--broker",
         f"redis://127.0.0.1:{silent_server}/0", "--timeout", "2"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("gevent hook"):
                break
        # The rows before the broker's came while the broker check still ran.
        assert proc.poll() is None, seen
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
        proc.wait()
    assert f"the broker at 127.0.0.1:{silent_server} " in rest, rest
    assert "did not answer in 2 s" in rest and "Traceback" not in rest, rest


def test_demo_reports_a_refused_connection_promptly_with_what_it_tried() -> None:
    with socket.socket() as probe:  # a free port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = greenpools_cli("demo", "--backend", "threading", "--broker",
                            f"amqp://127.0.0.1:{port}//")
    elapsed = time.monotonic() - started
    assert_user_error(result, f"the broker at 127.0.0.1:{port} ", "Connection refused", code=1)
    assert elapsed < 10, elapsed  # kombu's retries took 12 s before a word was printed


def refused_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that nothing listens on (bound together,
    then freed)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def broker_row(stdout: str) -> list[str]:
    """Doctor's broker row (its last) and its continuation lines, stripped."""
    return [line.strip() for line in stdout.split("\nbroker ", 1)[1].splitlines()]


def test_doctor_fails_over_to_the_next_host_of_a_failover_list() -> None:
    url = require_amqp()
    parts = urlsplit(url)
    (port,) = refused_ports(1)
    failover = f"amqp://guest:s3cret@127.0.0.1:{port}//;{url}"
    result = greenpools_cli("doctor", "--broker", failover, "--timeout", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3cret" not in result.stdout
    down, answer = broker_row(result.stdout)
    assert down.startswith(f"the broker at 127.0.0.1:{port} (amqp://guest:**@127.0.0.1:{port}//) "
                           "did not answer: ConnectionRefusedError: "), result.stdout
    assert answer.endswith(" answers (amqp transport), host 2 of 2 in the failover list"), answer
    assert f"@{parts.hostname}:{parts.port or 5672}/" in answer, answer


@pytest.mark.parametrize("command", ["doctor", "demo"])
def test_a_failover_list_of_which_no_host_answers_names_every_host(command: str) -> None:
    ports = refused_ports(2)
    failover = ";".join(f"amqp://guest:guest@127.0.0.1:{port}//" for port in ports)
    options = ["--backend", "threading"] if command == "demo" else ["--timeout", "3"]
    result = greenpools_cli(command, *options, "--broker", failover)
    output = assert_user_error(result, "none of the 2 hosts of the failover list answered",
                               code=1)
    lines = broker_row(result.stdout) if command == "doctor" else [
        line.removeprefix("greenpools demo: ") for line in result.stderr.splitlines()]
    assert [line.split(") did not answer: ")[0] for line in lines[:-1]] == [
        f"the broker at 127.0.0.1:{port} (amqp://guest:**@127.0.0.1:{port}//" for port in ports
    ], output
    assert lines[-1] == "none of the 2 hosts of the failover list answered", output


def test_a_failover_list_stops_at_a_host_that_refuses_the_credentials_as_kombu_does() -> None:
    url = require_amqp()
    parts = urlsplit(url)
    (port,) = refused_ports(1)
    failover = (f"amqp://guest:guest@127.0.0.1:{port}//;"
                f"amqp://guest:wrong-pw@{parts.hostname}:{parts.port or 5672}//;{url}")
    result = greenpools_cli("doctor", "--broker", failover, "--timeout", "3")
    output = assert_user_error(result, code=1)
    down, refused = broker_row(result.stdout)
    assert down.startswith(f"the broker at 127.0.0.1:{port} "), output
    assert "did not answer" in down and "refused the credentials" in refused, output
    assert "wrong-pw" not in output


@pytest.mark.parametrize("backend", ["threading", "gevent", "eventlet"])
def test_demo_runs_on_the_host_of_a_failover_list_that_answers(backend: str) -> None:
    url = require_amqp()
    (port,) = refused_ports(1)
    result = greenpools_cli("demo", "--backend", backend, "--tasks", "20", "--messages", "10",
                            "--broker", f"amqp://guest:guest@127.0.0.1:{port}//;{url}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consumed             200 (lost 0, duplicated 0)" in result.stdout, result.stdout
    broker = next(line for line in result.stdout.splitlines() if line.startswith("  broker "))
    assert broker.split()[1] == masked_url(url), broker  # the host that answered, alone
    down, answer = result.stderr.splitlines()
    assert down.startswith(f"greenpools demo: the broker at 127.0.0.1:{port} "), result.stderr
    assert "did not answer" in down, result.stderr
    assert answer.startswith("greenpools demo: "), result.stderr
    assert answer.endswith(" answers (amqp transport), host 2 of 2 in the failover list"), answer


def test_doctor_masks_only_a_password_that_is_there() -> None:
    url = require_redis()
    result = greenpools_cli("doctor", "--broker", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ":**@" not in result.stdout
    assert f"{masked_url(url)} answers (redis transport)" in result.stdout


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("memory://", "memory://"),
    ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:**@127.0.0.1:5672//"),
    ("redis://:p%40ss@127.0.0.1:6379/0", "redis://:**@127.0.0.1:6379/0"),
    ("amqp://user@127.0.0.1//", "amqp://user@127.0.0.1//"),
    ("amqp://a:x@h1//;amqp://b:y@h2//", "amqp://a:**@h1//;amqp://b:**@h2//"),
])
def test_masked_url_hides_passwords_only(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_demo_consumer_waits_for_a_quiet_queue_not_a_deadline_from_its_start() -> None:
    # 10,000 messages take longer than one second to go through: the consumer
    # must keep going while they arrive and stop once the queue is quiet.
    result = greenpools_cli("demo", "--backend", "threading", "--timeout", "1",
                            "--tasks", "200", "--messages", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consumed             10000 (lost 0, duplicated 0)" in result.stdout


OBSERVABILITY_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "observability.py"


@pytest.mark.parametrize(("args", "phrase"), [
    ((), "expected SCENARIO"),
    (("s3", "10"), "expected SCENARIO"),
    (("s1", "many"), "got 'many'"),
    (("s1", "10", "--bogus"), "unknown option '--bogus'"),
    (("s1", "10", "--backend"), "--backend needs a value"),
    (("s1", "10", "--backend", "eventlet"), "got 'eventlet'"),
    (("callgrind", "--cycles", "0"), "got '0'"),
    (("--backend", "threading", "s1", "²"), "got '²'"),
    (("s1", "10", "--cycles", "5"), "--cycles is an option of callgrind"),
])
def test_the_observability_benchmark_refuses_a_bad_command_line(
    args: tuple[str, ...], phrase: str
) -> None:
    result = subprocess.run([sys.executable, str(OBSERVABILITY_SCRIPT), *args], env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert_user_error(result, phrase, "usage:")


def test_the_benchmark_run_refuses_a_backend_it_cannot_import(
    without_eventlet: dict[str, str]
) -> None:
    script = str(Path(__file__).resolve().parent.parent / "benchmarks" / "run.py")
    result = subprocess.run([sys.executable, script, "--quick", "--backend", "eventlet",
                             "--scenario", "s1", "--no-progress"],
                            env=cli_env(**without_eventlet), capture_output=True, text=True,
                            timeout=120)
    assert_user_error(result, "--backend eventlet: cannot run here", "hidden by the test", code=2)


def test_the_benchmark_run_refuses_a_negative_number_of_busy_cores() -> None:
    script = str(Path(__file__).resolve().parent.parent / "benchmarks" / "run.py")
    result = subprocess.run([sys.executable, script, "--busy", "-1"], env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert_user_error(result, "--busy: must be 0 or more, not -1", code=2)


def _process_state(pid: int) -> str:
    """A process's state letter ("R", "S", "Z"...), or "" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def _process_nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_busy_cores_spin_at_the_lowest_priority_and_end_with_their_run() -> None:
    """``benchmarks/run.py --busy``: the spinners end with the block, and by
    themselves when the run that started them is killed."""
    run = subprocess.Popen(
        [sys.executable, "-c", "import busy, sys\n"
         "with busy.busy_cores(2) as pids:\n"
         "    print(*pids, flush=True)\n"
         "    sys.stdin.readline()\n"
         "print('ended', flush=True)\n"
         "with busy.busy_cores(1) as pids:\n"
         "    print(*pids, flush=True)\n"
         "    sys.stdin.readline()\n"],  # ends with the test's pipe, however the test ends
        cwd=Path(__file__).resolve().parent.parent / "benchmarks", env=cli_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert run.stdin is not None and run.stdout is not None
    try:
        first = [int(pid) for pid in run.stdout.readline().split()]
        assert len(first) == 2
        for pid in first:  # niced and running once started (polled: nothing signals it)
            deadline = time.monotonic() + 30
            while _process_nice(pid) != 19 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _process_nice(pid) == 19
            assert _process_state(pid) == "R"
        run.stdin.write("\n")
        run.stdin.flush()
        assert run.stdout.readline() == "ended\n"
        assert [_process_state(pid) for pid in first] == ["", ""]  # reaped by the run
        (orphan,) = (int(pid) for pid in run.stdout.readline().split())
        run.kill()
        run.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _process_state(orphan) not in ("", "Z") and time.monotonic() < deadline:
            time.sleep(0.05)  # polls: nothing signals the end of a process not our child
        assert _process_state(orphan) in ("", "Z"), "the spinner outlived its run"
    finally:
        run.kill()
        run.wait(timeout=30)


def test_the_benchmark_summary_explains_itself_and_refuses_a_missing_run() -> None:
    script = str(Path(__file__).resolve().parent.parent / "benchmarks" / "summary.py")
    shown = subprocess.run([sys.executable, script, "--help"], env=cli_env(),
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "summary of one saved run" in shown.stdout, shown.stderr
    missing = subprocess.run([sys.executable, script, "/nonexistent/run.json"], env=cli_env(),
                             capture_output=True, text=True, timeout=120)
    assert_user_error(missing, "cannot read a saved run", "/nonexistent/run.json", code=2)
