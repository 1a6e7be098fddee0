# Cython declarations for waiting.py (compiled in pure-Python mode).
from greenpools.backends.base cimport Waiter


cdef class AsyncWaiter(Waiter):
    cdef object _loop
    cdef object _thread
    cdef public object future

    cpdef wake(self)
    cpdef expire(self)
    cpdef _resolve(self, bint woken)
