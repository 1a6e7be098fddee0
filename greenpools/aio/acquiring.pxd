# Cython declarations for acquiring.py (compiled in pure-Python mode).

cdef class AsyncLease:
    cdef object _pool
    cdef object _timeout
    cdef object _resource
    cdef Py_ssize_t _lease
