"""Run the fork storm against kombu's pools and greenpools' pools, side by side.

    python tests/e2e/fork_storm_compare.py [--pools kombu,greenpools]
        [--patch none,gevent,eventlet] [--per-process 300] [--timeout 30]

Each combination runs in its own interpreter (monkey-patched first when
asked), bounded by a timeout, and prints one line: did every process
finish, how many messages were expected, how many arrived, how many were
lost or duplicated, and whether the parent's pre-fork connections still
work.  A benchmark-style reproduction, not a test: kombu's pools are
expected to do badly here (a plain ``os.fork()`` resets nothing, so parent
and children share AMQP sockets).
"""

from __future__ import annotations

import sys

ONE_FLAG = "--one"


def patch(kind: str) -> None:
    from greenpools.startup import patch_first

    patch_first("threading" if kind == "none" else kind)


def run_one(pools_name: str, per_process: int, timeout: float) -> dict[str, object]:
    """One storm in this process; a JSON-able summary."""
    import collections
    import importlib
    import json  # noqa: F401 - imported after patching on purpose

    import storm
    import support

    pools = importlib.import_module(f"{pools_name}.pools")
    with support.temporary_queue(f"compare-{pools_name}") as queue:
        result = storm.run_storm(pools, queue, per_process=per_process, timeout=timeout)
        expected = collections.Counter(result.expected_bodies)
        got = collections.Counter(
            body.decode() for body in support.drain_queue(queue, len(expected) * 2 + 100)
        )
    lost = sum((expected - got).values())
    duplicated = sum((got - expected).values())
    children_ok = all(code == 0 for code in result.child_exit_codes.values())
    return {
        "expected": sum(expected.values()),
        "arrived": sum(got.values()),
        "lost": lost,
        "extra": duplicated,
        "children": sorted(str(code) for code in result.child_exit_codes.values()),
        "children_ok": children_ok,
        "parent_published": result.parent.published,
        "parent_errors": len(result.parent.errors),
        "parent_hung_tasks": result.parent.hung_tasks,
        "first_parent_error": result.parent.errors[0] if result.parent.errors else "",
        "held_survived": result.held_after == result.held_before,
        "idle_survived": result.idle_after == result.idle_before,
        "seconds": round(result.seconds, 2),
    }


def judge(summary: dict[str, object]) -> str:
    """One line: everything right, or what went wrong."""
    problems = []
    if not summary["children_ok"]:
        problems.append(f"child exit codes {summary['children']}")
    if summary["parent_hung_tasks"]:
        problems.append(f"{summary['parent_hung_tasks']} parent tasks hung")
    if summary["parent_errors"]:
        problems.append(f"{summary['parent_errors']} parent publish errors")
    if summary["lost"] or summary["extra"]:
        problems.append(f"{summary['lost']} lost, {summary['extra']} extra messages")
    for name in ("held", "idle"):
        if not summary[f"{name}_survived"]:
            problems.append(f"parent's pre-fork {name} connection broken")
    return "FAILED - " + "; ".join(problems) if problems else "ok"


def main(argv: list[str]) -> int:
    import argparse
    import json
    import subprocess
    import time

    import support

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", default="kombu,greenpools")
    parser.add_argument("--patch", default="none,gevent")
    parser.add_argument("--per-process", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=30.0)
    options = parser.parse_args(argv)

    for pools_name in options.pools.split(","):
        for kind in options.patch.split(","):
            command = [support.PYTHON, __file__, ONE_FLAG, kind, pools_name,
                       str(options.per_process), str(options.timeout)]
            started = time.monotonic()
            proc = subprocess.Popen(
                command, env=support.subprocess_env(), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
            )
            try:
                out, err = proc.communicate(timeout=options.timeout * 4)
            except subprocess.TimeoutExpired:
                support.kill_process_group(proc)
                out, err = proc.communicate()
                verdict = "HUNG (killed)"
            else:
                verdict = f"exit {proc.returncode}"
            seconds = time.monotonic() - started
            summary = None
            for line in reversed(out.splitlines()):
                if line.startswith("{"):
                    summary = json.loads(line)
                    break
            if summary:
                verdict += ": " + judge(summary)
            print(f"{pools_name:>10} {kind:>8}: {verdict}, {seconds:.1f}s wall")
            if summary:
                print("    " + json.dumps(summary))
            noise = support.bad_log_lines(out + err)
            if noise:
                print(f"    {len(noise)} error lines, e.g.: {noise[0].strip()[:160]}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [ONE_FLAG]:
        patch(sys.argv[2])
        import json

        print(json.dumps(run_one(sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))), flush=True)
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
