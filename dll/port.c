/* port.c - a port's life cycle: creation (configuration, backend, pool,
 * completion thread), close, and what is kept of a closed port so that a
 * stale handle stays safe to pass. */
#include "ovl_internal.h"
#include "sys.h"

#include <stdlib.h>
#include <string.h>

/* ---- the handle table -----------------------------------------------------
 * Every port's struct sits in a slot of this table for the life of the
 * process (see ovl_internal.h for the handle's layout). After close the
 * struct keeps its handle, state and counters (so ovl_port_stats still
 * reads them and every other call returns OVL_ECLOSED) and joins the free
 * list; a new port takes the oldest free struct once more than QUARANTINE
 * are free, with a new generation. Memory for closed ports is thus bounded
 * by the most ports open at one time, plus QUARANTINE structs. */
#define QUARANTINE 64u

ovl__slot *_Atomic ovl__port_chunks[OVL__MAX_PORTS / OVL__HANDLE_CHUNK];
_Atomic uint32_t ovl__fork_gen;

static ovl__mutex ports_lock = OVL__MUTEX_INITIALIZER;
static uint32_t nslots;                 /* slots ever used (ports_lock) */
static ovl_port *free_head, *free_tail; /* FIFO of closed ports' structs */
static uint32_t nfree;

static uintptr_t handle_of(uint32_t slot, uintptr_t gen)
{
    uintptr_t gmask = (OVL__HANDLE_TAG - 1u) >> OVL__HANDLE_SLOT_BITS;
    return OVL__HANDLE_TAG | ((gen & gmask) << OVL__HANDLE_SLOT_BITS) | slot;
}

/* A child of fork() must not reuse a struct its parent used: another
 * parent thread may have held its locks at the moment of the fork. So the
 * child forgets the free list (those structs stay unused in the child) and
 * marks every inherited port as its parent's (ovl__fork_gen). The table's
 * lock is held across fork() so that the child's copy is consistent. */
static void atfork_prepare(void) { ovl__mutex_lock(&ports_lock); }
static void atfork_parent(void) { ovl__mutex_unlock(&ports_lock); }
static void atfork_child(void)
{
    free_head = free_tail = NULL;
    nfree = 0;
    atomic_fetch_add(&ovl__fork_gen, 1);
    ovl__mutex_unlock(&ports_lock);
}

static ovl__once fork_once = OVL__ONCE_INIT;
static void register_atfork(void) { ovl__atfork(atfork_prepare, atfork_parent, atfork_child); }

/* A struct for a new port: a reused one (its locks live, its handle
 * advanced to the next generation) or a new one in a new slot. NULL when
 * out of memory or slots. */
static ovl_port *port_struct_get(void)
{
    ovl__once_run(&fork_once, register_atfork);
    ovl__mutex_lock(&ports_lock);
    ovl_port *p = NULL;
    if (nfree > QUARANTINE) {
        p = free_head;
        free_head = p->q_next;
        if (!free_head) free_tail = NULL;
        nfree--;
        ovl__mutex_unlock(&ports_lock);
        p->q_next = NULL;
        return p;
    }
    if (nslots == OVL__MAX_PORTS) goto out;
    uint32_t slot = nslots;
    ovl__slot *chunk = atomic_load(&ovl__port_chunks[slot / OVL__HANDLE_CHUNK]);
    if (!chunk) {
        chunk = calloc(OVL__HANDLE_CHUNK, sizeof *chunk);
        if (!chunk) goto out;
        atomic_store(&ovl__port_chunks[slot / OVL__HANDLE_CHUNK], chunk);
    }
    p = calloc(1, sizeof *p);
    if (!p) goto out;
    if (ovl__mutex_init(&p->lock) != 0) goto fail_p;
    if (ovl__mutex_init(&p->deliver_lock) != 0) goto fail_lock;
    if (ovl__cond_init(&p->park_cv) != 0) goto fail_dlock;
    if (ovl__cond_init(&p->closed_cv) != 0) goto fail_park;
    p->slot = slot;
    atomic_init(&p->handle, handle_of(slot, 0));
    atomic_init(&p->state, OVL__PORT_CLOSED);
    atomic_store(&chunk[slot % OVL__HANDLE_CHUNK], p);
    nslots++;
    goto out;
fail_park:
    ovl__cond_destroy(&p->park_cv);
fail_dlock:
    ovl__mutex_destroy(&p->deliver_lock);
fail_lock:
    ovl__mutex_destroy(&p->lock);
fail_p:
    free(p);
    p = NULL;
out:
    ovl__mutex_unlock(&ports_lock);
    return p;
}

/* Back on the free list: a struct whose port is CLOSED, or one that never
 * served (a failed create). */
static void port_struct_put(ovl_port *p)
{
    ovl__mutex_lock(&ports_lock);
    p->q_next = NULL;
    if (free_tail) free_tail->q_next = p;
    else free_head = p;
    free_tail = p;
    nfree++;
    ovl__mutex_unlock(&ports_lock);
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
    free(p->local);
    p->local = NULL;
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
    if (c.queue_depth == 0 || c.queue_depth > OVL_MAX_QUEUE_DEPTH) return OVL_EINVAL;
    if (c.backend > OVL_BACKEND_IOCP) return OVL_EINVAL;
    /* Unknown bits, and the retired OVL_PORT_INLINE (submits delivering
     * on the caller is ovl_submit_and_poll's job now): refused, not
     * ignored, so a program that asks for them learns it at once. */
    if (c.flags & ~(uint32_t)OVL_PORT_MANUAL) return OVL_EINVAL;
    if (c.threads > 1024) return OVL_EINVAL;

    const ovl__backend *be = NULL;
    bool is_auto;
    int32_t rc = ovl__pick_backend(c.backend, &be, &is_auto);
    if (rc != OVL_OK) return rc;

    ovl_port *p = port_struct_get();
    if (!p) return OVL_ENOMEM;
    /* Quiescent: closed, nobody inside (close finished before the struct
     * went on the free list). A stale caller that still holds the old
     * handle sees it change here, under the lock, and gets OVL_ECLOSED. */
    ovl__mutex_lock(&p->lock);
    uintptr_t next = handle_of(p->slot, (atomic_load(&p->handle) >> OVL__HANDLE_SLOT_BITS) + 1u);
    atomic_store(&p->handle, next);
    p->fork_gen = atomic_load(&ovl__fork_gen);
    p->flags = c.flags;
    p->depth = c.queue_depth;
    p->nthreads = c.threads ? c.threads : 4;
    p->threads_cfg = c.threads;
    p->spin_usec = c.spin_usec;
    p->backend = be;
    p->be = NULL;
    p->cb = c.callback;
    p->userdata = c.userdata;
    p->batch_cap = p->depth < OVL__BATCH_MAX ? p->depth : OVL__BATCH_MAX;
    p->nreg = 0;
    p->reg_slots = 0;
    atomic_store(&p->cb_thr, NULL);
    atomic_store(&p->users, 0);
    atomic_store(&p->poll_again, false);
    p->has_thread = false;
    atomic_store(&p->parking, false);
    atomic_store(&p->reapers, 0u);
    atomic_store(&p->ct_parked, false);
    p->submitted = p->completed = p->cancels = p->batches = p->stale = 0;
    atomic_store(&p->syscalls, 0);
    ovl__mutex_unlock(&p->lock);
    p->events = calloc(p->batch_cap, sizeof *p->events);
    p->batch = calloc(p->batch_cap, sizeof *p->batch);
    rc = (p->events && p->batch) ? ovl__pool_init(p) : OVL_ENOMEM;
    if (rc == OVL_OK) rc = be->init(p);
    /* The probe passed but this port cannot start (io_uring: a
     * locked-memory limit on big rings, say): auto means "what works", so
     * try the next candidate for this port. An explicit request does not. */
    while ((rc == OVL_ENOMEM || rc == OVL_EUNAVAIL) && is_auto) {
        const ovl__backend *next = ovl__next_backend(be);
        if (!next) break;
        be = p->backend = next;
        rc = be->init(p);
    }
    if (rc != OVL_OK) goto fail;

    /* Open now (the completion thread runs while it is): nobody can call
     * through the new handle before we return it, and a stale handle has
     * another generation. */
    atomic_store(&p->state, OVL__PORT_OPEN);
    if (!(p->flags & OVL_PORT_MANUAL)) {
        if (ovl__thread_create(&p->thread, ovl__completion_thread, p) != 0) {
            atomic_store(&p->state, OVL__PORT_CLOSED);
            be->destroy(p);
            rc = OVL_EAGAIN; /* as documented, whatever the errno */
            goto fail;
        }
        p->has_thread = true;
    }
    *out = (ovl_port *)next;
    return OVL_OK;

fail:
    port_free_resources(p);
    port_struct_put(p);
    return rc;
}

/* ---- close -------------------------------------------------------------- */

/* In a child of fork(), on a port of its parent: release what is this
 * process's own (its copies of the port's fds and mappings, its memory)
 * without a system call that reaches what the parent still uses (no
 * io_uring_enter or io_uring_register on the shared ring, no epoll_ctl on
 * the shared epoll set, no write to a shared wake fd) and without taking
 * the port's locks, which a parent thread may have held at the fork. The
 * struct is never reused in the child (atfork_child). */
static int32_t close_inherited(ovl_port *p, const ovl_port *h)
{
    if (atomic_load(&p->handle) != (uintptr_t)h || atomic_load(&p->state) == OVL__PORT_CLOSED)
        return OVL_ECLOSED;
    if (p->be && p->backend->forget) p->backend->forget(p);
    p->be = NULL;
    p->has_thread = false; /* the thread stayed in the parent */
    port_free_resources(p);
    atomic_store(&p->state, OVL__PORT_CLOSED);
    /* Later calls through this handle: OVL_ECLOSED. */
    atomic_store(&p->handle,
                 handle_of(p->slot, (atomic_load(&p->handle) >> OVL__HANDLE_SLOT_BITS) + 1u));
    return OVL_OK;
}

/* Another close is under way: return once it has finished, so that no
 * close returns while a callback of the port may still run. */
static int32_t wait_closed(ovl_port *p, const ovl_port *h)
{
    int32_t rc = ovl__wait_begin(p);
    if (rc != OVL_OK) {
        ovl__mutex_unlock(&p->lock);
        return rc;
    }
    while (atomic_load(&p->handle) == (uintptr_t)h && atomic_load(&p->state) != OVL__PORT_CLOSED)
        ovl__cond_wait(&p->closed_cv, &p->lock);
    ovl__mutex_unlock(&p->lock);
    ovl__wait_end();
    return OVL_ECLOSED;
}

OVL_API int32_t ovl_close_port(ovl_port *port)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) {
        if (rc != OVL_EFORKED) return rc;
        /* ovl__port_get found the struct, so its chunk exists. */
        uint32_t slot = (uint32_t)((uintptr_t)port & (OVL__MAX_PORTS - 1u));
        ovl__slot *chunk = atomic_load(&ovl__port_chunks[slot / OVL__HANDLE_CHUNK]);
        return close_inherited(atomic_load(&chunk[slot % OVL__HANDLE_CHUNK]), port);
    }
    if (ovl__in_callback(p)) return OVL_EDEADLK;

    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->handle) != (uintptr_t)port) {
        ovl__mutex_unlock(&p->lock);
        return OVL_ECLOSED;
    }
    if (atomic_load(&p->state) != OVL__PORT_OPEN) return wait_closed(p, port);
    /* Waiting below for the port's callbacks to end must not be what one
     * of them waits for (two ports' callbacks closing each other). */
    if ((rc = ovl__wait_begin(p)) != OVL_OK) {
        ovl__mutex_unlock(&p->lock);
        return rc;
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

    /* Callers that entered the backend before CLOSING finish first; one
     * asleep in the backend's wait with nothing in flight (ovl_poll with a
     * timeout on a port with a completion thread) is woken to see it. */
    p->backend->wake(p);
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
        while (!ovl__port_drained(p)) ovl__deliver_once(p, -1);
        ovl__mutex_unlock(&p->deliver_lock);
    }
    ovl__wait_end();

    p->backend->destroy(p);
    p->be = NULL;
    ovl__mutex_lock(&p->lock);
    port_free_resources(p);
    atomic_store(&p->state, OVL__PORT_CLOSED);
    ovl__cond_broadcast(&p->closed_cv);
    ovl__mutex_unlock(&p->lock);
    port_struct_put(p);
    return OVL_OK;
}
