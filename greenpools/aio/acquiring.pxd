# Cython declarations for acquiring.py (compiled in pure-Python mode).

from greenpools.core.slotpool cimport Slot


cdef class AsyncLease:
    cdef object _pool
    cdef object _timeout
    cdef object _resource
    cdef Slot _slot
    cdef Py_ssize_t _lease
