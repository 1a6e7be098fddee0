/* The uncontended acquire/release of a pool, in C.
 *
 * Optional: greenpools/_fastpath.py holds the same logic in Python and is
 * used when this module is not built (or GREENPOOLS_NO_SPEEDUPS is set).
 *
 * Each method runs with the GIL held and calls no Python code on its fast
 * path, so it is atomic with respect to every other thread and greenlet:
 * a slot moves between the idle stack and the lent map in one step.
 * Anything else (waiters, hooks, stale or unknown resources) is handed to
 * the pool's Python slow-path methods.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* -- Slot: book-keeping for one pooled resource ----------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *resource;
    PyObject *holder;
    PyObject *stack;
    double created;
    double expires;
    double lent_at;
    double idle_since;
    Py_ssize_t generation;
    long pid;
    char leak_warned;
} SlotObject;

static int
Slot_init(SlotObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"resource", "now", "expires", "generation", "pid", NULL};
    PyObject *resource;
    double now, expires;
    Py_ssize_t generation;
    long pid = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oddn|l", kwlist,
                                     &resource, &now, &expires, &generation, &pid))
        return -1;
    Py_INCREF(resource);
    Py_XSETREF(self->resource, resource);
    Py_INCREF(Py_None);
    Py_XSETREF(self->holder, Py_None);
    Py_INCREF(Py_None);
    Py_XSETREF(self->stack, Py_None);
    self->created = now;
    self->expires = expires;
    self->lent_at = now;
    self->idle_since = now;
    self->generation = generation;
    self->pid = pid;
    self->leak_warned = 0;
    return 0;
}

static int
Slot_traverse(SlotObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->resource);
    Py_VISIT(self->holder);
    Py_VISIT(self->stack);
    return 0;
}

static int
Slot_clear(SlotObject *self)
{
    Py_CLEAR(self->resource);
    Py_CLEAR(self->holder);
    Py_CLEAR(self->stack);
    return 0;
}

static void
Slot_dealloc(SlotObject *self)
{
    PyObject_GC_UnTrack(self);
    Slot_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Slot_members[] = {
    {"resource", T_OBJECT, offsetof(SlotObject, resource), 0, NULL},
    {"holder", T_OBJECT, offsetof(SlotObject, holder), 0, NULL},
    {"stack", T_OBJECT, offsetof(SlotObject, stack), 0, NULL},
    {"created", T_DOUBLE, offsetof(SlotObject, created), 0, NULL},
    {"expires", T_DOUBLE, offsetof(SlotObject, expires), 0, NULL},
    {"lent_at", T_DOUBLE, offsetof(SlotObject, lent_at), 0, NULL},
    {"idle_since", T_DOUBLE, offsetof(SlotObject, idle_since), 0, NULL},
    {"generation", T_PYSSIZET, offsetof(SlotObject, generation), 0, NULL},
    {"pid", T_LONG, offsetof(SlotObject, pid), 0, NULL},
    {"leak_warned", T_BOOL, offsetof(SlotObject, leak_warned), 0, NULL},
    {NULL}
};

static PyTypeObject SlotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.Slot",
    .tp_doc = "Book-keeping for one pooled resource, made once when it is created.",
    .tp_basicsize = sizeof(SlotObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Slot_init,
    .tp_traverse = (traverseproc)Slot_traverse,
    .tp_clear = (inquiry)Slot_clear,
    .tp_dealloc = (destructor)Slot_dealloc,
    .tp_members = Slot_members,
};

/* -- FastPath: the base class of Resource ------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *idle;      /* list of Slot, the warmest last */
    PyObject *out;       /* dict id(resource) -> Slot */
    Py_ssize_t generation;
    Py_ssize_t n_requests;
    char quiet;          /* no hooks, waiters, excess or close: the fast path may run */
} FastPathObject;

static PyObject *str_acquire_slow, *str_discard_stale, *str_release_slow, *str_release_unknown;

static int
FastPath_traverse(FastPathObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->idle);
    Py_VISIT(self->out);
    return 0;
}

static int
FastPath_clear(FastPathObject *self)
{
    Py_CLEAR(self->idle);
    Py_CLEAR(self->out);
    return 0;
}

static void
FastPath_dealloc(FastPathObject *self)
{
    PyObject_GC_UnTrack(self);
    FastPath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Pop the warmest idle slot if the fast path may run; NULL (no error) if not. */
static SlotObject *
pop_idle(FastPathObject *self)
{
    PyObject *idle = self->idle;
    Py_ssize_t n;
    PyObject *slot;
    if (!self->quiet || idle == NULL || !PyList_CheckExact(idle))
        return NULL;
    n = PyList_GET_SIZE(idle);
    if (n == 0)
        return NULL;
    slot = PyList_GET_ITEM(idle, n - 1);
    if (Py_TYPE(slot) != &SlotType)
        return NULL;
    Py_INCREF(slot);
    if (PyList_SetSlice(idle, n - 1, n, NULL) < 0) {
        Py_DECREF(slot);
        return NULL;
    }
    return (SlotObject *)slot;
}

static PyObject *
call_slow_acquire(PyObject *self, PyObject *block, PyObject *timeout)
{
    PyObject *args[3] = {self, block, timeout};
    return PyObject_VectorcallMethod(str_acquire_slow, args,
                                     3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
FastPath_acquire(FastPathObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *block = Py_False, *timeout = Py_None;
    SlotObject *slot;
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (nargs > 0) block = args[0];
    if (nargs > 1) timeout = args[1];
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int is_block = PyUnicode_CompareWithASCIIString(name, "block") == 0;
        int is_timeout = PyUnicode_CompareWithASCIIString(name, "timeout") == 0;
        if ((is_block && nargs >= 1) || (is_timeout && nargs >= 2)) {
            PyErr_Format(PyExc_TypeError, "acquire() got multiple values for argument '%U'",
                         name);
            return NULL;
        }
        if (is_block)
            block = args[nargs + i];
        else if (is_timeout)
            timeout = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%U'",
                         name);
            return NULL;
        }
    }

    self->n_requests++;
    slot = pop_idle(self);
    if (slot == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return call_slow_acquire((PyObject *)self, block, timeout);
    }
    if (slot->generation == self->generation && self->out != NULL && PyDict_CheckExact(self->out)) {
        PyObject *key = PyLong_FromVoidPtr(slot->resource);
        PyObject *resource;
        if (key == NULL || PyDict_SetItem(self->out, key, (PyObject *)slot) < 0) {
            Py_XDECREF(key);
            /* put it back untouched */
            PyList_Append(self->idle, (PyObject *)slot);
            Py_DECREF(slot);
            return NULL;
        }
        Py_DECREF(key);
        resource = slot->resource;
        Py_INCREF(resource);
        Py_DECREF(slot);
        return resource;
    }
    /* retired by a close or reset: let Python close it, then take the slow path */
    {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_discard_stale,
                                                (PyObject *)slot);
        Py_DECREF(slot);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    return call_slow_acquire((PyObject *)self, block, timeout);
}

static PyObject *
FastPath_release(FastPathObject *self, PyObject *resource)
{
    PyObject *key, *slot;
    if (self->out == NULL || !PyDict_CheckExact(self->out))
        return PyObject_CallMethodOneArg((PyObject *)self, str_release_unknown, resource);
    key = PyLong_FromVoidPtr(resource);
    if (key == NULL)
        return NULL;
    slot = PyDict_GetItemWithError(self->out, key);
    if (slot == NULL) {
        Py_DECREF(key);
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallMethodOneArg((PyObject *)self, str_release_unknown, resource);
    }
    Py_INCREF(slot);
    if (PyDict_DelItem(self->out, key) < 0) {
        Py_DECREF(key);
        Py_DECREF(slot);
        return NULL;
    }
    Py_DECREF(key);
    if (self->quiet && Py_TYPE(slot) == &SlotType
        && ((SlotObject *)slot)->generation == self->generation
        && self->idle != NULL && PyList_CheckExact(self->idle)) {
        if (PyList_Append(self->idle, slot) < 0) {
            Py_DECREF(slot);
            return NULL;
        }
        Py_DECREF(slot);
        Py_RETURN_NONE;
    }
    {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_release_slow, slot);
        Py_DECREF(slot);
        return r;
    }
}

static PyMethodDef FastPath_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))FastPath_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=False, timeout=None): take a resource out of the pool."},
    {"release", (PyCFunction)FastPath_release, METH_O,
     "release(resource): return a resource acquired from this pool."},
    {NULL}
};

static PyMemberDef FastPath_members[] = {
    {"_idle", T_OBJECT, offsetof(FastPathObject, idle), 0, NULL},
    {"_out", T_OBJECT, offsetof(FastPathObject, out), 0, NULL},
    {"_generation", T_PYSSIZET, offsetof(FastPathObject, generation), 0, NULL},
    {"_n_requests", T_PYSSIZET, offsetof(FastPathObject, n_requests), 0, NULL},
    {"_quiet", T_BOOL, offsetof(FastPathObject, quiet), 0, NULL},
    {NULL}
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.FastPath",
    .tp_doc = "The uncontended acquire and release of a pool, in C.",
    .tp_basicsize = sizeof(FastPathObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)FastPath_traverse,
    .tp_clear = (inquiry)FastPath_clear,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
    .tp_members = FastPath_members,
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "greenpools._speedups",
    .m_doc = "C versions of the pool's lock-free fast path.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;
    if (PyType_Ready(&SlotType) < 0 || PyType_Ready(&FastPathType) < 0)
        return NULL;
    str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    str_discard_stale = PyUnicode_InternFromString("_discard_stale");
    str_release_slow = PyUnicode_InternFromString("_release_slow");
    str_release_unknown = PyUnicode_InternFromString("_release_unknown");
    if (!str_acquire_slow || !str_discard_stale || !str_release_slow || !str_release_unknown)
        return NULL;
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SlotType);
    if (PyModule_AddObject(m, "Slot", (PyObject *)&SlotType) < 0) {
        Py_DECREF(&SlotType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
