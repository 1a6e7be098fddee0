"""eventlet's hub across ``os.fork()``: the child polls an epoll of its own.

eventlet keeps its hub (and its green threads) in a forked child, polling
the epoll instance it shares with the parent: a registration one process
removes is gone for the other.  Children writing their reports to a pipe
inherited from the parent hung that way (one child's unregistering of the
pipe left a sibling waiting for ever to write).  greenpools' eventlet
backend gives the child's hub its own epoll and drops the parent's doorbell
there; these tests pin each part down deterministically.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest
from e2e import support
from helpers import BACKEND, HANG_TIMEOUT
from test_pool_fork import in_child

import greenpools
from greenpools.forking import fork_guard

pytestmark = pytest.mark.skipif(
    BACKEND != "eventlet", reason="eventlet's hub only: the suite's eventlet run covers it"
)


@pytest.fixture(autouse=True)
def eventlet_backend_in_use() -> None:
    # What these tests check is done by greenpools' eventlet backend, so
    # only in a process that uses it (here: as soon as anything asks).
    assert greenpools.get_backend().name == "eventlet"


def _read_one_byte_in_a_green_task(read_fd: int) -> Any:
    import eventlet

    task = eventlet.spawn(os.read, read_fd, 1)  # green os.read: waits on the hub
    eventlet.sleep(0)  # let it register its descriptor and park
    return task


def test_a_child_unregistering_an_inherited_descriptor_leaves_the_parent_watching_it() -> None:
    import eventlet

    read_fd, write_fd = os.pipe()
    reader = _read_one_byte_in_a_green_task(read_fd)
    try:

        def child() -> dict[str, Any]:
            # The child's copy of the task stops waiting: its hub unregisters
            # the descriptor.  On a shared epoll that is the parent's too.
            reader.kill()
            return {"killed": reader.dead}

        assert in_child(child) == {"killed": True}
        os.write(write_fd, b"x")
        with eventlet.Timeout(HANG_TIMEOUT, False):
            assert reader.wait() == b"x"
        assert reader.dead, "the parent's reader never saw its descriptor ready"
    finally:
        reader.kill()  # before its descriptor closes under it
        os.close(read_fd)
        os.close(write_fd)


def test_a_copied_task_waiting_on_a_descriptor_the_child_closed_is_failed_at_once() -> None:
    import eventlet

    read_fd, write_fd = os.pipe()

    class ClosesTheReadEnd:  # what a pool's reset does to an inherited socket
        armed = True

        def _after_fork_in_child(self) -> None:
            if self.armed:  # not in later tests' forks, should this outlive the test
                os.close(read_fd)

    closer = ClosesTheReadEnd()
    fork_guard.track(closer)
    reader = _read_one_byte_in_a_green_task(read_fd)
    try:

        def child() -> dict[str, Any]:
            # eventlet's os.read answers b"" when its descriptor is closed
            # under it; before, the copy waited until the number was reused.
            with eventlet.Timeout(HANG_TIMEOUT, False):
                return {"read": repr(reader.wait())}
            return {"read": "still waiting"}

        assert in_child(child) == {"read": "''"}
        os.write(write_fd, b"y")  # the parent's task was not disturbed
        with eventlet.Timeout(HANG_TIMEOUT, False):
            assert reader.wait() == b"y"
        assert reader.dead
    finally:
        closer.armed = False
        reader.kill()
        os.close(read_fd)
        os.close(write_fd)


def test_a_child_drops_the_parents_doorbell() -> None:
    import eventlet
    from eventlet import hubs

    from greenpools import backends

    # A waiter parked on the hub gets it a doorbell, for wakes from native
    # threads.
    assert not backends.waiter_factory()().wait(0.001)
    native = eventlet.patcher.original("threading")
    hub = hubs.get_hub()
    bell = hub._greenpools_doorbell
    parents_fds = (bell._read_fd, bell._write_fd)

    def child() -> dict[str, Any]:
        inherited = vars(hubs.get_hub()).get("_greenpools_doorbell")
        watched = [fd for fd in parents_fds if fd in hub.listeners[hub.READ]]
        still_open = []
        for fd in parents_fds:
            try:
                os.fstat(fd)
                still_open.append(fd)
            except OSError:
                pass
        # A wake from a native thread in the child still works (a fresh bell).
        child_waiter = backends.waiter_factory()()
        native.Thread(target=child_waiter.wake).start()
        return {"inherited": inherited is not None, "watched": watched,
                "open": still_open, "woken": child_waiter.wait(HANG_TIMEOUT)}

    assert in_child(child) == {"inherited": False, "watched": [], "open": [], "woken": True}
    # The parent's bell still rings.
    again = backends.waiter_factory()()
    native.Thread(target=again.wake).start()
    assert again.wait(HANG_TIMEOUT)
    assert hub._greenpools_doorbell is bell


def test_children_writing_to_an_inherited_pipe_all_finish() -> None:
    """The hang as first seen, with the odds raised: children write one
    line each to a pipe from the parent through eventlet's green
    ``os.write``, which waits on the hub for the pipe to be writable."""
    import eventlet

    def write_line(write_fd: int, number: int) -> None:
        eventlet.sleep(0.001 * (number % 2))
        os.write(write_fd, b"%d\n" % number)

    children, rounds = 4, 40
    outcomes = []
    for _ in range(rounds):
        read_fd, write_fd = os.pipe()
        pids = []
        for number in range(children):
            pid = os.fork()
            if pid == 0:
                support.run_forked_child(functools.partial(write_line, write_fd, number),
                                         watchdog=int(HANG_TIMEOUT) + 10)
            pids.append(pid)
        os.close(write_fd)
        codes = [_exit_code_within(pid, HANG_TIMEOUT) for pid in pids]
        with os.fdopen(read_fd, "rb") as pipe:
            written = sorted(pipe.read().split())
        outcomes.append((codes, written))
    assert outcomes == [([0] * children, [b"%d" % n for n in range(children)])] * rounds


def _exit_code_within(pid: int, timeout: float) -> int | str:
    try:
        return support.wait_pid(pid, timeout)
    except support.Overrun:
        return "hung (killed)"
