/* ovl_internal.h - what the API file and the backends share: the op (the
 * wrapper trick), the port, and the small backend interface. Nothing here is
 * exported; every non-static internal name starts with ovl__. */
#ifndef OVL_INTERNAL_H
#define OVL_INTERNAL_H

#include "ovl.h"
#include "platform.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ==========================================================================
 * LOCK ORDER. Take them in this order, never an earlier one while holding a
 * later one; OVL_DEBUG_LOCKS builds check "held" where code needs a lock
 * (OVL__ASSERT_HELD), and the test suite runs such a build.
 *
 *   1. p->deliver_lock   the reaper role: whoever holds it reaps the
 *                        backend's events and runs the port's callbacks
 *                        (the completion thread, an ovl_poll caller, close
 *                        in manual mode). Held across the callback.
 *   2. p->lock           the port: pool and op states, the port's state,
 *                        callback pointer, registered fds, the backends'
 *                        queues (the threads backend uses it for all its
 *                        lists; io_uring for its SQ). Never held across a
 *                        callback or a blocking wait.
 *   3. graph_lock        (deliver.c) the wait-for graph of callbacks that
 *                        block in close or ovl_poll; taken under p->lock by
 *                        close, alone by ovl_poll.
 *
 *   Alone, never nested with the above: ports_lock (port.c, the handle
 *   table; atfork holds it across fork()), the probe locks (backend.c,
 *   uring.c).
 *
 * Not locks, but part of the protocol: `users` (an atomic count) keeps
 * close from destroying the backend under a caller that left p->lock to
 * enter the backend (a kick, an ovl_poll(p, 0) on a threaded port); close
 * stores CLOSING first and then waits for users to reach zero.
 * ========================================================================== */

/* ==========================================================================
 * THE TRICK: the op wrapper.
 *
 * Every submitted operation is an ovl__op taken from the port's pool. The OS
 * completion queue hands back one machine word per finished operation, and
 * that word leads straight back to the op, which carries the caller's ctx:
 *
 *  - Windows IOCP returns the OVERLAPPED * given to ReadFile. The OVERLAPPED
 *    lives in `os`, the FIRST member, so that pointer *is* the op
 *    (CONTAINING_RECORD with offset 0). iocp.c static-asserts this.
 *  - io_uring returns the 64-bit user_data of the SQE. ovl puts the op's
 *    token there: the generation, the port's handle slot and index + 1
 *    (layout below), the generation kept below 2^30 so that bits 62 and 63
 *    are free for a backend's marks and internal tokens. The token is also
 *    the op id the caller sees, so a stale or duplicated completion (an old
 *    generation, an index out of range, an op not in flight) is caught by
 *    ovl__op_from_token() instead of corrupting a reused op.
 *
 * Life cycle (op->state): FREE -> INFLIGHT (submit accepted; owned by the OS
 * or a backend queue) -> FREE again when its completion is harvested into a
 * callback batch. Exactly one harvest per INFLIGHT period is what makes
 * "exactly once" hold: ovl__op_from_token() refuses anything not INFLIGHT
 * with the matching generation.
 * ========================================================================== */

enum { OVL__OP_FREE = 0, OVL__OP_INFLIGHT = 1 };

typedef struct ovl__op ovl__op;
struct ovl__op {
    /* Must stay first: the OVERLAPPED on Windows (32 bytes on x64);
     * backend scratch elsewhere (io_uring: the op's exit stamp). */
    union {
        uint64_t raw[4];
        void *align_ptr;
    } os;
    void *ctx; /* the caller's context */
    void *buf;
    uint64_t len;
    int64_t offset;     /* >= 0 positional, OVL_OFFSET_CURRENT stream */
    int64_t timeout_ns; /* > 0: the op's timeout (OVL_OP_TIMER: its delay) */
    ovl_fd fd;
    uint32_t index;  /* position in the pool, fixed */
    uint32_t pslot;  /* the port's handle slot (part of the token) */
    uint32_t gen;    /* bumped on every allocation; never 0 */
    uint32_t kind;   /* OVL_OP_* */
    uint32_t flags;  /* fsync flags */
    uint32_t state;  /* OVL__OP_FREE / OVL__OP_INFLIGHT (port lock) */
    uint32_t bstate; /* backend-private state */
    int64_t result;  /* post value; backends may stash a result here */
    int32_t os_error;
    uint32_t cancel_req; /* ovl_cancel or close asked to stop it (lock) */
    ovl__op *next;       /* free list, or a backend's queue */
    ovl__op *prev;       /* a backend's queue */
};

/* Token layout: generation in bits 32..62, the port's handle slot in bits
 * 15..31 (so that an id names its port: another port's id is never one of
 * ours), index + 1 in bits 0..14 (OVL_MAX_QUEUE_DEPTH is 2^14). */
#define OVL__TOKEN_SLOT_SHIFT 15
#define OVL__TOKEN_INDEX_MASK ((1u << OVL__TOKEN_SLOT_SHIFT) - 1u)

/* The pool index a token names (not checked: see ovl__op_from_token). */
static inline uint32_t ovl__token_index(uint64_t token)
{
    return ((uint32_t)token & OVL__TOKEN_INDEX_MASK) - 1u;
}

static inline uint64_t ovl__op_token(const ovl__op *op)
{
    return ((uint64_t)op->gen << 32) | ((uint64_t)op->pslot << OVL__TOKEN_SLOT_SHIFT) |
           (uint64_t)(op->index + 1u);
}

/* One completion as a backend reaps it, before the core resolves the op. */
typedef struct ovl__event {
    uint64_t token;   /* the op's token (the io_uring user_data) */
    int64_t result;   /* >= 0 bytes, < 0 an OVL_E code */
    int32_t os_error; /* raw OS error behind a negative result */
    uint32_t pad;
} ovl__event;

/* ==========================================================================
 * The backend interface. One file per backend implements it; api.c calls it
 * and never contains platform code. Locking: submit/cancel/post are called
 * with port->lock HELD (one lock per batch submit); `kick` is then called
 * after the lock is released to make the OS see the new work (one system
 * call per batch). wait/wake/destroy are called without the lock.
 * ========================================================================== */
typedef struct ovl__backend {
    const char *name; /* also its OVL_BACKEND value */
    uint32_t id;      /* OVL_BACKEND_* */
    /* Optional: can this process use it at all? OVL_OK or OVL_EUNAVAIL,
     * with a static reason (what works, or why not). Called once per
     * process, any thread, no lock: backend.c caches the answer. Without
     * it the backend is always usable. */
    int32_t (*probe)(const char **reason);
    /* Which ops it runs: without net_ops, accept, connect and shutdown are
     * refused at submit with OVL_ENOTSUP; without timeouts, timers and an
     * op's timeout_ns likewise. */
    bool net_ops;
    bool timeouts;
    /* Runs OVL_OP_LOCAL_ACCEPT / OVL_OP_LOCAL_DIAL itself (IOCP: named
     * pipes); without it the core turns them into accept, connect and
     * timer ops on Unix sockets (local.c). */
    bool local_native;
    /* Create the backend state (p->be). Return OVL_OK or an OVL_E code. */
    int32_t (*init)(ovl_port *p);
    /* Start ops[0..n) (each INFLIGHT, fields filled). Must accept all of
     * them; a failure to start one becomes that op's completion. Lock held. */
    void (*submit)(ovl_port *p, ovl__op **ops, size_t n);
    /* Optional: look at op's event before it is delivered (lock held).
     * Return false if the backend issued the op again instead (the OS
     * failed it only because the thread that issued it exited: io_uring):
     * the core then drops the event and kicks after the batch. The
     * backend may adjust *ev. */
    bool (*settle)(ovl_port *p, ovl__op *op, ovl__event *ev);
    /* Ask the OS to cancel an INFLIGHT op. Lock held. */
    void (*cancel)(ovl_port *p, ovl__op *op);
    /* Lock released: push queued work to the OS. `from_cb` is true when the
     * caller is this port's callback (defer to after the batch). */
    void (*kick)(ovl_port *p, bool from_cb);
    /* Reap up to cap events, waiting up to timeout_ms (-1 forever) for the
     * first. Returns the number of events (0 on timeout, when woken, or
     * interrupted: the caller keeps its own deadline). Only ever one waiter
     * at a time (the completion thread or ovl_poll). */
    size_t (*wait)(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap);
    /* wait() submits the work queued since the last kick in the system
     * call that waits (io_uring), so a caller that holds delivery may skip
     * the kick (ovl_submit_and_poll). */
    bool wait_submits;
    /* Optional, manual mode: the caller holds deliver_lock and is about to
     * submit and then wait for what it submitted (ovl_submit_and_poll with
     * a timeout), so it reaps whatever completes meanwhile itself: on
     * (true, before the submit) the port's event handle is not signalled
     * for completions; off (false, after the caller's last reap) signals
     * it if completions were left undelivered. Without it the handle is
     * signalled as usual (io_uring needs none: with wait_submits the submit
     * and the wait are one system call). deliver_lock held, port lock not. */
    void (*quiet_event)(ovl_port *p, bool on);
    /* Make a current or future wait() return promptly. Any thread. */
    void (*wake)(ovl_port *p);
    /* Optional: sleep until events are probably ready (spurious returns are
     * fine) WITHOUT reaping them, flushing queued submits on the way. With
     * it the completion thread waits outside deliver_lock and then reaps
     * under it, so ovl_poll(p, 0) on another thread can take ready events
     * meanwhile (a backend whose OS queue has one consumer at a time, such
     * as io_uring's CQ, needs the lock to share it). Without it the
     * completion thread holds deliver_lock across wait(). */
    void (*wait_ready)(ovl_port *p);
    /* Optional: bind a handle (IOCP). */
    int32_t (*associate)(ovl_port *p, ovl_fd fd);
    /* Optional: manual-mode pollable handle. */
    int32_t (*event_fd)(ovl_port *p, ovl_fd *out);
    /* Optional: put fd into registered-file slot `slot` (OVL__NO_FD: empty
     * the slot). Lock held. Without it, ovl_register_fd only records it. */
    int32_t (*register_fd)(ovl_port *p, uint32_t slot, ovl_fd fd);
    /* Close a handle an op of kind `kind` made for the caller (an accepted
     * connection, a dialed pipe) that nobody will receive (the port has no
     * callback). Any thread. */
    void (*close_handle)(ovl_fd h, uint32_t kind);
    /* Free everything. No op is in flight any more. */
    void (*destroy)(ovl_port *p);
    /* Optional, in a child of fork() on its parent's port: close this
     * process's copies of the backend's fds, unmap, free, and nothing else
     * (no call that reaches a kernel object the parent still uses, no
     * lock: a parent thread may have held one at the fork; the backend's
     * threads did not survive the fork). */
    void (*forget)(ovl_port *p);
} ovl__backend;

/* ==========================================================================
 * The port.
 * ========================================================================== */
enum { OVL__PORT_OPEN = 0, OVL__PORT_CLOSING = 1, OVL__PORT_CLOSED = 2 };

#define OVL__BATCH_MAX 256u
#define OVL__TOKEN_INTERNAL (1ull << 63) /* never an op's token */
#define OVL__NO_FD UINT64_MAX            /* never a plausible fd */

/* A thread's place in the callbacks: one frame per callback running on it
 * (a callback that polls another port, whose callback ... nests them). */
typedef struct ovl__cb_frame {
    ovl_port *port;
    struct ovl__cb_frame *prev;
} ovl__cb_frame;

/* Per thread (TLS): its callback frames, and the port it is blocked on in
 * close or ovl_poll while inside a callback (deadlock detection, see
 * ovl__wait_begin). */
typedef struct ovl__thr {
    ovl__cb_frame *top;
    ovl_port *waiting_for; /* (ovl__graph_lock) */
} ovl__thr;

struct ovl_port {
    /* ---- kept across reuse: the handle slot's identity and its locks.
     * A port's struct is never freed; after close it serves a later port
     * (see port.c), so a stale handle never reaches freed memory. */
    uint32_t slot;            /* its index in the handle table */
    _Atomic uintptr_t handle; /* the handle of the port it serves
                                       (changes on reuse, under lock) */
    ovl__mutex lock;          /* pool, op states, state, callback,
                                       backend submit queues */
    ovl__mutex deliver_lock;  /* see Delivery below */
    ovl__cond park_cv;
    ovl__cond closed_cv; /* (lock) state reached CLOSED */
    ovl_port *q_next;    /* the free list (ovl__ports_lock) */

    /* ---- set afresh for each port. */
    uint32_t fork_gen;      /* ovl__fork_gen at creation */
    _Atomic uint32_t state; /* OVL__PORT_* */
    uint32_t flags;         /* OVL_PORT_* */
    uint32_t depth;         /* pool size */
    uint32_t nthreads;      /* threads backend workers */
    uint32_t threads_cfg;   /* ovl_port_config.threads as given */
    uint32_t spin_usec;
    const ovl__backend *backend;
    void *be; /* backend state */

    ovl__op *ops;          /* the pool: depth ops */
    struct ovl__lx *local; /* local ops' side records, one per op,
                                       from the first local op (local.h) */
    ovl__op *free_list;
    uint32_t inflight; /* INFLIGHT ops (lock) */

    /* Registered fds (lock): reg[0..nreg) maps an fd to its slot in the
     * backend's file table; reg_slots has a bit set per slot in use. */
    struct {
        ovl_fd fd;
        uint32_t slot;
    } reg[OVL_MAX_REGISTERED_FDS];
    uint32_t nreg;
    uint64_t reg_slots;

    ovl_callback cb; /* (lock) */
    void *userdata;  /* (lock) */

    /* Delivery: only the holder of deliver_lock reaps and runs callbacks:
     * the completion thread, an ovl_poll caller, or close in manual mode. */
    ovl__thr *_Atomic cb_thr; /* the thread running its callback */
    ovl__event *events;       /* reap buffer */
    ovl_completion *batch;    /* callback batch */
    size_t batch_cap;

    _Atomic uint32_t users; /* callers inside backend->kick */
    /* Submitters from outside a callback between their backend->submit and
     * the end of their kick: what they published they push to the kernel
     * themselves, so a reaper leaves it to them (io_uring: two threads
     * entering with SQEs serialize on the ring's submission lock). Raised
     * under the lock before the backend sees the batch; after lowering it
     * the submitter kicks once more, for what a reaper left meanwhile. */
    _Atomic uint32_t kickers;
    /* Manual mode: an ovl_poll(p, 0) found deliver_lock taken and asks its
     * holder to look again once it lets go (deliver.c, delivery_release). */
    atomic_bool poll_again;
    bool has_thread;
    ovl__thread thread;

    /* The park (deliver.c, ct_park). A hint, set by ovl_submit_and_poll
     * on a backend with wait_ready (its caller delivers what completes
     * inside its submit) or by a caller that takes the reaper role on any
     * backend (poll_reaping), and cleared by a plain submit or post from
     * outside a callback: while it is set and nothing is in flight, the
     * completion thread waits on park_cv (lock) instead of in the kernel,
     * where every completion, even one the submitter then delivers
     * itself, would wake it. Correctness does not rest on the hint: an op
     * that raises inflight while the thread is parked is always watched
     * (ovl__submitted). ct_parked is written under the lock; a relaxed
     * read outside it is a pre-check (ovl__ct_unpark). */
    atomic_bool parking;
    atomic_bool ct_parked;
    /* Callers that hold or wait for the reaper role on a port with a
     * completion thread (ovl_poll / ovl_submit_and_poll with a timeout):
     * while there are any, the thread parks whatever is in flight
     * (deliver.c, poll_reaping). Written under the lock. */
    atomic_uint reapers;

    /* Counters (lock, except the _Atomic ones). */
    uint64_t submitted;
    uint64_t completed;
    uint64_t cancels;
    uint64_t batches;
    uint64_t stale;
    _Atomic uint64_t syscalls;
};

/* This thread's callback frames and wait (deliver.c). */
extern OVL__THREAD_LOCAL ovl__thr ovl__tls_thr;

/* ==========================================================================
 * Port handles. The ovl_port * the API hands out is not an address but a
 * handle: the top bit set (never a user-space address, so no runtime that
 * scans for pointers takes it for one), the struct's generation above bit
 * 17 and its slot in the handle table in bits 0..16. A port's struct is
 * reused after close with a new generation, so a stale handle resolves to
 * OVL_ECLOSED instead of reaching a newer port, and the memory kept for
 * closed ports is bounded by the most ports ever open at once.
 * ========================================================================== */
#define OVL__HANDLE_SLOT_BITS 17u
#define OVL__MAX_PORTS (1u << OVL__HANDLE_SLOT_BITS)
#define OVL__HANDLE_CHUNK 256u
#define OVL__HANDLE_TAG ((uintptr_t)1 << (sizeof(uintptr_t) * 8u - 1u))

typedef ovl_port *_Atomic ovl__slot;
/* Chunks of the table, allocated on first use and never freed or moved. */
extern ovl__slot *_Atomic ovl__port_chunks[OVL__MAX_PORTS / OVL__HANDLE_CHUNK];
/* Bumped in a child process after fork(): ports created before it belong
 * to the parent (port.c). */
extern _Atomic uint32_t ovl__fork_gen;

/* The struct behind handle h, or NULL with *rc: OVL_EINVAL for a value that
 * was never a handle, OVL_ECLOSED for a closed port whose struct now serves
 * a newer one, OVL_EFORKED for a port inherited across fork(). A struct
 * returned here may still be closed (its state says so) or be reused
 * concurrently: whoever acts on it checks ovl__port_open() under its lock. */
static inline ovl_port *ovl__port_get(const ovl_port *h, int32_t *rc)
{
    uintptr_t v = (uintptr_t)h;
    *rc = OVL_EINVAL;
    if (!(v & OVL__HANDLE_TAG)) return NULL;
    uint32_t slot = (uint32_t)(v & (OVL__MAX_PORTS - 1u));
    ovl__slot *chunk =
        atomic_load_explicit(&ovl__port_chunks[slot / OVL__HANDLE_CHUNK], memory_order_acquire);
    if (!chunk) return NULL;
    ovl_port *p = atomic_load_explicit(&chunk[slot % OVL__HANDLE_CHUNK], memory_order_acquire);
    if (!p) return NULL;
    uintptr_t cur = atomic_load_explicit(&p->handle, memory_order_acquire);
    if (cur != v) {
        if ((v >> OVL__HANDLE_SLOT_BITS) < (cur >> OVL__HANDLE_SLOT_BITS)) *rc = OVL_ECLOSED;
        return NULL;
    }
    if (p->fork_gen != atomic_load_explicit(&ovl__fork_gen, memory_order_relaxed)) {
        *rc = OVL_EFORKED;
        return NULL;
    }
    *rc = OVL_OK;
    return p;
}

/* Whether p still serves handle h and is open. Lock held (or, outside it,
 * a hint that the locked check confirms). */
static inline bool ovl__port_open(ovl_port *p, const ovl_port *h)
{
    return atomic_load(&p->handle) == (uintptr_t)h && atomic_load(&p->state) == OVL__PORT_OPEN;
}

/* The index in p->reg of registered fd `fd`, or -1. Lock held. */
static inline int ovl__reg_find(ovl_port *p, ovl_fd fd)
{
    OVL__ASSERT_HELD(&p->lock);
    for (uint32_t i = 0; i < p->nreg; i++)
        if (p->reg[i].fd == fd) return (int)i;
    return -1;
}

/* Whether p's callback is running on this thread, directly or further up
 * the stack (a callback that polled another port, whose callback ...). */
static inline bool ovl__in_callback(const ovl_port *p)
{
    for (const ovl__cb_frame *f = ovl__tls_thr.top; f; f = f->prev)
        if (f->port == p) return true;
    return false;
}

/* backend.c: resolve the requested backend (config, then OVL_BACKEND for
 * AUTO); *is_auto tells whether the probe chose. */
int32_t ovl__pick_backend(uint32_t want, const ovl__backend **out, bool *is_auto);
/* AUTO's next choice after `be` failed to start a port (NULL: none). */
const ovl__backend *ovl__next_backend(const ovl__backend *be);

/* api.c: submit a checked batch (see ovl_submit). `how`: OVL__SUBMIT_NO_KICK
 * leaves the work for the caller's wait (it holds deliver_lock);
 * OVL__SUBMIT_DELIVERS says the caller delivers next and then calls
 * ovl__ct_unpark (ovl_submit_and_poll on a port with a completion
 * thread). */
enum { OVL__SUBMIT_NO_KICK = 1u, OVL__SUBMIT_DELIVERS = 2u };
int32_t ovl__submit_batch(ovl_port *p, const ovl_port *port, ovl_request *reqs, size_t n,
                          size_t *out_n, unsigned how);

/* deliver.c: the delivery side (see that file). */
size_t ovl__deliver_once(ovl_port *p, int32_t timeout_ms);
bool ovl__port_drained(ovl_port *p);
void *ovl__completion_thread(void *arg);
int32_t ovl__poll_helping(ovl_port *p, const ovl_port *h);
/* The park's two sides for submitters: ovl__submitted under p->lock right
 * after a submit or post from outside a callback raised inflight; ovl__ct_unpark (no lock held)
 * after a caller's own delivery. */
void ovl__submitted(ovl_port *p, bool delivers);
void ovl__ct_unpark(ovl_port *p);
/* Around a blocking wait for port `on` (its close, its delivery lock):
 * OVL_EDEADLK if the wait could never end because a callback on this
 * thread's stack is what it waits for, directly or through other threads
 * blocked the same way; else OVL_OK, and ovl__wait_end() must follow. */
int32_t ovl__wait_begin(ovl_port *on);
void ovl__wait_end(void);

/* op.c: the pool. Lock held for all. */
int32_t ovl__pool_init(ovl_port *p);
void ovl__pool_free(ovl_port *p);
ovl__op *ovl__op_alloc(ovl_port *p);
void ovl__op_release(ovl_port *p, ovl__op *op);
ovl__op *ovl__op_from_token(ovl_port *p, uint64_t token);

/* errors.c: the one place OS error numbers become OVL_E codes. */
int32_t ovl__errno_to_code(int err);
#ifdef _WIN32
int32_t ovl__win32_to_code(uint32_t err);
#endif

/* Backends compiled into this build (NULL where the platform lacks one). */
extern const ovl__backend *const ovl__backend_uring;
extern const ovl__backend *const ovl__backend_threads;
extern const ovl__backend *const ovl__backend_iocp;

#endif /* OVL_INTERNAL_H */
