"""S4 cooperative waiting: gevent or eventlet imported, nothing patched.

One green thread holds a pool's only resource and gives it back after
``HOLD`` seconds; another blocks in ``acquire(block=True, timeout=1)``;
a ticker counts every 10 ms.  A pool whose wait parks only the waiting
green thread lets the ticker run and the holder give the resource back;
a pool that blocks the native thread freezes the hub, so the ticker
stops and the wait runs out.  Each pool runs in its own process under a
hard timeout (:func:`run_s4`), so even a pool that would deadlock cannot
hang the benchmark.

    python benchmarks/cooperative.py gevent|eventlet CONTENDER
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

HOLD = 0.3
WAIT_TIMEOUT = 1.0
TICK = 0.01
HARD_TIMEOUT = 20.0

#: contender id -> caption; greenpools-auto leaves the backend to detection
CONTENDERS = {
    "gp-conn": "greenpools connection pool, backend chosen with use_backend()",
    "gp-conn-auto": "greenpools connection pool, backend auto-detected",
    "kombu-conn": "kombu connection pool",
    "eventlet-pool": "eventlet.pools.Pool",
}


def _green(lib: str) -> tuple[Any, Any]:
    """(run(func) -> join(), sleep) of ``lib``, without patching anything."""
    if lib == "gevent":
        import gevent

        return (lambda func: gevent.spawn(func).join), gevent.sleep
    import warnings

    warnings.filterwarnings("ignore")
    import eventlet

    return (lambda func: eventlet.spawn(func).wait), eventlet.sleep


def _pool(lib: str, contender: str) -> tuple[Any, Any, Any]:
    """(acquire_for(timeout), release(r), resource held) for a pool of one."""
    from greenpools.cli import bench

    if contender == "gp-conn":
        import greenpools

        greenpools.use_backend(lib)
    if contender in ("gp-conn", "gp-conn-auto"):
        pool = bench.make_gp_connection_pool(1)
        return (lambda t: pool.acquire(True, t)), pool.release, pool.acquire(True)
    if contender == "kombu-conn":
        pool = bench.make_kombu_connection_pool(1)
        return (lambda t: pool.acquire(True, t)), pool.release, pool.acquire(True)
    if contender == "eventlet-pool":
        from eventlet import Timeout, pools

        epool = pools.Pool(max_size=1, create=object)

        def acquire_for(timeout: float) -> Any:
            with Timeout(timeout):
                return epool.get()

        return acquire_for, epool.put, epool.get()
    raise ValueError(f"contender must be one of {', '.join(CONTENDERS)}, got {contender!r}")


def measure(lib: str, contender: str) -> dict[str, Any]:
    spawn, sleep = _green(lib)
    acquire_for, release, held = _pool(lib, contender)
    ticks = [0]
    stop = [False]

    def ticker() -> None:
        while not stop[0]:
            ticks[0] += 1
            sleep(TICK)

    def holder() -> None:
        sleep(HOLD)
        release(held)

    outcome: dict[str, Any] = {}

    def waiter() -> None:
        before = ticks[0]
        started = time.monotonic()
        try:
            resource = acquire_for(WAIT_TIMEOUT)
        except BaseException as exc:  # eventlet.Timeout is a BaseException
            outcome["error"] = type(exc).__name__
        else:
            outcome["acquired"] = True
            release(resource)
        outcome["waited_s"] = time.monotonic() - started
        outcome["ticks_during_wait"] = ticks[0] - before

    join_ticker = spawn(ticker)
    spawn(holder)
    sleep(0.05)  # the ticker is running
    spawn(waiter)()
    stop[0] = True
    join_ticker()
    acquired = bool(outcome.get("acquired"))
    expected_ticks = outcome["waited_s"] / TICK
    outcome["acquired"] = acquired
    outcome["hub_ran"] = acquired and outcome["ticks_during_wait"] >= 0.5 * expected_ticks
    return outcome


def run_s4(lib: str, contender: str, timeout: float = HARD_TIMEOUT) -> dict[str, Any]:
    """Measure in a fresh process; a hang past ``timeout`` counts as a deadlock."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("GREENPOOLS_BACKEND", None)
    command = [sys.executable, os.path.abspath(__file__), lib, contender]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"hub_ran": False, "acquired": False, "deadlocked": True}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"S4 {lib} {contender} exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
