"""How an asyncio task acquires from :class:`greenpools.aio.Pool`: the locked
path, which queues the task and awaits its grant (:func:`acquire_queued`),
and the lease of ``async with pool.acquired() as r:`` (:class:`AsyncLease`).

They run on every acquire: compiled by Cython when built (see
``acquiring.pxd``), so that they cost no Python frames of their own;
plain Python otherwise.
"""

from __future__ import annotations

import time
from typing import Any

from ..backends.base import native_thread_ident
from ..core.lifecycle import stall_watch
from ..core.slotpool import AcquireAgain, Slot, SlotPool, check_seconds
from ..exceptions import PoolTimeout

__all__ = ["AsyncLease", "acquire_queued"]

_monotonic = time.monotonic
_INF = float("inf")


async def acquire_queued(pool: Any, timeout: float | None) -> Any:
    """The acquire that takes the pool's lock, and waits if it must."""
    loop = pool._loop
    # One loop runs in a thread at a time: if the bound one runs, it is this one.
    if loop is None or pool._thread != native_thread_ident() or not loop.is_running():
        loop = pool._bind()
    pool._n_requests += 1
    if timeout is None:
        timeout = pool.timeout
    else:
        timeout = check_seconds("timeout", timeout)
    asked = timeout  # what a timeout error reports, however much is left
    started = _monotonic() if timeout is not None or pool._watched else 0.0
    if pool._needs_upkeep and pool._upkeep is None and not pool._closed:
        pool._start_upkeep()
    while True:
        try:
            taken = SlotPool._take_or_enqueue(pool, True, timeout, asked)
            if type(taken) is Slot:
                slot: Any = taken
            elif taken is None:
                slot = await pool._create_lent_async()
            else:  # queued: await the grant
                slot = await _await_turn(pool, loop, taken, timeout, asked)
                if slot is None:
                    slot = await pool._create_lent_async()
            if pool._pending_close:
                SlotPool._close_pending(pool)
            if pool._bare_hand_out and pool._check_hook is None:
                slot.fresh = False
                return slot.resource
            return await pool._hand_out_async(slot, started)
        except PoolTimeout:
            if pool._watched:
                SlotPool._emit(pool, "timeout", None, _monotonic() - started)
            raise
        except AcquireAgain:
            if timeout is not None:
                timeout = max(0.0, started + timeout - _monotonic())


async def _await_turn(pool: Any, loop: Any, client: Any, timeout: float | None,
                      asked: float | None) -> Slot | None:
    """A queued task awaits its client's future: a slot, or None when it is
    to create one.  Woken to compete for an idle resource (a pool that
    barges), it tries for it, and awaits a successor if it lost."""
    if timeout is None and pool._stall_watch is not stall_watch.running:
        stall_watch.watch(pool)
    deadline: float = _INF if timeout is None else client.since + timeout
    while True:
        # One timer: the deadline, or sooner the time a loser looks again.
        due: float = deadline
        if client.recheck_at and client.recheck_at < due:
            due = client.recheck_at
        timer = None if due == _INF else loop.call_later(due - _monotonic(), client.expire)
        try:
            woken = await client.future
        except BaseException:  # cancelled: pass on whatever reached it
            pool._abandon(client)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        # A timer that ran before the deadline was the loser's time to look again.
        step = SlotPool._after_wait(pool, client, woken, due < deadline, deadline, asked)
        if step is None or type(step) is Slot:
            return step  # type: ignore[no-any-return]
        client = step  # lost a contest: await its successor


class AsyncLease:
    """Acquires from ``pool`` on entry (waiting up to ``timeout``); on exit
    returns the resource, or replaces it when the block raised one of the
    pool's ``connection_errors``."""

    def __init__(self, pool: Any, timeout: float | None) -> None:
        self._pool = pool
        # Checked here, once a lease: the lock-free enter would not.
        self._timeout = check_seconds("timeout", timeout)
        self._resource: Any = None
        self._slot: Slot | None = None
        self._lease = -1

    async def __aenter__(self) -> Any:
        pool = self._pool
        # Pool.acquire, without its frame: the same lock-free path first.
        if pool._lock_free and pool._idle and pool._lock_free_thread == native_thread_ident():
            resource = SlotPool.acquire(pool, False)
        else:
            resource = await acquire_queued(pool, self._timeout)
        self._resource = resource
        # The lease is the slot and its release count now (SlotPool._lease_of,
        # inline: compiled, the exit then reads two fields and calls nothing).
        slot: Slot | None = pool._slots.get(id(resource))
        self._slot = slot
        self._lease = -1 if slot is None else slot.returns
        return resource

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pool = self._pool
        if exc is None and pool._reset_hook is None:  # nothing to await
            slot = self._slot
            if (slot is not None and slot.lent and slot.returns == self._lease
                    and slot.resource is self._resource):
                SlotPool.release(pool, self._resource)
            else:  # released (or replaced) inside the block already
                SlotPool._drop_retired(pool, self._resource, False)
            return
        broken = exc is not None and isinstance(exc, pool.connection_errors)
        await pool._end_lease_async(self._resource, self._lease, broken)
