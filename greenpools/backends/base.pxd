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


cdef class Waiter:
    cpdef bint wait(self, object timeout) except -1
    cpdef wake(self)


cdef class Mutex:
    cdef PyThread_type_lock _lock
    cdef Py_ssize_t _count
    @cython.locals(deadline=double, microseconds=cython.longlong, status=int)
    cpdef bint acquire(self, bint blocking=*, double timeout=*) except -1
    cpdef release(self)
    cpdef bint locked(self)
    cdef bint _withdraw(self) except -1
