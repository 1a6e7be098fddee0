# Cython declarations for waiting.py (compiled in pure-Python mode).
cimport cython

from greenpools.backends.base cimport Waiter

cdef enum:
    WAITING = 0
    GRANTED = 1
    MAY_CREATE = 2
    REFUSED = 3

cdef class WaitingClient:
    cdef public Waiter waiter
    cdef public double since
    cdef public Py_ssize_t forks
    cdef public int state
    cdef public object slot
    cdef public bint stall_warned

    cpdef bint grant(self, object slot) except -1
    cpdef bint allow_create(self) except -1
    cpdef bint refuse(self) except -1
    cpdef int withdraw(self)
    cdef bint _serve(self, int state, object slot) except -1


@cython.locals(client=WaitingClient)
cpdef WaitingClient new_client(Waiter waiter, double since, Py_ssize_t forks)


cdef class WaitQueue:
    cdef list _clients
    cdef Py_ssize_t _head
    cdef public Py_ssize_t length

    cpdef push(self, WaitingClient client)
    @cython.locals(clients=list, client=WaitingClient, head=Py_ssize_t)
    cpdef WaitingClient pop_oldest(self)
    @cython.locals(clients=list, index=Py_ssize_t)
    cpdef bint remove(self, WaitingClient client) except -1
    cpdef list snapshot(self)
    @cython.locals(clients=list)
    cpdef list take_all(self)
