"""Leak reports of the kombu pools point at the caller's line, not at a
greenpools.kombu module (their frames are skipped like the core's)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import pytest
from brokers import clean_global_pools  # noqa: F401  (autouse)
from helpers import wait_until

from greenpools import pools


def _leak_frames(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    records = [r for r in caplog.records
               if r.name == "greenpools" and "held for more than" in r.getMessage()]
    if not records:
        return []
    return re.findall(r'File "([^"]+)", line (\d+), in (\w+)', records[0].getMessage())


@pytest.mark.parametrize("kind", ["producer", "channel lease"])
def test_kombu_leak_reports_end_at_the_callers_line(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="greenpools")
    connections = pools.ConnectionPool("memory://", limit=2, leak_timeout=0.02)
    if kind == "producer":
        producers = pools.ProducerPool(connections, limit=2, leak_timeout=0.02)
        held: Any = producers.acquire(); line = sys._getframe().f_lineno  # noqa: E702
    else:
        held = connections.acquire_channel()
        held.__enter__(); line = sys._getframe().f_lineno  # noqa: E702
    wait_until(lambda: _leak_frames(caplog))
    frames = _leak_frames(caplog)
    assert frames[-1][:2] == (__file__, str(line)), frames[-3:]
    if kind == "producer":
        held.release()
    else:
        held.__exit__(None, None, None)
