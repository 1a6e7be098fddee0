# Cython declarations for slotpool.py (compiled in pure-Python mode).
cimport cython
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_FromVoidPtr
from cpython.ref cimport Py_DECREF
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from greenpools.backends.base cimport Mutex
from greenpools.core.waiting cimport GRANTED, MAY_CREATE, WAITING, WOKEN, WaitQueue
from greenpools.core.waiting cimport Waiter as WaitingClient


cdef double _INF


cdef inline double _now() noexcept nogil:
    """time.monotonic() (the same clock), without a Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline object _identity(object obj):
    """id(obj), without calling the builtin."""
    return PyLong_FromVoidPtr(<void *>obj)


cdef extern from "Python.h":
    void Py_SET_SIZE(object, Py_ssize_t)


cdef inline Slot _pop_last(list idle, Py_ssize_t last):
    """idle.pop() for idle[last], the last item, keeping the list's memory.

    list.pop() gives memory back when a list falls below half its
    allocation, so a pool lending its one resource over and over would
    reallocate its idle list on every cycle.  Kept, the allocation stays
    what the most resources ever idle at once needed.
    """
    cdef Slot slot = <Slot>PyList_GET_ITEM(idle, last)
    Py_SET_SIZE(idle, last)
    Py_DECREF(slot)  # the list's reference, which went with the size
    return slot


cdef class Slot:
    cdef public object resource
    cdef public object holder
    cdef public object stack
    cdef public double created
    cdef public double expires
    cdef public double lent_at
    cdef public double idle_since
    cdef public Py_ssize_t generation
    cdef public long pid
    cdef public bint leak_warned
    cdef public bint lent
    cdef public bint fresh
    cdef public Py_ssize_t returns
    cdef public Py_ssize_t barged_at


cdef class SlotPool:
    cdef public list _idle
    cdef public dict _slots
    cdef public Mutex _mutex
    cdef public WaitQueue _waiting
    cdef public WaitQueue _held
    cdef public object _blocked
    cdef public Py_ssize_t _n_blocked
    cdef public double _blocked_since
    cdef public object _connection_blocked
    cdef public list _pending_close
    cdef public object _new_waiter
    cdef public object _stall_watch
    cdef public object _stall_watcher
    cdef public object _listener_failed
    cdef public dict _retired
    cdef public dict _retiring
    cdef public set _ended_in_with
    cdef public object min_size
    cdef public object max_idle
    cdef public object max_lifetime
    cdef public object _upkeep
    cdef public object _backend
    cdef public object _limit_exceeded
    cdef public object _pool_timeout
    cdef public object _too_many_requests
    cdef public object name
    cdef public object timeout
    cdef public object leak_timeout
    cdef public object check
    cdef public object reset
    cdef public object _prepare_hook
    cdef public object _release_hook
    cdef public Py_ssize_t max_waiting
    cdef public Py_ssize_t _size
    cdef public Py_ssize_t _limit
    cdef public Py_ssize_t _excess
    cdef public Py_ssize_t _generation
    cdef public Py_ssize_t _forks
    cdef public Py_ssize_t _n_requests
    cdef public Py_ssize_t _n_queued
    cdef public Py_ssize_t _n_request_errors
    cdef public Py_ssize_t _n_timeouts
    cdef public Py_ssize_t _n_returns_bad
    cdef public Py_ssize_t _n_connections_lost
    cdef public Py_ssize_t _n_connections
    cdef public Py_ssize_t _n_connection_errors
    cdef public double _connect_s
    cdef public double _wait_s
    cdef public double _usage_s
    cdef public double _barging_bound
    cdef public bint _closed
    cdef public bint _lock_free
    cdef public bint _bare_leases
    cdef public bint _bare_hand_out
    cdef public bint _track_lending
    cdef public bint _watched
    cdef public dict _event_listeners
    cdef public bint _needs_upkeep

    @cython.locals(slot=Slot, deadline=double, started=double)
    cpdef _acquire_slow(self, bint block, object timeout)
    @cython.locals(client=WaitingClient, slot=Slot, woken=bint, deadline=double,
                   recheck=bint, left=double)
    cpdef Slot _take_or_queue(self, bint block, object timeout, object asked)
    @cython.locals(client=WaitingClient, slot=Slot, limit=Py_ssize_t)
    cpdef object _take_or_enqueue(self, bint block, object timeout, object asked)
    cpdef object _timeout_locked(self, object asked)
    @cython.locals(state=int, slot=Slot)
    cpdef object _after_wait(self, WaitingClient client, bint woken, bint rechecking,
                             double deadline, object asked)
    cpdef Slot _outcome(self, WaitingClient client, object asked)
    @cython.locals(state=int, slot=Slot, retired=Slot)
    cpdef _abandon(self, WaitingClient client)
    cpdef bint _may_barge_locked(self, WaitingClient oldest, double now) except -1
    @cython.locals(oldest=WaitingClient)
    cpdef _wake_oldest_locked(self)
    @cython.locals(oldest=WaitingClient, now=double)
    cpdef _pass_on_locked(self, Slot slot, bint barged=*)
    cpdef _recheck(self, WaitingClient client)
    @cython.locals(slot=Slot, successor=WaitingClient, now=double, recheck_at=double)
    cpdef object _compete(self, WaitingClient client, bint woken, double deadline, object asked)
    @cython.locals(idle=list, slot=Slot)
    cpdef Slot _pop_idle_locked(self)
    @cython.locals(fresh=bint)
    cpdef _hand_out(self, Slot slot)
    @cython.locals(held=bint)
    cpdef _adopt_prepared(self, Slot slot, object prepared)
    cpdef _discard_failed_check(self, Slot slot)
    @cython.locals(slot=Slot)
    cpdef Py_ssize_t _lease_of(self, object resource) except? -2
    cpdef _end_lease(self, object resource, Py_ssize_t lease, bint broken)
    cpdef Slot _create_lent(self)
    cpdef Slot _lend_created(self, Slot slot)
    @cython.locals(now=double)
    cpdef _release_slow(self, Slot slot)
    cpdef _give_back(self, Slot slot)
    cpdef _rebalance(self)
    @cython.locals(slot=Slot, stale=Slot, generation=Py_ssize_t)
    cpdef _rebalance_locked(self)
    @cython.locals(client=WaitingClient)
    cpdef _grant_locked(self, Slot slot)
    cpdef _settle_locked(self)
    cpdef bint _must_close_locked(self, Slot slot) except -1
    cpdef _return_locked(self, Slot slot, bint barged=*)
    cpdef _drop_capacity_locked(self)
    @cython.locals(client=WaitingClient)
    cpdef _free_capacity_locked(self)
    @cython.locals(client=WaitingClient)
    cpdef _wake_creators_locked(self)
    cpdef _refuse_all_locked(self)
    @cython.locals(first=bint)
    cpdef _block(self, object resource, object reason)
    @cython.locals(seconds=double)
    cpdef _unblock(self, object resource)
    @cython.locals(client=WaitingClient)
    cpdef WaitingClient _hold_locked(self, bint block, object timeout, object asked)
    cpdef object _blocked_error_locked(self, object asked)
    @cython.locals(client=WaitingClient)
    cpdef _release_held_locked(self)
    cpdef _unqueue_locked(self, WaitingClient client)
    @cython.locals(slot=Slot)
    cpdef _retire_lent_resource(self, object resource)
    cpdef _close_pending(self)
    cpdef _forget_slot_locked(self, Slot slot)
    cpdef _discard_stale(self, Slot slot)
    cpdef _discard_lent(self, Slot slot, bint lost=*)
    @cython.locals(listeners=tuple)
    cpdef _emit(self, str event, object resource=*, object seconds=*)
