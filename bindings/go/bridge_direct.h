/* bridge_direct.h - benchmark-only bridges (build tag ovl_directcb). */
#ifndef GOVL_BRIDGE_DIRECT_H
#define GOVL_BRIDGE_DIRECT_H

#include <stdint.h>

#include "bridge.h"

typedef struct govl_cbstats {
    uint64_t calls, items, total_ns, max_ns;
} govl_cbstats;

/* The callback's userdata: the queue (timed queue bridge) or the port's
 * cgo.Handle (direct bridge), and the time spent in the callback. Written
 * only by the completion thread; read after the port is closed. */
typedef struct govl_timed {
    govl_queue *q;
    uintptr_t handle;
    govl_cbstats stats;
} govl_timed;

govl_timed *govl_timed_new(govl_queue *q, uintptr_t handle);
void govl_timed_free(govl_timed *t);
void govl_timed_queue_callback(const ovl_completion *items, size_t n, void *userdata);
void govl_direct_callback(const ovl_completion *items, size_t n, void *userdata);

#endif
