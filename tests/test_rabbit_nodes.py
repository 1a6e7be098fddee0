"""The suite's own RabbitMQ nodes never outlive the run that booted them:
SIGTERM to the runner or to a pytest session stops them, and the nodes of
a run killed outright are stopped by the next start (``tests/rabbit_cluster.py``,
``tests/termination.py``).

The tests that boot nodes start real processes (the runner, pytest) that
boot a one-node set each; they run once, in the threading run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BACKEND, SERVICE_MISSING
from rabbit_cluster import (
    OWNER_FILE,
    STATE_FILE,
    ClusterError,
    Node,
    ProcessIdentity,
    missing_reason,
    stop_abandoned,
)

pytestmark = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)

TESTS = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(TESTS, "runner.py")
EXIT_TIMEOUT = 120.0  # for a terminated run to stop its passes and nodes

#: A test that boots a one-node set, says which, and waits to be stopped.
#: SIGUSR1 makes it print every thread's stack (see Holder.stop).
HOLDER = """\
import faulthandler, json, os, signal, sys, threading
from rabbit_cluster import session_nodes

def test_holds_a_node():
    faulthandler.register(signal.SIGUSR1, file=sys.__stdout__, all_threads=True)
    nodes = session_nodes("probe", 1)
    vm = nodes.vm_pid(nodes.nodes[0])
    found = {"vm": vm, "base": nodes.base, "holder": os.getpid()}
    print("NODES " + json.dumps(found), flush=True)
    threading.Event().wait(600)
"""


def _fresh_env() -> dict[str, str]:
    """The environment of a run started from a shell: none of this run's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GREENPOOLS_")}


class Holder:
    """A run (the runner, or pytest alone) holding a node booted by :data:`HOLDER`."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=TESTS,
                                     start_new_session=True)  # its children: see close()
        self.output: list[str] = []
        try:
            self._await_node()
        except BaseException:
            self.close()
            raise

    def _await_node(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # until the node runs, or the run ends
            self.output.append(line)
            if line.startswith("NODES "):
                found = json.loads(line.removeprefix("NODES "))
                self.vm = ProcessIdentity.of(int(found["vm"]))
                self.base = str(found["base"])
                self.holder = int(found["holder"])  # the process running HOLDER
                break
        else:
            raise AssertionError("the run booted no node:\n" + "".join(self.output))
        assert self.vm.alive()

    def stop(self, signum: int) -> int:
        """Send ``signum``; return the run's exit status once it has exited."""
        self.proc.send_signal(signum)
        try:
            rest, _ = self.proc.communicate(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not exit {EXIT_TIMEOUT:.0f}s after "
                                 f"{signal.Signals(signum).name}\n{self._where()}") from None
        self.output.append(rest)
        return self.proc.returncode

    def _where(self) -> str:
        """What a run that will not exit is doing: its output, the holder's
        stacks (faulthandler, on SIGUSR1), and its processes."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.holder, signal.SIGUSR1)
        try:
            rest, _ = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired as exc:
            rest = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
        self.output.append(rest or "")
        processes = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,wchan:24,etime,args", "-g", str(self.proc.pid)],
            capture_output=True, text=True).stdout
        return "".join(self.output) + "\nits processes:\n" + processes

    def close(self) -> None:
        """Kill what is left of the run (its passes too, if the runner left
        them behind), then stop the nodes it left (their owner is dead)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        stop_abandoned()


@pytest.fixture
def holder_test(tmp_path: Path) -> str:
    reason = missing_reason()
    if reason:
        pytest.skip(f"{SERVICE_MISSING} {reason}")
    path = tmp_path / "test_holder.py"
    path.write_text(HOLDER)
    return str(path)


def runner_command(*args: str) -> list[str]:
    return [sys.executable, RUNNER, "--backend", "threading", "--build", "pure", "--jobs", "1",
            "-q", "-s", "-p", "no:cacheprovider", *args]


def pytest_session(holder_test: str) -> Holder:
    """pytest run directly, with the suite's conftest (as ``pytest tests/...`` loads it)."""
    env = {**_fresh_env(), "PYTHONPATH": TESTS}
    return Holder([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-s",
                   "-p", "no:cacheprovider", holder_test], env)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_to_the_runner_stops_its_passes_and_its_nodes(holder_test: str) -> None:
    run = Holder(runner_command(holder_test), _fresh_env())
    try:
        status = run.stop(signal.SIGTERM)
    finally:
        run.close()
    output = "".join(run.output)
    assert status == 128 + signal.SIGTERM, output
    assert "runner: stopped by SIGTERM; stopped the test passes" in output
    assert not run.vm.alive(), output
    assert not os.path.exists(run.base)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_to_a_pytest_session_stops_its_nodes(holder_test: str) -> None:
    run = pytest_session(holder_test)
    try:
        status = run.stop(signal.SIGTERM)
    finally:
        run.close()
    output = "".join(run.output)
    assert status == pytest.ExitCode.INTERRUPTED, output
    assert not run.vm.alive(), output
    assert not os.path.exists(run.base)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_nodes_of_a_killed_run_are_stopped_by_the_next_runner(
    holder_test: str, tmp_path: Path,
) -> None:
    run = pytest_session(holder_test)
    try:
        assert run.base not in stop_abandoned()  # its owner lives: not abandoned
        assert run.vm.alive()
        assert run.stop(signal.SIGKILL) == -signal.SIGKILL
        assert run.vm.alive(), "a killed run's node stopped by itself"
        trivial = tmp_path / "test_trivial.py"
        trivial.write_text("def test_nothing():\n    pass\n")
        next_run = subprocess.run(runner_command(str(trivial)), env=_fresh_env(),
                                  capture_output=True, text=True, timeout=EXIT_TIMEOUT)
        assert next_run.returncode == 0, next_run.stdout + next_run.stderr
        assert not run.vm.alive(), next_run.stdout
        assert not os.path.exists(run.base)
    finally:
        run.close()


# -- which node sets count as abandoned (no node boots) ---------------------


def _node_set(temp_dir: Path, name: str, owner: ProcessIdentity | None,
              node_name: str = "gpprobe1n1@localhost", port: int = 40001) -> str:
    """A node set's directory as :meth:`RabbitCluster.create` leaves it, no node running."""
    base = temp_dir / f"greenpools-rabbit-{name}"
    base.mkdir()
    state = {"base": str(base), "owner": owner and vars(owner),
             "nodes": [{"name": node_name, "port": port, "dist_port": port + 1,
                        "directory": str(base / "n1")}]}
    (base / STATE_FILE).write_text(json.dumps(state))
    return str(base)


def test_only_sets_whose_owner_is_gone_count_as_abandoned(tmp_path: Path) -> None:
    me = ProcessIdentity.of(os.getpid())
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    ours = _node_set(tmp_path, "ours", me)
    dead = _node_set(tmp_path, "dead", ProcessIdentity(int(finished.stdout), me.started))
    reused = _node_set(tmp_path, "reused", ProcessIdentity(me.pid, (me.started or 0) + 1))
    unowned = _node_set(tmp_path, "unowned", None)
    broker = _node_set(tmp_path, "broker", ProcessIdentity(int(finished.stdout), None),
                       node_name="rabbit@localhost", port=5672)
    making = tmp_path / "greenpools-rabbit-making"
    making.mkdir()  # no state file yet
    live_runner = tmp_path / "greenpools-runner-nodes-live"
    dead_runner = tmp_path / "greenpools-runner-nodes-dead"
    for runner, owner in ((live_runner, me), (dead_runner, ProcessIdentity(me.pid, None))):
        runner.mkdir()
        (runner / OWNER_FILE).write_text(json.dumps(vars(owner)))

    assert stop_abandoned(str(tmp_path)) == [dead, reused]
    assert {str(p) for p in tmp_path.iterdir()} == {
        ours, unowned, broker, str(making), str(live_runner)}


def test_the_machines_broker_is_never_one_of_our_nodes() -> None:
    with pytest.raises(ClusterError, match="rabbit@localhost on port 5672 is not one of ours"):
        Node("rabbit@localhost", 5672, 25672, "/nonexistent")
