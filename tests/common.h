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

/* ---- ports ---------------------------------------------------------------- */

static inline const char *test_backend(void)
{
    const char *b = getenv("OVL_BACKEND");
    return b && *b ? b : "auto";
}

/* The delivery mode the suite runs in, from OVL_TEST_MODE (ctest runs the
 * mode-neutral suites once per mode): "thread" (the default: the port's
 * completion thread delivers), "manual" (OVL_PORT_MANUAL: rec_wait polls)
 * or "inline" (OVL_PORT_INLINE: submits deliver what completed inside
 * them). A test that creates its port with flags 0 gets the mode under
 * test; TEST_THREADED asks for a completion thread whatever the mode, for
 * tests whose subject is that thread. */
#define TEST_THREADED 0x80000000u

static inline const char *test_mode(void)
{
    const char *m = getenv("OVL_TEST_MODE");
    return m && *m ? m : "thread";
}

static inline uint32_t test_mode_flags(void)
{
    const char *m = test_mode();
    if (!strcmp(m, "manual")) return OVL_PORT_MANUAL;
    if (!strcmp(m, "inline")) return OVL_PORT_INLINE;
    cr_assert_str_eq(m, "thread", "OVL_TEST_MODE: thread, manual or inline");
    return 0;
}

static inline ovl_port *open_port_cfg(rec *r, ovl_port_config *cfg)
{
    if (cfg->flags == 0) cfg->flags = test_mode_flags();
    cfg->flags &= ~TEST_THREADED;
    r->manual = (cfg->flags & OVL_PORT_MANUAL) != 0;
    cfg->callback = rec_cb;
    cfg->userdata = r;
    ovl_port *p = NULL;
    int32_t rc = ovl_create_port(cfg, &p);
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
    size_t before = rec_count(r);
    uint64_t id;
    cr_assert_eq(ovl_post(p, 7, NULL, &id), OVL_OK);
    rec_wait(r, before + 1);
    int c;
    while (rec_find(r, id, &c) == NULL) rec_wait(r, rec_count(r) + 1);
}

#endif
