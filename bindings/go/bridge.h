/* bridge.h - the binding's C part: the ovl callback that queues completions
 * for Go, and the queue's drain/stop calls. No Go code ever runs on the
 * port's completion thread; it only runs govl_callback below. */
#ifndef GOVL_BRIDGE_H
#define GOVL_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "ovl.h"

/* One completion as Go sees it. ctx is the slot key (index | gen << 32)
 * carried as an integer, so Go never holds it as a pointer. */
typedef struct govl_item {
    uint64_t ctx;
    uint64_t id;
    int64_t result;
    uint32_t op;
    int32_t os_error;
} govl_item;

typedef struct govl_queue govl_queue;

/* A queue with room for cap items before it has to grow (the binding keeps
 * at most queue_depth ops outstanding, so it never grows in practice).
 * Returns NULL if out of memory or the OS wake object cannot be made. */
govl_queue *govl_queue_new(size_t cap);
/* Free the queue. Only after its port is closed and its drainer is done. */
void govl_queue_free(govl_queue *q);

/* The ovl_callback registered with the port; userdata is the queue. Appends
 * the batch under the queue's lock and wakes the drainer at most once until
 * the drainer takes the items. */
void govl_callback(const ovl_completion *items, size_t n, void *userdata);

/* Take every queued item: *out points at them until the next govl_drain
 * (double buffering: the callback fills the other array meanwhile). Returns
 * how many; *stopped is set to 1 once govl_stop was called and nothing is
 * left. One drainer only. */
size_t govl_drain(govl_queue *q, govl_item **out, int *stopped);

/* No more callbacks will come (the port is closed): wake the drainer so it
 * takes what is left and then sees stopped. */
void govl_stop(govl_queue *q);

/* Items appended that did not fit and could not grow the queue (0 unless
 * malloc failed on the completion thread). */
uint64_t govl_lost(govl_queue *q);

/* ---- manual mode (OVL_PORT_MANUAL; Linux, macOS, the BSDs) ---------------
 * No completion thread: completions are delivered inside the binding's own
 * cgo calls, through govl_callback into the queue (so the callback still
 * never runs Go code), and Go takes them from the queue with govl_take. The
 * queue does not signal its wake object in this mode: whoever polls takes
 * what it delivered, and what nobody is there to take signals the port's
 * own event handle (ovl_port_event), which Go's poller watches. */

/* Switch the queue to manual mode (before the port's first completion). */
void govl_queue_set_manual(govl_queue *q);

/* Copy up to cap queued items to out (Go memory: no pointers in it) and
 * return how many. Any number of takers. */
size_t govl_take(govl_queue *q, govl_item *out, size_t cap);

/* One request of govl_submit_poll, all integers (Go fills it; buf is the
 * address of pinned memory). id and rc are outputs. */
typedef struct govl_req {
    uint32_t kind; /* OVL_OP_READ / WRITE / FSYNC */
    uint32_t flags;
    uint64_t fd;
    uint64_t buf;
    uint64_t len;
    int64_t offset;
    uint64_t ctx;
    uint64_t id; /* out: the op id if submitted */
    int32_t rc;  /* out: OVL_OK or why this one was not submitted */
    int32_t pad;
} govl_req;

#define GOVL_MAX_BATCH 64

/* Submit n <= GOVL_MAX_BATCH requests (n may be 0: a poll) and deliver
 * what is ready, ovl_submit_and_poll(port, r, n, timeout_ms) (on io_uring
 * with delivery free, one io_uring_enter: a page-cache read completes
 * inside it and is delivered by the same call), going on past a request
 * that fails; then take up to cap items as govl_take does (*nout). Returns
 * 0, or the poll's error (OVL_ECLOSED). With timeout_ms 0, if another
 * thread is delivering, the call does not wait: that thread delivers what
 * is ready (the core makes it look again), into the same queue. A
 * timeout_ms > 0 waits that long at most for a first completion: the
 * port's lone operation (see Port.start). */
int32_t govl_submit_poll(ovl_port *port, govl_queue *q, govl_req *r, size_t n, int32_t timeout_ms,
                         govl_item *out, size_t cap, size_t *nout);

/* ---- OS part: bridge_linux.c / bridge_windows.c ---- */

/* The wake object: on Linux a nonblocking eventfd that Go waits on through
 * its poller; the drainer owns it once it has wrapped it (the queue never
 * closes it). -1 elsewhere. */
int govl_queue_eventfd(govl_queue *q);
/* Windows: block until woken (the drainer goroutine sits in this call). */
void govl_wait(govl_queue *q);

/* Submit wrappers taking ctx as an integer: Go must not turn an integer
 * into a pointer (cgocheck and the GC would take it for a Go pointer). */
int32_t govl_submit_read(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                         uint64_t ctx, uint64_t *out_id);
int32_t govl_submit_write(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                          uint64_t ctx, uint64_t *out_id);
int32_t govl_submit_fsync(ovl_port *port, ovl_fd fd, uint32_t flags, uint64_t ctx,
                          uint64_t *out_id);
int32_t govl_post(ovl_port *port, int64_t value, uint64_t ctx, uint64_t *out_id);
/* Create a port with callback cb and its userdata (govl_callback and the
 * queue, normally); flags are OVL_PORT_* (OVL_PORT_MANUAL). */
int32_t govl_create_port(uint32_t depth, uint32_t backend, uint32_t threads, uint32_t spin_usec,
                         uint32_t flags, ovl_callback cb, void *userdata, ovl_port **out);

#endif
