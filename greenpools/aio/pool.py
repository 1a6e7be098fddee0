"""``greenpools.aio.Pool``: the pool algorithm for asyncio tasks.

It is the same :class:`greenpools.core.slotpool.SlotPool` as every other
pool, with the options, validation, statistics and events of
:class:`greenpools.Pool`; only the waiting differs.  A task that must wait
queues an :class:`~greenpools.aio.waiting.AsyncWaiter` and awaits its
future; whoever frees something grants it to the oldest waiter under the
pool's lock, exactly as for threads and greenlets.  A task cancelled while
it waits withdraws under the lock and passes on whatever reached it (a
resource, or a place to create one), even when the cancel and the grant
land in the same loop turn.

The hooks (``create``, ``close``, ``check``, ``reset``, ``configure``) may
be coroutine functions or plain callables: the pool runs them itself,
outside its lock, awaiting what they return when it is awaitable.  The
pool binds to the first event loop that uses it (nothing in ``__init__``
needs one); its upkeep runs as a task of that loop, and using it from a
second loop while the first one runs raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, NoReturn, TypeVar

from ..backends.base import native_thread_ident
from ..core import pool as generic
from ..core import resource
from ..core.slotpool import AcquireAgain, Slot, SlotPool, check_seconds
from .acquiring import AsyncLease, acquire_queued
from .upkeep import AsyncUpkeep
from .waiting import AsyncWaiter

__all__ = ["Pool"]

T = TypeVar("T")
logger = logging.getLogger("greenpools")

_monotonic = time.monotonic



async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """``hook(*args)``, awaited when it returns an awaitable (a coroutine
    function, or a plain one such as aio-pika's ``Connection.channel``)."""
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _makes_plain_futures(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop.create_future()`` is asyncio's own (then the waiters
    make their futures without calling it)."""
    return getattr(type(loop), "create_future", None) is asyncio.BaseEventLoop.create_future


class _AsyncioTasks:
    """What the pool core asks of a backend: who holds a resource, and how
    long the task first in the queue may be passed over."""

    name = "asyncio"
    current_task = staticmethod(asyncio.current_task)

    #: Bounded barging (see ``Backend.barging_bound``): a task that finds a
    #: resource idle takes it ahead of the queue, so that a task giving one
    #: back and asking again does not suspend on a future while another
    #: task is scheduled to take it; the task first in the queue is passed
    #: over for at most 0.1 ms.  The queue behind it moves one task per
    #: turn, so the bound is short: 100 tasks on 10 resources wait under
    #: 10 ms at the longest (1 ms gave 40 ms).
    barging_bound = 0.0001

    @staticmethod
    def watch_task_end(pool: object) -> None:
        """Nothing: a task first in the queue that lost a contest looks again
        within 0.05 ms, the next turn of the loop or so.  (The pool holds
        this class itself as its backend, hence a static method.)"""


def _unbound() -> NoReturn:
    raise RuntimeError("greenpools: an asyncio pool waits only inside its event loop")


class Pool(generic.Pool[T]):
    """A pool of anything for asyncio tasks, built from callables.

    ``create()`` makes a resource and ``close(r)`` disposes of one
    (default: ``r.close()`` if it has one); either may be a coroutine
    function.  Takes every keyword option of :class:`greenpools.Pool`
    (``preload`` excepted: ``min_size`` fills the pool in the background),
    with the same meanings and the same errors.

    ``acquire``, ``release``, ``wait``, ``resize`` and ``close`` are
    coroutines here; ``get_stats``, ``pop_stats`` and ``replace`` are not.
    ``async with pool.acquired() as r:`` returns ``r`` on exit (also when
    the task is cancelled inside), or replaces it when the block raised
    one of ``connection_errors``; ``async with Pool(...) as pool:`` closes
    the pool on exit, and a plain ``with`` raises ``TypeError``.

    ``limit`` (``None`` or 0: no limit) is read-only here: change it with
    :meth:`resize`.  Raises ``TypeError`` for ``preload``, for a
    ``create`` or ``close`` that is not callable, and the errors of
    :class:`greenpools.Pool` for a bad option.  The pool binds to the
    first event loop that uses it; using it from a second loop while that
    one runs raises ``RuntimeError``.
    """

    def __init__(
        self,
        create: Callable[[], T | Awaitable[T]],
        limit: int | None = None,
        *,
        close: Callable[[T], object] | None = None,
        **options: Any,
    ) -> None:
        if "preload" in options:
            raise TypeError(
                f"preload is not an option of an asyncio pool (it cannot create in "
                f"__init__), got preload={options['preload']!r}: use min_size"
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        # The thread whose tasks may take the core's lock-free path: the bound
        # loop's, unless a check is to be awaited or upkeep to be started.
        self._lock_free_thread = 0
        self._closing: set[asyncio.Future[Any]] = set()
        super().__init__(create, limit, close=close, **options)  # type: ignore[arg-type]
        # The pool runs these hooks itself, awaiting them: the core never calls them.
        self._check_hook, self.check = self.check, None
        self._reset_hook, self.reset = self.reset, None
        self._configure_hook, self.configure = self.configure, None
        self._backend = _AsyncioTasks
        self._new_waiter = _unbound
        with self._mutex:
            self._set_hook_flags()
            self._settle_locked()

    # -- the loop ---------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, which this pool now serves (bound on first use)."""
        loop = asyncio.get_running_loop()
        bound = self._loop
        if bound is loop:
            return loop
        if bound is not None and bound.is_running():
            raise RuntimeError(
                f"pool {self.name!r} serves the event loop {bound!r}, which is running: "
                f"an asyncio pool cannot be used from a second loop {loop!r} at the same time"
            )
        self._loop = loop
        self._thread = native_thread_ident()
        if self._check_hook is None and not self._needs_upkeep:
            self._lock_free_thread = self._thread
        future_type = asyncio.Future if _makes_plain_futures(loop) else None
        self._new_waiter = functools.partial(AsyncWaiter, loop, self._thread, future_type)
        if self._upkeep is not None:  # the previous loop's, which no longer runs
            self._upkeep.stop()
            self._upkeep = None
        if self._wants_upkeep():
            self._start_upkeep()
        return loop

    def _start_upkeep(self) -> None:
        if self._loop is None:  # from __init__: it starts when a loop binds the pool
            return
        upkeep = AsyncUpkeep(self, self._loop)
        self._upkeep = upkeep
        upkeep.start()

    def _on_backend_switch(self, backend: Any) -> None:
        """A pool of the asyncio loop: a switch of green backend changes nothing."""

    # -- acquire ----------------------------------------------------------

    async def acquire(self, timeout: float | None = None) -> T:  # type: ignore[override]
        """Take a resource, waiting first come, first served for up to
        ``timeout`` seconds (default: the pool's ``timeout`` option; ``None``
        there: forever), then raising :class:`PoolTimeout`.

        Raises :class:`TooManyRequests` when ``max_waiting`` tasks wait
        already, :class:`PoolClosed` on a closed pool (also one closed
        while this task waits), what ``create`` raised, and ``ValueError``
        when it returned an object the pool holds already (a resource whose
        ``check`` raised is closed, and another one tried).
        A task cancelled while it waits takes nothing from the pool.
        """
        # The core's lock-free acquire, when nothing else goes on and a
        # resource is idle.  Another loop of this thread (the bound one ended)
        # may take an idle resource here; it binds the pool at its first wait.
        if self._lock_free and self._idle and self._lock_free_thread == native_thread_ident():
            if timeout is not None:
                check_seconds("timeout", timeout)  # refused whether or not one is idle
            return SlotPool.acquire(self, False)  # type: ignore[no-any-return]
        return await acquire_queued(self, timeout)  # type: ignore[no-any-return]

    async def _hand_out_async(self, slot: Slot, started: float) -> T:
        """Run ``check`` (unless ``slot`` was made for this caller), then
        the core's hand-out; emit ``checkout``."""
        check = self._check_hook
        if check is not None and not slot.fresh:
            try:
                await call_hook(check, slot.resource)
            except Exception:
                SlotPool._discard_failed_check(self, slot)
                raise AcquireAgain from None
            except BaseException:
                SlotPool._give_back(self, slot)
                raise
        handed: T = SlotPool._hand_out(self, slot)
        if self._watched:
            SlotPool._emit(self, "checkout", handed, _monotonic() - started)
        return handed

    # -- creating ---------------------------------------------------------

    def new(self) -> NoReturn:
        """Not used here: always raises ``TypeError``, because the pool
        awaits ``create`` itself, in :meth:`acquire` and in upkeep."""
        raise TypeError("an asyncio pool creates its resources in acquire(), awaiting create")

    async def _create_lent_async(self) -> Slot:
        """Create a resource in a place already counted, and lend it."""
        return SlotPool._lend_created(self, await self._new_slot_async())

    async def _new_slot_async(self) -> Slot:
        """``Resource._new_slot`` with the hooks awaited."""
        forks = self._forks
        started = _monotonic()
        try:
            made: T = await call_hook(self._create)
            self._refuse_held(made)  # another slot's: not to be configured
            if self._configure_hook is not None:
                try:
                    await call_hook(self._configure_hook, made)
                except BaseException:
                    self._unmake(made, forks)
                    raise
        except BaseException as exc:
            self._creation_failed(forks, exc)
            raise
        return self._creation_done(made, forks, started)

    async def _create_idle_async(self) -> bool:
        """``Resource._create_idle`` with the hooks awaited (for upkeep)."""
        if not self._reserve_idle():
            return False
        try:
            slot = await self._new_slot_async()
        except AcquireAgain:
            return False
        self._add_idle(slot)
        return True

    async def _add_ready_async(self) -> bool:
        return self._size < self.min_size and await self._create_idle_async()

    async def _keep_idle_alive_async(self, resource: T) -> bool:
        """``Resource._keep_idle_alive`` with ``check`` awaited."""
        slot = self._take_idle_resource(resource)
        if slot is None:  # acquired (or closed) meanwhile
            return True
        try:
            await call_hook(self._check_hook, resource)  # type: ignore[arg-type]
        except Exception:
            logger.info("greenpools: pool %r replaces an idle resource that died",
                        self.name, exc_info=True)
            self._drop_dead_idle(slot)
            return False
        except BaseException:
            self._put_back_idle(slot)
            raise
        self._put_back_idle(slot)
        return True

    # -- release ----------------------------------------------------------

    async def release(self, resource: T, /) -> None:  # type: ignore[override]
        """Return a resource acquired from this pool, after awaiting ``reset``.

        Raises ``ValueError`` (and changes nothing) when ``resource`` is
        not currently lent by this pool: released twice, or never acquired.
        """
        reset = self._reset_hook
        if reset is not None:
            slot = self._slots.get(id(resource))
            if slot is None or not slot.lent:
                self._release_unknown(resource)
                return
            try:
                await call_hook(reset, resource)
            except Exception:
                logger.warning("greenpools: pool %r discards a resource whose reset failed",
                               self.name, exc_info=True)
                with self._mutex:
                    self._n_returns_bad += 1
                self._discard_lent_resource(resource, False)
                self._emit("invalidate", resource)
                return
            except BaseException:  # cancelled mid-reset: its state is unknown
                self._discard_lent_resource(resource, False)
                raise
        SlotPool.release(self, resource)

    def acquired(  # type: ignore[override]
        self, timeout: float | None = None
    ) -> AbstractAsyncContextManager[T]:
        """``async with pool.acquired() as r:`` returns ``r`` on exit, or replaces
        it when the block raised one of ``connection_errors``.

        ``timeout`` is that of :meth:`acquire`, which the entry awaits (and
        whose errors it raises).  A task cancelled inside the block returns
        ``r``; a release inside the block ends the lease, and the exit then
        does nothing.
        """
        return AsyncLease(self, timeout)  # type: ignore[return-value]  # typed as T

    async def _end_lease_async(self, resource: T, lease: int, broken: bool) -> None:
        if broken or self._lease_of(resource) != lease:  # no reset to await
            self._end_lease(resource, lease, broken)
        else:
            await self.release(resource)

    # -- closing and resizing ----------------------------------------------

    def close_resource(self, resource: T) -> None:
        """Close a resource; an awaitable close is awaited by a task of the loop
        (and by :meth:`close`, :meth:`resize`)."""
        if self._close is not None:
            result = self._close(resource)
        else:
            close = getattr(resource, "close", None)
            result = close() if callable(close) else None
        if inspect.isawaitable(result):
            self._close_later(result)

    def _close_later(self, closing: Awaitable[Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or native_thread_ident() != self._thread:
            if inspect.iscoroutine(closing):
                closing.close()
            logger.debug("greenpools: pool %r could not await a close outside its loop",
                         self.name)
            return
        future = asyncio.ensure_future(closing, loop=loop)
        self._closing.add(future)
        future.add_done_callback(self._closed_one)

    def _closed_one(self, future: asyncio.Future[Any]) -> None:
        self._closing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.debug("greenpools: pool %r failed to close a resource", self.name,
                         exc_info=future.exception())

    async def _closings_done(self) -> None:
        """Await the closes scheduled so far.  A caller cancelled meanwhile
        stops waiting; the closes go on (``gather`` would cancel them, and
        leave the resources open)."""
        while self._closing:
            await asyncio.wait(set(self._closing))

    async def close(self) -> None:  # type: ignore[override]
        """Close the pool: idle resources now, lent ones when returned; stop
        upkeep.  Waiting and future callers get :class:`PoolClosed`.

        Awaits the closes it started; errors from closing are logged at
        ``DEBUG``, never raised.  A second call does nothing more.
        """
        resource.Resource.close(self)
        if self._upkeep is not None:
            self._upkeep.stop()
        await self._closings_done()

    async def drain(self) -> None:  # type: ignore[override]
        """Replace every resource: idle ones close now, lent ones when they
        come back; later acquires get new ones, and upkeep refills
        ``min_size``.

        Awaits the closes it started; errors from closing are logged at
        ``DEBUG``, never raised.  Raises :class:`PoolClosed` on a closed
        pool.
        """
        resource.Resource.drain(self)
        await self._closings_done()

    async def resize(self, limit: int | None) -> None:  # type: ignore[override]
        """Change ``limit``; shrinking closes idle resources over it now and
        lent ones as they come back.

        Raises ``TypeError`` or ``ValueError`` for a ``limit`` that is not a
        non-negative int or ``None``, ``ValueError`` for one below
        ``min_size``, and the first error a close that is not awaited raised.
        """
        resource.Resource.resize(self, limit)
        await self._closings_done()

    @property
    def limit(self) -> int:
        """How many resources may be lent and idle at once; 0 means no limit.

        Read-only here, setting it raises ``AttributeError``: use :meth:`resize`.
        """
        return self._limit

    @limit.setter
    def limit(self, limit: int | None) -> NoReturn:
        raise AttributeError("an asyncio pool's limit changes with 'await pool.resize(limit)'")

    def __enter__(self) -> NoReturn:
        raise TypeError("greenpools.aio.Pool closes asynchronously: use 'async with'")

    async def __aenter__(self) -> Pool[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- waiting for min_size -----------------------------------------------

    async def wait(self, timeout: float | None = 30.0) -> None:  # type: ignore[override]
        """Wait until ``min_size`` resources are ready; :class:`PoolTimeout`
        saying how many are when ``timeout`` seconds pass first (``None``:
        wait for ever).  The pool stays open and upkeep keeps trying.

        Raises :class:`PoolClosed` on a closed pool, and ``TypeError`` or
        ``ValueError`` for a ``timeout`` that is not a non-negative number
        or ``None``.
        """
        timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else _monotonic() + timeout
        loop = self._bind()
        if self._upkeep is None and self._wants_upkeep():
            self._start_upkeep()
        while True:
            waiter = self._watch_readiness()
            timer = None
            try:
                ready = self._ready_count()
                if ready >= self.min_size:
                    return
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None:
                    if remaining <= 0:
                        raise self._not_ready(ready, timeout)
                    timer = loop.call_later(remaining, waiter.expire)
                await waiter.future
            finally:
                if timer is not None:
                    timer.cancel()
                self._unwatch_readiness(waiter)
