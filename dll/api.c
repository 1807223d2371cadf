/* api.c - the public API: argument checks, backend selection, the port's
 * life cycle, and the completion thread that turns reaped events into
 * callback batches. No platform code here: backends sit behind
 * ovl__backend (ovl_internal.h), OS primitives behind platform.h / sys.h. */
#include "ovl_internal.h"
#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

OVL__THREAD_LOCAL ovl_port *ovl__tls_cb_port;

/* ---- version ------------------------------------------------------------ */

#define OVL__STR2(x) #x
#define OVL__STR(x) OVL__STR2(x)

OVL_API uint32_t ovl_version(void) { return OVL_VERSION_HEX; }

OVL_API const char *ovl_version_string(void)
{
    return OVL__STR(OVL_VERSION_MAJOR) "." OVL__STR(OVL_VERSION_MINOR) "."
        OVL__STR(OVL_VERSION_PATCH);
}

/* ---- tombstones ----------------------------------------------------------
 * A closed port keeps its struct (locks, state, counters; no pool, no
 * backend) on this list until the library is unloaded, so that a stale
 * handle passed again returns OVL_ECLOSED instead of touching freed memory.
 * The cost is sizeof(struct ovl_port) per port ever closed. */
static ovl__mutex tomb_lock = OVL__MUTEX_INITIALIZER;
static ovl_port *tombs;

static void tomb_add(ovl_port *p)
{
    ovl__mutex_lock(&tomb_lock);
    p->tomb_next = tombs;
    tombs = p;
    ovl__mutex_unlock(&tomb_lock);
}

__attribute__((destructor)) static void tomb_free_all(void)
{
    ovl__mutex_lock(&tomb_lock);
    while (tombs) {
        ovl_port *p = tombs;
        tombs = p->tomb_next;
        ovl__mutex_destroy(&p->lock);
        ovl__mutex_destroy(&p->deliver_lock);
        ovl__cond_destroy(&p->park_cv);
        free(p);
    }
    ovl__mutex_unlock(&tomb_lock);
}

/* ---- backend selection -------------------------------------------------- */

static const ovl__backend *backend_by_id(uint32_t id)
{
    switch (id) {
    case OVL_BACKEND_URING: return ovl__backend_uring;
    case OVL_BACKEND_THREADS: return ovl__backend_threads;
    case OVL_BACKEND_IOCP: return ovl__backend_iocp;
    default: return NULL;
    }
}

static ovl__mutex probe_lock = OVL__MUTEX_INITIALIZER;
static int probe_done;
static uint32_t probe_choice;
static const char *probe_reason;

OVL_API const char *ovl_backend_reason(uint32_t *out_backend)
{
    ovl__mutex_lock(&probe_lock);
    if (!probe_done) {
        if (ovl__backend_iocp) {
            probe_choice = OVL_BACKEND_IOCP;
            probe_reason = "Windows: I/O completion port";
        } else if (ovl__backend_uring &&
                   ovl__uring_probe(&probe_reason) == OVL_OK) {
            probe_choice = OVL_BACKEND_URING;
        } else {
            if (!ovl__backend_uring)
                probe_reason = "io_uring not built in (not Linux): threads";
            probe_choice = OVL_BACKEND_THREADS;
        }
        probe_done = 1;
    }
    if (out_backend) *out_backend = probe_choice;
    const char *r = probe_reason;
    ovl__mutex_unlock(&probe_lock);
    return r;
}

/* Resolve the requested backend: an explicit one (config, or OVL_BACKEND in
 * the environment when the config says AUTO) must exist; AUTO probes. */
static int32_t pick_backend(uint32_t want, const ovl__backend **out,
                            bool *is_auto)
{
    *is_auto = false;
    if (want == OVL_BACKEND_AUTO) {
        const char *env = getenv("OVL_BACKEND");
        if (env && *env) {
            if (!strcmp(env, "uring")) want = OVL_BACKEND_URING;
            else if (!strcmp(env, "threads")) want = OVL_BACKEND_THREADS;
            else if (!strcmp(env, "iocp")) want = OVL_BACKEND_IOCP;
            else if (strcmp(env, "auto") != 0) return OVL_EINVAL;
        }
    }
    if (want == OVL_BACKEND_AUTO) {
        *is_auto = true;
        ovl_backend_reason(&want);
        *out = backend_by_id(want);
        return *out ? OVL_OK : OVL_EUNAVAIL;
    }
    const ovl__backend *b = backend_by_id(want);
    if (!b) return OVL_EUNAVAIL;
    if (want == OVL_BACKEND_URING) {
        const char *why;
        if (ovl__uring_probe(&why) != OVL_OK) return OVL_EUNAVAIL;
    }
    *out = b;
    return OVL_OK;
}

/* ---- delivery ------------------------------------------------------------ */

/* Reap once (waiting up to timeout_ms), turn the events into one callback
 * batch and deliver it. Only one thread at a time: the completion thread, or
 * the holder of deliver_lock in manual mode. Returns completions delivered. */
static size_t deliver_once(ovl_port *p, int32_t timeout_ms)
{
    size_t n = p->backend->wait(p, timeout_ms, p->events, p->batch_cap);
    if (n == 0) return 0;

    ovl__mutex_lock(&p->lock);
    size_t k = 0, orphans = 0;
    for (size_t i = 0; i < n; i++) {
        const ovl__event *ev = &p->events[i];
        ovl__op *op = ovl__op_from_token(p, ev->token);
        if (!op) {
            /* Unknown or stale token: never deliver it twice. */
            p->stale++;
            continue;
        }
        if (ev->result == OVL_ECANCELED && !op->cancel_req && op->kind != OVL_OP_POST &&
            p->backend->resubmit_orphans && atomic_load(&p->state) == OVL__PORT_OPEN) {
            /* Cancelled by the exit of the thread that issued it, not by
             * anyone's request (see resubmit_orphans): nothing was
             * transferred, so issue it again from this (living) thread. */
            op->bstate = 0;
            p->backend->submit(p, &op, 1);
            orphans++;
            continue;
        }
        ovl_completion *c = &p->batch[k++];
        c->ctx = op->ctx;
        c->id = ev->token;
        c->op = op->kind;
        if (op->kind == OVL_OP_POST) {
            c->result = op->result;
            c->os_error = 0;
        } else if (ev->result == OVL_EINTR && op->cancel_req) {
            /* A worker interrupted on our request: that is a cancel. */
            c->result = OVL_ECANCELED;
            c->os_error = ev->os_error;
        } else {
            c->result = ev->result;
            c->os_error = ev->result < 0 ? ev->os_error : 0;
        }
        /* The op is free again before the callback runs, so a callback
         * that resubmits always finds a slot (depth ops in flight, each
         * completion resubmitting one: the event-loop pattern). */
        ovl__op_release(p, op);
    }
    p->completed += k;
    if (k) p->batches++;
    ovl_callback cb = p->cb;
    void *ud = p->userdata;
    ovl__mutex_unlock(&p->lock);
    /* We hold delivery, so the backend outlives this call (close joins
     * the completion thread or waits for deliver_lock / users). */
    if (orphans) p->backend->kick(p, false);

    if (k && cb) {
        ovl_port *prev = ovl__tls_cb_port;
        ovl__tls_cb_port = p;
        cb(p->batch, k, ud);
        ovl__tls_cb_port = prev;
    }
    return k;
}

static bool port_drained(ovl_port *p)
{
    ovl__mutex_lock(&p->lock);
    bool done = atomic_load(&p->state) != OVL__PORT_OPEN && p->inflight == 0;
    ovl__mutex_unlock(&p->lock);
    return done;
}

/* The completion thread's turn at deliver_lock, which an ovl_poll(p, 0)
 * caller on another thread may hold for the length of one callback batch.
 * Spin briefly before sleeping on the mutex: a blocked completion thread
 * would make that caller's unlock a futex wake-up of another CPU, the very
 * hand-off ovl_poll(p, 0) is there to avoid. */
static void ct_deliver_lock(ovl_port *p)
{
    for (int i = 0; i < 2048; i++) {
        if (ovl__mutex_trylock(&p->deliver_lock)) return;
        if (i < 1024) ovl__cpu_relax();
        else ovl__yield();
    }
    ovl__mutex_lock(&p->deliver_lock);
}

/* One delivery round of the completion thread, waiting up to timeout_ms
 * (0 or -1). With a backend that can wait without reaping, the sleep
 * happens outside deliver_lock (see ovl__backend.wait_ready). */
static size_t ct_deliver(ovl_port *p, int32_t timeout_ms)
{
    size_t n;
    if (timeout_ms != 0 && p->backend->wait_ready) {
        p->backend->wait_ready(p);
        timeout_ms = 0;
    }
    ct_deliver_lock(p);
    n = deliver_once(p, timeout_ms);
    ovl__mutex_unlock(&p->deliver_lock);
    return n;
}

/* OVL_PORT_INLINE: with nothing in flight, wait here rather than in the
 * kernel (see ovl_port.parking). Returns when ops are in flight or the port
 * is closing. */
static void ct_park(ovl_port *p)
{
    ovl__mutex_lock(&p->lock);
    while (p->inflight == 0 && atomic_load(&p->state) == OVL__PORT_OPEN) {
        p->ct_parked = true;
        ovl__cond_wait(&p->park_cv, &p->lock);
    }
    p->ct_parked = false;
    ovl__mutex_unlock(&p->lock);
}

/* Called by a thread that may have left ops in flight (a submit on an
 * OVL_PORT_INLINE port, after delivering what completed inside it): if the
 * completion thread is parked, it must watch them now. Since the thread
 * parks only after seeing inflight == 0 under the lock, and this runs after
 * the caller's last change to inflight, no op is ever left unwatched. */
static void ct_unpark(ovl_port *p)
{
    ovl__mutex_lock(&p->lock);
    if (p->ct_parked && p->inflight) {
        p->ct_parked = false;
        ovl__cond_signal(&p->park_cv);
    }
    ovl__mutex_unlock(&p->lock);
}

static void *completion_thread(void *arg)
{
    ovl_port *p = arg;
    for (;;) {
        size_t n = 0;
        if (p->parking) ct_park(p);
        if (p->spin_usec) {
            /* Opt-in: poll without sleeping for a while first; saves the
             * wake-up latency when completions arrive in a steady stream. */
            uint64_t end = ovl__now_us() + p->spin_usec;
            while ((n = ct_deliver(p, 0)) == 0 && ovl__now_us() < end)
                ovl__cpu_relax();
        }
        /* A close's wake-up consumed while spinning looks like an empty
         * poll (0): check before sleeping, or we sleep for ever with
         * nothing left in flight to wake us. */
        if (n == 0 && p->spin_usec && port_drained(p)) break;
        /* The wait also flushes submits made by the previous batch's
         * callbacks (io_uring: one io_uring_enter submits and waits). */
        if (n == 0) n = ct_deliver(p, -1);
        if (atomic_load(&p->state) != OVL__PORT_OPEN && port_drained(p)) break;
    }
    return NULL;
}

/* ---- creation ----------------------------------------------------------- */

#define OVL__CONFIG_V1_SIZE ((uint32_t)sizeof(ovl_port_config))

OVL_API int32_t ovl_port_config_init(ovl_port_config *out, uint32_t size)
{
    if (!out || size < OVL__CONFIG_V1_SIZE) return OVL_EINVAL;
    memset(out, 0, size);
    out->size = size;
    out->queue_depth = OVL_DEFAULT_QUEUE_DEPTH;
    out->backend = OVL_BACKEND_AUTO;
    return OVL_OK;
}

static void port_free_resources(ovl_port *p)
{
    ovl__pool_free(p);
    free(p->events);
    free(p->batch);
    p->events = NULL;
    p->batch = NULL;
}

OVL_API int32_t ovl_create_port(const ovl_port_config *cfg, ovl_port **out)
{
    if (!out) return OVL_EINVAL;
    *out = NULL;
    ovl_port_config c;
    ovl_port_config_init(&c, sizeof c);
    if (cfg) {
        if (cfg->size < OVL__CONFIG_V1_SIZE) return OVL_EINVAL;
        /* Read no more than the caller's struct holds (an older, shorter
         * version keeps our defaults for the fields it lacks) and ignore
         * fields past ours (a newer header). */
        memcpy(&c, cfg, cfg->size < sizeof c ? cfg->size : sizeof c);
        c.size = sizeof c;
    }
    if (c.queue_depth == 0 || c.queue_depth > OVL_MAX_QUEUE_DEPTH)
        return OVL_EINVAL;
    if (c.backend > OVL_BACKEND_IOCP) return OVL_EINVAL;
    if (c.flags & ~(uint32_t)(OVL_PORT_MANUAL | OVL_PORT_INLINE)) return OVL_EINVAL;
    if ((c.flags & OVL_PORT_MANUAL) && (c.flags & OVL_PORT_INLINE))
        return OVL_EINVAL; /* manual mode delivers on the caller already */
    if (c.threads > 1024) return OVL_EINVAL;

    const ovl__backend *be = NULL;
    bool is_auto;
    int32_t rc = pick_backend(c.backend, &be, &is_auto);
    if (rc != OVL_OK) return rc;

    ovl_port *p = calloc(1, sizeof *p);
    if (!p) return OVL_ENOMEM;
    p->magic = OVL__PORT_MAGIC;
    atomic_init(&p->state, OVL__PORT_OPEN);
    p->flags = c.flags;
    p->depth = c.queue_depth;
    p->nthreads = c.threads ? c.threads : 4;
    p->threads_cfg = c.threads;
    p->spin_usec = c.spin_usec;
    p->backend = be;
    p->cb = c.callback;
    p->userdata = c.userdata;
    p->batch_cap = p->depth < OVL__BATCH_MAX ? p->depth : OVL__BATCH_MAX;
    if (ovl__mutex_init(&p->lock) != 0) {
        free(p);
        return OVL_ENOMEM;
    }
    if (ovl__mutex_init(&p->deliver_lock) != 0) {
        ovl__mutex_destroy(&p->lock);
        free(p);
        return OVL_ENOMEM;
    }
    if (ovl__cond_init(&p->park_cv) != 0) {
        ovl__mutex_destroy(&p->deliver_lock);
        ovl__mutex_destroy(&p->lock);
        free(p);
        return OVL_ENOMEM;
    }
    p->events = calloc(p->batch_cap, sizeof *p->events);
    p->batch = calloc(p->batch_cap, sizeof *p->batch);
    rc = (p->events && p->batch) ? ovl__pool_init(p) : OVL_ENOMEM;
    if (rc == OVL_OK) rc = be->init(p);
    if ((rc == OVL_ENOMEM || rc == OVL_EUNAVAIL) && is_auto &&
        be == ovl__backend_uring && ovl__backend_threads) {
        /* The probe's small ring worked but this port's ring does not (a
         * locked-memory limit on big rings, say): auto means "what works",
         * so fall back for this port too. An explicit request does not. */
        be = p->backend = ovl__backend_threads;
        rc = be->init(p);
    }
    if (rc != OVL_OK) goto fail;
    p->parking = (p->flags & OVL_PORT_INLINE) && be->wait_ready;

    if (!(p->flags & OVL_PORT_MANUAL)) {
        if (ovl__thread_create(&p->thread, completion_thread, p) != 0) {
            be->destroy(p);
            rc = OVL_EAGAIN; /* as documented, whatever the errno */
            goto fail;
        }
        p->has_thread = true;
    }
    *out = p;
    return OVL_OK;

fail:
    port_free_resources(p);
    ovl__mutex_destroy(&p->lock);
    ovl__mutex_destroy(&p->deliver_lock);
    ovl__cond_destroy(&p->park_cv);
    free(p);
    return rc;
}

static inline int32_t port_check(const ovl_port *p)
{
    if (!p || p->magic != OVL__PORT_MAGIC) return OVL_EINVAL;
    return OVL_OK;
}

/* Enter the backend outside the lock. `users` keeps close from destroying
 * the backend under us: it is raised under the lock while the port is open,
 * and close waits for it to drop to zero. */
static void kick_unlocked(ovl_port *p, bool from_cb)
{
    p->backend->kick(p, from_cb);
    atomic_fetch_sub(&p->users, 1);
}

static int32_t poll_helping(ovl_port *p);

/* OVL_PORT_INLINE: after a submit from outside a callback, deliver on this
 * thread what completed inside it (and let the completion thread watch
 * what did not). */
static inline void after_submit(ovl_port *p, bool from_cb)
{
    if ((p->flags & OVL_PORT_INLINE) && !from_cb) (void)poll_helping(p);
}

OVL_API int32_t ovl_set_callback(ovl_port *p, ovl_callback cb, void *userdata)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        rc = OVL_ECLOSED;
    } else {
        p->cb = cb;
        p->userdata = userdata;
    }
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_associate(ovl_port *p, ovl_fd fd)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (!ovl__fd_plausible(fd)) return OVL_EBADF;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) rc = OVL_ECLOSED;
    else if (p->backend->associate) rc = p->backend->associate(p, fd);
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_register_fd(ovl_port *p, ovl_fd fd)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (!ovl__fd_plausible(fd)) return OVL_EBADF;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        rc = OVL_ECLOSED;
        goto out;
    }
    if (ovl__reg_find(p, fd) >= 0) {
        rc = OVL_EINVAL;
        goto out;
    }
    if (p->nreg == OVL_MAX_REGISTERED_FDS) {
        rc = OVL_ENOSPC;
        goto out;
    }
    uint32_t slot = 0;
    while (p->reg_slots & (1ull << slot)) slot++;
    if (p->backend->register_fd && (rc = p->backend->register_fd(p, slot, fd)) != OVL_OK)
        goto out;
    p->reg_slots |= 1ull << slot;
    p->reg[p->nreg].fd = fd;
    p->reg[p->nreg].slot = slot;
    p->nreg++;
out:
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_unregister_fd(ovl_port *p, ovl_fd fd)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        rc = OVL_ECLOSED;
        goto out;
    }
    int i = ovl__reg_find(p, fd);
    if (i < 0) {
        rc = OVL_ENOENT;
        goto out;
    }
    uint32_t slot = p->reg[i].slot;
    /* Ops in flight hold their own reference to the file: emptying the
     * slot does not disturb them. */
    if (p->backend->register_fd) (void)p->backend->register_fd(p, slot, OVL__NO_FD);
    p->reg_slots &= ~(1ull << slot);
    p->reg[i] = p->reg[--p->nreg];
out:
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API const char *ovl_backend_name(const ovl_port *p)
{
    if (port_check(p)) return "invalid";
    return p->backend->name;
}

OVL_API int32_t ovl_port_stats(const ovl_port *cp, ovl_stats *out)
{
    if (port_check(cp) || !out || out->size < sizeof(ovl_stats))
        return OVL_EINVAL;
    ovl_port *p = (ovl_port *)cp; /* the lock is not part of the value */
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    ovl__mutex_lock(&p->lock);
    s.inflight = p->inflight;
    s.submitted = p->submitted;
    s.completed = p->completed;
    s.cancels = p->cancels;
    s.batches = p->batches;
    s.stale = p->stale;
    ovl__mutex_unlock(&p->lock);
    s.syscalls = atomic_load(&p->syscalls);
    memcpy(out, &s, sizeof s);
    return OVL_OK;
}

/* ---- submission --------------------------------------------------------- */

static int32_t check_request(const ovl_request *r)
{
    switch (r->op) {
    case OVL_OP_READ:
    case OVL_OP_WRITE:
        if (r->flags) return OVL_EINVAL;
        if (!ovl__fd_plausible(r->fd)) return OVL_EBADF;
        if (r->len > OVL_MAX_IO_SIZE) return OVL_ETOOBIG;
        if (!r->buf && r->len) return OVL_EINVAL;
        if (r->offset < 0 && r->offset != OVL_OFFSET_CURRENT) return OVL_EINVAL;
        if (r->offset > INT64_MAX - (int64_t)r->len) return OVL_EFBIG;
        return OVL_OK;
    case OVL_OP_FSYNC:
        if (r->flags & ~(uint32_t)OVL_FSYNC_DATA) return OVL_EINVAL;
        if (!ovl__fd_plausible(r->fd)) return OVL_EBADF;
        return OVL_OK;
    case OVL_OP_POST: /* the value travels in offset; nothing else is used */
        if (r->flags || r->fd || r->buf || r->len) return OVL_EINVAL;
        return OVL_OK;
    default:
        return OVL_EINVAL;
    }
}

/* Fill a FREE->INFLIGHT op from a checked request. */
static inline void op_fill(ovl__op *op, const ovl_request *r)
{
    op->kind = r->op;
    op->flags = r->flags;
    op->fd = r->fd;
    op->buf = r->buf;
    op->len = r->len;
    op->offset = r->offset;
    op->ctx = r->ctx;
    if (r->op == OVL_OP_POST) op->result = r->offset; /* the posted value */
}

#define OVL__SUBMIT_CHUNK 64

/* The batch submit path: one lock for the whole batch, the backend's submit
 * in chunks, then one kick (io_uring: one io_uring_enter) after unlock.
 * Requests are checked here, under the lock, one by one. */
static int32_t submit_batch(ovl_port *p, ovl_request *reqs, size_t n,
                            size_t *out_n)
{
    size_t done = 0;
    int32_t rc = OVL_OK;
    bool from_cb = ovl__in_callback(p);
    ovl__op *chunk[OVL__SUBMIT_CHUNK];
    size_t m = 0;

    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        ovl__mutex_unlock(&p->lock);
        rc = OVL_ECLOSED;
        goto out;
    }
    for (; done < n; done++) {
        ovl_request *r = &reqs[done];
        if ((rc = check_request(r)) != OVL_OK) break;
        ovl__op *op = ovl__op_alloc(p);
        if (!op) {
            rc = OVL_EQUEUEFULL;
            break;
        }
        op_fill(op, r);
        r->id = ovl__op_token(op);
        chunk[m++] = op;
        if (m == OVL__SUBMIT_CHUNK) {
            p->backend->submit(p, chunk, m);
            m = 0;
        }
    }
    if (m) p->backend->submit(p, chunk, m);
    p->submitted += done;
    /* Inside this port's callback the backend cannot be destroyed under us
     * (close joins this thread, or holds deliver_lock in manual mode), so
     * the users count, two atomic RMWs per submit, is only for others. */
    if (done && !from_cb) atomic_fetch_add(&p->users, 1);
    ovl__mutex_unlock(&p->lock);
    if (done) {
        if (from_cb) p->backend->kick(p, true);
        else kick_unlocked(p, false);
        after_submit(p, from_cb);
    }
out:
    for (size_t i = done; i < n; i++) reqs[i].id = 0;
    if (out_n) *out_n = done;
    return rc;
}

OVL_API int32_t ovl_submit(ovl_port *p, ovl_request *reqs, size_t n,
                           size_t *out_submitted)
{
    if (out_submitted) *out_submitted = 0;
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (n == 0) return OVL_OK;
    if (!reqs) return OVL_EINVAL;
    return submit_batch(p, reqs, n, out_submitted);
}

/* The single-op path of ovl_submit_read/_write/_fsync and ovl_post: the
 * same steps as submit_batch for one request, without the loop, the chunk
 * array or the request copy (posts from callbacks are the hottest caller). */
static int32_t submit_one(ovl_port *p, uint32_t kind, ovl_fd fd, void *buf,
                          size_t len, int64_t offset, uint32_t flags,
                          void *ctx, uint64_t *out_id)
{
    if (out_id) *out_id = 0;
    int32_t rc = port_check(p);
    if (rc) return rc;
    const ovl_request r = {kind, flags, fd, buf, (uint64_t)len, offset, ctx, 0};
    bool from_cb = ovl__in_callback(p);
    ovl__mutex_lock(&p->lock);
    /* The same order of checks as submit_batch: closed, then arguments. */
    if (atomic_load(&p->state) != OVL__PORT_OPEN) rc = OVL_ECLOSED;
    else if (kind != OVL_OP_POST) rc = check_request(&r);
    if (rc != OVL_OK) {
        ovl__mutex_unlock(&p->lock);
        return rc;
    }
    ovl__op *op = ovl__op_alloc(p);
    if (!op) {
        ovl__mutex_unlock(&p->lock);
        return OVL_EQUEUEFULL;
    }
    op_fill(op, &r);
    uint64_t id = ovl__op_token(op);
    p->backend->submit(p, &op, 1);
    p->submitted++;
    if (!from_cb) atomic_fetch_add(&p->users, 1); /* see submit_batch */
    ovl__mutex_unlock(&p->lock);
    if (from_cb) p->backend->kick(p, true);
    else kick_unlocked(p, false);
    /* The id first: the op may be delivered (and its id reused) below. */
    if (out_id) *out_id = id;
    after_submit(p, from_cb);
    return OVL_OK;
}

OVL_API int32_t ovl_submit_read(ovl_port *p, ovl_fd fd, void *buf, size_t len,
                                int64_t offset, void *ctx, uint64_t *out_id)
{
    return submit_one(p, OVL_OP_READ, fd, buf, len, offset, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_write(ovl_port *p, ovl_fd fd, const void *buf,
                                 size_t len, int64_t offset, void *ctx,
                                 uint64_t *out_id)
{
    /* The write source is only ever read; the op stores it untyped. */
    return submit_one(p, OVL_OP_WRITE, fd, (void *)(uintptr_t)buf, len,
                      offset, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_fsync(ovl_port *p, ovl_fd fd, uint32_t flags,
                                 void *ctx, uint64_t *out_id)
{
    return submit_one(p, OVL_OP_FSYNC, fd, NULL, 0, 0, flags, ctx, out_id);
}

OVL_API int32_t ovl_post(ovl_port *p, int64_t value, void *ctx,
                         uint64_t *out_id)
{
    return submit_one(p, OVL_OP_POST, 0, NULL, 0, value, 0, ctx, out_id);
}

OVL_API int32_t ovl_cancel(ovl_port *p, uint64_t id)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    bool from_cb = ovl__in_callback(p);
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        ovl__mutex_unlock(&p->lock);
        return OVL_ECLOSED;
    }
    ovl__op *op = ovl__op_from_token(p, id);
    if (!op) {
        ovl__mutex_unlock(&p->lock);
        return OVL_ENOENT;
    }
    p->cancels++;
    op->cancel_req = 1;
    /* A post has nothing to interrupt: it completes with its value. */
    bool kick = op->kind != OVL_OP_POST;
    if (kick) {
        p->backend->cancel(p, op);
        if (!from_cb) atomic_fetch_add(&p->users, 1); /* see submit_batch */
    }
    ovl__mutex_unlock(&p->lock);
    if (kick) {
        if (from_cb) p->backend->kick(p, true);
        else kick_unlocked(p, false);
    }
    return OVL_OK;
}

/* ---- manual mode -------------------------------------------------------- */

/* ovl_poll(p, 0) on a port with a completion thread: deliver what is ready
 * on the calling thread, unless someone (the completion thread) is
 * delivering right now. One round only: the callbacks' deferred submits are
 * flushed at the end and what they produce is the completion thread's, so
 * a resubmitting callback cannot keep the caller here for ever. */
static int32_t poll_helping(ovl_port *p)
{
    /* `users` keeps close from destroying the backend under us. Close
     * stores CLOSING before it waits for users to drop to zero, we raise
     * users before we look at the state: with both seq_cst, at least one
     * of us sees the other. */
    atomic_fetch_add(&p->users, 1);
    int32_t rc = 0;
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        rc = OVL_ECLOSED;
    } else {
        if (ovl__mutex_trylock(&p->deliver_lock)) {
            size_t n = deliver_once(p, 0);
            if (n) p->backend->kick(p, false);
            ovl__mutex_unlock(&p->deliver_lock);
            rc = (int32_t)n;
        }
        if (p->parking) ct_unpark(p);
    }
    atomic_fetch_sub(&p->users, 1);
    return rc;
}

OVL_API int32_t ovl_poll(ovl_port *p, int32_t timeout_ms)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (ovl__in_callback(p)) return OVL_EDEADLK;
    if (!(p->flags & OVL_PORT_MANUAL)) {
        if (timeout_ms != 0) return OVL_EMODE;
        return poll_helping(p);
    }
    if (atomic_load(&p->state) != OVL__PORT_OPEN) return OVL_ECLOSED;

    if (timeout_ms == 0) {
        /* "Don't wait" includes not waiting for another thread that is
         * delivering right now: it will deliver what is ready. */
        if (!ovl__mutex_trylock(&p->deliver_lock)) return 0;
    } else {
        ovl__mutex_lock(&p->deliver_lock);
    }
    uint64_t deadline = timeout_ms > 0 ? ovl__now_ms() + (uint64_t)timeout_ms : 0;
    size_t total = 0;
    int32_t wait_ms = timeout_ms < 0 ? -1 : timeout_ms;
    for (;;) {
        if (atomic_load(&p->state) != OVL__PORT_OPEN) {
            if (!total) rc = OVL_ECLOSED;
            break;
        }
        size_t n = deliver_once(p, wait_ms);
        if (n) {
            total += n;
            /* A full batch may have left more behind: deliver whatever
             * else is ready now, without waiting, up to about one queue's
             * worth (everything that was ready when the call began, but no
             * more, or a callback that answers every completion with a
             * submit, whose reads and posts complete as soon as they are
             * flushed, would keep this call going for ever). After a
             * partial batch the CQ was empty: another round would only
             * cost the manual-mode eventfd's reset, one read() per call,
             * and leaving it signalled costs an outside poller at most one
             * spurious wake-up. */
            while (n == p->batch_cap && total < p->depth &&
                   (n = deliver_once(p, 0)) > 0)
                total += n;
            break;
        }
        if (timeout_ms == 0) break;
        if (timeout_ms > 0) {
            uint64_t now = ovl__now_ms();
            if (now >= deadline) break;
            wait_ms = (int32_t)(deadline - now);
        }
    }
    /* Submits made by the callbacks above were deferred; nobody else will
     * flush them before the next ovl_poll, so do it now. */
    if (total) p->backend->kick(p, false);
    ovl__mutex_unlock(&p->deliver_lock);
    return rc ? rc : (int32_t)total;
}

OVL_API int32_t ovl_port_event(ovl_port *p, ovl_fd *out)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (!out) return OVL_EINVAL;
    if (!(p->flags & OVL_PORT_MANUAL)) return OVL_EMODE;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) rc = OVL_ECLOSED;
    else if (!p->backend->event_fd) rc = OVL_ENOTSUP;
    else rc = p->backend->event_fd(p, out);
    ovl__mutex_unlock(&p->lock);
    return rc;
}

/* ---- close -------------------------------------------------------------- */

OVL_API int32_t ovl_close_port(ovl_port *p)
{
    int32_t rc = port_check(p);
    if (rc) return rc;
    if (ovl__in_callback(p)) return OVL_EDEADLK;

    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->state) != OVL__PORT_OPEN) {
        ovl__mutex_unlock(&p->lock);
        return OVL_ECLOSED;
    }
    /* From here every submit, cancel and post fails with OVL_ECLOSED. */
    atomic_store(&p->state, OVL__PORT_CLOSING);
    ovl__cond_broadcast(&p->park_cv); /* a parked completion thread */
    for (uint32_t i = 0; i < p->depth; i++) {
        ovl__op *op = &p->ops[i];
        if (op->state == OVL__OP_INFLIGHT && op->kind != OVL_OP_POST) {
            op->cancel_req = 1;
            p->backend->cancel(p, op);
        }
    }
    ovl__mutex_unlock(&p->lock);

    /* Callers that entered the backend before CLOSING finish first. */
    while (atomic_load(&p->users) != 0) ovl__yield();
    p->backend->kick(p, false);

    if (p->has_thread) {
        /* The thread delivers the cancelled completions and stops once
         * nothing is in flight; wake it in case nothing is. */
        p->backend->wake(p);
        ovl__thread_join(p->thread);
        p->has_thread = false;
    } else {
        /* Manual mode: a concurrent ovl_poll sees CLOSING and returns; then
         * the remaining completions are delivered here. */
        p->backend->wake(p);
        ovl__mutex_lock(&p->deliver_lock);
        while (!port_drained(p)) deliver_once(p, -1);
        ovl__mutex_unlock(&p->deliver_lock);
    }

    p->backend->destroy(p);
    p->be = NULL;
    ovl__mutex_lock(&p->lock);
    port_free_resources(p);
    atomic_store(&p->state, OVL__PORT_CLOSED);
    ovl__mutex_unlock(&p->lock);
    tomb_add(p);
    return OVL_OK;
}
