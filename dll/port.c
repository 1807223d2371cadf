/* port.c - a port's life cycle: creation (configuration, backend, pool,
 * completion thread), close, and what is kept of a closed port so that a
 * stale handle stays safe to pass. */
#include "ovl_internal.h"
#include "sys.h"

#include <stdlib.h>
#include <string.h>

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
    int32_t rc = ovl__pick_backend(c.backend, &be, &is_auto);
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
        if (ovl__thread_create(&p->thread, ovl__completion_thread, p) != 0) {
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

/* ---- close -------------------------------------------------------------- */

OVL_API int32_t ovl_close_port(ovl_port *p)
{
    int32_t rc = ovl__port_check(p);
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
        while (!ovl__port_drained(p)) ovl__deliver_once(p, -1);
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

