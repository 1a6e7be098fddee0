/* The uncontended acquire/release of a pool, in C.
 *
 * Optional: greenpools/_fastpath.py holds the same logic in Python and is
 * used when this module is not built (or GREENPOOLS_NO_SPEEDUPS is set).
 *
 * Each method runs with the GIL held and calls no Python code on its fast
 * path, so it is atomic with respect to every other thread and greenlet:
 * a slot moves between the idle stack and a caller (its ``lent`` flag) in
 * one step.
 * Anything else (waiters, hooks, stale or unknown resources) is handed to
 * the pool's Python slow-path methods.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>
#ifndef _WIN32
#include <pthread.h>
#include <unistd.h>
#endif

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
    char lent;  /* held by a caller, or granted to a waiter */
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
    self->lent = 0;
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
    {"lent", T_BOOL, offsetof(SlotObject, lent), 0, NULL},
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

/* What the pool records of a queued caller.  A WaitingClient holds it next
 * to the caller's waiter; a HubWaiter (below) holds it itself, so that a
 * green caller queued by C costs one object, not two. */
typedef struct {
    PyObject *slot;
    double since;
    long pid;
    int state;
    char stall_warned;
} ClientPart;

typedef struct {
    PyObject_HEAD
    PyObject *waiter;
    ClientPart part;
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
    Py_CLEAR(self->part.slot);
    self->part.since = since;
    self->part.pid = pid;
    self->part.state = CLIENT_WAITING;
    self->part.stall_warned = 0;
    return 0;
}

static int
Client_traverse(ClientObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->waiter);
    Py_VISIT(self->part.slot);
    return 0;
}

static int
Client_clear(ClientObject *self)
{
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->part.slot);
    return 0;
}

static void
Client_dealloc(ClientObject *self)
{
    PyObject_GC_UnTrack(self);
    Client_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define CLIENT_PART_MEMBERS(type) \
    {"slot", T_OBJECT, offsetof(type, part.slot), 0, NULL}, \
    {"since", T_DOUBLE, offsetof(type, part.since), 0, NULL}, \
    {"pid", T_LONG, offsetof(type, part.pid), 0, NULL}, \
    {"state", T_INT, offsetof(type, part.state), 0, NULL}, \
    {"stall_warned", T_BOOL, offsetof(type, part.stall_warned), 0, NULL}

static PyMemberDef Client_members[] = {
    {"waiter", T_OBJECT, offsetof(ClientObject, waiter), 0, NULL},
    CLIENT_PART_MEMBERS(ClientObject),
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
    PyObject *slots;     /* dict id(resource) -> Slot, idle and lent alike */
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
    PyObject *append;        /* waiting.append and waiting.popleft, bound once */
    PyObject *popleft;
} FastPathObject;

static PyObject *str_acquire_slow, *str_discard_stale, *str_release_slow, *str_release_unknown;

static int
FastPath_traverse(FastPathObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->idle);
    Py_VISIT(self->slots);
    Py_VISIT(self->mutex);
    Py_VISIT(self->waiting);
    Py_VISIT(self->pending_close);
    Py_VISIT(self->stall_token);
    Py_VISIT(self->new_waiter);
    Py_VISIT(self->append);
    Py_VISIT(self->popleft);
    return 0;
}

static int
FastPath_clear(FastPathObject *self)
{
    Py_CLEAR(self->idle);
    Py_CLEAR(self->slots);
    Py_CLEAR(self->mutex);
    Py_CLEAR(self->waiting);
    Py_CLEAR(self->pending_close);
    Py_CLEAR(self->stall_token);
    Py_CLEAR(self->new_waiter);
    Py_CLEAR(self->append);
    Py_CLEAR(self->popleft);
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

/* -- Native locks: the pool's Mutex and the threading backend's waiter ---------
 *
 * Both are an operating-system lock like _thread.allocate_lock()'s with a
 * flag that C code reads directly.
 */

static int read_clock(double *now);

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char flag;  /* Mutex: held; ThreadWaiter: woken */
} LockObject;

static PyObject *
lock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    LockObject *self;
    if ((args != NULL && PyTuple_GET_SIZE(args)) || (kwds != NULL && PyDict_GET_SIZE(kwds))) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    self = (LockObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
lock_dealloc(LockObject *self)
{
    if (self->lock != NULL) {
        /* Unlocked before it is freed, whoever holds it. */
        PyThread_acquire_lock(self->lock, NOWAIT_LOCK);
        PyThread_release_lock(self->lock);
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Acquire ``lock``: at once when ``timeout`` is 0, else within ``timeout``
 * seconds (negative, or too long to count: forever), the GIL released
 * meanwhile.  A signal runs its handler (which may raise), then the wait
 * goes on for what is left.  1 when acquired, 0 when not, -1 on error. */
static int
acquire_native(PyThread_type_lock lock, double timeout)
{
    PyLockStatus status = PyThread_acquire_lock_timed(lock, 0, 0);
    double deadline = 0, now;
    if (status == PY_LOCK_ACQUIRED || timeout == 0)
        return status == PY_LOCK_ACQUIRED;
    if (!(timeout * 1e6 < (double)PY_TIMEOUT_MAX))
        timeout = -1;
    if (timeout > 0) {
        if (read_clock(&now) < 0)
            return -1;
        deadline = now + timeout;
    }
    for (;;) {
        PY_TIMEOUT_T microseconds = timeout < 0 ? -1 : (PY_TIMEOUT_T)(timeout * 1e6);
        Py_BEGIN_ALLOW_THREADS
        status = PyThread_acquire_lock_timed(lock, microseconds, 1);
        Py_END_ALLOW_THREADS
        if (status != PY_LOCK_INTR)
            return status == PY_LOCK_ACQUIRED;
        if (Py_MakePendingCalls() < 0)
            return -1;
        if (timeout > 0) {
            if (read_clock(&now) < 0)
                return -1;
            if (now >= deadline)
                return PyThread_acquire_lock_timed(lock, 0, 0) == PY_LOCK_ACQUIRED;
            timeout = deadline - now;
        }
    }
}

/* The Mutex's flag says it is held: set once the GIL is back after
 * acquiring and cleared before releasing, so a C step that sees it clear
 * cannot be inside anyone's locked section (one that acquired the lock but
 * has not run yet changes nothing before it does).  The contended paths
 * below read it instead of calling locked(). */
static int
mutex_acquire(LockObject *self, int blocking, double timeout)
{
    int acquired = acquire_native(self->lock, blocking ? timeout : 0);
    if (acquired == 1)
        self->flag = 1;
    return acquired;
}

static PyObject *
Mutex_acquire(LockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"blocking", "timeout", NULL};
    int blocking = 1, acquired;
    double timeout = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pd:acquire", kwlist, &blocking, &timeout))
        return NULL;
    if (!blocking && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    acquired = mutex_acquire(self, blocking, timeout);
    if (acquired < 0)
        return NULL;
    return PyBool_FromLong(acquired);
}

static PyObject *
Mutex_enter(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    int acquired = mutex_acquire(self, 1, -1);
    if (acquired < 0)
        return NULL;
    return PyBool_FromLong(acquired);
}

static PyObject *
Mutex_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->flag) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    self->flag = 0;
    PyThread_release_lock(self->lock);
    Py_RETURN_NONE;
}

static PyObject *
Mutex_exit(LockObject *self, PyObject *args)
{
    return Mutex_release(self, NULL);
}

static PyObject *
Mutex_locked(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->flag);
}

static PyMethodDef Mutex_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Mutex_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool"},
    {"release", (PyCFunction)Mutex_release, METH_NOARGS, "release()"},
    {"locked", (PyCFunction)Mutex_locked, METH_NOARGS, "locked() -> bool"},
    {"__enter__", (PyCFunction)Mutex_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Mutex_exit, METH_VARARGS, NULL},
    {NULL}
};

static PyTypeObject MutexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.Mutex",
    .tp_doc = "An operating-system lock whose state C code can read.",
    .tp_basicsize = sizeof(LockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = lock_new,
    .tp_dealloc = (destructor)lock_dealloc,
    .tp_methods = Mutex_methods,
};

/* The threading backend's waiter: a lock created held; wait() acquires it,
 * wake() releases it, from any thread.  In C so that a thread that wakes a
 * waiter and then queues itself reaches its own park without running
 * Python frames in between: the woken thread then less often finds the
 * GIL still held and has to be woken a second time. */

static PyObject *
ThreadWaiter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *self = lock_new(type, args, kwds);
    if (self != NULL)
        PyThread_acquire_lock(((LockObject *)self)->lock, NOWAIT_LOCK);  /* new: succeeds */
    return self;
}

/* True once woken, False when ``timeout`` seconds (None: forever) passed. */
static PyObject *
ThreadWaiter_wait(LockObject *self, PyObject *timeout)
{
    double seconds = -1;
    int acquired;
    if (timeout != Py_None) {
        seconds = PyFloat_AsDouble(timeout);
        if (seconds == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(seconds > 0))
            seconds = 0;
    }
    acquired = acquire_native(self->lock, seconds);
    if (acquired < 0)
        return NULL;
    return PyBool_FromLong(acquired);
}

static PyObject *
ThreadWaiter_wake(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->flag) {  /* a second wake changes nothing */
        self->flag = 1;
        PyThread_release_lock(self->lock);
    }
    Py_RETURN_NONE;
}

static PyMethodDef ThreadWaiter_methods[] = {
    {"wait", (PyCFunction)ThreadWaiter_wait, METH_O,
     "wait(timeout): block until woken (True) or until timeout seconds passed (False)."},
    {"wake", (PyCFunction)ThreadWaiter_wake, METH_NOARGS, "wake(): release the waiting thread."},
    {NULL}
};

static PyTypeObject ThreadWaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.ThreadWaiter",
    .tp_doc = "The threading backend's waiter (see greenpools.backends.threading).",
    .tp_basicsize = sizeof(LockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = ThreadWaiter_new,
    .tp_dealloc = (destructor)lock_dealloc,
    .tp_methods = ThreadWaiter_methods,
};

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

static PyObject *stall_watch, *monotonic;
static PyTypeObject *deque_type;
static PyObject *str_append, *str_appendleft, *str_popleft, *str_wait, *str_wake,
    *str_running, *str_watch, *str_abandon, *str_finish_queued, *str_close_pending;

/* 1 when the pool's lock is free (nobody is in a locked section); 0 when it
 * is held, or is not our Mutex (the Python path then does the work). */
static int
mutex_free(FastPathObject *self)
{
    return self->mutex != NULL && Py_TYPE(self->mutex) == &MutexType
        && !((LockObject *)self->mutex)->flag;
}

/* greenpools.forking.pid, kept here by a fork handler of our own: it runs
 * in the child before any Python code does. */
static long current_pid;

static void
update_pid(void)
{
    current_pid = (long)getpid();
}

/* time.monotonic(): on Linux the same clock read directly. */
static int
read_clock(double *now)
{
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        *now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
        return 0;
    }
#endif
    if (monotonic == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "greenpools._speedups: configure() was not called");
        return -1;
    }
    {
        PyObject *value = PyObject_CallNoArgs(monotonic);
        if (value == NULL)
            return -1;
        *now = PyFloat_AsDouble(value);
        Py_DECREF(value);
        return (*now == -1.0 && PyErr_Occurred()) ? -1 : 0;
    }
}

/* The green waiter, defined below: the contended paths call it directly,
 * and queue it as its own client. */
static PyTypeObject HubWaiterType;
typedef struct {
    PyObject_HEAD
    PyObject *greenlet;   /* the parked greenlet, or NULL */
    PyObject *home;       /* Home, published before the greenlet */
    char woken;
    ClientPart part;
} HubWaiterObject;

/* The record of a queued caller, or NULL if ``client`` is not one of ours. */
static ClientPart *
client_part(PyObject *client)
{
    if (Py_TYPE(client) == &ClientType)
        return &((ClientObject *)client)->part;
    if (PyObject_TypeCheck(client, &HubWaiterType))
        return &((HubWaiterObject *)client)->part;
    return NULL;
}

static PyObject *
client_waiter(PyObject *client)
{
    return Py_TYPE(client) == &ClientType ? ((ClientObject *)client)->waiter : client;
}
static PyObject *HubWaiter_wait(HubWaiterObject *self, PyObject *timeout);
static PyObject *HubWaiter_wake(HubWaiterObject *self, PyObject *ignored);

/* A new waiter from the pool's factory; a HubWaiter subclass is allocated
 * directly (it has no __init__ to run). */
static PyObject *
new_waiter(FastPathObject *self)
{
    PyObject *factory = self->new_waiter;
    if (PyType_Check(factory)) {
        PyTypeObject *type = (PyTypeObject *)factory;
        if (PyType_IsSubtype(type, &HubWaiterType) && type->tp_init == HubWaiterType.tp_init
            && type->tp_new == HubWaiterType.tp_new)
            return type->tp_alloc(type, 0);
        if (type->tp_new == ThreadWaiter_new && type->tp_init == ThreadWaiterType.tp_init)
            return ThreadWaiter_new(type, NULL, NULL);
    }
    return PyObject_CallNoArgs(factory);
}

static PyObject *
call_wait(PyObject *waiter)
{
    if (PyObject_TypeCheck(waiter, &HubWaiterType))
        return HubWaiter_wait((HubWaiterObject *)waiter, Py_None);
    if (PyObject_TypeCheck(waiter, &ThreadWaiterType))
        return ThreadWaiter_wait((LockObject *)waiter, Py_None);
    return PyObject_CallMethodOneArg(waiter, str_wait, Py_None);
}

static PyObject *
call_wake(PyObject *waiter)
{
    if (PyObject_TypeCheck(waiter, &HubWaiterType))
        return HubWaiter_wake((HubWaiterObject *)waiter, NULL);
    if (PyObject_TypeCheck(waiter, &ThreadWaiterType))
        return ThreadWaiter_wake((LockObject *)waiter, NULL);
    return PyObject_CallMethodNoArgs(waiter, str_wake);
}

/* Must a blocking acquire on this plain pool queue, with nothing else to do? */
static int
must_queue(FastPathObject *self)
{
    return !self->closed && self->limit > 0 && self->size >= self->limit
        && self->waiting != NULL && Py_TYPE(self->waiting) == deque_type
        && self->idle != NULL && PyList_CheckExact(self->idle) && PyList_GET_SIZE(self->idle) == 0;
}

/* ``waiting.<append or popleft>(*args)``, with the bound methods kept (each
 * holds the deque it belongs to, so an identity check tells it is current). */
static PyObject *
call_waiting(FastPathObject *self, PyObject **cache, PyObject *name, PyObject *arg)
{
    PyObject *method = *cache;
    if (method == NULL || PyCFunction_GET_SELF(method) != self->waiting) {
        method = PyObject_GetAttr(self->waiting, name);
        if (method == NULL)
            return NULL;
        if (!PyCFunction_Check(method)) {  /* not deque's own: call it, keep nothing */
            PyObject *r = arg ? PyObject_CallOneArg(method, arg) : PyObject_CallNoArgs(method);
            Py_DECREF(method);
            return r;
        }
        Py_XSETREF(*cache, method);
    }
    return arg ? PyObject_CallOneArg(method, arg) : PyObject_CallNoArgs(method);
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
    PyObject *waiter, *running, *r, *client;
    ClientPart *part;
    double since, now;
    int free;

    if (!self->queue_in_c || block != Py_True || timeout != Py_None || stall_watch == NULL
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

    waiter = new_waiter(self);
    if (waiter == NULL)
        return NULL;
    if (read_clock(&since) < 0) {
        Py_DECREF(waiter);
        return NULL;
    }
    if (PyObject_TypeCheck(waiter, &HubWaiterType)) {
        client = waiter;  /* its own client: the reference moves */
        Py_INCREF(waiter);  /* ... and one more for the local `waiter` */
    }
    else {
        client = ClientType.tp_alloc(&ClientType, 0);
        if (client == NULL) {
            Py_DECREF(waiter);
            return NULL;
        }
        ((ClientObject *)client)->waiter = waiter;  /* the reference moves */
        Py_INCREF(waiter);
    }
    part = client_part(client);
    part->since = since;
    part->pid = current_pid;
    part->state = CLIENT_WAITING;

    /* Python ran since the first look (the waiter's constructor): look again,
     * now that nothing can run until the client is queued. */
    free = mutex_free(self);
    if (free <= 0 || !must_queue(self)) {
        Py_DECREF(waiter);
        Py_DECREF(client);
        return NULL;
    }
    r = call_waiting(self, &self->append, str_append, client);
    if (r == NULL) {
        Py_DECREF(waiter);
        Py_DECREF(client);
        return NULL;
    }
    Py_DECREF(r);
    self->quiet = 0;
    self->n_queued++;

    r = call_wait(waiter);
    Py_DECREF(waiter);  /* the client keeps it */
    if (r == NULL) {
        /* Interrupted (a kill, a library timeout): pass on what reached us. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        r = PyObject_CallMethodOneArg((PyObject *)self, str_abandon, client);
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
    if (part->state == CLIENT_GRANTED && part->pid == current_pid && part->slot != NULL
        && Py_TYPE(part->slot) == &SlotType) {
        PyObject *resource = ((SlotObject *)part->slot)->resource;
        Py_INCREF(resource);
        Py_DECREF(client);
        if (read_clock(&now) < 0) {
            Py_DECREF(resource);
            return NULL;
        }
        self->wait_s += now - since;
        if (close_pending(self) < 0) {
            Py_DECREF(resource);
            return NULL;
        }
        return resource;
    }
    /* Refused, allowed to create, or copied into a forked child. */
    r = PyObject_CallMethodOneArg((PyObject *)self, str_finish_queued, client);
    Py_DECREF(client);
    return r;
}

/* Hand a slot returned to a plain pool to its oldest waiter: it stays lent,
 * to the waiter now.  Returns 1 when done, 0 when the case does not apply
 * (nothing changed), -1 on error. */
static int
release_to_waiter(FastPathObject *self, SlotObject *slot)
{
    PyObject *waiting = self->waiting, *client, *r;
    ClientPart *part;
    Py_ssize_t queued;
    int free;

    if (!self->plain || self->closed || self->excess || slot->generation != self->generation
        || !Py_IS_INFINITY(slot->expires) || waiting == NULL || Py_TYPE(waiting) != deque_type)
        return 0;
    queued = PyObject_Size(waiting);
    if (queued <= 0)
        return queued < 0 ? -1 : 0;
    free = mutex_free(self);
    if (free <= 0)
        return free;
    client = call_waiting(self, &self->popleft, str_popleft, NULL);
    if (client == NULL)
        return -1;
    part = client_part(client);
    if (part == NULL) {
        r = PyObject_CallMethodOneArg(waiting, str_appendleft, client);
        Py_DECREF(client);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    slot->lent = 1;
    Py_INCREF(slot);
    Py_XSETREF(part->slot, (PyObject *)slot);
    part->state = CLIENT_GRANTED;
    if (queued == 1)
        self->quiet = 1;  /* plain, open, nothing in excess: settled */

    r = call_wake(client_waiter(client));
    Py_DECREF(client);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return close_pending(self) < 0 ? -1 : 1;
}

static PyObject *
speedups_configure(PyObject *module, PyObject *args)
{
    PyObject *watch, *clock, *deque;
    if (!PyArg_ParseTuple(args, "OOO!:configure", &watch, &clock, &PyType_Type, &deque))
        return NULL;
    Py_INCREF(watch);
    Py_XSETREF(stall_watch, watch);
    Py_INCREF(clock);
    Py_XSETREF(monotonic, clock);
    Py_INCREF(deque);
    Py_XSETREF(deque_type, (PyTypeObject *)deque);
    Py_RETURN_NONE;
}

/* -- HubWaiter and Home: the green backends' waiter ----------------------------
 *
 * The C version of greenpools/backends/_green.py (read its docstring for the
 * protocol: publishing order, _resume's guard, the run-next slot).  The
 * backend's hub operations stay Python methods of the subclass (_get_hub,
 * _call_soon, ...); only the steps every contended wait and wake take are
 * here: finding the hub's Home, parking, the run-next slot.
 */

#define DIRECT_SWITCHES 16

static PyObject *str_get_hub, *str_peek_hub, *str_new_home, *str_greenpools_home, *str_switch, *str_resume,
    *str_call_soon, *str_call_soon_threadsafe, *str_call_later, *str_cancel, *str_flush;
static PyObject *getcurrent;  /* greenlet.getcurrent, set by configure_green() */

typedef struct {
    PyObject_HEAD
    PyObject *hub;
    PyObject *run_next;   /* a HubWaiter due to run next, or NULL */
    PyObject *flush;      /* self._flush, bound once */
    unsigned long thread;
    long pid;
    int direct;           /* direct switches since the hub last ran the flush */
    char due;             /* a flush callback is scheduled */
} HomeObject;


static PyTypeObject HomeType;
static HomeObject *last_home;

static int
Home_init(HomeObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"hub", "thread", "pid", NULL};
    PyObject *hub, *flush;
    unsigned long thread;
    long pid;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Okl", kwlist, &hub, &thread, &pid))
        return -1;
    flush = PyObject_GetAttr((PyObject *)self, str_flush);
    if (flush == NULL)
        return -1;
    Py_INCREF(hub);
    Py_XSETREF(self->hub, hub);
    Py_XSETREF(self->flush, flush);
    Py_CLEAR(self->run_next);
    self->thread = thread;
    self->pid = pid;
    self->direct = 0;
    self->due = 0;
    return 0;
}

static int
Home_traverse(HomeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hub);
    Py_VISIT(self->run_next);
    Py_VISIT(self->flush);
    return 0;
}

static int
Home_clear(HomeObject *self)
{
    Py_CLEAR(self->hub);
    Py_CLEAR(self->run_next);
    Py_CLEAR(self->flush);
    return 0;
}

static void
Home_dealloc(HomeObject *self)
{
    PyObject_GC_UnTrack(self);
    Home_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Resume a parked waiter (the body of HubWaiter._resume). */
static PyObject *
resume_waiter(HubWaiterObject *waiter, PyObject *woken)
{
    PyObject *greenlet = waiter->greenlet, *r;
    if (greenlet == NULL)
        Py_RETURN_NONE;
    waiter->greenlet = NULL;  /* our reference moves to the local */
    r = PyObject_CallMethodOneArg(greenlet, str_switch, woken);
    Py_DECREF(greenlet);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
Home_flush(HomeObject *self, PyObject *woken)
{
    PyObject *waiter = self->run_next, *r;
    self->due = 0;
    self->direct = 0;
    if (waiter == NULL)
        Py_RETURN_NONE;
    self->run_next = NULL;
    r = resume_waiter((HubWaiterObject *)waiter, Py_True);
    Py_DECREF(waiter);
    return r;
}

static PyMethodDef Home_methods[] = {
    {"_flush", (PyCFunction)Home_flush, METH_O, "Run the waiter in the run-next slot."},
    {NULL}
};

static PyMemberDef Home_members[] = {
    {"hub", T_OBJECT, offsetof(HomeObject, hub), READONLY, NULL},
    {"run_next", T_OBJECT, offsetof(HomeObject, run_next), READONLY, NULL},
    {"thread", T_ULONG, offsetof(HomeObject, thread), READONLY, NULL},
    {"pid", T_LONG, offsetof(HomeObject, pid), READONLY, NULL},
    {"direct", T_INT, offsetof(HomeObject, direct), READONLY, NULL},
    {"due", T_BOOL, offsetof(HomeObject, due), READONLY, NULL},
    {NULL}
};

static PyTypeObject HomeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.Home",
    .tp_doc = "What the waiters of one hub share: its thread and its run-next slot.",
    .tp_basicsize = sizeof(HomeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Home_init,
    .tp_traverse = (traverseproc)Home_traverse,
    .tp_clear = (inquiry)Home_clear,
    .tp_dealloc = (destructor)Home_dealloc,
    .tp_methods = Home_methods,
    .tp_members = Home_members,
};

static int
HubWaiter_traverse(HubWaiterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->greenlet);
    Py_VISIT(self->home);
    Py_VISIT(self->part.slot);
    return 0;
}

static int
HubWaiter_clear(HubWaiterObject *self)
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->home);
    Py_CLEAR(self->part.slot);
    return 0;
}

static void
HubWaiter_dealloc(HubWaiterObject *self)
{
    PyObject_GC_UnTrack(self);
    HubWaiter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The running hub's Home, made (by the subclass, in Python) if missing or
 * inherited across a fork.  New reference. */
static HomeObject *
home_here(HubWaiterObject *self)
{
    PyObject *hub, *home;
    /* The hub operations of the last waiter class seen (held, so that its
     * address cannot be taken by another class while we compare). */
    static PyObject *ops_of, *getter, *peeker;
    if ((PyObject *)Py_TYPE(self) != ops_of) {
        PyObject *get = PyObject_GetAttr((PyObject *)Py_TYPE(self), str_get_hub);
        PyObject *peek = get ? PyObject_GetAttr((PyObject *)Py_TYPE(self), str_peek_hub) : NULL;
        if (peek == NULL) {
            Py_XDECREF(get);
            return NULL;
        }
        Py_XSETREF(getter, get);
        Py_XSETREF(peeker, peek);
        Py_INCREF(Py_TYPE(self));
        Py_XSETREF(ops_of, (PyObject *)Py_TYPE(self));
    }
    hub = NULL;
    if (peeker != Py_None) {  /* the thread's hub if it has one, cheaply */
        hub = PyObject_CallNoArgs(peeker);
        if (hub == NULL)
            return NULL;
        if (hub == Py_None)
            Py_CLEAR(hub);
    }
    if (hub == NULL)
        hub = PyObject_CallNoArgs(getter);
    if (hub == NULL)
        return NULL;
    /* The last Home found, held strongly: its hub cannot be replaced by
     * another object at the same address while we compare against it. */
    if (last_home != NULL && last_home->hub == hub && last_home->pid == current_pid) {
        Py_DECREF(hub);
        Py_INCREF(last_home);
        return last_home;
    }
    home = PyObject_GetAttr(hub, str_greenpools_home);
    if (home == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            Py_DECREF(hub);
            return NULL;
        }
        PyErr_Clear();
    }
    else if (Py_TYPE(home) != &HomeType || ((HomeObject *)home)->pid != current_pid)
        Py_CLEAR(home);
    if (home == NULL)
        home = PyObject_CallMethodOneArg((PyObject *)self, str_new_home, hub);
    Py_DECREF(hub);
    if (home != NULL && Py_TYPE(home) != &HomeType) {
        PyErr_SetString(PyExc_TypeError, "_new_home() must return a greenpools._speedups.Home");
        Py_CLEAR(home);
    }
    if (home != NULL) {
        Py_INCREF(home);
        Py_XSETREF(last_home, (HomeObject *)home);
    }
    return (HomeObject *)home;
}

static PyObject *
HubWaiter_wait(HubWaiterObject *self, PyObject *timeout)
{
    HomeObject *home;
    PyObject *timer = NULL, *result = NULL, *greenlet;
    int truth;

    if (self->woken)
        Py_RETURN_TRUE;
    if (timeout != Py_None) {
        double seconds = PyFloat_AsDouble(timeout);
        if (seconds == -1.0 && PyErr_Occurred())
            return NULL;
        if (seconds <= 0)
            Py_RETURN_FALSE;
    }
    home = home_here(self);
    if (home == NULL)
        return NULL;
    Py_XSETREF(self->home, (PyObject *)home);  /* the reference moves to self */
    greenlet = PyObject_CallNoArgs(getcurrent);
    if (greenlet == NULL)
        return NULL;
    Py_XSETREF(self->greenlet, greenlet);
    if (self->woken) {
        Py_CLEAR(self->greenlet);
        Py_RETURN_TRUE;
    }
    if (timeout != Py_None) {
        PyObject *resume = PyObject_GetAttr((PyObject *)self, str_resume);
        if (resume == NULL) {
            Py_CLEAR(self->greenlet);
            return NULL;
        }
        {
            PyObject *args[4] = {(PyObject *)self, home->hub, timeout, resume};
            timer = PyObject_VectorcallMethod(str_call_later, args,
                                              4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_DECREF(resume);
        if (timer == NULL) {
            Py_CLEAR(self->greenlet);
            return NULL;
        }
    }
    Py_INCREF(home);  /* kept alive across the switch whatever happens to self->home */
    if (home->run_next != NULL && home->direct < DIRECT_SWITCHES) {
        HubWaiterObject *next = (HubWaiterObject *)home->run_next;
        home->run_next = NULL;
        home->direct++;
        if (next->greenlet != NULL) {  /* not resumed by its timer meanwhile */
            PyObject *target = next->greenlet;
            next->greenlet = NULL;
            result = PyObject_CallMethodOneArg(target, str_switch, Py_True);
            Py_DECREF(target);
            Py_DECREF(next);
            goto done;
        }
        Py_DECREF(next);
    }
    result = PyObject_CallMethodNoArgs(home->hub, str_switch);
done:
    Py_DECREF(home);
    Py_CLEAR(self->greenlet);
    if (timer != NULL) {
        PyObject *type, *value, *tb, *r;
        PyErr_Fetch(&type, &value, &tb);
        r = PyObject_CallMethodOneArg((PyObject *)self, str_cancel, timer);
        Py_DECREF(timer);
        if (r == NULL) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            Py_XDECREF(result);
            return NULL;
        }
        Py_DECREF(r);
        PyErr_Restore(type, value, tb);
    }
    if (result == NULL)
        return NULL;
    truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    if (truth < 0)
        return NULL;
    return PyBool_FromLong(truth);
}

static PyObject *
HubWaiter_resume(HubWaiterObject *self, PyObject *woken)
{
    return resume_waiter(self, woken);
}

static PyObject *
call_with_hub(HubWaiterObject *self, PyObject *name, PyObject *hub, PyObject *func)
{
    PyObject *args[3] = {(PyObject *)self, hub, func};
    return PyObject_VectorcallMethod(name, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
HubWaiter_wake(HubWaiterObject *self, PyObject *ignored)
{
    HomeObject *home;
    PyObject *r = NULL, *resume;
    self->woken = 1;
    if (self->greenlet == NULL)
        Py_RETURN_NONE;
    home = (HomeObject *)self->home;  /* published before the greenlet */
    if (home == NULL || Py_TYPE(home) != &HomeType) {
        PyErr_SetString(PyExc_RuntimeError, "HubWaiter.wake: waiter parked without a home");
        return NULL;
    }
    if (PyThread_get_thread_ident() == home->thread && home->run_next == NULL) {
        Py_INCREF(self);
        home->run_next = (PyObject *)self;
        if (home->due)
            Py_RETURN_NONE;
        home->due = 1;
        r = call_with_hub(self, str_call_soon, home->hub, home->flush);
    }
    else {
        resume = PyObject_GetAttr((PyObject *)self, str_resume);
        if (resume == NULL)
            return NULL;
        r = call_with_hub(self, PyThread_get_thread_ident() == home->thread
                          ? str_call_soon : str_call_soon_threadsafe, home->hub, resume);
        Py_DECREF(resume);
    }
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMethodDef HubWaiter_methods[] = {
    {"wait", (PyCFunction)HubWaiter_wait, METH_O,
     "wait(timeout): park until woken (True) or until timeout seconds passed (False)."},
    {"wake", (PyCFunction)HubWaiter_wake, METH_NOARGS, "wake(): resume the waiting greenlet."},
    {"_resume", (PyCFunction)HubWaiter_resume, METH_O,
     "_resume(woken): switch into the greenlet if it is still parked here."},
    {NULL}
};

static PyMemberDef HubWaiter_members[] = {
    {"_woken", T_BOOL, offsetof(HubWaiterObject, woken), READONLY, NULL},
    {"_greenlet", T_OBJECT, offsetof(HubWaiterObject, greenlet), READONLY, NULL},
    {"_home", T_OBJECT, offsetof(HubWaiterObject, home), READONLY, NULL},
    CLIENT_PART_MEMBERS(HubWaiterObject),
    {NULL}
};

static PyObject *
HubWaiter_get_waiter(PyObject *self, void *closure)
{
    Py_INCREF(self);
    return self;
}

/* Queued by C, a HubWaiter is its own WaitingClient: client.waiter is itself. */
static PyGetSetDef HubWaiter_getset[] = {
    {"waiter", HubWaiter_get_waiter, NULL, "This waiter (it is its own client).", NULL},
    {NULL}
};

static PyTypeObject HubWaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenpools._speedups.HubWaiter",
    .tp_doc = "The green backends' waiter (see greenpools.backends._green).",
    .tp_basicsize = sizeof(HubWaiterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)HubWaiter_traverse,
    .tp_clear = (inquiry)HubWaiter_clear,
    .tp_dealloc = (destructor)HubWaiter_dealloc,
    .tp_methods = HubWaiter_methods,
    .tp_members = HubWaiter_members,
    .tp_getset = HubWaiter_getset,
};

static PyObject *
speedups_configure_green(PyObject *module, PyObject *func)
{
    Py_INCREF(func);
    Py_XSETREF(getcurrent, func);
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
    if (slot->generation == self->generation) {
        PyObject *resource = slot->resource;
        slot->lent = 1;
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

/* Look the resource up, and take the slot back from the caller: clearing
 * ``lent`` here, in one step under the GIL, is what refuses a double
 * release, even one racing in another thread. */
static PyObject *
FastPath_release(FastPathObject *self, PyObject *resource)
{
    PyObject *key, *found;
    SlotObject *slot;
    int done;
    if (self->slots == NULL || !PyDict_CheckExact(self->slots))
        return PyObject_CallMethodOneArg((PyObject *)self, str_release_unknown, resource);
    key = PyLong_FromVoidPtr(resource);
    if (key == NULL)
        return NULL;
    found = PyDict_GetItemWithError(self->slots, key);  /* borrowed; no Python code runs */
    Py_DECREF(key);
    if (found == NULL || Py_TYPE(found) != &SlotType || !((SlotObject *)found)->lent) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallMethodOneArg((PyObject *)self, str_release_unknown, resource);
    }
    slot = (SlotObject *)found;
    Py_INCREF(slot);
    slot->lent = 0;
    if (self->quiet && slot->generation == self->generation
        && self->idle != NULL && PyList_CheckExact(self->idle)) {
        if (PyList_Append(self->idle, (PyObject *)slot) < 0) {
            slot->lent = 1;  /* still the caller's: nothing was lost */
            Py_DECREF(slot);
            return NULL;
        }
        Py_DECREF(slot);
        Py_RETURN_NONE;
    }
    done = release_to_waiter(self, slot);
    if (done != 0) {
        Py_DECREF(slot);
        if (done < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_release_slow,
                                                (PyObject *)slot);
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
    {"_slots", T_OBJECT, offsetof(FastPathObject, slots), 0, NULL},
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
     "configure(stall_watch, monotonic, deque): what the contended paths read."},
    {"configure_green", speedups_configure_green, METH_O,
     "configure_green(getcurrent): greenlet's getcurrent, for HubWaiter."},
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
        || PyType_Ready(&FastPathType) < 0 || PyType_Ready(&HomeType) < 0
        || PyType_Ready(&HubWaiterType) < 0 || PyType_Ready(&MutexType) < 0
        || PyType_Ready(&ThreadWaiterType) < 0)
        return NULL;
    str_acquire_slow = PyUnicode_InternFromString("_acquire_slow");
    str_discard_stale = PyUnicode_InternFromString("_discard_stale");
    str_release_slow = PyUnicode_InternFromString("_release_slow");
    str_release_unknown = PyUnicode_InternFromString("_release_unknown");
    if (!str_acquire_slow || !str_discard_stale || !str_release_slow || !str_release_unknown)
        return NULL;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(str_append, "append");
    INTERN(str_appendleft, "appendleft");
    INTERN(str_popleft, "popleft");
    INTERN(str_wait, "wait");
    INTERN(str_wake, "wake");
    INTERN(str_running, "running");
    INTERN(str_watch, "watch");
    INTERN(str_abandon, "_abandon");
    INTERN(str_finish_queued, "_finish_queued");
    INTERN(str_close_pending, "_close_pending");
    INTERN(str_get_hub, "_get_hub");
    INTERN(str_peek_hub, "_peek_hub");
    INTERN(str_new_home, "_new_home");
    INTERN(str_greenpools_home, "_greenpools_home");
    INTERN(str_switch, "switch");
    INTERN(str_resume, "_resume");
    INTERN(str_call_soon, "_call_soon");
    INTERN(str_call_soon_threadsafe, "_call_soon_threadsafe");
    INTERN(str_call_later, "_call_later");
    INTERN(str_cancel, "_cancel");
    INTERN(str_flush, "_flush");
#undef INTERN
    update_pid();
#ifndef _WIN32
    if (pthread_atfork(NULL, NULL, update_pid) != 0) {
        PyErr_SetString(PyExc_OSError, "greenpools._speedups: pthread_atfork failed");
        return NULL;
    }
#endif
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SlotType);
    if (PyModule_AddObject(m, "Slot", (PyObject *)&SlotType) < 0) {
        Py_DECREF(&SlotType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&MutexType);
    if (PyModule_AddObject(m, "Mutex", (PyObject *)&MutexType) < 0) {
        Py_DECREF(&MutexType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ThreadWaiterType);
    if (PyModule_AddObject(m, "ThreadWaiter", (PyObject *)&ThreadWaiterType) < 0) {
        Py_DECREF(&ThreadWaiterType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HomeType);
    if (PyModule_AddObject(m, "Home", (PyObject *)&HomeType) < 0) {
        Py_DECREF(&HomeType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HubWaiterType);
    if (PyModule_AddObject(m, "HubWaiter", (PyObject *)&HubWaiterType) < 0) {
        Py_DECREF(&HubWaiterType);
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
