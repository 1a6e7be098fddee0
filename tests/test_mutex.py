"""The pool's lock (``greenpools.backends.base.Mutex``): a plain OS lock.

Compiled it calls CPython's lock functions directly; as plain Python it is
``_thread``'s lock itself.  Both behave alike.
"""

from __future__ import annotations

import pytest
from helpers import BACKEND, native_runner

from greenpools.backends.base import Mutex


def test_acquire_release_and_locked() -> None:
    mutex = Mutex()
    assert not mutex.locked()
    assert mutex.acquire() is True
    assert mutex.locked()
    assert mutex.acquire(False) is False  # not re-entrant
    assert mutex.acquire(True, 0.01) is False
    mutex.release()
    assert not mutex.locked()
    with mutex:
        assert mutex.locked()
    assert not mutex.locked()


def test_release_unlocked_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        Mutex().release()


def test_bad_timeouts_are_refused() -> None:
    mutex = Mutex()
    with pytest.raises(ValueError):
        mutex.acquire(False, 1.0)
    with pytest.raises(ValueError):
        mutex.acquire(True, -5)


def test_another_os_thread_waits_for_it() -> None:
    mutex = Mutex()
    mutex.acquire()
    run = native_runner(BACKEND)
    assert run(mutex.acquire, False)() is False
    join = run(mutex.acquire, True, 30)  # blocks in a real OS thread until released
    mutex.release()
    assert join() is True
    assert mutex.locked()
    mutex.release()
