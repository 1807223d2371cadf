//go:build ovl_directcb && linux

/* bridge_direct.c - benchmark-only bridges (build tag ovl_directcb): the
 * queue callback with timing, and the alternative issue 4 asks to measure,
 * a callback that calls an exported Go function on the completion thread.
 * Both record how long the completion thread spent inside the callback. */
#include <stdlib.h>
#include <time.h>

#include "bridge.h"
#include "bridge_direct.h"
#include "_cgo_export.h"

static uint64_t govl__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void govl__account(govl_timed *t, uint64_t t0, size_t n)
{
    uint64_t dt = govl__now_ns() - t0;
    t->stats.calls++;
    t->stats.items += n;
    t->stats.total_ns += dt;
    if (dt > t->stats.max_ns) t->stats.max_ns = dt;
}

void govl_timed_queue_callback(const ovl_completion *items, size_t n, void *userdata)
{
    govl_timed *t = userdata;
    uint64_t t0 = govl__now_ns();
    govl_callback(items, n, t->q);
    govl__account(t, t0, n);
}

void govl_direct_callback(const ovl_completion *items, size_t n, void *userdata)
{
    govl_timed *t = userdata;
    uint64_t t0 = govl__now_ns();
    govlDirectDeliver(t->handle, (ovl_completion *)items, n);
    govl__account(t, t0, n);
}

govl_timed *govl_timed_new(govl_queue *q, uintptr_t handle)
{
    govl_timed *t = calloc(1, sizeof *t);
    if (t) {
        t->q = q;
        t->handle = handle;
    }
    return t;
}

void govl_timed_free(govl_timed *t) { free(t); }
