/* common.h - helpers shared by the Criterion test files: a thread-safe
 * collector of completions (the callback every test registers), port
 * creation that skips when the selected backend is missing, files with
 * known content, and the closing check every test ends with. The backend
 * under test comes from OVL_BACKEND (ctest runs the suite once per
 * backend). */
#ifndef OVL_TEST_COMMON_H
#define OVL_TEST_COMMON_H

#include <criterion/criterion.h>
#include <ovl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Generous upper bound for "this must happen": a failure detector, never a
 * timing assertion. */
#define WAIT_LIMIT_MS 20000

typedef struct rec rec;
typedef void (*rec_hook)(rec *r, const ovl_completion *c);

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ovl_completion *items;
    size_t n, cap;
    size_t batches;
    atomic_int in_cb;   /* callbacks currently running */
    atomic_int overlap; /* times two callbacks overlapped */
    pthread_t cb_thread;
    bool cb_thread_set;
    int cb_thread_changes; /* callbacks seen on a different thread */
    rec_hook hook;         /* per completion, inside the callback */
    void *hook_data;
    ovl_port *port;
    bool manual; /* the port has no completion thread: rec_wait polls */
};

static inline void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->cap = 1024;
    r->items = calloc(r->cap, sizeof *r->items);
}

static inline void rec_free(rec *r)
{
    free(r->items);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static inline void rec_cb(const ovl_completion *items, size_t n, void *ud)
{
    rec *r = ud;
    if (atomic_fetch_add(&r->in_cb, 1) != 0) atomic_fetch_add(&r->overlap, 1);
    pthread_mutex_lock(&r->mu);
    if (!r->cb_thread_set) {
        r->cb_thread = pthread_self();
        r->cb_thread_set = true;
    } else if (!pthread_equal(r->cb_thread, pthread_self())) {
        r->cb_thread_changes++;
        r->cb_thread = pthread_self();
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        /* A test may change the hook while the port runs (rec_set_hook). */
        pthread_mutex_lock(&r->mu);
        rec_hook hook = r->hook;
        pthread_mutex_unlock(&r->mu);
        if (hook) hook(r, &items[i]);
        pthread_mutex_lock(&r->mu);
        if (r->n == r->cap) {
            r->cap *= 2;
            r->items = realloc(r->items, r->cap * sizeof *r->items);
        }
        r->items[r->n++] = items[i];
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&r->mu);
    r->batches++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_sub(&r->in_cb, 1);
}

/* Change the hook while completions may be arriving. */
static inline void rec_set_hook(rec *r, rec_hook hook, void *data)
{
    pthread_mutex_lock(&r->mu);
    r->hook = hook;
    r->hook_data = data;
    pthread_mutex_unlock(&r->mu);
}

static inline size_t rec_count(rec *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait until at least n completions arrived; fail the test if they don't
 * within WAIT_LIMIT_MS (something is lost or stuck). */
static inline void rec_wait(rec *r, size_t n)
{
    if (r->manual) {
        /* Nobody else delivers: poll until they are in (ovl_poll calls
         * from several threads are serialized by the library). */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            size_t got = rec_count(r);
            if (got >= n) return;
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > WAIT_LIMIT_MS)
                cr_assert_fail("waited for %zu completions, got %zu", n, got);
            int32_t rc = ovl_poll(r->port, 100);
            cr_assert_geq(rc, 0, "ovl_poll: %s", ovl_strerror(rc));
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_LIMIT_MS / 1000;
    pthread_mutex_lock(&r->mu);
    while (r->n < n) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) {
            size_t got = r->n;
            pthread_mutex_unlock(&r->mu);
            cr_assert_fail("waited for %zu completions, got %zu", n, got);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* The completion recorded for op id (NULL if none); counts duplicates. The
 * pointer is only good while no callback can record more (rec_one copies). */
static inline const ovl_completion *rec_find(rec *r, uint64_t id, int *count)
{
    const ovl_completion *found = NULL;
    int c = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id) {
            found = &r->items[i];
            c++;
        }
    pthread_mutex_unlock(&r->mu);
    if (count) *count = c;
    return found;
}

/* Exactly one completion for id; returns a copy (taken under the lock: the
 * array may grow, and move, while callbacks still run). */
static inline ovl_completion rec_one(rec *r, uint64_t id)
{
    ovl_completion found;
    memset(&found, 0, sizeof found);
    int c = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id) {
            found = r->items[i];
            c++;
        }
    pthread_mutex_unlock(&r->mu);
    cr_assert_eq(c, 1, "op %llx completed %d times", (unsigned long long)id, c);
    return found;
}

/* Wait until op id has been delivered (rec_wait's limit applies to each
 * completion waited for). The count is taken before the look: taken after
 * it, the op's own completion landing in between is counted but not seen,
 * and the wait is for one completion more than will ever come. */
static inline void rec_wait_id(rec *r, uint64_t id)
{
    for (;;) {
        size_t seen = rec_count(r);
        if (rec_find(r, id, NULL)) return;
        rec_wait(r, seen + 1);
    }
}

/* ---- ports ---------------------------------------------------------------- */

static inline const char *test_backend(void)
{
    const char *b = getenv("OVL_BACKEND");
    return b && *b ? b : "auto";
}

/* The delivery mode the suite runs in, from OVL_TEST_MODE (ctest runs the
 * mode-neutral suites once per mode): "thread" (the default: the port's
 * completion thread delivers), "manual" (OVL_PORT_MANUAL: rec_wait polls)
 * or "sap" (submit and deliver: a port with a completion thread whose
 * submits, made through the t_submit* wrappers below, are
 * ovl_submit_and_poll(p, &req, 1, NULL, 0) calls, so callbacks may run on
 * the test's own thread). A test that creates its port with flags 0 gets
 * the mode under test; TEST_THREADED asks for a completion thread whatever
 * the mode, for tests whose subject is that thread, and TEST_SAP for the
 * "sap" mode whatever OVL_TEST_MODE says. Neither is a library flag: both
 * are taken off before the port is created. */
#define TEST_THREADED 0x80000000u
#define TEST_SAP 0x40000000u

static inline const char *test_mode(void)
{
    const char *m = getenv("OVL_TEST_MODE");
    return m && *m ? m : "thread";
}

static inline uint32_t test_mode_flags(void)
{
    const char *m = test_mode();
    if (!strcmp(m, "manual")) return OVL_PORT_MANUAL;
    if (!strcmp(m, "sap")) return TEST_SAP;
    cr_assert_str_eq(m, "thread", "OVL_TEST_MODE: thread, manual or sap");
    return 0;
}

/* The ports of this test process whose submits go through
 * ovl_submit_and_poll (created with TEST_SAP, or in "sap" mode). Criterion
 * runs each test in a process of its own; a closed port's handle is never
 * reused by a later port, so an entry can stay. No lock: a child of fork()
 * (test_fork.c) submits through the wrappers while its parent's threads
 * may have been inside them. */
enum { T_SAP_MAX = 256 };
static ovl_port *_Atomic t_sap_ports[T_SAP_MAX];
static atomic_size_t t_sap_n;

static inline void t_sap_add(ovl_port *p)
{
    /* Past T_SAP_MAX the oldest entries, long closed, are overwritten. */
    size_t i = atomic_fetch_add(&t_sap_n, 1) % T_SAP_MAX;
    atomic_store(&t_sap_ports[i], p);
}

static inline bool t_is_sap(const ovl_port *p)
{
    if (!p) return false;
    size_t n = atomic_load(&t_sap_n);
    if (n > T_SAP_MAX) n = T_SAP_MAX;
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&t_sap_ports[i]) == p) return true;
    return false;
}

/* A port's library flags and whether its submits go through
 * ovl_submit_and_poll, from a test's flags (0: the mode under test). */
static inline uint32_t t_port_flags(uint32_t flags, bool *sap)
{
    if (flags == 0) flags = test_mode_flags();
    *sap = (flags & TEST_SAP) != 0;
    return flags & ~(TEST_THREADED | TEST_SAP);
}

/* Create a port from cfg (flags as t_port_flags takes them), recording it
 * if it is a "sap" port. The library's code, as ovl_create_port's. */
static inline int32_t t_create_port(ovl_port_config *cfg, ovl_port **out)
{
    bool sap;
    cfg->flags = t_port_flags(cfg->flags, &sap);
    int32_t rc = ovl_create_port(cfg, out);
    if (rc == OVL_OK && sap) t_sap_add(*out);
    return rc;
}

/* ---- submits: plain, or through ovl_submit_and_poll on a "sap" port -------
 * Same arguments and return codes as the library's calls. On a "sap" port
 * the one request goes through ovl_submit_and_poll(p, &req, 1, &done, 0):
 * what completes inside it is delivered before it returns, on this thread.
 * The call's own delivery errors (the port closed between its submit and
 * its poll) do not undo the submit, so done == 1 is success; from inside
 * the port's callback, where the call is refused (OVL_EDEADLK, nothing
 * submitted), the plain submit is the one to make. */
static inline int32_t t_submit(ovl_port *p, ovl_request *r)
{
    size_t done = 0;
    if (t_is_sap(p)) {
        int32_t rc = ovl_submit_and_poll(p, r, 1, &done, 0);
        if (done == 1) return OVL_OK;
        if (rc != OVL_EDEADLK) return rc;
    }
    return ovl_submit(p, r, 1, &done);
}

static inline ovl_request t_req(uint32_t op, ovl_fd fd, const void *buf, uint64_t len,
                                int64_t offset, uint32_t flags, void *ctx)
{
    ovl_request r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.fd = fd;
    r.buf = (void *)(uintptr_t)buf;
    r.len = len;
    r.offset = offset;
    r.flags = flags;
    r.ctx = ctx;
    return r;
}

/* The plain call on any other port (its own argument checks, exactly). */
static inline int32_t t_submit_one(ovl_port *p, ovl_request r, uint64_t *out_id)
{
    int32_t rc = t_submit(p, &r);
    if (out_id) *out_id = rc == OVL_OK ? r.id : 0;
    return rc;
}

static inline int32_t t_submit_read(ovl_port *p, ovl_fd fd, void *buf, size_t len, int64_t off,
                                    void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_read(p, fd, buf, len, off, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_READ, fd, buf, len, off, 0, ctx), out_id);
}

static inline int32_t t_submit_write(ovl_port *p, ovl_fd fd, const void *buf, size_t len,
                                     int64_t off, void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_write(p, fd, buf, len, off, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_WRITE, fd, buf, len, off, 0, ctx), out_id);
}

static inline int32_t t_submit_fsync(ovl_port *p, ovl_fd fd, uint32_t flags, void *ctx,
                                     uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_fsync(p, fd, flags, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_FSYNC, fd, NULL, 0, 0, flags, ctx), out_id);
}

static inline int32_t t_post(ovl_port *p, int64_t value, void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_post(p, value, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_POST, 0, NULL, 0, value, 0, ctx), out_id);
}

static inline int32_t t_submit_timer(ovl_port *p, int64_t delay_ns, void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_timer(p, delay_ns, ctx, out_id);
    ovl_request r = t_req(OVL_OP_TIMER, 0, NULL, 0, 0, 0, ctx);
    r.timeout_ns = delay_ns;
    return t_submit_one(p, r, out_id);
}

static inline int32_t t_submit_accept(ovl_port *p, ovl_fd listener, ovl_addr *peer, void *ctx,
                                      uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_accept(p, listener, peer, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_ACCEPT, listener, peer, 0, 0, 0, ctx), out_id);
}

static inline int32_t t_submit_connect(ovl_port *p, ovl_fd sock, const ovl_addr *addr, void *ctx,
                                       uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_connect(p, sock, addr, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_CONNECT, sock, addr, 0, 0, 0, ctx), out_id);
}

static inline int32_t t_submit_shutdown(ovl_port *p, ovl_fd sock, uint32_t how, void *ctx,
                                        uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_shutdown(p, sock, how, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_SHUTDOWN, sock, NULL, 0, 0, how, ctx), out_id);
}

static inline int32_t t_submit_local_dial(ovl_port *p, const char *name, int64_t timeout_ns,
                                          void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_local_dial(p, name, timeout_ns, ctx, out_id);
    ovl_request r = t_req(OVL_OP_LOCAL_DIAL, 0, name, 0, 0, 0, ctx);
    r.timeout_ns = timeout_ns;
    return t_submit_one(p, r, out_id);
}

/* A local accept on listener l of port p (ovl_submit_local_accept names
 * no port; ovl_submit takes one). */
static inline int32_t t_submit_local_accept(ovl_port *p, ovl_local *l, void *ctx, uint64_t *out_id)
{
    if (!t_is_sap(p)) return ovl_submit_local_accept(l, ctx, out_id);
    return t_submit_one(p, t_req(OVL_OP_LOCAL_ACCEPT, 0, l, 0, 0, 0, ctx), out_id);
}

/* A batch: through ovl_submit_and_poll on a "sap" port (the same
 * *out_submitted and code as ovl_submit, the delivery's errors aside). */
static inline int32_t t_submit_batch(ovl_port *p, ovl_request *reqs, size_t n,
                                     size_t *out_submitted)
{
    if (t_is_sap(p) && n) {
        size_t done = 0;
        int32_t rc = ovl_submit_and_poll(p, reqs, n, &done, 0);
        if (out_submitted) *out_submitted = done;
        if (done == n) return OVL_OK;
        if (rc != OVL_EDEADLK) return rc;
    }
    return ovl_submit(p, reqs, n, out_submitted);
}

static inline ovl_port *open_port_cfg(rec *r, ovl_port_config *cfg)
{
    cfg->callback = rec_cb;
    cfg->userdata = r;
    ovl_port *p = NULL;
    int32_t rc = t_create_port(cfg, &p);
    r->manual = (cfg->flags & OVL_PORT_MANUAL) != 0;
    if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s not available on this host", test_backend());
    cr_assert_eq(rc, OVL_OK, "ovl_create_port: %s", ovl_strerror(rc));
    r->port = p;
    return p;
}

static inline ovl_port *open_port(rec *r, uint32_t depth, uint32_t flags)
{
    ovl_port_config cfg;
    cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
    cfg.queue_depth = depth;
    cfg.flags = flags;
    return open_port_cfg(r, &cfg);
}

/* Every test ends here: close, then prove nothing was left in flight, every
 * accepted op was delivered exactly once and no stale completion appeared. */
static inline void close_check(ovl_port *p, rec *r)
{
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.inflight, 0u, "ops left in flight: %u", s.inflight);
    cr_assert_eq(s.submitted, s.completed, "submitted %llu, completed %llu",
                 (unsigned long long)s.submitted, (unsigned long long)s.completed);
    cr_assert_eq(s.stale, 0u);
    cr_assert_eq(rec_count(r), s.completed, "callback saw %zu, port says %llu", rec_count(r),
                 (unsigned long long)s.completed);
    /* each id exactly once */
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = i + 1; j < r->n; j++)
            cr_assert_neq(r->items[i].id, r->items[j].id, "id delivered twice");
    pthread_mutex_unlock(&r->mu);
    cr_assert_eq(atomic_load(&r->overlap), 0, "callbacks overlapped");
}

static inline void close_clean(ovl_port *p, rec *r)
{
    close_check(p, r);
    rec_free(r);
}

/* ---- data ------------------------------------------------------------------ */

static inline uint8_t pattern_at(uint64_t off, unsigned seed)
{
    uint64_t x = off * 0x9e3779b97f4a7c15ull + seed;
    return (uint8_t)(x >> 56);
}

/* A temp file of `size` bytes with pattern_at() content, already unlinked. */
static inline int temp_file(size_t size, unsigned seed)
{
    char path[] = "/tmp/ovl-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    uint8_t buf[8192];
    for (size_t off = 0; off < size;) {
        size_t n = size - off < sizeof buf ? size - off : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = pattern_at(off + i, seed);
        cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
        off += n;
    }
    return fd;
}

static inline bool matches_pattern(const uint8_t *b, size_t n, uint64_t off, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_at(off + i, seed)) return false;
    return true;
}

/* A posted completion's round trip: once it is back, the port's delivery
 * side has run at least one more batch (no ordering is implied). */
static inline void round_trip(ovl_port *p, rec *r)
{
    uint64_t id;
    cr_assert_eq(t_post(p, 7, NULL, &id), OVL_OK);
    rec_wait_id(r, id);
}

#endif
