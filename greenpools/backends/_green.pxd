# Cython declarations for _green.py (compiled in pure-Python mode).
cimport cython
from cpython.pythread cimport PyThread_get_thread_ident

cdef inline long _thread_ident() noexcept:
    """The running native thread's identity (what _thread.get_ident() gives)."""
    return PyThread_get_thread_ident()

from greenpools.backends.base cimport Waiter


cdef class Home:
    cdef public object hub
    cdef public object ops
    cdef public long thread
    cdef public long pid
    cdef public HubWaiter run_next
    cdef public bint due
    cdef public int direct
    cdef public object flush


cdef int _DIRECT_SWITCHES  # a C constant: read on every wait

cdef Home _last_home

@cython.locals(pid=long, home=Home)
cdef Home _home_here(object ops)


cdef object _ops
cdef object _peek_hub
cdef object _get_hub


cdef class HubWaiter(Waiter):
    cdef object _ops
    cdef public bint _woken
    cdef public object _greenlet
    cdef public Home _home

    @cython.locals(seconds=double, home=Home, waiter=HubWaiter)
    cpdef bint wait(self, object timeout) except -1
    @cython.locals(home=Home)
    cpdef wake(self)


cdef class HubWaiters:
    cdef public object ops
