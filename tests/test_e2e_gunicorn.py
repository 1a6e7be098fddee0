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
from e2e import support
from helpers import require_amqp

pytestmark = [support.threading_run_only(), pytest.mark.slow]

EXAMPLE_DIR = os.path.join(support.EXAMPLES_DIR, "gunicorn_gevent")
REQUESTS = 300
CLIENT_THREADS = 16
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


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
                url = f"http://127.0.0.1:{port}/request/{number}"
                with urllib.request.urlopen(url, timeout=30) as response:
                    status, text = response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                status, text = exc.code, exc.read().decode(errors="replace")
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


def test_gunicorn_example_publishes_every_request_exactly_once(
    queue: str, tmp_path: Any
) -> None:
    port = support.free_port()
    log_path = os.path.join(str(tmp_path), "gunicorn.log")
    gunicorn = os.path.join(os.path.dirname(support.PYTHON), "gunicorn")
    env = support.example_env(BIND=f"127.0.0.1:{port}", QUEUE=queue,
                              XDG_RUNTIME_DIR=str(tmp_path))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [gunicorn, "-c", "gunicorn.conf.py", "app:app"], cwd=EXAMPLE_DIR, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        # The master imported the app (and declared the queue) before it
        # forked these two.  Requests sent before a worker accepts them wait
        # in the listening socket's backlog.
        worker_pids = support.wait_for_log_lines(
            log_path, r"Booting worker with pid: (\d+)", 2, START_TIMEOUT, proc)
        answers, errors = fire_requests(port)
        exit_code = support.stop_process(proc, STOP_TIMEOUT)
    finally:
        if proc.poll() is None:
            support.kill_process_group(proc)
        log_text = support.show_log(log_path)

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
