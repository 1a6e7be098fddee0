"""examples/gunicorn_gevent, run as its README says: gunicorn publishing through greenpools.

``gunicorn -c gunicorn.conf.py app:app`` from the example's folder: two
gevent workers, the app preloaded in the master.  The app declares its
queue at import, in the master, on a pooled connection; both workers
inherit that pool across fork, then gevent patches them.  Without a fork
reset the workers would publish on the master's AMQP socket ("Received
0x01 while expecting 0xce", celery #6232); without following the late
``patch_all()`` a blocking acquire would freeze a worker's hub.

The only knobs the test turns are the example's own environment
variables (``BIND``, ``QUEUE``, ``BROKER_URL``), plus ``XDG_RUNTIME_DIR``
so that gunicorn's control socket is private to this run.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alarm_node import AlarmNode
from e2e import support
from helpers import HANG_TIMEOUT, require_amqp, wait_until

pytestmark = [support.threading_run_only(), pytest.mark.slow]

EXAMPLE_DIR = os.path.join(support.EXAMPLES_DIR, "gunicorn_gevent")
REQUESTS = 300
CLIENT_THREADS = 16
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
BLOCKED_TIMEOUT = 2.0  # the app's PUBLISH_TIMEOUT while the broker blocks it
BLOCKED_REQUESTS = 3


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this run's own; the app declares it, the test deletes it."""
    require_amqp()
    name = support.unique_queue_name("gunicorn-example")
    try:
        yield name
    finally:
        support.delete_queue(name)


def fire_requests(port: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``REQUESTS`` GETs from ``CLIENT_THREADS`` threads: (JSON answers, errors)."""
    numbers = iter(range(REQUESTS))
    lock = threading.Lock()
    answers: list[dict[str, Any]] = []
    errors: list[str] = []

    def client() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                status, _, text = get(port, f"/request/{number}")
            except Exception as exc:
                status, text = 0, repr(exc)
            with lock:
                if status == 200:
                    answers.append(json.loads(text))
                else:
                    errors.append(f"request {number}: status {status}: {text[:200]}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "client threads hung"
    return answers, errors


def get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """One GET: (status, headers, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


class Example:
    """The example run by gunicorn as its README says, with ``env`` set."""

    def __init__(self, tmp_path: Any, **env: str) -> None:
        self.port = support.free_port()
        self.log_path = os.path.join(str(tmp_path), "gunicorn.log")
        gunicorn = os.path.join(os.path.dirname(support.PYTHON), "gunicorn")
        full_env = support.example_env(BIND=f"127.0.0.1:{self.port}",
                                       XDG_RUNTIME_DIR=str(tmp_path), **env)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [gunicorn, "-c", "gunicorn.conf.py", "app:app"], cwd=EXAMPLE_DIR,
                env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.log_text = ""

    def booted(self) -> list[str]:
        """Wait for both workers; their pids.  The master imported the app
        (and declared the queue) before it forked them.  Requests sent
        before a worker accepts them wait in the listening socket's backlog."""
        return support.wait_for_log_lines(
            self.log_path, r"Booting worker with pid: (\d+)", 2, START_TIMEOUT, self.proc)

    def stop(self) -> int:
        return support.stop_process(self.proc, STOP_TIMEOUT)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            support.kill_process_group(self.proc)
        self.log_text = support.show_log(self.log_path)


def test_gunicorn_example_publishes_every_request_exactly_once(
    queue: str, tmp_path: Any
) -> None:
    example = Example(tmp_path, QUEUE=queue)
    try:
        worker_pids = example.booted()
        answers, errors = fire_requests(example.port)
        exit_code = example.stop()
    finally:
        example.cleanup()
    proc, log_text = example.proc, example.log_text

    assert errors == [], errors[:10]
    assert len(answers) == REQUESTS
    assert exit_code == 0
    assert support.bad_log_lines(log_text) == []

    # gevent patched each worker after the app was imported: the pools made
    # in the master followed the switch to the gevent backend.
    assert {answer["backend"] for answer in answers} == {"gevent"}
    served_by = {str(answer["worker"]) for answer in answers}
    assert served_by <= set(worker_pids), (served_by, worker_pids)
    assert str(proc.pid) not in served_by

    # Every confirmed message is in the queue, exactly once.
    published = collections.Counter(answer["published"] for answer in answers)
    assert len(published) == REQUESTS
    assert support.queue_count(queue) == REQUESTS
    consumed = collections.Counter(
        json.loads(body)["id"] for body in support.drain_queue(queue, 2 * REQUESTS))
    assert consumed == published


def test_gunicorn_example_answers_503_while_the_broker_blocks_publishers(
    alarm_node: AlarmNode, tmp_path: Any,
) -> None:
    queue = support.unique_queue_name("gunicorn-blocked")
    example = Example(tmp_path, QUEUE=queue, BROKER_URL=alarm_node.amqp_url,
                      PUBLISH_TIMEOUT=str(BLOCKED_TIMEOUT))
    published: list[str] = []

    def publishes() -> bool:
        status, _, text = get(example.port, "/after")
        if status == 200:
            published.append(json.loads(text)["published"])
        return status == 200

    try:
        example.booted()
        assert publishes()
        alarm_node.raise_memory_alarm()
        # The first request meets the block, the next wait PUBLISH_TIMEOUT for
        # an unblock: every one is answered, none hangs.
        for number in range(BLOCKED_REQUESTS):
            status, headers, text = get(example.port, f"/blocked/{number}")
            assert status == 503, (status, text)
            assert headers.get("Retry-After") == "5", headers
            assert "blocked" in text, text
        alarm_node.clear_memory_alarm()
        wait_until(publishes, HANG_TIMEOUT, "publishing did not resume after the alarm")
        exit_code = example.stop()
    finally:
        example.cleanup()
        in_queue = support.drain_queue(queue, 100, url=alarm_node.amqp_url)
        support.delete_queue(queue, url=alarm_node.amqp_url)

    assert exit_code == 0
    assert support.bad_log_lines(example.log_text) == []
    # Every request answered 200 has its message in the queue; a blocked one
    # may have arrived after the clear (it was never confirmed).
    assert set(published) <= {json.loads(body)["id"] for body in in_queue}


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("BROKER_URL", "amqp://guest:guest@127.0.0.1:1//", "OperationalError: "),
    ("BROKER_URL", "amqqp://127.0.0.1//", "No such transport: amqqp"),
    ("PUBLISH_TIMEOUT", "5s", "PUBLISH_TIMEOUT must be a number of seconds, got '5s'"),
])
def test_gunicorn_example_refuses_a_bad_setting_in_one_line(
    tmp_path: Any, variable: str, value: str, says: str
) -> None:
    example = Example(tmp_path, **{variable: value})
    try:
        returncode = example.proc.wait(START_TIMEOUT)
    finally:
        example.cleanup()
    assert returncode != 0, example.log_text
    assert says in example.log_text, example.log_text
    assert "Traceback" not in example.log_text, example.log_text
