/* faults.c - fault injection through ovl__sys (issue 8): EINTR, EAGAIN,
 * ENOMEM, EIO, short transfers, io_uring_enter/-setup failures, a full
 * submission queue, completion-queue overflow and failing thread starts.
 * Each test shows the fault surfacing as the documented completion or
 * error while every other op still completes exactly once. Backend-specific
 * cases skip under the other backend (OVL_BACKEND picks, as ctest sets). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <ovl.h>

#include "faults.h"
#include "ovl_internal.h" /* white box: is the completion thread parked? */

#include <sched.h>

/* Internal (ovl_static): whether io_uring works here. */
int32_t ovl__uring_probe(const char **reason);

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A failure detector for "must happen", never a timing assertion. */
#define WAIT_LIMIT_MS 20000
#define MAXC 8192

/* ---- the collector ------------------------------------------------------- */
typedef struct coll coll;
struct coll {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ovl_completion items[MAXC];
    size_t n;
    atomic_int in_cb, overlap;
    void (*hook)(coll *c, const ovl_completion *it, size_t n);
    ovl_port *port;
    void *data;
};

static void on_batch(const ovl_completion *it, size_t n, void *ud)
{
    coll *c = ud;
    if (atomic_fetch_add(&c->in_cb, 1)) atomic_fetch_add(&c->overlap, 1);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n && c->n < MAXC; i++) c->items[c->n++] = it[i];
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->hook) c->hook(c, it, n);
    atomic_fetch_sub(&c->in_cb, 1);
}

static coll *coll_new(void)
{
    coll *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &a);
    return c;
}

/* Wait until at least n completions arrived; false on the failure limit. */
static bool coll_wait(coll *c, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += WAIT_LIMIT_MS / 1000;
    pthread_mutex_lock(&c->mu);
    int e = 0;
    while (c->n < n && e != ETIMEDOUT) e = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    bool ok = c->n >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Completions recorded so far (under the collector's lock: the completion
 * thread may be recording more). */
static size_t coll_n(coll *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static const ovl_completion *coll_find(coll *c, uint64_t id)
{
    const ovl_completion *f = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].id == id) {
            cr_assert_null(f, "id %llx delivered twice", (unsigned long long)id);
            f = &c->items[i];
        }
    pthread_mutex_unlock(&c->mu);
    cr_assert_not_null(f, "id %llx never delivered", (unsigned long long)id);
    return f;
}

/* Close, then: every id delivered exactly once, nothing else delivered,
 * nothing left in flight, no stale completions, callbacks never overlapped. */
static void close_and_check(coll *c, const uint64_t *ids, size_t k)
{
    ovl_port *p = c->port;
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    cr_assert_eq(c->n, k, "%zu completions delivered, %zu ops submitted", c->n, k);
    for (size_t i = 0; i < k; i++) coll_find(c, ids[i]);
    ovl_stats st = {.size = sizeof st};
    cr_assert_eq(ovl_port_stats(p, &st), OVL_OK);
    cr_assert_eq(st.inflight, 0);
    cr_assert_eq(st.submitted, k);
    cr_assert_eq(st.completed, k);
    cr_assert_eq(st.stale, 0);
    cr_assert_eq(atomic_load(&c->overlap), 0, "two callbacks ran at once");
}

/* ---- backends ------------------------------------------------------------ */

static const char *env_backend(void)
{
    const char *e = getenv("OVL_BACKEND");
    return e && *e ? e : NULL;
}

/* Skip unless the run is for `name` (or for no backend in particular). */
static void only_backend(const char *name)
{
    const char *e = env_backend();
    if (e && strcmp(e, name) != 0) cr_skip_test("%s-only case (this run: %s)", name, e);
}

static uint32_t backend_id(const char *name)
{
    if (!strcmp(name, "auto")) return OVL_BACKEND_AUTO;
    return !strcmp(name, "uring") ? OVL_BACKEND_URING : OVL_BACKEND_THREADS;
}

/* The backend of this run: OVL_BACKEND, else the host's default. */
static const char *run_backend(void)
{
    const char *e = env_backend();
    if (e) return e;
    uint32_t b;
    ovl_backend_reason(&b);
    return b == OVL_BACKEND_URING ? "uring" : "threads";
}

static int32_t try_port(coll *c, const char *backend, uint32_t depth, uint32_t flags,
                        uint32_t threads)
{
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.backend = backend_id(backend);
    cfg.queue_depth = depth;
    cfg.flags = flags;
    cfg.threads = threads;
    cfg.callback = on_batch;
    cfg.userdata = c;
    return ovl_create_port(&cfg, &c->port);
}

static coll *open_port(const char *backend, uint32_t depth, uint32_t flags)
{
    coll *c = coll_new();
    int32_t rc = try_port(c, backend, depth, flags, 2);
    if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s unavailable here", backend);
    cr_assert_eq(rc, OVL_OK, "ovl_create_port(%s): %s", backend, ovl_error_name(rc));
    return c;
}

/* ---- files --------------------------------------------------------------- */

static uint8_t pat(uint64_t o) { return (uint8_t)(o * 131u + (o >> 9)); }

static int tmp_file(size_t size)
{
    char path[] = "/tmp/ovl-faults-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    uint8_t *b = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) b[i] = pat(i);
    cr_assert_eq(pwrite(fd, b, size, 0), (ssize_t)size);
    free(b);
    return fd;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static void setup(void) { faults_install(); }
static void teardown(void) { faults_remove(); }

/* Every case: wrappers installed before, the real table restored after. */
#define FTest(name) Test(faults, name, .init = setup, .fini = teardown, .timeout = 120)

/* Submit `k` posts (bystanders: they must be unaffected). */
static size_t posts(coll *c, uint64_t *ids, size_t at, size_t k)
{
    for (size_t i = 0; i < k; i++)
        cr_assert_eq(ovl_post(c->port, (int64_t)(1000 + i), NULL, &ids[at + i]), OVL_OK);
    return at + k;
}

/* ======================================================================
 * threads backend: pread / pwrite / read / write / fsync / poll
 * ====================================================================== */

/* EINTR is retried inside the worker: the op completes with its bytes. */
FTest(threads_eintr_retried)
{
    only_backend("threads");
    int fd = tmp_file(65536);
    coll *c = open_port("threads", 64, 0);
    uint64_t ids[32];
    size_t k = 0;
    static uint8_t rb[4096], wb[4096];
    memset(wb, 0x5a, sizeof wb);
    inj_arm(&F.pread, fd, 0, 5, EINTR, 0);
    inj_arm(&F.pwrite, fd, 0, 5, EINTR, 0);
    inj_arm(&F.fsync, fd, 0, 3, EINTR, 0);
    cr_assert_eq(ovl_submit_read(c->port, (ovl_fd)fd, rb, sizeof rb, 4096, NULL, &ids[k++]),
                 OVL_OK);
    cr_assert_eq(ovl_submit_write(c->port, (ovl_fd)fd, wb, sizeof wb, 65536, NULL, &ids[k++]),
                 OVL_OK);
    cr_assert_eq(ovl_submit_fsync(c->port, (ovl_fd)fd, 0, NULL, &ids[k++]), OVL_OK);
    k = posts(c, ids, k, 8);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(atomic_load(&F.pread.hits), 5);
    cr_assert_eq(atomic_load(&F.pwrite.hits), 5);
    cr_assert_eq(atomic_load(&F.fsync.hits), 3);
    cr_assert_eq(coll_find(c, ids[0])->result, 4096);
    for (int i = 0; i < 4096; i++) cr_assert_eq(rb[i], pat(4096 + (uint64_t)i));
    cr_assert_eq(coll_find(c, ids[1])->result, 4096);
    cr_assert_eq(coll_find(c, ids[2])->result, 0);
    close_and_check(c, ids, k);
    uint8_t back[4096];
    cr_assert_eq(pread(fd, back, sizeof back, 65536), 4096);
    cr_assert_eq(memcmp(back, wb, sizeof back), 0);
    close(fd);
}

/* Manual mode: what completes while the call that submitted it holds the
 * port's delivery and will wait for it (a post completes inside its own
 * submit, before the wait begins) is that call's to take, so the port's
 * event handle is never signalled for it: an outside poller (Go's
 * netpoller) is not woken only to find the delivery taken. Counted at the
 * write that signals the handle. A plain post still signals it. */
FTest(threads_waiting_submit_leaves_event_handle_alone)
{
    only_backend("threads");
    coll *c = open_port("threads", 16, OVL_PORT_MANUAL);
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(c->port, &efd), OVL_OK);
    inj_arm(&F.write, (int)efd, 0, 0, 0, 0); /* count only */
    uint64_t ids[101];
    for (int k = 0; k < 100; k++) {
        ovl_request q;
        memset(&q, 0, sizeof q);
        q.op = OVL_OP_POST;
        q.offset = k;
        size_t done = 0;
        cr_assert_eq(ovl_submit_and_poll(c->port, &q, 1, &done, 1000), 1);
        cr_assert_eq(done, 1u);
        ids[k] = q.id;
    }
    cr_assert_eq(atomic_load(&F.write.calls), 0, "the handle was signalled %d times",
                 atomic_load(&F.write.calls));
    cr_assert_eq(ovl_post(c->port, 100, NULL, &ids[100]), OVL_OK);
    cr_assert_geq(atomic_load(&F.write.calls), 1, "a plain post must signal the handle");
    cr_assert_eq(ovl_poll(c->port, -1), 1);
    close_and_check(c, ids, 101);
}

/* An errno from the OS becomes that op's completion (result OVL_E code,
 * os_error the raw errno); the other reads on the same file are untouched. */
static void one_error(int err, int32_t code, bool write)
{
    only_backend("threads");
    int fd = tmp_file(1 << 16);
    coll *c = open_port("threads", 64, 0);
    static uint8_t bufs[16][1024];
    uint64_t ids[64];
    size_t k = 0;
    inj_arm(write ? &F.pwrite : &F.pread, fd, 3, 1, err, 0);
    for (int i = 0; i < 16; i++) {
        if (write) memset(bufs[i], i, sizeof bufs[i]);
        int32_t rc = write ? ovl_submit_write(c->port, (ovl_fd)fd, bufs[i], 1024, (int64_t)i * 1024,
                                              &bufs[i], &ids[k])
                           : ovl_submit_read(c->port, (ovl_fd)fd, bufs[i], 1024, (int64_t)i * 1024,
                                             &bufs[i], &ids[k]);
        cr_assert_eq(rc, OVL_OK);
        k++;
    }
    k = posts(c, ids, k, 8);
    cr_assert(coll_wait(c, k));
    int failed = 0;
    for (int i = 0; i < 16; i++) {
        const ovl_completion *x = coll_find(c, ids[i]);
        cr_assert_eq(x->ctx, &bufs[i]);
        if (x->result < 0) {
            failed++;
            cr_assert_eq(x->result, code, "result %s", ovl_error_name((int32_t)x->result));
            cr_assert_eq(x->os_error, err);
        } else {
            cr_assert_eq(x->result, 1024);
            cr_assert_eq(x->os_error, 0);
            if (!write)
                for (int j = 0; j < 1024; j++)
                    cr_assert_eq(bufs[i][j], pat((uint64_t)i * 1024 + (uint64_t)j));
        }
    }
    cr_assert_eq(failed, 1, "exactly the injected op fails");
    cr_assert_eq(atomic_load(&(write ? &F.pwrite : &F.pread)->hits), 1);
    close_and_check(c, ids, k);
    close(fd);
}

FTest(threads_pread_eio) { one_error(EIO, OVL_EIO, false); }
FTest(threads_pread_enomem) { one_error(ENOMEM, OVL_ENOMEM, false); }
/* A positional read has nothing to wait for: EAGAIN is reported as is. */
FTest(threads_pread_eagain) { one_error(EAGAIN, OVL_EAGAIN, false); }
FTest(threads_pwrite_eio) { one_error(EIO, OVL_EIO, true); }
FTest(threads_pwrite_enospc) { one_error(ENOSPC, OVL_ENOSPC, true); }

FTest(threads_fsync_eio)
{
    only_backend("threads");
    int fd = tmp_file(4096);
    coll *c = open_port("threads", 16, 0);
    uint64_t ids[16];
    size_t k = 0;
    inj_arm(&F.fsync, fd, 0, 1, EIO, 0);
    inj_arm(&F.fdatasync, fd, 0, 1, EIO, 0);
    cr_assert_eq(ovl_submit_fsync(c->port, (ovl_fd)fd, 0, NULL, &ids[k++]), OVL_OK);
    cr_assert_eq(ovl_submit_fsync(c->port, (ovl_fd)fd, OVL_FSYNC_DATA, NULL, &ids[k++]), OVL_OK);
    k = posts(c, ids, k, 4);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(coll_find(c, ids[0])->result, OVL_EIO);
    cr_assert_eq(coll_find(c, ids[0])->os_error, EIO);
    cr_assert_eq(coll_find(c, ids[1])->result, OVL_EIO);
    close_and_check(c, ids, k);
    close(fd);
}

/* Short transfers are reported as they happened (guarantee 4). */
FTest(threads_short_read_write)
{
    only_backend("threads");
    int fd = tmp_file(1 << 16);
    coll *c = open_port("threads", 16, 0);
    static uint8_t rb[8192], wb[8192];
    memset(wb, 0xa5, sizeof wb);
    uint64_t ids[16];
    size_t k = 0;
    inj_arm(&F.pread, fd, 0, 1, 0, 100);
    cr_assert_eq(ovl_submit_read(c->port, (ovl_fd)fd, rb, sizeof rb, 1000, NULL, &ids[k++]),
                 OVL_OK);
    cr_assert(coll_wait(c, 1));
    inj_arm(&F.pwrite, fd, 0, 1, 0, 3000);
    cr_assert_eq(ovl_submit_write(c->port, (ovl_fd)fd, wb, sizeof wb, 1 << 16, NULL, &ids[k++]),
                 OVL_OK);
    k = posts(c, ids, k, 4);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(coll_find(c, ids[0])->result, 100);
    for (int i = 0; i < 100; i++) cr_assert_eq(rb[i], pat(1000 + (uint64_t)i));
    cr_assert_eq(coll_find(c, ids[1])->result, 3000);
    close_and_check(c, ids, k);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, (1 << 16) + 3000, "only the short part was written");
    close(fd);
}

/* Stream ops: EAGAIN means "not ready after all" and parks the op again;
 * EINTR is retried; a short pipe write is reported short; poll() EINTR in
 * the readiness thread is harmless. All complete with the right bytes. */
FTest(threads_stream_eagain_eintr_short)
{
    only_backend("threads");
    int pa[2], pb[2];
    cr_assert_eq(pipe(pa), 0);
    cr_assert_eq(pipe(pb), 0);
    coll *c = open_port("threads", 16, 0);
    static uint8_t rb[64], wb[64];
    for (int i = 0; i < 64; i++) wb[i] = (uint8_t)i;
    uint64_t ids[16];
    size_t k = 0;
    inj_arm(&F.read, pa[0], 0, 3, EAGAIN, 0);
    inj_arm(&F.write, pb[1], 0, 2, EINTR, 0);
    inj_arm(&F.poll, -1, 0, 4, EINTR, 0);
    cr_assert_eq(
        ovl_submit_read(c->port, (ovl_fd)pa[0], rb, 64, OVL_OFFSET_CURRENT, NULL, &ids[k++]),
        OVL_OK);
    cr_assert_eq(write(pa[1], wb, 64), 64);
    cr_assert_eq(
        ovl_submit_write(c->port, (ovl_fd)pb[1], wb, 64, OVL_OFFSET_CURRENT, NULL, &ids[k++]),
        OVL_OK);
    k = posts(c, ids, k, 4);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(coll_find(c, ids[0])->result, 64);
    cr_assert_eq(memcmp(rb, wb, 64), 0);
    cr_assert_eq(coll_find(c, ids[1])->result, 64);
    cr_assert_eq(atomic_load(&F.read.hits), 3);
    cr_assert_eq(atomic_load(&F.write.hits), 2);
    /* A short stream write. */
    inj_arm(&F.write, pb[1], 0, 1, 0, 10);
    cr_assert_eq(
        ovl_submit_write(c->port, (ovl_fd)pb[1], wb, 64, OVL_OFFSET_CURRENT, NULL, &ids[k++]),
        OVL_OK);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(coll_find(c, ids[k - 1])->result, 10);
    close_and_check(c, ids, k);
    uint8_t got[128];
    cr_assert_eq(read(pb[0], got, sizeof got), 74);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
}

/* A stream read that keeps getting EAGAIN stays parked, and a cancel (or
 * close) completes it exactly once with OVL_ECANCELED. */
FTest(threads_stream_eagain_forever_then_cancel)
{
    only_backend("threads");
    int pa[2];
    cr_assert_eq(pipe(pa), 0);
    coll *c = open_port("threads", 16, 0);
    static uint8_t rb[64];
    uint64_t ids[8];
    size_t k = 0;
    inj_arm(&F.read, pa[0], 0, -1, EAGAIN, 0);
    cr_assert_eq(write(pa[1], "x", 1), 1); /* always "ready", never readable */
    cr_assert_eq(
        ovl_submit_read(c->port, (ovl_fd)pa[0], rb, 64, OVL_OFFSET_CURRENT, NULL, &ids[k++]),
        OVL_OK);
    /* Wait until it was tried and parked at least twice. */
    for (int i = 0; i < 20000 && atomic_load(&F.read.hits) < 2; i++) usleep(1000);
    cr_assert_geq(atomic_load(&F.read.hits), 2);
    cr_assert_eq(ovl_cancel(c->port, ids[0]), OVL_OK);
    k = posts(c, ids, k, 2);
    cr_assert(coll_wait(c, k));
    cr_assert_eq(coll_find(c, ids[0])->result, OVL_ECANCELED);
    close_and_check(c, ids, k);
    close(pa[0]);
    close(pa[1]);
}

/* ======================================================================
 * Thread starts and wake handles (both backends)
 * ====================================================================== */

/* Fail the n-th thread start of a port, for every n the port makes: the
 * poller and each worker (threads), the completion thread (both). Creation
 * fails with OVL_EAGAIN, *out stays NULL, nothing leaks, and a port created
 * afterwards works. */
FTest(thread_start_fails)
{
    const char *b = run_backend();
    const uint32_t workers = 3;
    int threads_made = !strcmp(b, "threads") ? 1 + (int)workers + 1 : 1;
    for (int manual = 0; manual < 2; manual++) {
        int nth = threads_made - manual; /* manual: no completion thread */
        for (int fail_at = 0; fail_at < nth; fail_at++) {
            int before = count_fds();
            inj_arm(&F.thread_create, -1, fail_at, 1, EAGAIN, 0);
            coll *c = coll_new();
            int32_t rc = try_port(c, b, 32, manual ? OVL_PORT_MANUAL : 0, workers);
            if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s unavailable", b);
            cr_assert_eq(rc, OVL_EAGAIN, "%s manual=%d failing start #%d: %s", b, manual, fail_at,
                         ovl_error_name(rc));
            cr_assert_null(c->port);
            cr_assert_eq(atomic_load(&F.thread_create.hits), 1);
            cr_assert_eq(count_fds(), before, "fds leaked");
            free(c);
        }
        /* And one more start than needed: nothing fails. */
        inj_arm(&F.thread_create, -1, nth, 1, EAGAIN, 0);
        coll *c = coll_new();
        cr_assert_eq(try_port(c, b, 32, manual ? OVL_PORT_MANUAL : 0, workers), OVL_OK);
        cr_assert_eq(atomic_load(&F.thread_create.hits), 0);
        uint64_t ids[4];
        posts(c, ids, 0, 4);
        if (manual) {
            int got = 0;
            for (int i = 0; i < 100 && got < 4; i++) {
                int32_t r = ovl_poll(c->port, 100);
                cr_assert_geq(r, 0);
                got += r;
            }
        }
        cr_assert(coll_wait(c, 4));
        close_and_check(c, ids, 4);
    }
}

/* The wake handle (eventfd) cannot be made: creation fails cleanly. */
FTest(wakefd_fails)
{
    const char *b = run_backend();
    for (int manual = 0; manual < 2; manual++) {
        int before = count_fds();
        inj_arm(&F.wakefd, -1, 0, 1, EMFILE, 0);
        coll *c = coll_new();
        int32_t rc = try_port(c, b, 32, manual ? OVL_PORT_MANUAL : 0, 2);
        if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s unavailable", b);
        if (atomic_load(&F.wakefd.hits) == 0) {
            /* This backend needs no wake handle in this mode. */
            cr_assert_eq(rc, OVL_OK);
            cr_assert_eq(ovl_close_port(c->port), OVL_OK);
        } else {
            cr_assert_neq(rc, OVL_OK, "%s manual=%d", b, manual);
            cr_assert_null(c->port);
        }
        cr_assert_eq(count_fds(), before, "fds leaked");
        free(c);
    }
}

/* ======================================================================
 * io_uring: setup, enter, full SQ, CQ overflow
 * ====================================================================== */

/* io_uring_setup blocked (EPERM, as seccomp does) before the first probe:
 * AUTO falls back to threads and says why; an explicit uring request gets
 * OVL_EUNAVAIL (no silent substitute). */
FTest(uring_setup_eperm_falls_back)
{
    only_backend("uring");
    unsetenv("OVL_BACKEND");
    inj_arm(&F.uring_setup, -1, 0, -1, EPERM, 0);
    uint32_t b = 99;
    const char *why = ovl_backend_reason(&b);
    cr_assert_eq(b, OVL_BACKEND_THREADS, "auto chose %u (%s)", b, why);
    cr_assert_not_null(strstr(why, "EPERM"), "reason: %s", why);
    coll *c = coll_new();
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.callback = on_batch;
    cfg.userdata = c;
    cr_assert_eq(ovl_create_port(&cfg, &c->port), OVL_OK);
    cr_assert_str_eq(ovl_backend_name(c->port), "threads");
    uint64_t ids[4];
    posts(c, ids, 0, 4);
    cr_assert(coll_wait(c, 4));
    close_and_check(c, ids, 4);
    ovl_port *p = NULL;
    cfg.backend = OVL_BACKEND_URING;
    cr_assert_eq(ovl_create_port(&cfg, &p), OVL_EUNAVAIL);
    cr_assert_null(p);
}

/* The probe's NOP round trip fails (io_uring_enter blocked): same fallback. */
FTest(uring_enter_blocked_at_probe_falls_back)
{
    only_backend("uring");
    inj_arm(&F.uring_enter, -1, 0, -1, EPERM, 0);
    uint32_t b = 99;
    const char *why = ovl_backend_reason(&b);
    cr_assert_eq(b, OVL_BACKEND_THREADS, "auto chose %u (%s)", b, why);
    int before = count_fds();
    ovl_port *p = NULL;
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.backend = OVL_BACKEND_URING;
    cr_assert_eq(ovl_create_port(&cfg, &p), OVL_EUNAVAIL);
    cr_assert_eq(count_fds(), before);
}

/* After a good probe, a port's own ring cannot be set up (ENOMEM: the
 * locked-memory limit) or mapped: ovl_create_port reports the error and
 * leaks nothing; the next port works. */
FTest(uring_setup_and_mmap_fail_at_create)
{
    only_backend("uring");
    /* The probe runs (and is cached) now, before any fault is armed. */
    uint32_t probed;
    ovl_backend_reason(&probed);
    if (probed != OVL_BACKEND_URING) cr_skip_test("io_uring unavailable");
    int before = count_fds();
    struct {
        inj *f;
        int skip;
        int err;
        int32_t want;
    } cases[] = {
        {&F.uring_setup, 0, ENOMEM, OVL_ENOMEM},
        {&F.mmap, 0, ENOMEM, OVL_ENOMEM},
        {&F.mmap, 1, ENOMEM, OVL_ENOMEM}, /* the SQE array */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        inj_arm(cases[i].f, -1, cases[i].skip, 1, cases[i].err, 0);
        coll *c = coll_new();
        int32_t rc = try_port(c, "uring", 32, 0, 0);
        cr_assert_eq(rc, cases[i].want, "case %zu: %s", i, ovl_error_name(rc));
        cr_assert_null(c->port);
        cr_assert_eq(count_fds(), before, "case %zu leaked an fd", i);
        free(c);
    }
    /* Manual mode: registering the eventfd fails. */
    inj_arm(&F.uring_register, -1, 0, 1, ENOMEM, 0);
    coll *c = coll_new();
    cr_assert_eq(try_port(c, "uring", 32, OVL_PORT_MANUAL, 0), OVL_ENOMEM);
    cr_assert_eq(count_fds(), before);
    cr_assert_eq(try_port(c, "uring", 32, 0, 0), OVL_OK);
    uint64_t ids[4];
    posts(c, ids, 0, 4);
    cr_assert(coll_wait(c, 4));
    close_and_check(c, ids, 4);
}

/* Under AUTO, the same failure after a good probe falls back to threads for
 * that port (auto means "what works here"); the next port is on uring
 * again. */
FTest(uring_setup_fails_at_create_auto_falls_back)
{
    only_backend("uring");
    unsetenv("OVL_BACKEND");
    /* The probe runs (and is cached) now, before any fault is armed. */
    uint32_t probed;
    ovl_backend_reason(&probed);
    if (probed != OVL_BACKEND_URING) cr_skip_test("io_uring unavailable");
    int before = count_fds();
    inj_arm(&F.uring_setup, -1, 0, 1, ENOMEM, 0);
    coll *c = coll_new();
    cr_assert_eq(try_port(c, "auto", 32, 0, 0), OVL_OK);
    cr_assert_str_eq(ovl_backend_name(c->port), "threads");
    uint64_t ids[4];
    posts(c, ids, 0, 4);
    cr_assert(coll_wait(c, 4));
    close_and_check(c, ids, 4);
    cr_assert_eq(count_fds(), before);
    coll *d = coll_new();
    cr_assert_eq(try_port(d, "auto", 32, 0, 0), OVL_OK);
    cr_assert_str_eq(ovl_backend_name(d->port), "uring");
    posts(d, ids, 0, 4);
    cr_assert(coll_wait(d, 4));
    close_and_check(d, ids, 4);
}

/* io_uring_enter returns -EINTR / -EAGAIN / -EBUSY to submitters, a few
 * times or many (more than flush() retries on its own): no SQE is lost and
 * every op still completes exactly once. */
static void enter_fails(int err, int times, unsigned mask)
{
    only_backend("uring");
    int fd = tmp_file(1 << 16);
    coll *c = open_port("uring", 64, 0);
    static uint8_t rb[8][512];
    uint64_t ids[32];
    size_t k = 0;
    atomic_store(&F.uring_enter.mask, mask);
    inj_arm(&F.uring_enter, -1, 0, times, err, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(
            ovl_submit_read(c->port, (ovl_fd)fd, rb[i], 512, (int64_t)i * 512, NULL, &ids[k++]),
            OVL_OK);
    k = posts(c, ids, k, 8);
    cr_assert(coll_wait(c, k),
              "only %zu of %zu completions after enter failed %d times "
              "with %s (hits %d)",
              c->n, k, times, strerror(err), atomic_load(&F.uring_enter.hits));
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(coll_find(c, ids[i])->result, 512);
        for (int j = 0; j < 512; j++) cr_assert_eq(rb[i][j], pat((uint64_t)i * 512 + (uint64_t)j));
    }
    /* The completion thread may have been asleep in an enter made before
     * the fault was armed and delivered everything from that one wake-up;
     * it enters again (and meets the fault) as soon as it goes idle. */
    for (int spins = 0; atomic_load(&F.uring_enter.hits) == 0 && spins < 200000; spins++)
        sched_yield();
    cr_assert_gt(atomic_load(&F.uring_enter.hits), 0);
    close_and_check(c, ids, k);
    close(fd);
}

FTest(uring_enter_eintr_submit) { enter_fails(EINTR, 5, ENTER_SUBMIT); }
FTest(uring_enter_eagain_submit) { enter_fails(EAGAIN, 5, ENTER_SUBMIT); }
FTest(uring_enter_ebusy_submit) { enter_fails(EBUSY, 5, ENTER_SUBMIT); }
FTest(uring_enter_eagain_submit_long) { enter_fails(EAGAIN, 200, ENTER_SUBMIT); }
FTest(uring_enter_ebusy_submit_long) { enter_fails(EBUSY, 200, ENTER_SUBMIT); }
FTest(uring_enter_eintr_wait) { enter_fails(EINTR, 20, ENTER_WAIT); }
FTest(uring_enter_ebusy_wait) { enter_fails(EBUSY, 20, ENTER_WAIT); }
FTest(uring_enter_eagain_any) { enter_fails(EAGAIN, 300, ENTER_ANY); }

/* A full submission queue: a tiny ring (2 SQEs) while a callback defers far
 * more submits than fit, and other threads submit at the same time. The
 * backend must push what is queued and never drop one. Run on both
 * backends (the ring size only matters to uring). */
typedef struct chain {
    atomic_int left;
    uint64_t ids[4096];
    atomic_size_t nids;
} chain;

static void chain_hook(coll *c, const ovl_completion *it, size_t n)
{
    chain *ch = c->data;
    for (size_t i = 0; i < n; i++) {
        if (it[i].result != 7) continue; /* only the seed post fans out */
        for (int j = 0; j < 200; j++) {
            uint64_t id;
            int32_t rc = ovl_post(c->port, 8, NULL, &id);
            if (rc == OVL_EQUEUEFULL) break;
            cr_assert_eq(rc, OVL_OK);
            ch->ids[atomic_fetch_add(&ch->nids, 1)] = id;
        }
    }
}

FTest(full_submission_queue)
{
    atomic_store(&F.ring_entries, 2);
    coll *c = open_port(run_backend(), 1024, 0);
    chain *ch = calloc(1, sizeof *ch);
    c->data = ch;
    c->hook = chain_hook;
    int fd = tmp_file(1 << 16);
    static uint8_t rb[64][256];
    for (int round = 0; round < 4; round++) {
        uint64_t id;
        cr_assert_eq(ovl_post(c->port, 7, NULL, &id), OVL_OK);
        ch->ids[atomic_fetch_add(&ch->nids, 1)] = id;
        for (int i = 0; i < 16; i++) {
            cr_assert_eq(ovl_submit_read(c->port, (ovl_fd)fd, rb[round * 16 + i], 256,
                                         (int64_t)(round * 16 + i) * 256, NULL, &id),
                         OVL_OK);
            ch->ids[atomic_fetch_add(&ch->nids, 1)] = id;
        }
    }
    /* 4 seeds x (1 + 200 fan-out) + 64 reads. */
    cr_assert(coll_wait(c, 4 * 201 + 64), "only %zu completions", c->n);
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 256; j++) cr_assert_eq(rb[i][j], pat((uint64_t)i * 256 + (uint64_t)j));
    close_and_check(c, ch->ids, atomic_load(&ch->nids));
    close(fd);
}

/* Completion-queue overflow: a tiny ring (CQ of 4) and a callback held
 * while 255 NOPs complete: the kernel keeps the overflow (NODROP) and
 * flags IORING_SQ_CQ_OVERFLOW; u_wait must flush it. All 256 arrive
 * exactly once, nothing stale. Both backends (threads: a burst). */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    bool held;
} gate;

static void gate_hook(coll *c, const ovl_completion *it, size_t n)
{
    (void)it;
    (void)n;
    gate *g = c->data;
    pthread_mutex_lock(&g->mu);
    if (!g->held) {
        g->held = true;
        pthread_cond_broadcast(&g->cv);
        while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

FTest(cq_overflow)
{
    atomic_store(&F.ring_entries, 2);
    coll *c = open_port(run_backend(), 256, 0);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
    c->data = &g;
    c->hook = gate_hook;
    uint64_t ids[257];
    cr_assert_eq(ovl_post(c->port, 0, NULL, &ids[0]), OVL_OK);
    pthread_mutex_lock(&g.mu);
    while (!g.held) pthread_cond_wait(&g.cv, &g.mu); /* the callback is held */
    pthread_mutex_unlock(&g.mu);
    /* The held op was released before its callback: 256 more fit. */
    for (int i = 1; i <= 256; i++) cr_assert_eq(ovl_post(c->port, i, NULL, &ids[i]), OVL_OK);
    uint64_t extra = 1;
    cr_assert_eq(ovl_post(c->port, 0, NULL, &extra), OVL_EQUEUEFULL);
    cr_assert_eq(extra, 0);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    cr_assert(coll_wait(c, 257), "only %zu of 257 after overflow", c->n);
    for (int i = 0; i <= 256; i++) cr_assert_eq(coll_find(c, ids[i])->result, i);
    close_and_check(c, ids, 257);
}

/* ovl_poll(p, 0) on a port with a completion thread delivers, on the
 * calling thread, what completed inside the submit (page-cache reads and
 * posts do, in io_uring_enter). Made deterministic by keeping the
 * completion thread out of the kernel: its wait is gated, holding no lock. */
static pthread_t poll_caller;
static atomic_int poll_elsewhere;
static void caller_hook(coll *c, const ovl_completion *it, size_t n)
{
    (void)c;
    (void)it;
    (void)n;
    if (!pthread_equal(pthread_self(), poll_caller)) atomic_fetch_add(&poll_elsewhere, 1);
}

FTest(zero_timeout_poll_delivers_on_the_caller)
{
    only_backend("uring");
    int fd = tmp_file(1 << 16);
    ovl_backend_reason(NULL); /* the probe's own wait, before the gate */
    atomic_store(&F.wait_gate, 1);
    coll *c = open_port("uring", 16, 0);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&F.gate_waiting) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                     "the completion thread never went to wait");
        usleep(100);
    }
    poll_caller = pthread_self();
    atomic_store(&poll_elsewhere, 0);
    c->hook = caller_hook;
    static uint8_t rb[2][512];
    uint64_t ids[3];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(
            ovl_submit_read(c->port, (ovl_fd)fd, rb[i], 512, (int64_t)i * 4096, NULL, &ids[i]),
            OVL_OK);
    cr_assert_eq(ovl_post(c->port, 42, NULL, &ids[2]), OVL_OK);
    cr_assert_eq(ovl_poll(c->port, 0), 3, "the caller takes all three");
    cr_assert_eq(coll_n(c), 3u);
    cr_assert_eq(atomic_load(&poll_elsewhere), 0, "delivered on the caller's thread");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(coll_find(c, ids[i])->result, 512);
        for (int j = 0; j < 512; j++) cr_assert_eq(rb[i][j], pat((uint64_t)i * 4096 + (uint64_t)j));
    }
    cr_assert_eq(coll_find(c, ids[2])->result, 42);
    cr_assert_eq(ovl_poll(c->port, 0), 0, "nothing left");
    atomic_store(&F.wait_gate, 0);
    close_and_check(c, ids, 3);
    close(fd);
}

/* ovl_submit_and_poll on io_uring sets the port's park hint: with nothing
 * in flight the completion thread parks outside the kernel, so a post
 * made by the call (a NOP: it always completes inside io_uring_enter) is
 * delivered inside it, on the caller's thread, and no other thread goes
 * near the ring (no GETEVENTS enter at all). A read that cannot complete
 * at once (an empty pipe) unparks the thread, which delivers it when data
 * comes. A plain post then clears the hint: the thread is woken for it,
 * delivers it and goes back to sleeping in the kernel, not in the park. */
static bool ct_parked(ovl_port *h)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(h, &rc); /* the handle's struct */
    cr_assert_not_null(p);
    ovl__mutex_lock(&p->lock);
    bool parked = atomic_load(&p->ct_parked);
    ovl__mutex_unlock(&p->lock);
    return parked;
}

static bool park_hint(ovl_port *h)
{
    int32_t rc;
    ovl_port *p = ovl__port_get(h, &rc);
    cr_assert_not_null(p);
    return atomic_load(&p->parking);
}

static void wait_parked(ovl_port *p)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!ct_parked(p)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                     "the completion thread never parked");
        usleep(100);
    }
}

static uint64_t sap_one(ovl_port *p, ovl_request q)
{
    size_t done = 0;
    cr_assert_geq(ovl_submit_and_poll(p, &q, 1, &done, 0), 0);
    cr_assert_eq(done, 1u);
    return q.id;
}

FTest(submit_and_poll_parks_and_delivers_on_the_submitter)
{
    only_backend("uring");
    coll *c = open_port("uring", 16, 0);
    poll_caller = pthread_self();
    atomic_store(&poll_elsewhere, 0);
    c->hook = caller_hook;
    uint64_t ids[5];
    ovl_request post = {OVL_OP_POST, 0, 0, NULL, 0, 40, NULL, 0, 0};
    cr_assert_not(park_hint(c->port), "a new port has no hint");
    /* The first call sets the hint; the thread, perhaps woken in the
     * kernel by its CQE, finds nothing to deliver and parks. */
    ids[0] = sap_one(c->port, post);
    cr_assert(park_hint(c->port));
    /* That first post may have gone to the thread: asleep in the kernel
     * before the hint existed, it is woken by the post's CQE and can take
     * delivery before the caller does. Count from the park on. */
    cr_assert(coll_wait(c, 1));
    wait_parked(c->port);
    atomic_store(&poll_elsewhere, 0);
    for (int i = 1; i < 3; i++) {
        wait_parked(c->port);
        int waits = atomic_load(&F.enter_waits);
        post.offset = 40 + i;
        ids[i] = sap_one(c->port, post);
        cr_assert_eq(coll_n(c), (size_t)i + 1, "delivered before the call returned");
        cr_assert_eq(atomic_load(&F.enter_waits), waits, "no thread waited in the kernel");
        cr_assert(ct_parked(c->port), "the completion thread was not woken");
    }
    cr_assert_eq(atomic_load(&poll_elsewhere), 0);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    static uint8_t rb[8];
    ovl_request rd = {OVL_OP_READ, 0, (ovl_fd)pfd[0], rb, sizeof rb, OVL_OFFSET_CURRENT, NULL,
                      0,           0};
    ids[3] = sap_one(c->port, rd);
    cr_assert_eq(coll_n(c), 3u, "an empty pipe completes later");
    cr_assert_not(ct_parked(c->port), "left in flight: the thread watches it");
    cr_assert_eq(write(pfd[1], "abc", 3), 3);
    cr_assert(coll_wait(c, 4), "the unparked completion thread delivers the pipe read");
    cr_assert_eq(coll_find(c, ids[3])->result, 3);
    /* on_batch runs the hook after it has recorded the items (and woken
     * coll_wait): wait for it rather than race it. */
    for (int spins = 0; atomic_load(&poll_elsewhere) == 0 && spins < WAIT_LIMIT_MS * 10; spins++)
        usleep(100);
    cr_assert_gt(atomic_load(&poll_elsewhere), 0, "that one on the completion thread");
    /* Nothing in flight, the hint still set: parked again. A plain post
     * clears the hint and wakes it; it delivers the post and then sleeps
     * in the kernel (a GETEVENTS enter), not in the park. */
    wait_parked(c->port);
    int elsewhere = atomic_load(&poll_elsewhere), waits = atomic_load(&F.enter_waits);
    cr_assert_eq(ovl_post(c->port, 44, NULL, &ids[4]), OVL_OK);
    cr_assert_not(park_hint(c->port), "a plain post clears the hint");
    cr_assert(coll_wait(c, 5), "the post is delivered");
    for (int spins = 0; atomic_load(&poll_elsewhere) == elsewhere && spins < WAIT_LIMIT_MS * 10;
         spins++)
        usleep(100);
    cr_assert_gt(atomic_load(&poll_elsewhere), elsewhere, "by the completion thread");
    for (int spins = 0; atomic_load(&F.enter_waits) == waits && spins < WAIT_LIMIT_MS * 10; spins++)
        usleep(100);
    cr_assert_gt(atomic_load(&F.enter_waits), waits, "back to waiting in the kernel");
    cr_assert_not(ct_parked(c->port));
    cr_assert_eq(coll_find(c, ids[0])->result, 40);
    cr_assert_eq(coll_find(c, ids[4])->result, 44);
    close_and_check(c, ids, 5);
    close(pfd[0]);
    close(pfd[1]);
}

/* One submit whose io_uring_enter keeps failing with -EAGAIN for longer
 * than flush() retries, while the completion thread sleeps in the kernel
 * with nothing else to wake it: the SQE must still be submitted. */
static void lone_submit_stall(int err)
{
    only_backend("uring");
    int fd = tmp_file(4096);
    coll *c = open_port("uring", 8, 0);
    static uint8_t rb[512];
    uint64_t ids[2];
    /* Let the completion thread go to sleep in the kernel: one post round
     * trip, then its next GETEVENTS enter. */
    for (int i = 0; i < 20000 && atomic_load(&F.enter_waits) == 0; i++) usleep(1000);
    int w = atomic_load(&F.enter_waits);
    cr_assert_eq(ovl_post(c->port, 1, NULL, &ids[0]), OVL_OK);
    cr_assert(coll_wait(c, 1));
    /* The wait that returned the post was call #w; #w+1 is the next sleep. */
    for (int i = 0; i < 20000 && atomic_load(&F.enter_waits) <= w; i++) usleep(1000);
    cr_assert_gt(atomic_load(&F.enter_waits), w);
    atomic_store(&F.uring_enter.mask, ENTER_SUBMIT);
    inj_arm(&F.uring_enter, -1, 0, 100, err, 0);
    cr_assert_eq(ovl_submit_read(c->port, (ovl_fd)fd, rb, 512, 0, NULL, &ids[1]), OVL_OK);
    cr_assert(coll_wait(c, 2), "read never completed: enter failed %d times with %s",
              atomic_load(&F.uring_enter.hits), strerror(err));
    cr_assert_eq(coll_find(c, ids[1])->result, 512);
    close_and_check(c, ids, 2);
    close(fd);
}

FTest(uring_enter_eagain_lone_submit) { lone_submit_stall(EAGAIN); }
FTest(uring_enter_ebusy_lone_submit) { lone_submit_stall(EBUSY); }

/* A submitter pushes its own batch into the kernel: the completion thread,
 * polling (a fixed spin) or going to sleep while the batch is published
 * and its submitter is still on its way into io_uring_enter, submits none
 * of it (two threads entering with SQEs at once serialize on the ring's
 * submission lock, the second spinning in the kernel for the whole batch).
 * Made deterministic by holding the submitter before the kernel until the
 * completion thread is asleep in its wait. */
static void *submit_posts(void *arg)
{
    coll *c = arg;
    ovl_request r[8];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++) {
        r[i].op = OVL_OP_POST;
        r[i].offset = 100 + i;
    }
    size_t done = 0;
    int32_t rc = ovl_submit(c->port, r, 8, &done);
    uint64_t *ids = c->data;
    for (int i = 0; i < 8; i++) ids[i] = r[i].id;
    return (void *)(intptr_t)(rc == OVL_OK && done == 8);
}

FTest(reaper_leaves_a_batch_to_its_submitter)
{
    only_backend("uring");
    coll *c = coll_new();
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.backend = OVL_BACKEND_URING;
    cfg.queue_depth = 16;
    cfg.spin_usec = 200000; /* polls for 200 ms after every batch */
    cfg.callback = on_batch;
    cfg.userdata = c;
    int32_t rc = ovl_create_port(&cfg, &c->port);
    if (rc == OVL_EUNAVAIL) cr_skip_test("io_uring unavailable here");
    cr_assert_eq(rc, OVL_OK);
    uint64_t ids[9];
    c->data = &ids[1];
    cr_assert_eq(ovl_post(c->port, 1, NULL, &ids[0]), OVL_OK);
    cr_assert(coll_wait(c, 1));
    /* The thread now polls; the batch goes in while it does. */
    atomic_store(&F.submit_hold, 1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, submit_posts, c), 0);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Until the thread is asleep in the kernel (after its spin), or has
     * submitted beside the held submitter. */
    while (atomic_load(&F.submit_held) != 1 ||
           (atomic_load(&F.in_wait) == 0 && atomic_load(&F.submits_beside) == 0)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert_lt(now.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                     "held %d, waiting %d, submitted beside %d", atomic_load(&F.submit_held),
                     atomic_load(&F.in_wait), atomic_load(&F.submits_beside));
        usleep(1000);
    }
    int beside = atomic_load(&F.submits_beside);
    size_t early = coll_n(c);
    atomic_store(&F.submit_hold, 0);
    void *ok;
    pthread_join(t, &ok);
    cr_assert(ok, "ovl_submit of the posts failed");
    cr_assert_eq(beside, 0, "the completion thread submitted %d of the held batch", beside);
    cr_assert_eq(early, 1u, "delivered before its submitter entered the kernel");
    cr_assert(coll_wait(c, 9), "only %zu of 9 delivered", coll_n(c));
    for (int i = 0; i < 8; i++) cr_assert_eq(coll_find(c, ids[1 + i])->result, 100 + i);
    close_and_check(c, ids, 9);
}

/* Close with everything faulting at once on the submit side: close still
 * returns and every op completes exactly once. */
FTest(close_while_enter_fails)
{
    only_backend("uring");
    int pa[2];
    cr_assert_eq(pipe(pa), 0);
    coll *c = open_port("uring", 64, 0);
    static uint8_t rb[16][16];
    uint64_t ids[32];
    size_t k = 0;
    for (int i = 0; i < 16; i++)
        cr_assert_eq(
            ovl_submit_read(c->port, (ovl_fd)pa[0], rb[i], 16, OVL_OFFSET_CURRENT, NULL, &ids[k++]),
            OVL_OK);
    atomic_store(&F.uring_enter.mask, ENTER_SUBMIT);
    inj_arm(&F.uring_enter, -1, 0, 100, EAGAIN, 0);
    /* The reads are parked in the kernel; close cancels them (cancel SQEs
     * pushed through the failing enter). */
    cr_assert_eq(ovl_close_port(c->port), OVL_OK);
    cr_assert_eq(c->n, k);
    for (size_t i = 0; i < k; i++) cr_assert_eq(coll_find(c, ids[i])->result, OVL_ECANCELED);
    close(pa[0]);
    close(pa[1]);
}

/* ======================================================================
 * Close must never hang
 * ====================================================================== */

typedef struct closer {
    ovl_port *port;
    int32_t rc;
    atomic_bool done;
} closer;

static void *close_thread(void *arg)
{
    closer *k = arg;
    k->rc = ovl_close_port(k->port);
    atomic_store(&k->done, true);
    return NULL;
}

/* Close a port whose completion thread spins (spin_usec) with nothing in
 * flight: the close's wake-up is consumed by a non-blocking poll during the
 * spin, and the thread must notice the port closing instead of going to
 * sleep for ever. Close runs on a helper thread so that a hang is reported
 * as a failure (after the failure limit) rather than stalling the suite. */
FTest(close_spinning_idle_port)
{
    const char *b = run_backend();
    for (int round = 0; round < 2; round++) {
        coll *c = coll_new();
        ovl_port_config cfg;
        ovl_port_config_init(&cfg, sizeof cfg);
        cfg.backend = backend_id(b);
        cfg.queue_depth = 8;
        cfg.spin_usec = 300000; /* longer than a close takes */
        cfg.callback = on_batch;
        cfg.userdata = c;
        int32_t rc = ovl_create_port(&cfg, &c->port);
        if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s unavailable", b);
        cr_assert_eq(rc, OVL_OK);
        uint64_t id;
        cr_assert_eq(ovl_post(c->port, 5, NULL, &id), OVL_OK);
        cr_assert(coll_wait(c, 1));
        closer k = {c->port, -99, false};
        pthread_t t;
        pthread_create(&t, NULL, close_thread, &k);
        for (int i = 0; i < WAIT_LIMIT_MS && !atomic_load(&k.done); i++) usleep(1000);
        cr_assert(atomic_load(&k.done), "ovl_close_port hung on a spinning idle port (%s)", b);
        pthread_join(t, NULL);
        cr_assert_eq(k.rc, OVL_OK);
        cr_assert_eq(c->n, 1);
    }
}
