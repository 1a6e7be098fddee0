# Cython declarations for _green.py (compiled in pure-Python mode).
cimport cython
from cpython.object cimport Py_TYPE, PyTypeObject
from cpython.pycapsule cimport PyCapsule_Import
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport Py_DECREF, PyObject

cdef inline long _thread_ident() noexcept:
    """The running native thread's identity (what _thread.get_ident() gives)."""
    return PyThread_get_thread_ident()


# greenlet's C API: the table of function pointers greenlet publishes as the
# capsule "greenlet._C_API" (the layout of its greenlet.h, declared here so
# that no greenlet header is needed to build).
ctypedef object (*_GreenletGetCurrent)()
ctypedef object (*_GreenletSwitch)(object target, object args, PyObject *kwargs)
ctypedef PyObject *(*_GreenletGetParent)(object target)  # new reference, or NULL
ctypedef int (*_GreenletActive)(object target) except -1

cdef enum:
    _GREENLET_GETCURRENT = 4  # PyGreenlet_GetCurrent_NUM
    _GREENLET_SWITCH = 6  # PyGreenlet_Switch_NUM
    _GREENLET_ACTIVE = 10  # PyGreenlet_ACTIVE_NUM
    _GREENLET_GET_PARENT = 11  # PyGreenlet_GET_PARENT_NUM

cdef extern from "Python.h":
    # Borrowed (NULL if missing), no error set; uses the type attribute cache.
    PyObject *_PyType_Lookup(PyTypeObject *type, object name)

cdef void **_greenlet_api
#: greenlet.greenlet.switch, the method a type's own "switch" must be for
#: the C switch to stand in for it.
cdef object _greenlet_switch_method

cdef inline void **_import_greenlet_api() except NULL:
    return <void **>PyCapsule_Import("greenlet._C_API", 0)

cdef inline object _getcurrent():
    """greenlet.getcurrent(), as a C call."""
    return (<_GreenletGetCurrent>_greenlet_api[_GREENLET_GETCURRENT])()

cdef inline object _parent(object target):
    """target.parent (None if it has none), as a C call."""
    cdef PyObject *parent = (<_GreenletGetParent>_greenlet_api[_GREENLET_GET_PARENT])(target)
    if parent is NULL:
        return None
    result = <object>parent
    Py_DECREF(result)  # the C call's reference; result holds its own
    return result

cdef inline bint _active(object target) except -1:
    """Whether the greenlet target has started and not ended, as a C call."""
    return (<_GreenletActive>_greenlet_api[_GREENLET_ACTIVE])(target)

cdef inline object _switch(object target, tuple args):
    """target.switch(*args): a C call when the type's switch is greenlet's own
    (a greenlet subclass that overrides it, as gevent's Hub, gets its override)."""
    if _PyType_Lookup(Py_TYPE(target), "switch") == <PyObject *>_greenlet_switch_method:
        return (<_GreenletSwitch>_greenlet_api[_GREENLET_SWITCH])(target, args, NULL)
    return target.switch(*args)

from greenpools.backends.base cimport Waiter


cdef class Home:
    cdef public object hub
    cdef public object greenlet
    cdef public str dropped
    cdef public object ops
    cdef public long thread
    cdef public long pid
    cdef public HubWaiter run_next
    cdef public bint due
    cdef public int direct
    cdef public object flush


cdef int _DIRECT_SWITCHES  # a C constant: read on every wait
cdef tuple _WOKEN, _TIMED_OUT, _NOTHING

cdef Home _last_home

@cython.locals(pid=long, home=Home)
cdef Home _home_here(object ops, object current)


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
