/* bridge.c - the completion queue between the port's thread and Go: a lock
 * and two arrays (the callback fills one while Go reads the other). The lock
 * and the wake-up are in bridge_linux.c / bridge_windows.c. */
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
};

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

/* Set while this thread is inside govl_submit_poll: what the callback
 * appends here, the same call takes (govl_take) and Go delivers, so the
 * drainer of a port with a completion thread is not woken for it. */
static _Thread_local int reaping;

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
    }
    /* Wake Go at most once per drain: the drainer clears `signaled` when it
     * takes the items, so a callback after that wakes it again. */
    if (!q->signaled && !q->manual && !reaping) {
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

int32_t govl_submit_poll(ovl_port *port, govl_queue *q, govl_req *r, size_t n, int32_t timeout_ms,
                         govl_item *out, size_t cap, size_t *nout)
{
    ovl_request reqs[GOVL_MAX_BATCH];
    size_t i = 0;
    int32_t prc = 0;
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
    /* One ovl_submit_and_poll per run of accepted requests: it stops at a
     * request it refuses (reported, then skipped) without polling; the
     * last call polls. */
    reaping++;
    for (;;) {
        size_t done = 0;
        prc = ovl_submit_and_poll(port, reqs + i, n - i, &done, timeout_ms);
        for (size_t k = i; k < i + done; k++) {
            r[k].id = reqs[k].id;
            r[k].rc = OVL_OK;
        }
        i += done;
        if (prc >= 0 || i == n) break; /* polled (prc < 0: the poll's error) */
        r[i].id = 0;
        r[i].rc = prc;
        i++;
    }
    reaping--;
    *nout = govl_take(q, out, cap);
    return prc < 0 ? prc : 0;
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
