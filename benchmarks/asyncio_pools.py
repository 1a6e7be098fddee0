"""asyncio pools side by side: greenpools.aio.Pool, aio-pika's Pool, a bare asyncio.Queue pool.

    python benchmarks/asyncio_pools.py [--rounds N] [--build compiled|pure|both] [--quick]

Two scenarios, trivial resources (plain objects, nothing to connect):

- *uncontended*: one task, ``async with`` acquire and release, over and over;
  nanoseconds per cycle.
- *contended*: 100 tasks share a limit of 10, each holding its resource for
  one ``await asyncio.sleep(0)``; cycles per second, and the longest any
  task waited for a resource.

Each round runs every pool once, in turn, in the same process; a round
gives each figure a ratio greenpools / aio-pika, reported as the median
with its spread (lowest-highest) over the rounds.  Times per cycle and
cycles per second are counted in the process's CPU time, so that a
machine shared with other work skews them less; waits are wall-clock
time, reported as the median over rounds of each round's longest (and
the worst round's, which a preempted process inflates).  Each build of the pool
core runs in a process of its own (``GREENPOOLS_NO_SPEEDUPS=1`` for the
plain-Python build).  Targets (issue 22): uncontended at most 0.5x
aio-pika's time; contended at least 1.0x aio-pika's cycles per second,
with a longest wait of at most 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

TASKS = 100
LIMIT = 10
UNCONTENDED_TARGET = 0.5  # greenpools' time per cycle / aio-pika's, at most
CONTENDED_TARGET = 1.0  # greenpools' cycles per second / aio-pika's, at least
LONGEST_WAIT_TARGET_MS = 20.0

#: pool id -> caption
POOLS = {
    "greenpools": "greenpools.aio.Pool",
    "aio-pika": "aio_pika.pool.Pool",
    "queue": "bare asyncio.Queue pool",
}


class Resource:
    """What the pools lend: nothing to connect or close."""

    def close(self) -> None:
        pass


async def create() -> Resource:
    return Resource()


class QueuePool:
    """The smallest asyncio pool: an ``asyncio.Queue`` of idle resources."""

    def __init__(self, limit: int) -> None:
        self._idle: asyncio.Queue[Resource] = asyncio.Queue()
        self._made = 0
        self._limit = limit

    def acquire(self) -> QueueLease:
        return QueueLease(self)

    async def get(self) -> Resource:
        if self._idle.empty() and self._made < self._limit:
            self._made += 1
            return await create()
        return await self._idle.get()

    def put(self, resource: Resource) -> None:
        self._idle.put_nowait(resource)


class QueueLease:
    __slots__ = ("_pool", "_resource")

    def __init__(self, pool: QueuePool) -> None:
        self._pool = pool

    async def __aenter__(self) -> Resource:
        self._resource = await self._pool.get()
        return self._resource

    async def __aexit__(self, *exc: object) -> None:
        self._pool.put(self._resource)


def make_pool(kind: str, limit: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(lease(): an async context manager, close(): a coroutine) for pool ``kind``."""
    if kind == "greenpools":
        import greenpools.aio

        gp = greenpools.aio.Pool(create, limit)
        return gp.acquired, gp.close
    if kind == "aio-pika":
        from aio_pika.pool import Pool as AioPikaPool

        ap: AioPikaPool[Resource] = AioPikaPool(create, max_size=limit)
        return ap.acquire, ap.close
    queue = QueuePool(limit)

    async def nothing() -> None:
        pass

    return queue.acquire, nothing


async def uncontended(kind: str, cycles: int) -> dict[str, float]:
    lease, close = make_pool(kind, 1)
    async with lease():
        pass  # made: the loop measures reuse
    started = time.process_time()
    for _ in range(cycles):
        async with lease():
            pass
    elapsed = time.process_time() - started
    await close()
    return {"ns_per_cycle": elapsed / cycles * 1e9}


async def contended(kind: str, cycles_per_task: int) -> dict[str, float]:
    lease, close = make_pool(kind, LIMIT)
    longest = 0.0
    clock = time.perf_counter

    async def user() -> None:
        nonlocal longest
        for _ in range(cycles_per_task):
            asked = clock()
            async with lease():
                waited = clock() - asked
                if waited > longest:
                    longest = waited
                await asyncio.sleep(0)

    started = time.process_time()
    await asyncio.gather(*(user() for _ in range(TASKS)))
    elapsed = time.process_time() - started
    await close()
    return {"cycles_per_s": TASKS * cycles_per_task / elapsed, "longest_wait_ms": longest * 1e3}


def measure(rounds: int, cycles: int) -> dict[str, Any]:
    """Every scenario for every pool, ``rounds`` times, in this process."""
    from greenpools import _build

    results: dict[str, dict[str, list[float]]] = {kind: {} for kind in POOLS}

    async def one_round() -> None:
        for kind in POOLS:
            figures = await uncontended(kind, cycles)
            figures.update(await contended(kind, max(1, cycles // TASKS)))
            for key, value in figures.items():
                results[kind].setdefault(key, []).append(value)

    for _ in range(rounds):
        asyncio.run(one_round())
    return {"build": _build.BUILD, "results": results}


def ratio_line(label: str, mine: list[float], theirs: list[float], target: str) -> str:
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    return (f"  {label:<34} {statistics.median(ratios):6.2f}x "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]   target {target}")


def report(measured: dict[str, Any]) -> list[str]:
    results = measured["results"]
    lines = [f"build: {measured['build']}"]
    lines.append(f"  {'pool':<26} {'uncontended ns/cycle':>21} {'contended cycles/s':>19} "
                 f"{'longest wait ms (worst)':>24}")
    for kind, caption in POOLS.items():
        figures = results[kind]
        lines.append(
            f"  {caption:<26} {statistics.median(figures['ns_per_cycle']):>21.0f} "
            f"{statistics.median(figures['cycles_per_s']):>19.0f} "
            f"{statistics.median(figures['longest_wait_ms']):>15.2f} "
            f"({max(figures['longest_wait_ms']):.2f})")
    gp, ap = results["greenpools"], results["aio-pika"]
    lines.append("  greenpools / aio-pika, median [lowest-highest] over rounds:")
    lines.append(ratio_line("uncontended time per cycle", gp["ns_per_cycle"],
                            ap["ns_per_cycle"], f"<= {UNCONTENDED_TARGET}x"))
    lines.append(ratio_line("contended cycles per second", gp["cycles_per_s"],
                            ap["cycles_per_s"], f">= {CONTENDED_TARGET}x"))
    lines.append(f"  {'greenpools longest wait, median':<34} "
                 f"{statistics.median(gp['longest_wait_ms']):6.2f} ms "
                 f"[{min(gp['longest_wait_ms']):.2f}-{max(gp['longest_wait_ms']):.2f}]   "
                 f"target <= {LONGEST_WAIT_TARGET_MS} ms")
    return lines


def run_build(build: str, rounds: int, cycles: int) -> dict[str, Any]:
    """Measure in a fresh process running ``build`` of the pool core."""
    env = dict(os.environ)
    env.pop("GREENPOOLS_NO_SPEEDUPS", None)
    if build == "pure":
        env["GREENPOOLS_NO_SPEEDUPS"] = "1"
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--rounds", str(rounds), "--cycles", str(cycles)],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode:
        raise SystemExit(f"asyncio_pools.py: the {build} build's run failed:\n{done.stderr}")
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=7, help="rounds (7)")
    parser.add_argument("--cycles", type=positive_int, default=20000,
                        help="cycles per scenario and pool in a round (20000)")
    parser.add_argument("--build", choices=("compiled", "pure", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5000 cycles")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.cycles = 3, 5000
    if args.child:
        print(json.dumps(measure(args.rounds, args.cycles)))
        return 0
    builds = ("compiled", "pure") if args.build == "both" else (args.build,)
    print(f"{args.rounds} rounds of {args.cycles} cycles; contended: {TASKS} tasks, "
          f"limit {LIMIT}, each holding for one sleep(0)")
    for build in builds:
        print("\n".join(report(run_build(build, args.rounds, args.cycles))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
