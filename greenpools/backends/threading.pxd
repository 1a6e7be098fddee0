# Cython declarations for threading.py (compiled in pure-Python mode).
from greenpools.backends.base cimport Mutex, Waiter


cdef class ThreadWaiter(Waiter):
    cdef public bint _woken
    cdef Mutex _lock
