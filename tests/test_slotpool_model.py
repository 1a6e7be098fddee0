"""SlotPool's transitions against a reference model (hypothesis, both builds).

The state machine below drives :class:`greenpools.core.slotpool.SlotPool`
directly, not through ``Resource``: acquire and release, callers that
queue (their waiting clients are served while they "wait", and then
claim what they were given), waiters that time out or are cancelled at
any point (also after being served), resize up and down with and without
a reset, force-close, close and the fork reset.  Nothing blocks: a queued
client's ``wait`` is never called, the test plays the waiting task.

After every step the pool's books must equal the model's (size, limit,
excess, the idle stack in order, what is lent, the queue in order, what
each served client got) and these invariants hold:

- available + lent + granted + places being created = size;
- size <= limit + the excess still lent (for a limited pool);
- no slot is in two places (idle, lent, granted) and every live slot is
  in the slot map;
- queued waiters are served in order (the model serves the oldest);
- a closed pool hands nothing out.

A second machine runs the same rules on a pool that barges (its backend's
``barging_bound`` an hour, so that the first client is within it until a
rule ages clients past it): a caller may then take an idle resource
ahead of the queue, a release leaves it idle and wakes the first client,
which competes for it; if it loses it waits on, first, and looks again by
itself later (a rule plays that), and the release of a resource taken
ahead of the queue does not wake it, but the end of its releaser's task
does (another rule).
There, also, while resources are idle and clients wait, the first client
is woken or is one that looks again by itself.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from helpers import Thing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from greenpools import LimitExceeded, PoolClosed, PoolTimeout
from greenpools.backends.base import Waiter
from greenpools.core.slotpool import AcquireAgain, SlotPool

SETTINGS = settings(
    max_examples=300, stateful_step_count=50, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
INF = float("inf")
WAITING, GRANTED, MAY_CREATE, WOKEN = 0, 1, 2, 4  # a waiter's states (C constants compiled)
BOUND = 3600.0  # the barging pool's bound: an hour, so that no client passes it unaided


class Client(Waiter):
    """A waiting client whose task is played by the test: nothing blocks."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        Waiter.__init__(self)
        self.number = next(self._numbers)

    def wait(self, timeout: float | None) -> bool:  # pragma: no cover - never called
        raise AssertionError("the model test never waits")

    def wake(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<Client #{self.number} state={self.state}>"


class BargingBackend:
    """All the pool asks of a backend here: how long callers may barge, and
    to hear when a releaser's task ends (the model says when it does)."""

    barging_bound = BOUND

    def __init__(self) -> None:
        self.watched: list[Any] = []

    def watch_task_end(self, pool: Any) -> None:
        if pool not in self.watched:  # once per task, as the threading backend does
            self.watched.append(pool)


class BarePool(SlotPool):
    """SlotPool with the least a subclass must provide: make and close Things."""

    def __init__(self, limit: int, barging: bool = False) -> None:
        SlotPool.__init__(self, "model", limit)
        self._new_waiter = Client
        if barging:
            self._backend = BargingBackend()
        self.made: list[Thing] = []
        self.dropped: list[Thing] = []  # inherited across the fork reset

    def _new_slot(self, ready: bool = False) -> Any:
        thing = Thing()
        self.made.append(thing)
        slot = self._created(thing, self._forks, 0.0, INF, 0)
        assert slot is not None
        return slot

    def _close_slots(self, slots: list[Any], ignore_errors: bool, collect: bool = False) -> None:
        for slot in slots:
            slot.resource.close()

    def _close_quietly(self, resource: Any) -> None:
        resource.close()

    def _start_upkeep(self) -> None:  # pragma: no cover - no option asks for upkeep
        raise AssertionError("no upkeep")


class Model:
    """The reference: what the pool's books must say, computed plainly."""

    def __init__(self, limit: int, barging: bool = False) -> None:
        self.limit = limit
        self.barging = barging
        self.passed: set[Client] = set()  # first while a resource was free: counting the bound
        self.aged: set[Client] = set()  # passed over past the bound
        self.rechecks: set[Client] = set()  # lost a contest: look again by themselves
        self.barged: set[Thing] = set()  # lent ahead of queued clients
        self.woken: Client | None = None  # woken to compete for an idle resource
        self.watched = False  # a releaser's task is to wake the first when it ends
        self.size = 0
        self.excess = 0
        self.closed = False
        self.idle: list[Thing] = []  # a stack: the warmest last
        self.lent: list[Thing] = []  # held by the test's callers
        self.queue: list[Client] = []  # oldest first
        self.granted: dict[Client, Thing] = {}  # served a resource, not claimed yet
        #: Grants retired before their client claimed them, and by what:
        #: "reset" (closed at the claim), "forced" (closed already), "closed"
        #: (the pool closed: still in its books until the claim).
        self.stale: dict[Client, str] = {}
        self.may_create: list[Client] = []  # served a place, not claimed yet
        self.retiring: list[Thing] = []  # lent across a reset: closed when returned
        self.retired: list[Thing] = []  # lent across force-close or fork: dropped when returned

    def granted_in_books(self) -> list[Client]:
        """Clients granted a slot the pool still counts as lent."""
        return [c for c in self.granted if self.stale.get(c) in (None, "closed")]

    def room(self) -> bool:
        return not self.limit or self.size < self.limit

    def first_chance(self) -> None:
        """A resource is free while clients wait: the first one's bound counts."""
        if self.barging and self.queue:
            self.passed.add(self.queue[0])

    def may_take_idle(self) -> bool:
        """Whether a caller may take an idle resource: nobody waits, or (barging)
        the first client has been passed over for less than the bound."""
        if self.idle:
            self.first_chance()
        return bool(self.idle) and (
            not self.queue or (self.barging and self.queue[0] not in self.aged))

    def leave_queue(self, client: Client) -> None:
        self.queue.remove(client)
        if self.woken is client:
            self.woken = None

    def pop_oldest(self) -> Client:
        client = self.queue[0]
        self.leave_queue(client)
        return client

    def wake_oldest(self) -> None:
        """Resources idle while clients wait: the oldest is woken to compete."""
        if self.idle and self.queue and self.woken is None:
            self.woken = self.queue[0]

    # What the pool does when something frees up, oldest client first.

    def free_place(self) -> None:
        """A resource stopped existing: its place to the oldest client, or gone."""
        if not self.closed and (not self.limit or self.size <= self.limit) and self.queue:
            self.may_create.append(self.pop_oldest())
            self.wake_oldest()
            return
        self.size -= 1

    def drop_place(self) -> None:
        if self.excess:
            self.excess -= 1
            self.size -= 1
        else:
            self.free_place()

    def give_back(self, thing: Thing, released: bool = True) -> None:
        """A lent resource comes back (``released``), or an unwanted grant is passed on."""
        barged = released and thing in self.barged
        self.barged.discard(thing)
        if self.closed or self.excess:
            thing.expected_closed = True  # type: ignore[attr-defined]
            self.drop_place()
            return
        self.first_chance()
        if self.queue and self.barging and self.queue[0] not in self.aged:
            self.idle.append(thing)  # left for whoever comes first
            first = self.queue[0]
            if first in self.rechecks and self.woken is None and barged:
                # Its holder is likely to ask again; the first looks by itself,
                # or the holder's task ends and wakes it.
                self.watched = True
                return
            self.wake_oldest()
        elif self.queue:
            self.granted[self.pop_oldest()] = thing
            self.wake_oldest()
        else:
            self.idle.append(thing)

    def wake_creators(self) -> None:
        while self.queue and self.room():
            self.may_create.append(self.pop_oldest())
            self.size += 1
        self.wake_oldest()


class SlotPoolMachine(RuleBasedStateMachine):
    barging = False

    def __init__(self) -> None:
        super().__init__()
        self.pool = BarePool(1, self.barging)
        self.model = Model(1, self.barging)
        self.forked_clients: list[Client] = []  # copied from "the parent" by a fork reset

    @initialize(callers=st.integers(min_value=0, max_value=4))
    def start_with_callers(self, callers: int) -> None:
        """Start with ``callers`` asking already: the first one holds the
        pool's one resource, the rest wait for it.  Most of the transitions
        worth checking need a queue, and short runs would rarely build one."""
        for _ in range(callers):
            self.request_and_queue()

    # -- acquiring ---------------------------------------------------------

    def _took(self, thing: Thing) -> None:
        model = self.model
        assert not thing.closed, f"closed {thing} handed out"
        assert thing not in model.lent, f"{thing} handed to two holders"
        model.lent.append(thing)

    @rule()
    def acquire(self) -> None:
        model = self.model
        if model.closed:
            with pytest.raises(PoolClosed):
                self.pool.acquire()
            return
        if model.may_take_idle():
            expected: Thing | None = model.idle.pop()
            if model.queue:  # ahead of the queue
                model.barged.add(expected)
        elif model.room():
            model.size += 1
            expected = None  # a new one
        else:
            with pytest.raises(LimitExceeded):
                self.pool.acquire()
            return
        thing = self.pool.acquire()
        if expected is not None:
            assert thing is expected, "acquire must take the warmest idle resource"
        else:
            assert thing is self.pool.made[-1], "acquire must create a resource"
        self._took(thing)

    @rule()
    def request_and_queue(self) -> None:
        """A blocking acquire's first step; it queues when nothing is free."""
        model = self.model
        if model.closed:
            with pytest.raises(PoolClosed):
                SlotPool._take_or_enqueue(self.pool, True, None, None)
            return
        taken = SlotPool._take_or_enqueue(self.pool, True, None, None)
        if model.may_take_idle():
            assert taken is not None and not isinstance(taken, Waiter)
            thing = model.idle.pop()
            if model.queue:  # ahead of the queue
                model.barged.add(thing)
            assert taken.resource is thing
            self._took(thing)
        elif model.room():
            model.size += 1
            assert taken is None, "a place under the limit: the caller creates"
            self._took(SlotPool._create_lent(self.pool).resource)
        else:
            assert isinstance(taken, Client)
            model.queue.append(taken)
            while model.idle and model.queue:  # past the bound: idle ones go to the oldest
                model.granted[model.pop_oldest()] = model.idle.pop()

    def _served(self) -> list[Client]:
        return [*self.model.granted, *self.model.may_create]

    @precondition(lambda self: self._served())
    @rule(data=st.data())
    def served_client_claims(self, data: st.DataObject) -> None:
        model = self.model
        client = data.draw(st.sampled_from(self._served()))
        if client in model.granted:
            thing = model.granted.pop(client)
            stale = model.stale.pop(client, None)
            if stale is None:
                assert SlotPool._outcome(self.pool, client, None).resource is thing
                self._took(thing)
                return
            # Retired since the grant: never handed out, the caller asks again.
            with pytest.raises(AcquireAgain):
                SlotPool._outcome(self.pool, client, None)
            thing.expected_closed = True  # type: ignore[attr-defined]
            if stale == "closed":
                model.drop_place()
            self._close_expected()
            return
        model.may_create.remove(client)
        assert SlotPool._outcome(self.pool, client, None) is None  # it is to create one
        if model.closed:  # it makes its resource, finds the pool closed, closes it
            with pytest.raises(PoolClosed):
                SlotPool._create_lent(self.pool)
            model.drop_place()  # counted against a shrink, if one is pending
            self.pool.made[-1].expected_closed = True  # type: ignore[attr-defined]
            self._close_expected()
            return
        self._took(SlotPool._create_lent(self.pool).resource)

    @precondition(lambda self: self.model.queue)
    @rule(data=st.data())
    def waiter_times_out(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from(self.model.queue))
        with pytest.raises(PoolTimeout):
            SlotPool._outcome(self.pool, client, 1.0)
        self.model.leave_queue(client)
        self.model.wake_oldest()

    @precondition(lambda self: self.model.queue or self._served())
    @rule(data=st.data())
    def waiter_is_cancelled(self, data: st.DataObject) -> None:
        """The waiting task is interrupted (a kill, a library timeout), served or not."""
        model = self.model
        client = data.draw(st.sampled_from([*model.queue, *self._served()]))
        if client in model.queue:
            model.leave_queue(client)
            model.wake_oldest()
        elif client in model.granted:
            thing = model.granted.pop(client)
            stale = model.stale.pop(client, None)
            if stale is None:
                model.give_back(thing, released=False)
            else:
                thing.expected_closed = True  # type: ignore[attr-defined]
                if stale == "closed":
                    model.drop_place()
        else:
            model.may_create.remove(client)
            model.drop_place()
        self.pool._abandon(client)
        self._close_expected()

    @precondition(lambda self: self.forked_clients)
    @rule()
    def parents_waiter_wakes_in_child(self) -> None:
        client = self.forked_clients.pop()
        if client.state == WAITING:  # it times out in the child
            with pytest.raises(AcquireAgain):
                SlotPool._outcome(self.pool, client, 1.0)
        else:
            with pytest.raises(AcquireAgain):
                SlotPool._outcome(self.pool, client, None)

    @precondition(lambda self: self.model.woken is not None)
    @rule(in_time=st.booleans())
    def woken_client_competes(self, in_time: bool) -> None:
        """The woken client runs: it takes an idle resource, or, if callers
        barged first, waits on in its turn (or times out, if its wait ran out)."""
        model = self.model
        client = model.woken
        assert client is not None and client is model.queue[0]
        deadline = INF if in_time else 0.0
        if not model.idle and not in_time:
            with pytest.raises(PoolTimeout):
                SlotPool._compete(self.pool, client, in_time, deadline, 1.0)
            model.leave_queue(client)
            model.wake_oldest()
            return
        outcome = SlotPool._compete(self.pool, client, in_time, deadline, 1.0)
        model.woken = None
        if model.idle:
            thing = model.idle.pop()
            model.leave_queue(client)
            assert outcome.resource is thing
            self._took(thing)
            model.wake_oldest()
        else:
            assert isinstance(outcome, Client) and outcome.since == client.since
            assert outcome.passed_since == client.passed_since
            model.queue[0] = outcome
            for counted in (model.passed, model.aged):
                if client in counted:
                    counted.add(outcome)
            if client in model.passed and client not in model.aged:
                model.rechecks.add(outcome)  # it looks again before the bound runs out
            assert bool(outcome.recheck_at) == (outcome in model.rechecks)

    @precondition(lambda self: self.model.queue and self.model.queue[0] in self.model.rechecks
                  and self.model.woken is None)
    @rule()
    def client_looks_again(self) -> None:
        """A client that lost a contest wakes at its ``recheck_at`` to compete again."""
        client = self.model.queue[0]
        assert client.state == WAITING
        SlotPool._recheck(self.pool, client)
        assert client.state == WOKEN
        self.model.woken = client

    @precondition(lambda self: self.model.queue)
    @rule(data=st.data())
    def oldest_waiters_pass_the_bound(self, data: st.DataObject) -> None:
        model = self.model
        count = data.draw(st.integers(min_value=1, max_value=len(model.queue)))
        for client in model.queue[:count]:
            if client not in model.aged:
                client.passed_since = time.monotonic() - 2 * BOUND
                model.passed.add(client)
                model.aged.add(client)

    # -- returning ---------------------------------------------------------

    @precondition(lambda self: self.model.lent)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self._release(data.draw(st.sampled_from(self.model.lent)))

    def _release(self, thing: Thing) -> None:
        self.model.lent.remove(thing)
        self.model.give_back(thing)
        self.pool.release(thing)
        self._close_expected()

    @precondition(lambda self: self.model.lent)
    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        model = self.model
        thing = data.draw(st.sampled_from(model.lent))
        model.lent.remove(thing)
        thing.expected_closed = True  # type: ignore[attr-defined]
        model.drop_place()
        SlotPool._discard_lent_resource(self.pool, thing, True)
        self._close_expected()

    @precondition(lambda self: self.model.retiring or self.model.retired)
    @rule(data=st.data())
    def release_retired(self, data: st.DataObject) -> None:
        model = self.model
        thing = data.draw(st.sampled_from([*model.retiring, *model.retired]))
        if thing in model.retiring:
            model.retiring.remove(thing)
            thing.expected_closed = True  # type: ignore[attr-defined]
        else:
            model.retired.remove(thing)
        self.pool.release(thing)
        self._close_expected()

    @rule()
    def release_stranger(self) -> None:
        with pytest.raises(ValueError):
            self.pool.release(Thing())

    # -- resizing, closing, forking ----------------------------------------

    @rule(limit=st.integers(min_value=0, max_value=4), reset=st.booleans())
    def resize(self, limit: int, reset: bool) -> None:
        model = self.model
        model.limit = limit
        if reset:
            for thing in model.idle:
                thing.expected_closed = True  # type: ignore[attr-defined]
            in_books = model.granted_in_books()  # lent too, to a client not awake yet
            model.size -= len(model.idle) + len(model.lent) + len(in_books)
            model.idle = []
            model.retiring += model.lent
            model.lent = []
            for client in in_books:
                model.stale[client] = "reset"
        excess = model.size - limit if limit else 0
        while excess > 0 and model.idle:
            thing = model.idle.pop(0)  # the coldest first
            thing.expected_closed = True  # type: ignore[attr-defined]
            model.size -= 1
            excess -= 1
        model.excess = max(0, excess)
        model.wake_creators()
        to_close = SlotPool._resize(self.pool, limit, False, reset)
        SlotPool._dispose(self.pool, to_close, True, False)
        self._close_expected()

    @rule()
    def force_close_all(self) -> None:
        model = self.model
        if model.closed:
            return
        fresh = model.granted_in_books()
        stale_reset = [c for c, kind in model.stale.items() if kind == "reset"]
        for thing in [*model.idle, *model.lent, *model.retiring,
                      *(model.granted[c] for c in fresh + stale_reset)]:
            thing.expected_closed = True  # type: ignore[attr-defined]
        model.size -= len(model.idle) + len(model.lent) + len(fresh)
        for client in fresh + stale_reset:
            model.stale[client] = "forced"
        model.retired += model.lent + model.retiring
        model.idle, model.lent, model.retiring = [], [], []
        model.excess = max(0, model.size - model.limit) if model.limit else 0
        model.wake_creators()
        SlotPool._dispose(self.pool, SlotPool._retire_all(self.pool, False), True, True)
        self._close_expected()

    @rule()
    def close(self) -> None:
        model = self.model
        if model.closed:
            assert SlotPool._close_pool(self.pool) is None
            return
        for thing in model.idle:
            thing.expected_closed = True  # type: ignore[attr-defined]
        model.size -= len(model.idle)
        model.idle = []
        model.closed = True
        refused, model.queue, model.woken = model.queue, [], None
        for client in model.granted:
            model.stale.setdefault(client, "closed")
        SlotPool._dispose(self.pool, SlotPool._close_pool(self.pool), True, False)
        for client in refused:
            with pytest.raises(PoolClosed):
                SlotPool._outcome(self.pool, client, None)
        self._close_expected()

    @rule()
    def fork_reset(self) -> None:
        """The pool as a forked child sees it: the parent's tasks are not its own."""
        model = self.model
        self.forked_clients += [*model.queue, *self._served()]
        inherited = SlotPool._reset_after_fork(self.pool)
        in_books = [t for c, t in model.granted.items() if model.stale.get(c) != "forced"]
        expected = {id(t) for t in [*model.idle, *model.lent, *model.retiring, *in_books]}
        assert {id(slot.resource) for slot in inherited} == expected
        model.retired += model.lent + model.retiring
        model.size = model.excess = 0
        model.idle, model.lent, model.retiring = [], [], []
        model.queue, model.granted, model.may_create, model.stale = [], {}, [], {}
        model.woken = None

    # -- checks --------------------------------------------------------------

    def _close_expected(self) -> None:
        for thing in self.pool.made:
            expected = 1 if getattr(thing, "expected_closed", False) else 0
            assert thing.closed == expected, (thing, expected)

    @invariant()
    def books_match_the_model(self) -> None:
        pool, model = self.pool, self.model
        assert pool._limit == model.limit
        assert pool._size == model.size
        assert pool._excess == model.excess
        assert bool(pool._closed) == model.closed
        assert [slot.resource for slot in pool._idle] == model.idle
        assert pool._waiting.snapshot() == model.queue
        for client in model.queue:
            assert client.state == (WOKEN if client is model.woken else WAITING), client
        for client, thing in model.granted.items():
            assert client.state == GRANTED and client.slot.resource is thing
        for client in model.may_create:
            assert client.state == MAY_CREATE

    @invariant()
    def counts_add_up(self) -> None:
        pool, model = self.pool, self.model
        lent = [s.resource for s in pool._lent_slots()]
        in_books = [model.granted[c] for c in model.granted_in_books()]
        assert sorted(map(id, lent)) == sorted(map(id, [*model.lent, *in_books]))
        assert len(pool._idle) + len(lent) + len(model.may_create) == pool._size
        if pool._limit:
            assert pool._size <= pool._limit + pool._excess
            assert pool._excess <= len(lent) + len(model.may_create)  # to close when back

    @invariant()
    def no_slot_in_two_places(self) -> None:
        pool = self.pool
        idle = [id(slot) for slot in pool._idle]
        assert len(set(idle)) == len(idle)
        assert not any(slot.lent for slot in pool._idle)
        live = {id(slot) for slot in pool._slots.values()}
        assert set(idle) <= live
        for slot in pool._slots.values():
            assert not slot.resource.closed
        retired = {*pool._retired, *pool._retiring}
        assert not retired & {id(slot.resource) for slot in pool._slots.values()}

    @invariant()
    def closed_pool_lends_nothing(self) -> None:
        if self.model.closed:
            assert not self.pool._idle
            assert not self.pool._waiting.length

TestSlotPoolModel = SlotPoolMachine.TestCase
TestSlotPoolModel.settings = SETTINGS


class BargingSlotPoolMachine(SlotPoolMachine):
    barging = True

    @precondition(lambda self: self.model.lent and self.model.queue)
    @rule(data=st.data(), barge=st.booleans())
    def release_and_race(self, data: st.DataObject, barge: bool) -> None:
        """A release while clients wait, a caller perhaps taking the resource
        first, then the woken client: the contests a run of single steps
        would seldom stage."""
        self.release(data)
        if barge:
            self.acquire()
        if self.model.woken is not None:
            self.woken_client_competes(True)

    def _barged_lent(self) -> list[Thing]:
        return [thing for thing in self.model.lent if thing in self.model.barged]

    @precondition(lambda self: self._barged_lent() and self.model.queue
                  and self.model.woken is None and self.model.queue[0] in self.model.rechecks)
    @rule(data=st.data(), ends=st.booleans())
    def barger_gives_back(self, data: st.DataObject, ends: bool) -> None:
        """A caller that beat the first client gives its resource back and goes
        away: the client, not woken, looks again by itself (or the caller's
        task ``ends``, which wakes it) and takes it."""
        model = self.model
        self._release(data.draw(st.sampled_from(self._barged_lent())))
        if ends and model.watched:
            self.barger_task_ends()
        if model.queue and model.queue[0] in model.rechecks and model.woken is None:
            self.client_looks_again()
        if model.woken is not None:
            self.woken_client_competes(True)

    @invariant()
    def a_releaser_is_watched_when_it_left_the_first_asleep(self) -> None:
        watched = self.pool._backend.watched
        assert watched in ([], [self.pool]) and bool(watched) == self.model.watched

    @precondition(lambda self: self.model.watched)
    @rule()
    def barger_task_ends(self) -> None:
        """The task of a caller that beat the first client gave its resource
        back, not woken the client, and ended: its end wakes the client."""
        self.pool._backend.watched.clear()
        self.model.watched = False
        self.pool._task_ended()
        self.model.wake_oldest()
        if self.model.woken is not None:
            assert self.model.woken.state == WOKEN, "the task's end left the first asleep"

    @invariant()
    def the_first_is_woken_or_looks_again_while_resources_are_idle(self) -> None:
        model = self.model
        if model.idle and model.queue:
            assert model.woken is model.queue[0] or model.queue[0] in model.rechecks


TestBargingSlotPoolModel = BargingSlotPoolMachine.TestCase
TestBargingSlotPoolModel.settings = settings(SETTINGS, max_examples=1000)


# -- the scenarios the machine found hardest to reach, spelled out ----------


def _grant_to_a_waiter(pool: BarePool) -> tuple[Client, Thing]:
    """The pool's one resource is lent, a caller queues, the holder returns it."""
    held = pool.acquire()
    client = SlotPool._take_or_enqueue(pool, True, None, None)
    assert isinstance(client, Client)
    pool.release(held)
    assert client.state == GRANTED and client.slot.resource is held
    return client, held


def _retire_everything(pool: BarePool, how: str) -> None:
    if how == "reset":
        SlotPool._dispose(pool, SlotPool._resize(pool, 1, False, True), True, False)
    elif how == "force_close_all":
        SlotPool._dispose(pool, SlotPool._retire_all(pool, False), True, True)
    else:
        SlotPool._dispose(pool, SlotPool._close_pool(pool), True, False)


@pytest.mark.parametrize("retire", ["reset", "force_close_all", "close"])
def test_a_grant_retired_before_its_waiter_wakes_is_never_handed_out(retire: str) -> None:
    pool = BarePool(1)
    client, thing = _grant_to_a_waiter(pool)
    _retire_everything(pool, retire)
    with pytest.raises(AcquireAgain):  # the caller asks the pool again
        SlotPool._outcome(pool, client, None)
    assert thing.closed == 1
    assert pool._size == 0 and not pool._slots and not pool._retired and not pool._retiring


@pytest.mark.parametrize("retire", ["reset", "force_close_all", "close"])
def test_a_retired_grant_whose_waiter_is_cancelled_closes_once(retire: str) -> None:
    pool = BarePool(1)
    client, thing = _grant_to_a_waiter(pool)
    _retire_everything(pool, retire)
    pool._abandon(client)
    assert thing.closed == 1
    assert pool._size == 0 and not pool._slots and not pool._retired and not pool._retiring


def test_a_place_to_create_granted_before_a_fork_is_not_counted_in_the_child() -> None:
    pool = BarePool(1)
    held = pool.acquire()
    client = SlotPool._take_or_enqueue(pool, True, None, None)
    assert isinstance(client, Client)
    SlotPool._discard_lent_resource(pool, held, True)  # broken: its place is passed on
    assert client.state == MAY_CREATE and pool._size == 1  # the place is the waiter's
    inherited = SlotPool._reset_after_fork(pool)
    assert inherited == [] and pool._size == 0
    with pytest.raises(AcquireAgain):  # the copied waiter asks the child's pool afresh
        SlotPool._outcome(pool, client, None)
    pool._abandon(client)  # and giving up there changes nothing
    assert pool._size == 0
    assert pool.acquire() is pool.made[-1] and pool._size == 1


def test_force_close_all_after_a_shrink_keeps_the_next_resource() -> None:
    pool = BarePool(2)
    first, second = pool.acquire(), pool.acquire()
    SlotPool._resize(pool, 1, False, False)  # one of the two lent is over the limit
    assert pool._excess == 1
    SlotPool._dispose(pool, SlotPool._retire_all(pool, False), True, True)
    assert (first.closed, second.closed, pool._size, pool._excess) == (1, 1, 0, 0)
    fresh = pool.acquire()
    pool.release(fresh)  # nothing lent is over the limit now: it stays
    assert fresh.closed == 0 and [slot.resource for slot in pool._idle] == [fresh]


def test_force_close_all_keeps_counting_places_being_made_over_the_limit() -> None:
    pool = BarePool(1)
    held = pool.acquire()
    clients = [SlotPool._take_or_enqueue(pool, True, None, None) for _ in range(2)]
    SlotPool._resize(pool, 0, False, False)  # unlimited: both may create now
    assert [c.state for c in clients] == [MAY_CREATE, MAY_CREATE] and pool._size == 3
    SlotPool._resize(pool, 1, False, False)
    SlotPool._dispose(pool, SlotPool._retire_all(pool, False), True, True)
    assert held.closed == 1 and (pool._size, pool._excess) == (2, 1)
    made = [SlotPool._create_lent(pool).resource for c in clients
            if SlotPool._outcome(pool, c, None) is None]
    for thing in made:
        pool.release(thing)
    assert pool._size == 1 and [t.closed for t in made] == [1, 0]  # back to the limit


def test_a_woken_client_that_loses_waits_on_in_its_turn() -> None:
    pool = BarePool(1, barging=True)
    held = pool.acquire()
    first = SlotPool._take_or_enqueue(pool, True, None, None)
    second = SlotPool._take_or_enqueue(pool, True, None, None)
    pool.release(held)  # left idle, the oldest woken
    assert (first.state, second.state) == (WOKEN, WAITING)
    assert pool.acquire() is held  # a caller barges
    successor = SlotPool._compete(pool, first, True, INF, None)
    assert isinstance(successor, Client) and successor.since == first.since
    assert pool._waiting.snapshot() == [successor, second]


def test_a_place_passed_to_the_woken_client_wakes_the_next() -> None:
    pool = BarePool(2, barging=True)
    held = [pool.acquire(), pool.acquire()]
    first = SlotPool._take_or_enqueue(pool, True, None, None)
    second = SlotPool._take_or_enqueue(pool, True, None, None)
    pool.release(held[0])  # idle, first woken
    SlotPool._discard_lent_resource(pool, held[1], True)  # its place goes to the oldest
    assert first.state == MAY_CREATE
    assert second.state == WOKEN, "a resource is idle and nobody is awake to take it"



def test_a_place_given_up_after_a_shrink_counts_against_the_shrink() -> None:
    pool = BarePool(2)
    first, second = pool.acquire(), pool.acquire()
    client = SlotPool._take_or_enqueue(pool, True, None, None)
    SlotPool._discard_lent_resource(pool, first, True)  # its place goes to the waiter
    assert client.state == MAY_CREATE
    SlotPool._resize(pool, 1, False, False)  # the waiter's place is over the limit
    assert (pool._size, pool._excess) == (2, 1)
    pool._abandon(client)  # the waiter gives up: that is the place to lose
    assert (pool._size, pool._excess) == (1, 0)
    pool.release(second)  # within the limit now: kept, not closed
    assert second.closed == 0 and [slot.resource for slot in pool._idle] == [second]
