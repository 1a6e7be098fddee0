# Cython declarations for base.py (compiled in pure-Python mode).
cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (
    PyLockStatus,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)


cdef extern from "pythread.h":
    PyLockStatus PyThread_acquire_lock_timed(
        PyThread_type_lock lock, long long microseconds, int intr_flag) nogil


# A waiter's states as a waiting client (base.py defines them for plain Python).
cdef enum:
    WAITING = 0
    GRANTED = 1
    MAY_CREATE = 2
    REFUSED = 3
    WOKEN = 4


cdef class Waiter:
    cdef public double since
    cdef public double passed_since
    cdef public double recheck_at
    cdef public Py_ssize_t forks
    cdef public int state
    cdef public object slot
    cdef public bint stall_warned

    cpdef bint wait(self, object timeout) except -1
    cpdef wake(self)
    cpdef bint grant(self, object slot) except -1
    cpdef bint allow_create(self) except -1
    cpdef bint refuse(self) except -1
    cpdef bint wake_to_compete(self) except -1
    cpdef int withdraw(self)
    @cython.locals(current=int)
    cdef bint _serve(self, int state, object slot) except -1


cdef class Mutex:
    cdef PyThread_type_lock _lock
    cdef Py_ssize_t _count
    @cython.locals(deadline=double, microseconds=cython.longlong, status=int)
    cpdef bint acquire(self, bint blocking=*, double timeout=*) except -1
    cpdef release(self)
    cpdef bint locked(self)
    cdef bint _withdraw(self) except -1
