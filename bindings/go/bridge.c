/* bridge.c - the completion queue between the port's thread and Go: a lock
 * and two arrays (the callback fills one while Go reads the other). The lock
 * and the wake-up are in bridge_linux.c / bridge_windows.c. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "bridge_os.h"

struct govl_queue {
    govl__lock lock;
    govl__wake wake;
    govl_item *fill; /* the callback appends here */
    size_t len, cap;
    govl_item *spare; /* what the drainer was given last time */
    size_t spare_cap;
    int signaled; /* a wake-up is pending; cleared by govl_drain */
    int stopped;
    int manual; /* manual mode: pollers take items, no wake-up */
    uint64_t lost;
    /* manual mode: 0 nobody polls, 1 a thread polls, 2 it must poll again */
    atomic_int pstate;
    /* manual mode, govl_submit_block: the key of the operation whose
     * submitter waits for it inside the library (0: none), whether a
     * callback has delivered it, its op id once submitted, and the key of
     * the last one govl_cancel_block was asked to cancel (keys are never
     * reused, so a stale one matches nothing). block_merged: the submitter
     * is inside ovl_submit_and_poll, which submits and waits in one call,
     * so nobody learns the op id before the wait ends; wakes: the posts
     * govl_cancel_block made to end such a wait, not yet delivered. Under
     * lock. */
    uint64_t block_ctx;
    uint64_t block_id;
    int block_done;
    int block_merged;
    unsigned wakes;
    uint64_t cancel_ctx;
};

/* The ctx of govl_cancel_block's posts: no slot key (a key's generation,
 * its high half, is never 0), and the callback drops them. */
#define GOVL_WAKE_CTX UINT64_MAX

govl_queue *govl_queue_new(size_t cap)
{
    govl_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    if (cap < 16) cap = 16;
    q->fill = calloc(cap, sizeof(govl_item));
    q->spare = calloc(cap, sizeof(govl_item));
    q->cap = q->spare_cap = cap;
    if (!q->fill || !q->spare) goto fail;
    if (govl__lock_init(&q->lock) != 0) goto fail;
    if (govl__wake_init(&q->wake) != 0) {
        govl__lock_destroy(&q->lock);
        goto fail;
    }
    return q;
fail:
    free(q->fill);
    free(q->spare);
    free(q);
    return NULL;
}

void govl_queue_free(govl_queue *q)
{
    if (!q) return;
    govl__wake_destroy(&q->wake);
    govl__lock_destroy(&q->lock);
    free(q->fill);
    free(q->spare);
    free(q);
}

void govl_callback(const ovl_completion *items, size_t n, void *userdata)
{
    govl_queue *q = userdata;
    int wake = 0;
    govl__lock_take(&q->lock);
    if (q->len + n > q->cap) {
        /* Cannot happen while Go bounds its outstanding ops by the queue
         * depth; grow rather than lose a completion if it ever does. */
        size_t ncap = (q->len + n) * 2;
        govl_item *grown = realloc(q->fill, ncap * sizeof(govl_item));
        if (grown) {
            q->fill = grown;
            q->cap = ncap;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((uint64_t)(uintptr_t)items[i].ctx == GOVL_WAKE_CTX && items[i].op == OVL_OP_POST) {
            /* A wake-up for the blocked submitter: it was woken. */
            if (q->wakes) q->wakes--;
            continue;
        }
        if (q->len == q->cap) {
            q->lost++;
            continue;
        }
        govl_item *it = &q->fill[q->len++];
        it->ctx = (uint64_t)(uintptr_t)items[i].ctx;
        it->id = items[i].id;
        it->result = items[i].result;
        it->op = items[i].op;
        it->os_error = items[i].os_error;
        if (it->ctx == q->block_ctx && q->block_ctx) q->block_done = 1;
    }
    /* Wake Go at most once per drain: the drainer clears `signaled` when it
     * takes the items, so a callback after that wakes it again. */
    if (!q->signaled && !q->manual) {
        q->signaled = 1;
        wake = 1;
    }
    govl__lock_give(&q->lock);
    if (wake) govl__wake_signal(&q->wake);
}

size_t govl_drain(govl_queue *q, govl_item **out, int *stopped)
{
    govl__lock_take(&q->lock);
    size_t n = q->len;
    /* Swap: the drainer gets the filled array, the callback the spare one.
     * The drainer is done with the spare, because it calls us again only
     * after it has delivered everything it got last time. */
    govl_item *full = q->fill;
    size_t full_cap = q->cap;
    q->fill = q->spare;
    q->cap = q->spare_cap;
    q->spare = full;
    q->spare_cap = full_cap;
    q->len = 0;
    q->signaled = 0;
    *stopped = q->stopped && n == 0;
    govl__lock_give(&q->lock);
    *out = full;
    return n;
}

void govl_stop(govl_queue *q)
{
    govl__lock_take(&q->lock);
    q->stopped = 1;
    q->signaled = 1;
    govl__lock_give(&q->lock);
    govl__wake_signal(&q->wake);
}

void govl_queue_set_manual(govl_queue *q)
{
    govl__lock_take(&q->lock);
    q->manual = 1;
    govl__lock_give(&q->lock);
}

/* Become the queue's poller (pstate 0 -> 1) and return 1; or, if another
 * thread polls, ask it to poll once more before it stops (so a completion
 * that arrived meanwhile is not left in the ring with its wake-up already
 * spent) and return 0. */
static int poll_acquire(govl_queue *q)
{
    int s = atomic_load(&q->pstate);
    for (;;) {
        if (s == 0) {
            if (atomic_compare_exchange_weak(&q->pstate, &s, 1)) return 1;
        } else if (s == 2) {
            return 0;
        } else if (atomic_compare_exchange_weak(&q->pstate, &s, 2)) {
            return 0;
        }
    }
}

/* Stop being the poller; first poll again (without waiting) for as long as
 * other threads asked for it meanwhile. Returns what those polls
 * delivered. */
static int32_t poll_release(govl_queue *q, ovl_port *port)
{
    int32_t total = 0;
    for (;;) {
        int s = 1;
        if (atomic_compare_exchange_strong(&q->pstate, &s, 0)) return total;
        /* s == 2: another thread came by while we polled; its completion
         * may have been posted after our ovl_poll looked. */
        atomic_store(&q->pstate, 1);
        int32_t n = ovl_poll(port, 0);
        if (n < 0) {
            atomic_store(&q->pstate, 0);
            return total;
        }
        total += n;
    }
}

int32_t govl_poll(govl_queue *q, ovl_port *port)
{
    if (!poll_acquire(q)) return 0;
    int32_t n = ovl_poll(port, 0);
    if (n < 0) {
        atomic_store(&q->pstate, 0);
        return n;
    }
    return n + poll_release(q, port);
}

/* Copy up to cap items out of the queue; q->lock held. */
static size_t take_locked(govl_queue *q, govl_item *out, size_t cap)
{
    size_t n = q->len < cap ? q->len : cap;
    if (n) {
        memcpy(out, q->fill, n * sizeof *out);
        q->len -= n;
        if (q->len) memmove(q->fill, q->fill + n, q->len * sizeof *out);
    }
    return n;
}

size_t govl_take(govl_queue *q, govl_item *out, size_t cap)
{
    govl__lock_take(&q->lock);
    size_t n = take_locked(q, out, cap);
    govl__lock_give(&q->lock);
    return n;
}

int32_t govl_submit_reap(ovl_port *port, govl_queue *q, uint32_t kind, ovl_fd fd, void *buf,
                         size_t len, int64_t offset, uint32_t flags, uint64_t ctx, uint64_t *out_id,
                         govl_item *out, size_t cap, size_t *nout)
{
    int32_t rc;
    *nout = 0;
    switch (kind) {
    case OVL_OP_READ: rc = govl_submit_read(port, fd, buf, len, offset, ctx, out_id); break;
    case OVL_OP_WRITE: rc = govl_submit_write(port, fd, buf, len, offset, ctx, out_id); break;
    case OVL_OP_FSYNC: rc = govl_submit_fsync(port, fd, flags, ctx, out_id); break;
    default: return OVL_EINVAL;
    }
    if (rc != OVL_OK) return rc;
    (void)govl_poll(q, port);
    *nout = govl_take(q, out, cap);
    return OVL_OK;
}

void govl_submit_many(ovl_port *port, govl_queue *q, govl_req *r, size_t n, govl_item *out,
                      size_t cap, size_t *nout)
{
    ovl_request reqs[GOVL_MAX_BATCH];
    size_t i = 0, accepted = 0;
    *nout = 0;
    if (n > GOVL_MAX_BATCH) n = GOVL_MAX_BATCH;
    for (size_t k = 0; k < n; k++) {
        reqs[k].op = r[k].kind;
        reqs[k].flags = r[k].flags;
        reqs[k].fd = r[k].fd;
        reqs[k].buf = (void *)(uintptr_t)r[k].buf;
        reqs[k].len = r[k].len;
        reqs[k].offset = r[k].offset;
        reqs[k].ctx = (void *)(uintptr_t)r[k].ctx;
        reqs[k].timeout_ns = 0;
        reqs[k].id = 0;
    }
    while (i < n) {
        size_t done = 0;
        int32_t rc = ovl_submit(port, reqs + i, n - i, &done);
        for (size_t k = i; k < i + done; k++) {
            r[k].id = reqs[k].id;
            r[k].rc = OVL_OK;
        }
        accepted += done;
        i += done;
        if (i < n) {
            /* ovl_submit stopped at this one: report it, go on after it. */
            r[i].id = 0;
            r[i].rc = rc != OVL_OK ? rc : OVL_EINVAL;
            i++;
        }
    }
    if (accepted) {
        (void)govl_poll(q, port);
        *nout = govl_take(q, out, cap);
    }
}

/* The poller, before it gives up the role: take the wake-up
 * govl_cancel_block posted for a wait that ended without it, so that no
 * post is left in the ring (counted in flight, signalling the eventfd) with
 * nobody polling. A post is a NOP, in the CQ at once; others' completions
 * taken meanwhile are queued for the Go side as usual. The waits are short:
 * a post that failed (the queue was full) is counted until its poster
 * takes the count back, and nothing else may be in flight to end a longer
 * wait (the others' operations may be done and queued, waiting for this
 * thread to return). rc: the last poll's (a closed port delivers the rest
 * itself). */
static void block_unwake(govl_queue *q, ovl_port *port, int32_t rc)
{
    while (rc >= 0) {
        govl__lock_take(&q->lock);
        unsigned wakes = q->wakes;
        govl__lock_give(&q->lock);
        if (!wakes) break;
        rc = ovl_poll(port, 1);
    }
}

/* The poller's wait for the blocked operation: ovl_poll(port, -1) until a
 * callback has delivered it, or has delivered another operation's
 * completion (the Go side must hand that one to its goroutine), or the
 * port closes. Being the poller (pstate) is what makes the wait safe: no
 * other thread of the binding reaps meanwhile, so the completion cannot
 * have been taken from the ring after block_done was read and before
 * ovl_poll sleeps. (ovl_close_port reaps on its own, but it also wakes
 * ovl_poll, which then returns OVL_ECLOSED.) */
static int32_t block_wait(govl_queue *q, ovl_port *port, int32_t rc)
{
    while (rc >= 0) {
        govl__lock_take(&q->lock);
        int stop = q->block_done || q->len > 0;
        govl__lock_give(&q->lock);
        if (stop) break;
        rc = ovl_poll(port, -1);
    }
    block_unwake(q, port, rc);
    (void)poll_release(q, port);
    return rc < 0 ? rc : 0;
}

/* govl_take, and whether the blocked operation has been delivered. */
static void block_finish(govl_queue *q, govl_item *out, size_t cap, size_t *nout, int *done)
{
    govl__lock_take(&q->lock);
    *nout = take_locked(q, out, cap);
    *done = q->block_done;
    govl__lock_give(&q->lock);
}

int32_t govl_submit_block(ovl_port *port, govl_queue *q, govl_req *r, govl_item *out, size_t cap,
                          size_t *nout, int *done)
{
    *nout = 0;
    *done = 0;
    govl__lock_take(&q->lock);
    q->block_ctx = r->ctx;
    q->block_id = 0;
    q->block_done = 0;
    govl__lock_give(&q->lock);
    /* The poller role first: from the submit on, nobody else may take
     * this completion from the ring before we wait for it. */
    int polling = poll_acquire(q);
    ovl_request req;
    req.op = r->kind;
    req.flags = r->flags;
    req.fd = r->fd;
    req.buf = (void *)(uintptr_t)r->buf;
    req.len = r->len;
    req.offset = r->offset;
    req.ctx = (void *)(uintptr_t)r->ctx;
    req.id = 0;
    req.timeout_ns = 0;
    /* As the poller, submit and wait in one call (on io_uring one
     * io_uring_enter, as a pread is one system call), unless a cancel
     * came first: then the op id is needed between the two. */
    govl__lock_take(&q->lock);
    int merged = polling && q->cancel_ctx != r->ctx;
    q->block_merged = merged;
    govl__lock_give(&q->lock);
    size_t accepted = 0;
    int32_t rc, prc = 0;
    if (merged) {
        /* < 0: the submit's error if nothing was accepted, else the
         * wait's (OVL_ECLOSED: the port is closing). */
        prc = ovl_submit_and_poll(port, &req, 1, &accepted, -1);
        rc = accepted == 1 ? OVL_OK : prc;
    } else {
        rc = ovl_submit(port, &req, 1, &accepted);
    }
    r->id = req.id;
    r->rc = accepted == 1 ? OVL_OK : (rc != OVL_OK ? rc : OVL_EINVAL);
    govl__lock_take(&q->lock);
    q->block_merged = 0;
    int cancel = 0;
    if (r->rc == OVL_OK) {
        q->block_id = req.id;
        cancel = q->cancel_ctx == r->ctx;
    } else {
        q->block_ctx = 0;
    }
    govl__lock_give(&q->lock);
    if (r->rc != OVL_OK) {
        if (polling) {
            block_unwake(q, port, 0);
            (void)poll_release(q, port);
        }
        return OVL_OK;
    }
    /* A cancel that came during ovl_submit_and_poll found no id and woke
     * the wait with a post (or the wait ended by itself): cancel now. The
     * operation may be done by now; ovl_cancel then finds nothing. */
    if (cancel) (void)ovl_cancel(port, req.id);
    if (polling) rc = block_wait(q, port, prc < 0 ? prc : 0);
    else rc = GOVL_BUSY; /* the other poller polls again for us */
    block_finish(q, out, cap, nout, done);
    return rc;
}

int32_t govl_block(ovl_port *port, govl_queue *q, govl_item *out, size_t cap, size_t *nout,
                   int *done)
{
    int32_t rc = poll_acquire(q) ? block_wait(q, port, 0) : GOVL_BUSY;
    block_finish(q, out, cap, nout, done);
    return rc;
}

void govl_cancel_block(ovl_port *port, govl_queue *q, uint64_t ctx)
{
    uint64_t id = 0;
    int wake = 0;
    govl__lock_take(&q->lock);
    q->cancel_ctx = ctx;
    if (q->block_ctx == ctx) {
        id = q->block_id;
        /* Inside ovl_submit_and_poll nobody knows the id yet: end the
         * wait with a post (one is enough); the submitter then sees
         * cancel_ctx and cancels the op itself. */
        wake = !id && q->block_merged && !q->wakes;
        if (wake) q->wakes++;
    }
    govl__lock_give(&q->lock);
    if (id) {
        (void)ovl_cancel(port, id);
    } else if (wake && ovl_post(port, 0, (void *)(uintptr_t)GOVL_WAKE_CTX, NULL) != OVL_OK) {
        /* Closed (the close wakes the wait itself), or the queue is full
         * of others' operations, whose completions end the wait. */
        govl__lock_take(&q->lock);
        q->wakes--;
        govl__lock_give(&q->lock);
    }
}

size_t govl_reap(ovl_port *port, govl_queue *q, govl_item *out, size_t cap)
{
    (void)govl_poll(q, port);
    return govl_take(q, out, cap);
}

uint64_t govl_lost(govl_queue *q)
{
    govl__lock_take(&q->lock);
    uint64_t lost = q->lost;
    govl__lock_give(&q->lock);
    return lost;
}

int govl_queue_eventfd(govl_queue *q) { return govl__wake_fd(&q->wake); }

void govl_wait(govl_queue *q) { govl__wake_wait(&q->wake); }

int32_t govl_submit_read(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                         uint64_t ctx, uint64_t *out_id)
{
    return ovl_submit_read(port, fd, buf, len, offset, (void *)(uintptr_t)ctx, out_id);
}

int32_t govl_submit_write(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                          uint64_t ctx, uint64_t *out_id)
{
    return ovl_submit_write(port, fd, buf, len, offset, (void *)(uintptr_t)ctx, out_id);
}

int32_t govl_submit_fsync(ovl_port *port, ovl_fd fd, uint32_t flags, uint64_t ctx, uint64_t *out_id)
{
    return ovl_submit_fsync(port, fd, flags, (void *)(uintptr_t)ctx, out_id);
}

int32_t govl_post(ovl_port *port, int64_t value, uint64_t ctx, uint64_t *out_id)
{
    return ovl_post(port, value, (void *)(uintptr_t)ctx, out_id);
}

int32_t govl_create_port(uint32_t depth, uint32_t backend, uint32_t threads, uint32_t spin_usec,
                         uint32_t flags, ovl_callback cb, void *userdata, ovl_port **out)
{
    ovl_port_config cfg;
    int32_t rc = ovl_port_config_init(&cfg, (uint32_t)sizeof cfg);
    if (rc != OVL_OK) return rc;
    if (depth) cfg.queue_depth = depth;
    cfg.backend = backend;
    cfg.threads = threads;
    cfg.spin_usec = spin_usec;
    cfg.flags = flags;
    cfg.callback = cb;
    cfg.userdata = userdata;
    return ovl_create_port(&cfg, out);
}
