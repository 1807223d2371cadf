/* api.c - the public API around a live port: argument checks, callbacks,
 * handles, submission, cancel and introspection. The life cycle is in
 * port.c, delivery in deliver.c, backend choice in backend.c. No platform
 * code here: backends sit behind ovl__backend (ovl_internal.h), OS
 * primitives behind platform.h / sys.h. */
#include "ovl_internal.h"
#include "local.h"
#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- version ------------------------------------------------------------ */

#define OVL__STR2(x) #x
#define OVL__STR(x) OVL__STR2(x)

OVL_API uint32_t ovl_version(void) { return OVL_VERSION_HEX; }

OVL_API const char *ovl_version_string(void)
{
    return OVL__STR(OVL_VERSION_MAJOR) "." OVL__STR(OVL_VERSION_MINOR) "." OVL__STR(
        OVL_VERSION_PATCH);
}

/* A caller from outside a callback that will kick: raised under the lock
 * while the port is open, before the backend sees its work. `users` keeps
 * close from destroying the backend under the kick (close waits for it to
 * drop to zero); `kickers` tells a reaper the work is this caller's to
 * push (ovl_internal.h). kick_unlocked lowers both. */
static void kick_begin(ovl_port *p)
{
    atomic_fetch_add(&p->kickers, 1);
    atomic_fetch_add(&p->users, 1);
}

/* kick_begin for a caller that ends up with nothing to kick. */
static void kick_cancel(ovl_port *p)
{
    atomic_fetch_sub(&p->kickers, 1);
    atomic_fetch_sub(&p->users, 1);
}

/* Enter the backend outside the lock. */
static void kick_unlocked(ovl_port *p)
{
    p->backend->kick(p, false);
    /* A read-modify-write, as is a reaper's look at kickers: if that look
     * came first, this one sees what the reaper published before it. */
    atomic_fetch_sub(&p->kickers, 1);
    p->backend->kick(p, false);
    atomic_fetch_sub(&p->users, 1);
}

OVL_API int32_t ovl_set_callback(ovl_port *port, ovl_callback cb, void *userdata)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) {
        rc = OVL_ECLOSED;
    } else {
        p->cb = cb;
        p->userdata = userdata;
    }
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_associate(ovl_port *port, ovl_fd fd)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (!ovl__fd_plausible(fd)) return OVL_EBADF;
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) rc = OVL_ECLOSED;
    else if (p->backend->associate) rc = p->backend->associate(p, fd);
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_register_fd(ovl_port *port, ovl_fd fd)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (!ovl__fd_plausible(fd)) return OVL_EBADF;
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) {
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
    if (p->backend->register_fd && (rc = p->backend->register_fd(p, slot, fd)) != OVL_OK) goto out;
    p->reg_slots |= 1ull << slot;
    p->reg[p->nreg].fd = fd;
    p->reg[p->nreg].slot = slot;
    p->nreg++;
out:
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API int32_t ovl_unregister_fd(ovl_port *port, ovl_fd fd)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) {
        rc = OVL_ECLOSED;
        goto out;
    }
    int i = ovl__reg_find(p, fd);
    if (i < 0) {
        rc = OVL_ENOENT;
        goto out;
    }
    uint32_t slot = p->reg[i].slot;
    /* The backend keeps the file for the ops in flight that named it until
     * they complete (io_uring: the slot is retired, not emptied). */
    if (p->backend->register_fd) (void)p->backend->register_fd(p, slot, OVL__NO_FD);
    p->reg_slots &= ~(1ull << slot);
    p->reg[i] = p->reg[--p->nreg];
out:
    ovl__mutex_unlock(&p->lock);
    return rc;
}

OVL_API const char *ovl_backend_name(const ovl_port *port)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    /* A closed port's struct keeps its backend until it is reused. */
    if (!p) return rc == OVL_EINVAL ? "invalid" : "closed";
    return p->backend->name;
}

/* The counters of a closed port stay readable until its struct serves a
 * newer port (OVL_ECLOSED then). */
OVL_API int32_t ovl_port_stats(const ovl_port *port, ovl_stats *out)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (!out || out->size < sizeof(ovl_stats)) return OVL_EINVAL;
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    ovl__mutex_lock(&p->lock);
    if (atomic_load(&p->handle) != (uintptr_t)port) {
        ovl__mutex_unlock(&p->lock);
        return OVL_ECLOSED; /* reused since the lookup */
    }
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

static int32_t check_request(ovl_port *p, const ovl_request *r)
{
    if (r->timeout_ns < 0) return OVL_EINVAL;
    if (r->timeout_ns > 0 && r->op != OVL_OP_TIMER && r->op != OVL_OP_POST && !p->backend->timeouts)
        return OVL_ENOTSUP;
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
        if (r->flags || r->fd || r->buf || r->len || r->timeout_ns) return OVL_EINVAL;
        return OVL_OK;
    case OVL_OP_ACCEPT:
    case OVL_OP_CONNECT:
    case OVL_OP_SHUTDOWN:
        if (r->len || r->offset) return OVL_EINVAL;
        if (!ovl__fd_plausible(r->fd)) return OVL_EBADF;
        if (r->op == OVL_OP_ACCEPT && r->flags) return OVL_EINVAL;
        if (r->op == OVL_OP_CONNECT) {
            const ovl_addr *a = r->buf;
            if (r->flags || !a || a->len == 0 || a->len > OVL_ADDR_MAX) return OVL_EINVAL;
        }
        if (r->op == OVL_OP_SHUTDOWN &&
            (r->buf || r->flags == 0 || (r->flags & ~(uint32_t)OVL_SHUT_RDWR)))
            return OVL_EINVAL;
        return p->backend->net_ops ? OVL_OK : OVL_ENOTSUP;
    case OVL_OP_TIMER:
        if (r->flags || r->fd || r->buf || r->len || r->offset || r->timeout_ns <= 0)
            return OVL_EINVAL;
        return p->backend->timeouts ? OVL_OK : OVL_ENOTSUP;
    case OVL_OP_LOCAL_ACCEPT:
    case OVL_OP_LOCAL_DIAL: return ovl__local_check(p, r);
    default: return OVL_EINVAL;
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
    op->timeout_ns = r->timeout_ns;
    if (r->op == OVL_OP_POST) op->result = r->offset; /* the posted value */
}

#define OVL__SUBMIT_CHUNK 64

/* The batch submit path: one lock for the whole batch, the backend's submit
 * in chunks, then one kick (io_uring: one io_uring_enter) after unlock.
 * Requests are checked here, under the lock, one by one. */
int32_t ovl__submit_batch(ovl_port *p, const ovl_port *port, ovl_request *reqs, size_t n,
                          size_t *out_n, unsigned how)
{
    size_t done = 0;
    int32_t rc = OVL_OK;
    bool from_cb = ovl__in_callback(p);
    bool no_kick = how & OVL__SUBMIT_NO_KICK;
    ovl__op *chunk[OVL__SUBMIT_CHUNK];
    size_t m = 0;

    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) {
        ovl__mutex_unlock(&p->lock);
        rc = OVL_ECLOSED;
        goto out;
    }
    /* Inside this port's callback the backend cannot be destroyed under us
     * (close joins this thread, or holds deliver_lock in manual mode) and
     * the reaper is this thread, so kick_begin's counts are only for
     * others. */
    bool kicks = !from_cb && !no_kick;
    if (kicks) kick_begin(p);
    for (; done < n; done++) {
        ovl_request *r = &reqs[done];
        if ((rc = check_request(p, r)) != OVL_OK) break;
        ovl__op *op = ovl__op_alloc(p);
        if (!op) {
            rc = OVL_EQUEUEFULL;
            break;
        }
        op_fill(op, r);
        if (r->op == OVL_OP_LOCAL_ACCEPT || r->op == OVL_OP_LOCAL_DIAL) {
            /* Its side record, its socket or pipe name (local.c). */
            if ((rc = ovl__local_start(p, op, r)) != OVL_OK) {
                ovl__op_release(p, op);
                break;
            }
        }
        r->id = ovl__op_token(op);
        chunk[m++] = op;
        if (m == OVL__SUBMIT_CHUNK) {
            p->backend->submit(p, chunk, m);
            m = 0;
        }
    }
    if (m) p->backend->submit(p, chunk, m);
    p->submitted += done;
    if (done && !from_cb) ovl__submitted(p, how & OVL__SUBMIT_DELIVERS);
    if (!done && kicks) kick_cancel(p); /* nothing to push */
    ovl__mutex_unlock(&p->lock);
    /* no_kick: the caller holds deliver_lock (the backend cannot go) and
     * its wait submits what is queued (ovl_submit_and_poll). */
    if (done && !no_kick) {
        if (from_cb) p->backend->kick(p, true);
        else kick_unlocked(p);
    }
out:
    for (size_t i = done; i < n; i++) reqs[i].id = 0;
    if (out_n) *out_n = done;
    return rc;
}

OVL_API int32_t ovl_submit(ovl_port *port, ovl_request *reqs, size_t n, size_t *out_submitted)
{
    if (out_submitted) *out_submitted = 0;
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (n == 0) return OVL_OK;
    if (!reqs) return OVL_EINVAL;
    return ovl__submit_batch(p, port, reqs, n, out_submitted, 0);
}

/* The single-op path of ovl_submit_read/_write/_fsync and ovl_post: the
 * same steps as ovl__submit_batch for one request, without the loop, the chunk
 * array or the request copy (posts from callbacks are the hottest caller). */
static int32_t submit_one(ovl_port *port, uint32_t kind, ovl_fd fd, void *buf, size_t len,
                          int64_t offset, uint32_t flags, int64_t timeout_ns, void *ctx,
                          uint64_t *out_id)
{
    if (out_id) *out_id = 0;
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    const ovl_request r = {kind, flags, fd, buf, (uint64_t)len, offset, ctx, 0, timeout_ns};
    bool from_cb = ovl__in_callback(p);
    ovl__mutex_lock(&p->lock);
    /* The same order of checks as submit_batch: closed, then arguments. */
    if (!ovl__port_open(p, port)) rc = OVL_ECLOSED;
    else if (kind != OVL_OP_POST) rc = check_request(p, &r);
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
    if (!from_cb) kick_begin(p);
    p->backend->submit(p, &op, 1);
    p->submitted++;
    if (!from_cb) ovl__submitted(p, false);
    ovl__mutex_unlock(&p->lock);
    if (from_cb) p->backend->kick(p, true);
    else kick_unlocked(p);
    if (out_id) *out_id = id;
    return OVL_OK;
}

OVL_API int32_t ovl_submit_read(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                                void *ctx, uint64_t *out_id)
{
    return submit_one(port, OVL_OP_READ, fd, buf, len, offset, 0, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_write(ovl_port *port, ovl_fd fd, const void *buf, size_t len,
                                 int64_t offset, void *ctx, uint64_t *out_id)
{
    /* The write source is only ever read; the op stores it untyped. */
    return submit_one(port, OVL_OP_WRITE, fd, (void *)(uintptr_t)buf, len, offset, 0, 0, ctx,
                      out_id);
}

OVL_API int32_t ovl_submit_fsync(ovl_port *port, ovl_fd fd, uint32_t flags, void *ctx,
                                 uint64_t *out_id)
{
    return submit_one(port, OVL_OP_FSYNC, fd, NULL, 0, 0, flags, 0, ctx, out_id);
}

OVL_API int32_t ovl_post(ovl_port *port, int64_t value, void *ctx, uint64_t *out_id)
{
    return submit_one(port, OVL_OP_POST, 0, NULL, 0, value, 0, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_accept(ovl_port *port, ovl_fd listener, ovl_addr *peer, void *ctx,
                                  uint64_t *out_id)
{
    return submit_one(port, OVL_OP_ACCEPT, listener, peer, 0, 0, 0, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_connect(ovl_port *port, ovl_fd sock, const ovl_addr *addr, void *ctx,
                                   uint64_t *out_id)
{
    /* The address is only ever read; the op stores it untyped. */
    return submit_one(port, OVL_OP_CONNECT, sock, (void *)(uintptr_t)addr, 0, 0, 0, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_shutdown(ovl_port *port, ovl_fd sock, uint32_t how, void *ctx,
                                    uint64_t *out_id)
{
    return submit_one(port, OVL_OP_SHUTDOWN, sock, NULL, 0, 0, how, 0, ctx, out_id);
}

OVL_API int32_t ovl_submit_timer(ovl_port *port, int64_t delay_ns, void *ctx, uint64_t *out_id)
{
    return submit_one(port, OVL_OP_TIMER, 0, NULL, 0, 0, 0, delay_ns, ctx, out_id);
}

OVL_API int32_t ovl_cancel(ovl_port *port, uint64_t id)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    bool from_cb = ovl__in_callback(p);
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) {
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
        if (!from_cb) kick_begin(p);
        p->backend->cancel(p, op);
    }
    ovl__mutex_unlock(&p->lock);
    if (kick) {
        if (from_cb) p->backend->kick(p, true);
        else kick_unlocked(p);
    }
    return OVL_OK;
}

OVL_API int32_t ovl_port_event(ovl_port *port, ovl_fd *out)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (!out) return OVL_EINVAL;
    if (!ovl__port_open(p, port)) return OVL_ECLOSED;
    if (!(p->flags & OVL_PORT_MANUAL)) return OVL_EMODE;
    ovl__mutex_lock(&p->lock);
    if (!ovl__port_open(p, port)) rc = OVL_ECLOSED;
    else if (!p->backend->event_fd) rc = OVL_ENOTSUP;
    else rc = p->backend->event_fd(p, out);
    ovl__mutex_unlock(&p->lock);
    return rc;
}
