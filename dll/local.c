/* local.c - local endpoints, the part every platform shares: the public
 * calls, the listener's life (references held by the ops in flight on it),
 * the ops' side records, and the stages a POSIX dial goes through. The
 * platform's own part is local_posix.c or local_win.c (plus the IOCP
 * backend's pipe ops); see local.h for the model. No platform code here. */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OVL__LOCAL_CONFIG_V1_SIZE ((uint32_t)sizeof(ovl_local_config))

OVL_API int32_t ovl_local_config_init(ovl_local_config *out, uint32_t size)
{
    if (!out || size < OVL__LOCAL_CONFIG_V1_SIZE) return OVL_EINVAL;
    ovl_local_config c;
    memset(&c, 0, sizeof c);
    c.size = (uint32_t)sizeof c;
    c.mode = 0600;
    c.backlog = 128;
    memcpy(out, &c, sizeof c);
    return OVL_OK;
}

/* ---- listeners ------------------------------------------------------------ */

void ovl__local_unref(ovl_local *l)
{
    if (--l->refs) return;
    ovl__local_os_free(l);
    l->magic = OVL__LOCAL_DEAD;
    free(l);
}

static bool is_listener(const ovl_local *l) { return l && l->magic == OVL__LOCAL_MAGIC; }

OVL_API int32_t ovl_local_listen(ovl_port *port, const char *name, const ovl_local_config *cfg,
                                 ovl_local **out)
{
    if (out) *out = NULL;
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (!name || !out) return OVL_EINVAL;
    ovl_local_config c;
    ovl_local_config_init(&c, sizeof c);
    if (cfg) {
        if (cfg->size < OVL__LOCAL_CONFIG_V1_SIZE) return OVL_EINVAL;
        memcpy(&c, cfg, sizeof c);
    }
    if (c.flags & ~(uint32_t)(OVL_LOCAL_MESSAGE | OVL_LOCAL_ALLOW_REMOTE)) return OVL_EINVAL;
    if (!ovl__port_open(p, port)) return OVL_ECLOSED;
    if (!p->backend->net_ops) return OVL_ENOTSUP;
    ovl_local *l = calloc(1, sizeof *l);
    if (!l) return OVL_ENOMEM;
    l->magic = OVL__LOCAL_MAGIC;
    l->refs = 1;
    l->port = port;
    l->p = p;
    l->flags = c.flags;
    l->in_buffer = c.in_buffer;
    l->out_buffer = c.out_buffer;
    l->fd = -1;
    /* The OS objects are made outside the port lock (a stale socket file
     * is probed with a connect); they belong to no op until an accept. */
    if ((rc = ovl__local_os_listen(l, name, &c)) != OVL_OK) {
        ovl__local_os_free(l);
        free(l);
        return rc;
    }
    *out = l;
    return OVL_OK;
}

OVL_API int32_t ovl_local_close(ovl_local *l)
{
    if (!is_listener(l)) return OVL_EINVAL;
    ovl_port *p = l->p;
    ovl__mutex_lock(&p->lock);
    if (l->closed) {
        ovl__mutex_unlock(&p->lock);
        return OVL_EINVAL; /* closed twice: the caller's reference is gone */
    }
    l->closed = true;
    bool kick = false;
    bool live =
        atomic_load(&p->handle) == (uintptr_t)l->port && atomic_load(&p->state) == OVL__PORT_OPEN;
    if (live && p->local) {
        /* Every accept in flight on it completes with OVL_ECANCELED (or
         * the connection it had already made). A closing port cancels
         * them itself; a closed one has none left. */
        for (uint32_t i = 0; i < p->depth; i++) {
            ovl__op *op = &p->ops[i];
            ovl__lx *lx = ovl__local_lx(p, op);
            if (op->state != OVL__OP_INFLIGHT || !lx || lx->owner != l || op->cancel_req) continue;
            op->cancel_req = 1;
            p->cancels++;
            p->backend->cancel(p, op);
            kick = true;
        }
    }
    bool from_cb = ovl__in_callback(p);
    if (kick && !from_cb) atomic_fetch_add(&p->users, 1); /* see ovl__submit_batch */
    ovl__mutex_unlock(&p->lock);
    if (kick) {
        p->backend->kick(p, from_cb);
        if (!from_cb) atomic_fetch_sub(&p->users, 1);
    }
    ovl__local_os_close(l);
    ovl__mutex_lock(&p->lock);
    ovl__local_unref(l);
    ovl__mutex_unlock(&p->lock);
    return OVL_OK;
}

/* ---- submits -------------------------------------------------------------- */

OVL_API int32_t ovl_submit_local_accept(ovl_local *l, void *ctx, uint64_t *out_id)
{
    if (out_id) *out_id = 0;
    if (!is_listener(l)) return OVL_EINVAL;
    int32_t rc;
    ovl_port *p = ovl__port_get(l->port, &rc);
    if (!p) return rc;
    ovl_request r;
    memset(&r, 0, sizeof r);
    r.op = OVL_OP_LOCAL_ACCEPT;
    r.buf = l;
    r.ctx = ctx;
    rc = ovl__submit_batch(p, l->port, &r, 1, NULL, 0);
    if (rc == OVL_OK && out_id) *out_id = r.id;
    return rc;
}

OVL_API int32_t ovl_submit_local_dial(ovl_port *port, const char *name, int64_t timeout_ns,
                                      void *ctx, uint64_t *out_id)
{
    if (out_id) *out_id = 0;
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    ovl_request r;
    memset(&r, 0, sizeof r);
    r.op = OVL_OP_LOCAL_DIAL;
    r.buf = (void *)(uintptr_t)name; /* read during the call only */
    r.ctx = ctx;
    r.timeout_ns = timeout_ns;
    rc = ovl__submit_batch(p, port, &r, 1, NULL, 0);
    if (rc == OVL_OK && out_id) *out_id = r.id;
    return rc;
}

/* Lock held: the arguments of a local request (ovl_submit's checks). */
int32_t ovl__local_check(ovl_port *p, const ovl_request *r)
{
    if (r->flags || r->fd || r->len || r->offset || !r->buf) return OVL_EINVAL;
    if (r->op == OVL_OP_LOCAL_ACCEPT) {
        const ovl_local *l = r->buf;
        if (!is_listener(l) || l->p != p) return OVL_EINVAL;
        if (l->closed) return OVL_ECLOSED;
    }
    return p->backend->net_ops ? OVL_OK : OVL_ENOTSUP;
}

/* Lock held: a local op was allocated and filled; give it its side record
 * and, on POSIX, the backend op it starts as. On error the caller releases
 * the op and nothing is left behind. */
int32_t ovl__local_start(ovl_port *p, ovl__op *op, const ovl_request *r)
{
    if (!p->local && !(p->local = calloc(p->depth, sizeof *p->local))) return OVL_ENOMEM;
    ovl__lx *lx = &p->local[op->index];
    memset(lx, 0, sizeof *lx);
    lx->sock = -1;
    bool native = p->backend->local_native;
    if (r->op == OVL_OP_LOCAL_ACCEPT) {
        ovl_local *l = r->buf;
        lx->owner = l;
        l->refs++;
        lx->ukind = OVL_OP_LOCAL_ACCEPT;
        if (!native) {
            /* The existing accept on the listening socket. */
            op->kind = OVL_OP_ACCEPT;
            op->fd = (ovl_fd)l->fd;
            op->buf = NULL;
        }
        return OVL_OK;
    }
    int32_t rc = ovl__local_os_dial_prep(lx, r->buf);
    if (rc != OVL_OK) {
        memset(lx, 0, sizeof *lx);
        return rc;
    }
    lx->ukind = OVL_OP_LOCAL_DIAL;
    lx->backoff_us = OVL__DIAL_BACKOFF_MIN_US;
    if (r->timeout_ns > 0) {
        uint64_t us = (uint64_t)r->timeout_ns / 1000u + 1u;
        uint64_t now = ovl__now_us();
        lx->deadline = us > UINT64_MAX - now ? UINT64_MAX : now + us;
    }
    if (native) {
        op->buf = lx->name;
    } else {
        /* The existing connect (its own timeout: what is left). */
        op->kind = OVL_OP_CONNECT;
        op->fd = (ovl_fd)lx->sock;
        op->buf = &lx->addr;
    }
    return OVL_OK;
}

/* ---- the delivery side ------------------------------------------------------ */

/* The op ends with ev: the caller's kind again, the side record cleared. */
static bool finish(ovl__op *op, ovl__lx *lx, ovl__event *ev)
{
    op->kind = lx->ukind;
    if (lx->ukind == OVL_OP_LOCAL_DIAL && ev->result < 0) ovl__local_os_dial_drop(lx);
    free(lx->name);
    if (lx->owner) ovl__local_unref(lx->owner);
    memset(lx, 0, sizeof *lx);
    return true;
}

static void fail(ovl__event *ev, int32_t code)
{
    ev->result = code;
    ev->os_error = 0;
}

/* Lock held. Every event of a local op passes here before delivery. On
 * POSIX a dial's stage may start the next one instead (return false: the
 * core drops the event and kicks the backend after the batch). */
bool ovl__local_settle(ovl_port *p, ovl__op *op, ovl__event *ev)
{
    ovl__lx *lx = ovl__local_lx(p, op);
    if (!lx) return true;
    if (p->backend->local_native || lx->ukind != OVL_OP_LOCAL_DIAL) return finish(op, lx, ev);

    bool stop = op->cancel_req || atomic_load(&p->state) != OVL__PORT_OPEN;
    if (op->kind == OVL_OP_CONNECT) {
        if (ev->result == 0) {
            ovl__local_os_dial_done(lx);
            ev->result = lx->sock;
            lx->sock = -1;
            return finish(op, lx, ev);
        }
        /* No file, or a file nobody listens on (a server that is gone):
         * nothing to wait for. */
        if (ev->os_error == ENOENT || ev->result == OVL_ECONNREFUSED) {
            int32_t e = ev->os_error;
            fail(ev, OVL_ENOTFOUND);
            ev->os_error = e;
            return finish(op, lx, ev);
        }
        if (ev->result != OVL_EAGAIN) return finish(op, lx, ev);
        /* The listener's backlog is full: busy. */
        if (stop) {
            fail(ev, OVL_ECANCELED);
            return finish(op, lx, ev);
        }
    } else { /* OVL_OP_TIMER: the pause between two attempts */
        if (ev->result != 0) return finish(op, lx, ev); /* cancelled */
        if (stop) {
            fail(ev, OVL_ECANCELED);
            return finish(op, lx, ev);
        }
    }
    uint64_t now = ovl__now_us();
    if (lx->deadline && now >= lx->deadline) {
        fail(ev, OVL_ETIMEDOUT);
        return finish(op, lx, ev);
    }
    /* The next stage, under the same token: the backend sees a new op. */
    op->bstate = 0;
    op->result = 0;
    op->os_error = 0;
    if (op->kind == OVL_OP_CONNECT) {
        uint64_t pause = lx->backoff_us;
        if (lx->deadline && pause > lx->deadline - now) pause = lx->deadline - now;
        if (lx->backoff_us < OVL__DIAL_BACKOFF_MAX_US) lx->backoff_us *= 2u;
        if (lx->backoff_us > OVL__DIAL_BACKOFF_MAX_US) lx->backoff_us = OVL__DIAL_BACKOFF_MAX_US;
        op->kind = OVL_OP_TIMER;
        op->fd = 0;
        op->buf = NULL;
        op->timeout_ns = (int64_t)pause * 1000;
    } else {
        op->kind = OVL_OP_CONNECT;
        op->fd = (ovl_fd)lx->sock;
        op->buf = &lx->addr;
        op->timeout_ns = lx->deadline ? (int64_t)(lx->deadline - now) * 1000 : 0;
    }
    p->backend->submit(p, &op, 1);
    return false;
}
