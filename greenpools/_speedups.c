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

/* -- WaitingClient: one caller queued for a resource -------------------------- */

/* States, as in greenpools.resource. */
#define CLIENT_WAITING 0
#define CLIENT_GRANTED 1

typedef struct {
    PyObject_HEAD
    PyObject *waiter;
    PyObject *slot;
    double since;
    long pid;
    int state;
    char stall_warned;
} ClientObject;

static int
Client_init(ClientObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"waiter", "since", "pid", NULL};
    PyObject *waiter;
    double since;
    long pid;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Odl", kwlist, &waiter, &since, &pid))
        return -1;
    Py_INCREF(waiter);
    Py_XSETREF(self->waiter, waiter);
    Py_CLEAR(self->slot);
    self->since = since;
    self->pid = pid;
    self->state = CLIENT_WAITING;
    self->stall_warned = 0;
    return 0;
}

static int
Client_traverse(ClientObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->waiter);
    Py_VISIT(self->slot);
    return 0;
}

static int
Client_clear(ClientObject *self)
{
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->slot);
    return 0;
}

static void
Client_dealloc(ClientObject *self)
{
    PyObject_GC_UnTrack(self);
    Client_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Client_members[] = {
    {"waiter", T_OBJECT, offsetof(ClientObject, waiter), 0, NULL},
    {"slot", T_OBJECT, offsetof(ClientObject, slot), 0, NULL},
    {"since", T_DOUBLE, offsetof(ClientObject, since), 0, NULL},
    {"pid", T_LONG, offsetof(ClientObject, pid), 0, NULL},
    {"state", T_INT, offsetof(ClientObject, state), 0, NULL},
    {"stall_warned", T_BOOL, offsetof(ClientObject, stall_warned), 0, NULL},
    {NULL}
};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.WaitingClient",
    .tp_doc = "One caller queued for a resource; whoever frees one fills it in.",
    .tp_basicsize = sizeof(ClientObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Client_init,
    .tp_traverse = (traverseproc)Client_traverse,
    .tp_clear = (inquiry)Client_clear,
    .tp_dealloc = (destructor)Client_dealloc,
    .tp_members = Client_members,
};

/* -- FastPath: the base class of Resource ------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *idle;      /* list of Slot, the warmest last */
    PyObject *out;       /* dict id(resource) -> Slot */
    Py_ssize_t generation;
    Py_ssize_t n_requests;
    char quiet;          /* no hooks, waiters, excess or close: the fast path may run */
    /* Read (and, for plain pools under contention, changed) by the
     * contended paths below; the pool's Python code owns them otherwise. */
    PyObject *mutex;         /* _mutex: a native lock */
    PyObject *waiting;       /* _waiting: deque of WaitingClient, oldest first */
    PyObject *pending_close; /* _pending_close: list of Slot */
    PyObject *stall_token;   /* _stall_watch */
    PyObject *new_waiter;    /* _new_waiter: makes the backend's waiter */
    Py_ssize_t size;
    Py_ssize_t limit;
    Py_ssize_t excess;
    Py_ssize_t n_queued;
    double wait_s;
    char closed;
    char plain;              /* no hooks or options: a slot is all there is to a lease */
    char queue_in_c;         /* _queue_in_c: plain, no timeout, no max_waiting */
} FastPathObject;

static PyObject *str_acquire_slow, *str_discard_stale, *str_release_slow, *str_release_unknown;

static int
FastPath_traverse(FastPathObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->idle);
    Py_VISIT(self->out);
    Py_VISIT(self->mutex);
    Py_VISIT(self->waiting);
    Py_VISIT(self->pending_close);
    Py_VISIT(self->stall_token);
    Py_VISIT(self->new_waiter);
    return 0;
}

static int
FastPath_clear(FastPathObject *self)
{
    Py_CLEAR(self->idle);
    Py_CLEAR(self->out);
    Py_CLEAR(self->mutex);
    Py_CLEAR(self->waiting);
    Py_CLEAR(self->pending_close);
    Py_CLEAR(self->stall_token);
    Py_CLEAR(self->new_waiter);
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

/* -- The contended paths of a plain pool --------------------------------------
 *
 * A plain pool (no hooks, no options) at its limit queues callers and hands
 * each returned slot to the oldest of them; the Python versions of both
 * steps run under the pool's native lock.  Here they run in C without it:
 * only while the lock is free, and without calling Python code in between,
 * so no thread can be inside a locked section and the GIL makes each step
 * atomic.  Anything else goes to the Python methods, which do the same
 * thing under the lock.
 */

static PyObject *forking_module, *stall_watch, *monotonic;
static PyTypeObject *deque_type;
static PyObject *str_locked, *str_append, *str_appendleft, *str_popleft, *str_wait, *str_wake,
    *str_running, *str_watch, *str_pid, *str_abandon, *str_finish_queued, *str_close_pending;

/* 1 when the pool's lock is free (nobody is in a locked section), 0 when
 * it is held, -1 on error. */
static int
mutex_free(FastPathObject *self)
{
    PyObject *held = PyObject_CallMethodNoArgs(self->mutex, str_locked);
    int result;
    if (held == NULL)
        return -1;
    result = held == Py_False;
    Py_DECREF(held);
    return result;
}

static int
read_pid(long *pid)
{
    PyObject *value = PyObject_GetAttr(forking_module, str_pid);
    if (value == NULL)
        return -1;
    *pid = PyLong_AsLong(value);
    Py_DECREF(value);
    return (*pid == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
read_clock(double *now)
{
    PyObject *value = PyObject_CallNoArgs(monotonic);
    if (value == NULL)
        return -1;
    *now = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return (*now == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* Must a blocking acquire on this plain pool queue, with nothing else to do? */
static int
must_queue(FastPathObject *self)
{
    return !self->closed && self->limit > 0 && self->size >= self->limit
        && self->waiting != NULL && Py_TYPE(self->waiting) == deque_type
        && self->idle != NULL && PyList_CheckExact(self->idle) && PyList_GET_SIZE(self->idle) == 0;
}

static int
close_pending(FastPathObject *self)
{
    PyObject *r;
    if (self->pending_close == NULL || !PyList_CheckExact(self->pending_close)
        || PyList_GET_SIZE(self->pending_close) == 0)
        return 0;
    r = PyObject_CallMethodNoArgs((PyObject *)self, str_close_pending);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A blocking acquire without timeout on a plain pool at its limit: queue the
 * caller and wait.  Returns NULL with no exception set when the case does
 * not apply; the caller then takes the Python path. */
static PyObject *
acquire_queued(FastPathObject *self, PyObject *block, PyObject *timeout)
{
    PyObject *waiter, *running, *r;
    ClientObject *client;
    double since, now;
    long pid;
    int free;

    if (!self->queue_in_c || block != Py_True || timeout != Py_None || forking_module == NULL
        || !must_queue(self))
        return NULL;
    /* A wait without timeout is watched for stalls (nested acquires). */
    running = PyObject_GetAttr(stall_watch, str_running);
    if (running == NULL)
        return NULL;
    Py_DECREF(running);
    if (running != self->stall_token || running == Py_None) {
        PyObject *r = PyObject_CallMethodOneArg(stall_watch, str_watch, (PyObject *)self);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }

    waiter = PyObject_CallNoArgs(self->new_waiter);
    if (waiter == NULL)
        return NULL;
    if (read_clock(&since) < 0 || read_pid(&pid) < 0) {
        Py_DECREF(waiter);
        return NULL;
    }
    client = (ClientObject *)ClientType.tp_alloc(&ClientType, 0);
    if (client == NULL) {
        Py_DECREF(waiter);
        return NULL;
    }
    client->waiter = waiter;
    client->since = since;
    client->pid = pid;
    client->state = CLIENT_WAITING;

    /* Python ran since the first look (the waiter's constructor): look again,
     * now that nothing can run until the client is queued. */
    free = mutex_free(self);
    if (free <= 0 || !must_queue(self)) {
        Py_DECREF(client);
        return NULL;
    }
    r = PyObject_CallMethodOneArg(self->waiting, str_append, (PyObject *)client);
    if (r == NULL) {
        Py_DECREF(client);
        return NULL;
    }
    Py_DECREF(r);
    self->quiet = 0;
    self->n_queued++;

    r = PyObject_CallMethodOneArg(waiter, str_wait, Py_None);
    if (r == NULL) {
        /* Interrupted (a kill, a library timeout): pass on what reached us. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        r = PyObject_CallMethodOneArg((PyObject *)self, str_abandon, (PyObject *)client);
        Py_DECREF(client);
        if (r == NULL) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
        Py_DECREF(r);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    Py_DECREF(r);
    if (read_pid(&pid) < 0) {
        Py_DECREF(client);
        return NULL;
    }
    if (client->state == CLIENT_GRANTED && pid == client->pid && client->slot != NULL
        && Py_TYPE(client->slot) == &SlotType) {
        PyObject *resource = ((SlotObject *)client->slot)->resource;
        Py_DECREF(client);
        if (read_clock(&now) < 0)
            return NULL;
        self->wait_s += now - since;
        Py_INCREF(resource);
        if (close_pending(self) < 0) {
            Py_DECREF(resource);
            return NULL;
        }
        return resource;
    }
    /* Refused, allowed to create, or copied into a forked child. */
    r = PyObject_CallMethodOneArg((PyObject *)self, str_finish_queued, (PyObject *)client);
    Py_DECREF(client);
    return r;
}

/* Hand a slot returned to a plain pool to its oldest waiter.  Returns 1 when
 * done, 0 when the case does not apply (nothing changed), -1 on error. */
static int
release_to_waiter(FastPathObject *self, SlotObject *slot)
{
    PyObject *waiting = self->waiting, *client, *key, *r;
    ClientObject *c;
    Py_ssize_t queued;
    int free;

    if (!self->plain || self->closed || self->excess || slot->generation != self->generation
        || !Py_IS_INFINITY(slot->expires) || waiting == NULL || Py_TYPE(waiting) != deque_type
        || self->out == NULL || !PyDict_CheckExact(self->out))
        return 0;
    queued = PyObject_Size(waiting);
    if (queued <= 0)
        return queued < 0 ? -1 : 0;
    free = mutex_free(self);
    if (free <= 0)
        return free;
    client = PyObject_CallMethodNoArgs(waiting, str_popleft);
    if (client == NULL)
        return -1;
    if (Py_TYPE(client) != &ClientType) {
        r = PyObject_CallMethodOneArg(waiting, str_appendleft, client);
        Py_DECREF(client);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    c = (ClientObject *)client;
    key = PyLong_FromVoidPtr(slot->resource);
    if (key == NULL || PyDict_SetItem(self->out, key, (PyObject *)slot) < 0) {
        Py_XDECREF(key);
        r = PyObject_CallMethodOneArg(waiting, str_appendleft, client);
        Py_XDECREF(r);
        Py_DECREF(client);
        return -1;
    }
    Py_DECREF(key);
    Py_INCREF(slot);
    Py_XSETREF(c->slot, (PyObject *)slot);
    c->state = CLIENT_GRANTED;
    if (queued == 1)
        self->quiet = 1;  /* plain, open, nothing in excess: settled */

    r = PyObject_CallMethodNoArgs(c->waiter, str_wake);
    Py_DECREF(client);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return close_pending(self) < 0 ? -1 : 1;
}

static PyObject *
speedups_configure(PyObject *module, PyObject *args)
{
    PyObject *forking, *watch, *clock, *deque;
    if (!PyArg_ParseTuple(args, "OOOO!:configure", &forking, &watch, &clock, &PyType_Type, &deque))
        return NULL;
    Py_INCREF(forking);
    Py_XSETREF(forking_module, forking);
    Py_INCREF(watch);
    Py_XSETREF(stall_watch, watch);
    Py_INCREF(clock);
    Py_XSETREF(monotonic, clock);
    Py_INCREF(deque);
    Py_XSETREF(deque_type, (PyTypeObject *)deque);
    Py_RETURN_NONE;
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
        PyObject *resource;
        if (PyErr_Occurred())
            return NULL;
        resource = acquire_queued(self, block, timeout);
        if (resource != NULL || PyErr_Occurred())
            return resource;
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
    if (Py_TYPE(slot) == &SlotType) {
        int done = release_to_waiter(self, (SlotObject *)slot);
        if (done != 0) {
            Py_DECREF(slot);
            if (done < 0)
                return NULL;
            Py_RETURN_NONE;
        }
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
    {"_mutex", T_OBJECT, offsetof(FastPathObject, mutex), 0, NULL},
    {"_waiting", T_OBJECT, offsetof(FastPathObject, waiting), 0, NULL},
    {"_pending_close", T_OBJECT, offsetof(FastPathObject, pending_close), 0, NULL},
    {"_stall_watch", T_OBJECT, offsetof(FastPathObject, stall_token), 0, NULL},
    {"_new_waiter", T_OBJECT, offsetof(FastPathObject, new_waiter), 0, NULL},
    {"_size", T_PYSSIZET, offsetof(FastPathObject, size), 0, NULL},
    {"_limit", T_PYSSIZET, offsetof(FastPathObject, limit), 0, NULL},
    {"_excess", T_PYSSIZET, offsetof(FastPathObject, excess), 0, NULL},
    {"_n_queued", T_PYSSIZET, offsetof(FastPathObject, n_queued), 0, NULL},
    {"_wait_s", T_DOUBLE, offsetof(FastPathObject, wait_s), 0, NULL},
    {"_closed", T_BOOL, offsetof(FastPathObject, closed), 0, NULL},
    {"_plain", T_BOOL, offsetof(FastPathObject, plain), 0, NULL},
    {"_queue_in_c", T_BOOL, offsetof(FastPathObject, queue_in_c), 0, NULL},
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

static PyMethodDef speedups_functions[] = {
    {"configure", speedups_configure, METH_VARARGS,
     "configure(forking, stall_watch, monotonic, deque): what the contended paths read."},
    {NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "greenpools._speedups",
    .m_doc = "C versions of the pool's lock-free fast path and of a plain pool's queue.",
    .m_size = -1,
    .m_methods = speedups_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;
    if (PyType_Ready(&SlotType) < 0 || PyType_Ready(&ClientType) < 0
        || PyType_Ready(&FastPathType) < 0)
        return NULL;
    str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    str_discard_stale = PyUnicode_InternFromString("_discard_stale");
    str_release_slow = PyUnicode_InternFromString("_release_slow");
    str_release_unknown = PyUnicode_InternFromString("_release_unknown");
    if (!str_acquire_slow || !str_discard_stale || !str_release_slow || !str_release_unknown)
        return NULL;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(str_locked, "locked");
    INTERN(str_append, "append");
    INTERN(str_appendleft, "appendleft");
    INTERN(str_popleft, "popleft");
    INTERN(str_wait, "wait");
    INTERN(str_wake, "wake");
    INTERN(str_running, "running");
    INTERN(str_watch, "watch");
    INTERN(str_pid, "pid");
    INTERN(str_abandon, "_abandon");
    INTERN(str_finish_queued, "_finish_queued");
    INTERN(str_close_pending, "_close_pending");
#undef INTERN
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SlotType);
    if (PyModule_AddObject(m, "Slot", (PyObject *)&SlotType) < 0) {
        Py_DECREF(&SlotType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ClientType);
    if (PyModule_AddObject(m, "WaitingClient", (PyObject *)&ClientType) < 0) {
        Py_DECREF(&ClientType);
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
