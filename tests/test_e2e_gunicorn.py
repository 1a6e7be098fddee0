"""gunicorn ``--preload -k gevent -w 2`` publishing through greenpools.

The app (tests/e2e/wsgi_publisher.py) fills the global pools at import, in
the master; both workers inherit that state across fork and then serve
concurrent requests, each publishing one confirmed message.  Without a
fork reset the workers would share the master's AMQP socket ("Received
0x01 while expecting 0xce", celery #6232).
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from e2e import support
from helpers import require_amqp

pytestmark = [support.threading_run_only(), pytest.mark.slow]

REQUESTS = 200
CLIENT_THREADS = 8
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@pytest.fixture
def queue() -> Iterator[str]:
    require_amqp()
    with support.temporary_queue("gunicorn") as name:
        yield name


def fire_requests(port: int) -> tuple[list[str], list[str]]:
    """``REQUESTS`` GETs from ``CLIENT_THREADS`` threads: (bodies, errors)."""
    numbers = iter(range(REQUESTS))
    lock = threading.Lock()
    bodies: list[str] = []
    errors: list[str] = []

    def client() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            url = f"http://127.0.0.1:{port}/?{number}"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    status, text = response.status, response.read().decode()
            except Exception as exc:
                with lock:
                    errors.append(f"request {number}: {exc!r}")
                continue
            with lock:
                if status == 200:
                    bodies.append(text)
                else:
                    errors.append(f"request {number}: status {status}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "client threads hung"
    return bodies, errors


def test_gunicorn_preload_gevent_workers_publish_every_request(
    queue: str, tmp_path: object
) -> None:
    port = support.free_port()
    read_fd, write_fd = os.pipe()
    log_path = os.path.join(str(tmp_path), "gunicorn.log")
    command = [
        os.path.join(os.path.dirname(support.PYTHON), "gunicorn"),
        "--config", os.path.join(support.E2E_DIR, "gunicorn_conf.py"),
        "--chdir", support.E2E_DIR, "wsgi_publisher:app",
    ]
    env = support.subprocess_env(E2E_QUEUE=queue, E2E_PORT=str(port),
                                 E2E_READY_FD=str(write_fd))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=(write_fd,), start_new_session=True)
    os.close(write_fd)
    try:
        worker_pids = support.read_ready_lines(read_fd, 2, START_TIMEOUT, proc)
        bodies, errors = fire_requests(port)
        exit_code = support.stop_process(proc, STOP_TIMEOUT)
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            support.kill_process_group(proc)
        log_text = support.show_log(log_path)

    assert errors == [], errors[:10]
    assert len(bodies) == REQUESTS
    assert exit_code == 0
    assert support.bad_log_lines(log_text) == []

    answers = [body.split() for body in bodies]
    master_pid, master_port = answers[0][2], answers[0][3]
    served_by = collections.Counter(answer[0] for answer in answers)
    ports_used = {answer[1] for answer in answers}
    # gevent patched the workers after the app was imported: the pools made
    # in the master followed the switch to the gevent backend.
    assert {answer[4] for answer in answers} == {"gevent"}
    # Every request was served by a worker, never the master, on a connection
    # of the worker's own: the master's socket (opened by the warm-up publish
    # before the fork) was never used by a worker.
    assert set(served_by) <= set(worker_pids), (served_by, worker_pids)
    assert master_pid not in served_by
    assert master_port not in ports_used

    expected = [f"warmup:{master_pid}"] + [f"request:{n}" for n in range(REQUESTS)]
    assert support.queue_count(queue) == len(expected)
    got = collections.Counter(b.decode() for b in support.drain_queue(queue, 2 * REQUESTS))
    assert got == collections.Counter(expected)
