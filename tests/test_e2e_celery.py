"""Celery workers on greenpools: the example ``-P eventlet -c 50``, and ``-P prefork -c 2``.

examples/celery_eventlet runs as its README says (``celery -A tasks worker
-P eventlet -c 50`` from the example's folder); a client process imports
the example's ``tasks`` and sends ``publish`` tasks.  Each task publishes
its body through Celery's producer pool, a greenpools pool after
``greenpools.install()``, and returns the backend it ran on.

The prefork test uses the app in tests/e2e/celery_app.py, which
``greenpools.install()`` too.  A client process sends ``e2e.fanout``
tasks; each publishes a confirmed message through ``app.producer_pool``
and sends an ``e2e.leaf`` task with ``app.send_task``, which publishes
another.  The worker warms its pools at import, so the prefork children
start from inherited, live pools.  Every message must arrive exactly once
and the worker must shut down cleanly on SIGTERM.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from e2e import support
from helpers import require_amqp

pytestmark = [support.threading_run_only(), pytest.mark.slow]

EXAMPLE_DIR = os.path.join(support.EXAMPLES_DIR, "celery_eventlet")
#: Tasks sent to the example's worker.  With the README's command Celery
#: reads about ten a second (see the example's README, "How many tasks a
#: second"); without its event connection it reads them as fast as they come,
#: and the 50 green threads contend for the 10 producers.
EXAMPLE_TASKS = {"readme": 100, "without-events": 300}
START_TIMEOUT = 60.0
WORK_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    """(task queue, result queue), both removed afterwards."""
    require_amqp()
    task_queue = support.unique_queue_name("celery-tasks")
    with support.temporary_queue("celery-results") as result_queue:
        try:
            yield task_queue, result_queue
        finally:
            support.delete_queue(task_queue)
            support.delete_exchange(task_queue)


def unexecuted_tasks(task_queue: str, log_text: str) -> list[object]:
    """Task messages still queued that the worker never ran.

    A task whose result was published can still be queued again: the
    worker acks a prefork task asynchronously, and a warm shutdown that
    closes the consumer's channel in between drops the ack, so RabbitMQ
    redelivers it (Celery's at-least-once delivery, not on greenpools'
    path: the consumer's connection is not pooled).  Such a message is
    marked redelivered and its id is in the log as succeeded; anything
    else left over is a task lost or published twice.
    """
    if support.queue_count(task_queue) == 0:
        return []
    succeeded = set(re.findall(r"Task e2e\.\w+\[([0-9a-f-]+)\] succeeded", log_text))
    return [message for message in support.peek_messages(task_queue, limit=1000)
            if not (message["redelivered"]
                    and (message["headers"] or {}).get("id") in succeeded)]


def test_celery_prefork_worker_publishes_through_greenpools(
    queues: tuple[str, str], tmp_path: object,
) -> None:
    pool_args, tasks = ["-P", "prefork", "-c", "2"], 60
    task_queue, result_queue = queues
    read_fd, write_fd = os.pipe()
    log_path = os.path.join(str(tmp_path), "worker.log")
    env = support.subprocess_env(
        E2E_TASK_QUEUE=task_queue, E2E_RESULT_QUEUE=result_queue, E2E_READY_FD=str(write_fd),
    )
    worker_env = dict(env, E2E_WARMUP="1")
    command = [
        os.path.join(os.path.dirname(support.PYTHON), "celery"), "-A", "celery_app", "worker",
        *pool_args, "-Q", task_queue, "-n", f"greenpools-e2e-{uuid.uuid4().hex[:8]}@localhost",
        "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            command, cwd=support.E2E_DIR, env=worker_env, stdout=log,
            stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True,
        )
    os.close(write_fd)
    try:
        ready = support.read_ready_lines(read_fd, 1, START_TIMEOUT, worker)
        client = subprocess.run(
            [support.PYTHON, os.path.join(support.E2E_DIR, "celery_client.py"), str(tasks), "4"],
            cwd=support.E2E_DIR, env=env, capture_output=True, text=True,
            timeout=START_TIMEOUT,
        )
        assert client.returncode == 0, client.stdout + client.stderr
        expected = [f"warmup:{ready[0].split()[1][4:]}"]
        expected += [f"{kind}:{n}" for kind in ("fanout", "leaf") for n in range(tasks)]
        bodies = support.collect_messages(result_queue, len(expected), WORK_TIMEOUT)
        exit_code = support.stop_process(worker, STOP_TIMEOUT)
    finally:
        os.close(read_fd)
        if worker.poll() is None:
            support.kill_process_group(worker)
        log_text = support.show_log(log_path)

    # The worker and the client both ran on greenpools' pools.
    assert "pool=greenpools.pools producer_pool=greenpools.pools" in ready[0], ready
    assert "backend=threading" in ready[0], ready
    assert "producer_pool=greenpools.pools" in client.stdout, client.stdout
    messages = [body.decode().split() for body in bodies]
    got = collections.Counter(name for name, _ in messages)
    want = collections.Counter(expected)
    assert not want - got, f"lost: {sorted(want - got)[:10]}"
    assert not got - want, f"unexpected: {sorted(got - want)[:10]}"
    # The prefork children inherited the pool the worker warmed up before
    # forking them, yet never published on the worker's socket.
    warmup_port = next(port for name, port in messages if name.startswith("warmup:"))
    task_ports = {port for name, port in messages if not name.startswith("warmup:")}
    assert warmup_port not in task_ports
    assert exit_code == 0
    # Nothing arrived late (no duplicates) and every task ran.
    assert support.queue_count(result_queue) == 0
    assert unexecuted_tasks(task_queue, log_text) == []
    assert support.bad_log_lines(log_text) == []


# The client side of the example, as a user would write it: send the tasks,
# then wait for their results.
SEND_TASKS = """
import json, sys
from tasks import app, publish
task_queue, count = sys.argv[1], int(sys.argv[2])
results = [publish.apply_async((f"task:{n}",), queue=task_queue) for n in range(count)]
print(json.dumps({"producer_pool": type(app.producer_pool).__module__,
                  "returned": [result.get(timeout=60) for result in results]}))
"""


@pytest.fixture
def example_queues() -> Iterator[tuple[str, str]]:
    """(task queue, the example's QUEUE): names of this run's own, deleted afterwards."""
    require_amqp()
    task_queue = support.unique_queue_name("celery-example-tasks")
    queue = support.unique_queue_name("celery-example")
    try:
        yield task_queue, queue
    finally:
        support.delete_queue(queue)
        support.delete_queue(task_queue)
        support.delete_exchange(task_queue)


@pytest.mark.parametrize("variant", list(EXAMPLE_TASKS))
def test_celery_eventlet_example_publishes_each_body_once_on_eventlet(
    example_queues: tuple[str, str], tmp_path: object, variant: str,
) -> None:
    tasks = EXAMPLE_TASKS[variant]
    task_queue, queue = example_queues
    log_path = os.path.join(str(tmp_path), "worker.log")
    env = support.example_env(QUEUE=queue)
    celery = os.path.join(os.path.dirname(support.PYTHON), "celery")
    # The README's command; then only what keeps this worker apart from
    # others on the same broker (its own task queue and node name, no gossip
    # or mingle with them) and -l INFO for its "ready." line.  Heartbeats
    # stay on: with them, a worker publishing with confirms on Celery's own
    # connections hangs in its warm shutdown (see the example's README).
    # The other variant also turns off the worker's event heartbeats, as the
    # example's README says to for more than ten tasks a second.
    command = [
        celery, "-A", "tasks", "worker", "-P", "eventlet", "-c", "50",
        "-Q", task_queue, "-n", f"greenpools-example-{uuid.uuid4().hex[:8]}@localhost",
        "--without-gossip", "--without-mingle", "-l", "INFO",
        *(["--without-heartbeat"] if variant == "without-events" else []),
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(command, cwd=EXAMPLE_DIR, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        support.wait_for_log_lines(log_path, r"(ready)\.", 1, START_TIMEOUT, worker)
        client = subprocess.run(
            [support.PYTHON, "-c", SEND_TASKS, task_queue, str(tasks)],
            cwd=EXAMPLE_DIR, env=env, capture_output=True, text=True, timeout=WORK_TIMEOUT,
        )
        exit_code = support.stop_process(worker, STOP_TIMEOUT)
    finally:
        if worker.poll() is None:
            support.kill_process_group(worker)
        log_text = support.show_log(log_path)

    assert client.returncode == 0, client.stdout + client.stderr
    report = json.loads(client.stdout.splitlines()[-1])
    assert report["producer_pool"] == "greenpools.pools"  # install() took effect
    assert report["returned"] == ["eventlet"] * tasks
    assert exit_code == 0
    assert support.bad_log_lines(log_text) == []

    expected = collections.Counter(f"task:{n}" for n in range(tasks))
    assert support.queue_count(queue) == tasks
    bodies = support.drain_queue(queue, 2 * tasks)
    assert collections.Counter(json.loads(body) for body in bodies) == expected
    assert unexecuted_tasks(task_queue, log_text) == []
