# Cython declarations for waiting.py (compiled in pure-Python mode).
cimport cython

# The waiting client is the backend's waiter; its states are defined with it
# (waiting.py names it Waiter for Python, slotpool.pxd for C).
from greenpools.backends.base cimport GRANTED, MAY_CREATE, REFUSED, WAITING, WOKEN, Waiter


cdef class WaitQueue:
    cdef list _clients
    cdef Py_ssize_t _head
    cdef public Py_ssize_t length

    cpdef push(self, Waiter client)
    @cython.locals(clients=list, client=Waiter, head=Py_ssize_t)
    cpdef Waiter pop_oldest(self)
    cpdef Waiter oldest(self)
    @cython.locals(clients=list, index=Py_ssize_t)
    cpdef bint replace(self, Waiter client, Waiter successor) except -1
    @cython.locals(clients=list, index=Py_ssize_t)
    cpdef bint remove(self, Waiter client) except -1
    cpdef list snapshot(self)
    @cython.locals(clients=list)
    cpdef list take_all(self)
