"""examples/prometheus_metrics.py, run as its docstring says, scraped for real over loopback.

The example runs in a fresh interpreter on kombu's in-memory transport
(its default) and, with RabbitMQ, on the test broker; the test reads the
address it prints, waits for its ``published:`` line, scrapes ``/metrics``
once and interrupts it as a user would (Ctrl-C).  Once per suite, in the
threading run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

import pytest
from e2e import support
from helpers import require_amqp

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(support.BACKEND != "threading", reason=support.ONCE_PER_SUITE),
]

READY_TIMEOUT = 60.0


def scrape_while_running(broker: str) -> str:
    """Start the example, scrape ``/metrics`` once it published, stop it; the page."""
    env = support.example_env(BROKER_URL=broker)
    proc = subprocess.Popen(
        [support.PYTHON, os.path.join("examples", "prometheus_metrics.py"), "--messages", "200"],
        cwd=support.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = support.read_ready_lines(proc.stdout.fileno(), 2, READY_TIMEOUT, proc)
        assert lines[0].startswith("metrics: http://127.0.0.1:"), lines
        assert lines[1] == "published: 200", lines
        url = lines[0].split(" ", 1)[1]
        with urllib.request.urlopen(url, timeout=10) as response:
            page: str = response.read().decode()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr.decode()
        return page
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def pool_lines(page: str, metric: str, pool: str) -> list[str]:
    return [line for line in page.splitlines()
            if line.startswith(metric) and f'db_client_connection_pool_name="{pool}' in line]


def test_metrics_served_while_publishing_in_memory() -> None:
    page = scrape_while_running("memory://")
    assert pool_lines(page, "db_client_connection_count{", "connections memory://"), page
    waits = pool_lines(page, "db_client_connection_wait_time_seconds_count{",
                       "producers memory://")
    assert waits and float(waits[0].rsplit(" ", 1)[1]) >= 200, waits


def test_metrics_served_while_publishing_to_rabbitmq() -> None:
    url = require_amqp()
    page = scrape_while_running(url)
    assert pool_lines(page, "db_client_connection_count{", "connections amqp://"), page
