/* Registered fds (ovl_register_fd). Two promises of the header:
 *  - "Ops in flight are not affected by either call": an op runs on the file
 *    that was registered when it was submitted, whatever ovl_unregister_fd /
 *    ovl_register_fd calls follow, from any thread or from a callback;
 *  - when ovl_close_port returns, the port holds no reference to any file.
 * Each scenario runs in every delivery mode: a port with its completion
 * thread, OVL_PORT_MANUAL (driven by ovl_poll), submits through
 * ovl_submit_and_poll on a port with a completion thread, and with the
 * submits made from inside a callback. */
#include "common.h"

#ifndef _WIN32
#  include <poll.h>
#  include <signal.h>
#  include <sys/stat.h>

typedef enum variant {
    V_THREAD,   /* completion thread; submits from the test's thread */
    V_MANUAL,   /* OVL_PORT_MANUAL; the test's thread polls */
    V_SAP,      /* ovl_submit_and_poll: submits deliver what completes in them */
    V_CALLBACK, /* completion thread; submits from inside the callback */
} variant;

static uint32_t variant_flags(variant v)
{
    return v == V_MANUAL ? OVL_PORT_MANUAL : v == V_SAP ? TEST_SAP : 0u;
}

/* Backends where the port holds its own reference to a registered file
 * (io_uring's fixed files; the threads backend's duplicate): all but IOCP,
 * which only records the handle. */
static bool is_uring(ovl_port *p) { return strcmp(ovl_backend_name(p), "iocp") != 0; }

/* rec_wait for any port: a manual one is driven here. */
static void wait_count(ovl_port *p, rec *r, variant v, size_t n)
{
    if (v != V_MANUAL) {
        rec_wait(r, n);
        return;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rec_count(r) < n) {
        int32_t rc = ovl_poll(p, 100);
        cr_assert_geq(rc, 0, "ovl_poll: %s", ovl_error_name(rc));
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                     "waited for %zu completions, got %zu", n, rec_count(r));
    }
}

/* Run fn(arg) on the test's thread, or from inside the port's callback:
 * posted, and called by the hook when the post is delivered (on the
 * completion thread, inside ovl_poll, or inside the ovl_submit_and_poll
 * that posted it). Returns once fn has run. */
typedef struct action {
    void (*fn)(void *);
    void *arg;
} action;

static int action_tag;

static void action_hook(rec *r, const ovl_completion *c)
{
    if (c->op == OVL_OP_POST && c->ctx == &action_tag) {
        action *a = r->hook_data;
        a->fn(a->arg);
    }
}

static void run(ovl_port *p, rec *r, variant v, bool in_callback, void (*fn)(void *), void *arg)
{
    if (!in_callback) {
        fn(arg);
        return;
    }
    action a = {fn, arg};
    rec_set_hook(r, action_hook, &a);
    size_t before = rec_count(r);
    cr_assert_eq(t_post(p, 0, &action_tag, NULL), OVL_OK);
    wait_count(p, r, v, before + 1);
    rec_set_hook(r, NULL, NULL);
}

static off_t file_size(int fd)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return st.st_size;
}

static int empty_file(void)
{
    char path[] = "/tmp/ovl-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    return fd;
}

/* ---- a write, then the registration changes ------------------------------
 * With the submit made inside a callback, the SQE reaches the kernel only
 * after the callback returns, so the registration calls that follow it run
 * before the kernel looks at the SQE: io_uring resolves a fixed-file slot
 * when it issues the request, not when the SQE is written. */

typedef struct rereg {
    ovl_port *p;
    int a, b;
    bool register_b;
    uint64_t id;
    int32_t rc_submit, rc_unreg, rc_reg;
} rereg;

static const char seventeen[] = "seventeen bytes!\n"; /* 17 bytes */

static void write_then_reregister(void *arg)
{
    rereg *x = arg;
    x->rc_submit = t_submit_write(x->p, (ovl_fd)x->a, seventeen, 17, 0, NULL, &x->id);
    x->rc_unreg = ovl_unregister_fd(x->p, (ovl_fd)x->a);
    if (x->register_b) x->rc_reg = ovl_register_fd(x->p, (ovl_fd)x->b);
}

static void write_survives_registration_change(variant v, bool in_callback, bool register_b)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, variant_flags(v));
    int a = empty_file(), b = empty_file();
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)a), OVL_OK);
    rereg x = {p, a, b, register_b, 0, 1, 1, OVL_OK};
    run(p, &r, v, in_callback, write_then_reregister, &x);
    cr_assert_eq(x.rc_submit, OVL_OK);
    cr_assert_eq(x.rc_unreg, OVL_OK);
    cr_assert_eq(x.rc_reg, OVL_OK);
    wait_count(p, &r, v, in_callback ? 2 : 1);
    ovl_completion c = rec_one(&r, x.id);
    cr_assert_eq(c.result, 17, "the write completed with %lld (%s)", (long long)c.result,
                 c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
    cr_assert_eq(file_size(b), 0, "the write landed in the file registered after it");
    cr_assert_eq(file_size(a), 17, "the write missed the file it was submitted to");
    char back[17];
    cr_assert_eq(pread(a, back, sizeof back, 0), 17);
    cr_assert_eq(memcmp(back, seventeen, 17), 0);
    close_clean(p, &r);
    close(a);
    close(b);
}

Test(register, write_then_reregister_in_callback_thread)
{
    write_survives_registration_change(V_THREAD, true, true);
}
Test(register, write_then_reregister_in_callback_manual)
{
    write_survives_registration_change(V_MANUAL, true, true);
}
Test(register, write_then_reregister_in_callback_sap)
{
    write_survives_registration_change(V_SAP, true, true);
}
Test(register, write_then_reregister_outside_callback)
{
    write_survives_registration_change(V_THREAD, false, true);
}
Test(register, write_then_unregister_in_callback_thread)
{
    write_survives_registration_change(V_THREAD, true, false);
}
Test(register, write_then_unregister_in_callback_manual)
{
    write_survives_registration_change(V_MANUAL, true, false);
}
Test(register, write_then_unregister_in_callback_sap)
{
    write_survives_registration_change(V_SAP, true, false);
}
Test(register, write_then_unregister_outside_callback)
{
    write_survives_registration_change(V_THREAD, false, false);
}

/* ---- fsync goes through the registered file, like reads and writes --------
 * The app registers a regular file, then makes its number name a pipe
 * (dup2): on io_uring the port's reference still names the file, so fsync
 * succeeds (a pipe would refuse it with EINVAL) and a read still reads the
 * file; on the other backends the number is used as it is now. Then the
 * number is closed: io_uring still flushes the registered file. */

typedef struct fsync_ops {
    ovl_port *p;
    int fd;
    uint64_t ids[3];
    int32_t rc[3];
    uint8_t buf[64];
} fsync_ops;

static void submit_fsyncs_and_read(void *arg)
{
    fsync_ops *x = arg;
    x->rc[0] = t_submit_fsync(x->p, (ovl_fd)x->fd, 0, NULL, &x->ids[0]);
    x->rc[1] = t_submit_fsync(x->p, (ovl_fd)x->fd, OVL_FSYNC_DATA, NULL, &x->ids[1]);
    x->rc[2] = t_submit_read(x->p, (ovl_fd)x->fd, x->buf, sizeof x->buf, 0, NULL, &x->ids[2]);
}

static void fsync_uses_registered_file(variant v)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, variant_flags(v));
    bool uring = is_uring(p);
    bool in_cb = v == V_CALLBACK;
    int file = temp_file(4096, 21);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)file), OVL_OK);
    int keep = dup(file); /* the test's own handle on the file */
    cr_assert_geq(keep, 0);

    /* 1. the number now names the read end of a pipe */
    cr_assert_eq(dup2(pfd[0], file), file);
    fsync_ops x = {.p = p, .fd = file};
    size_t before = rec_count(&r) + (in_cb ? 1 : 0);
    run(p, &r, v, in_cb, submit_fsyncs_and_read, &x);
    for (int i = 0; i < 3; i++) cr_assert_eq(x.rc[i], OVL_OK);
    wait_count(p, &r, v, before + 3);
    for (int i = 0; i < 2; i++) {
        ovl_completion c = rec_one(&r, x.ids[i]);
        if (uring)
            cr_assert_eq(c.result, 0, "fsync %d reached the file the number names now: %s", i,
                         ovl_error_name((int32_t)c.result));
        else
            cr_assert_eq(c.result, OVL_EINVAL, "fsync %d on a pipe: %s", i,
                         ovl_error_name((int32_t)c.result));
    }
    ovl_completion c = rec_one(&r, x.ids[2]);
    if (uring) {
        cr_assert_eq(c.result, (int64_t)sizeof x.buf);
        cr_assert(matches_pattern(x.buf, sizeof x.buf, 0, 21), "read another file");
    } else {
        cr_assert_lt(c.result, 0, "a positional read of a pipe");
    }

    /* 2. the number is closed */
    cr_assert_eq(close(file), 0);
    fsync_ops y = {.p = p, .fd = file};
    before = rec_count(&r) + (in_cb ? 1 : 0);
    run(p, &r, v, in_cb, submit_fsyncs_and_read, &y);
    for (int i = 0; i < 3; i++) cr_assert_eq(y.rc[i], OVL_OK);
    wait_count(p, &r, v, before + 3);
    for (int i = 0; i < 3; i++) {
        ovl_completion d = rec_one(&r, y.ids[i]);
        int64_t want = !uring ? OVL_EBADF : i < 2 ? 0 : (int64_t)sizeof y.buf;
        cr_assert_eq(d.result, want, "op %d after close: %lld (%s)", i, (long long)d.result,
                     d.result < 0 ? ovl_error_name((int32_t)d.result) : "bytes");
    }
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)file), OVL_OK);
    close_clean(p, &r);
    close(keep);
    close(pfd[0]);
    close(pfd[1]);
}

Test(register, fsync_uses_registered_file_thread) { fsync_uses_registered_file(V_THREAD); }
Test(register, fsync_uses_registered_file_manual) { fsync_uses_registered_file(V_MANUAL); }
Test(register, fsync_uses_registered_file_sap) { fsync_uses_registered_file(V_SAP); }
Test(register, fsync_uses_registered_file_callback) { fsync_uses_registered_file(V_CALLBACK); }

/* ---- records written while another thread flips the registration ----------
 * One writer puts 16-byte records (each names its index) at 16 * index in
 * registered file A, keeping up to a queue's worth in flight; a second
 * thread flips the registration A -> B -> A meanwhile. Every record must
 * complete with 16 and be found in A at its offset; B is never written.
 * Bounded by a record count and a deadline. */

enum { FLIP_RECORDS = 200000, FLIP_SECONDS = 2, FLIP_DEPTH = 128, FLIP_BATCH = 8 };

typedef struct flip {
    ovl_port *p;
    variant v;
    int a, b;
    uint64_t (*recs)[2];
    struct timespec deadline;
    /* writer */
    size_t next; /* records submitted (callback writer: cb only) */
    _Atomic bool stop_writing;
    _Atomic bool writer_done;
    /* completions */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t completed;
    size_t posts; /* posts whose callback has returned */
    size_t failed;
    int64_t first_bad;
    size_t wrong_ctx;
    /* flipper */
    _Atomic bool stop_flipping;
    size_t flips;
    int32_t flip_rc;
} flip;

static bool past(const struct timespec *deadline)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec > deadline->tv_sec ||
           (t.tv_sec == deadline->tv_sec && t.tv_nsec >= deadline->tv_nsec);
}

static void flip_fill(flip *f, size_t i, ovl_request *q)
{
    f->recs[i][0] = 0x5245434f52440000ull | (i & 0xffff); /* "RECORD" + low bits */
    f->recs[i][1] = (uint64_t)i;
    ovl_request rq = {OVL_OP_WRITE,
                      0,
                      (ovl_fd)f->a,
                      f->recs[i],
                      16,
                      (int64_t)(16 * i),
                      (void *)(uintptr_t)(i + 1),
                      0,
                      0};
    *q = rq;
}

/* Submit up to n records from f->next; returns how many went. */
static size_t flip_submit(flip *f, size_t n)
{
    ovl_request q[FLIP_BATCH];
    if (n > FLIP_BATCH) n = FLIP_BATCH;
    if (n > FLIP_RECORDS - f->next) n = FLIP_RECORDS - f->next;
    for (size_t i = 0; i < n; i++) flip_fill(f, f->next + i, &q[i]);
    size_t done = 0;
    int32_t rc = t_submit_batch(f->p, q, n, &done);
    if (rc != OVL_OK && rc != OVL_EQUEUEFULL) {
        pthread_mutex_lock(&f->mu);
        if (!f->failed++) f->first_bad = rc;
        pthread_mutex_unlock(&f->mu);
    }
    f->next += done;
    return done;
}

static void flip_cb(const ovl_completion *items, size_t n, void *ud)
{
    flip *f = ud;
    size_t writes = 0, posts = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        const ovl_completion *c = &items[i];
        if (c->op == OVL_OP_POST) { /* the callback writer's start and end */
            posts++;
            continue;
        }
        writes++;
        if (c->op != OVL_OP_WRITE || (uintptr_t)c->ctx == 0 || (uintptr_t)c->ctx > FLIP_RECORDS)
            f->wrong_ctx++;
        if (c->result != 16 && !f->failed++) f->first_bad = c->result;
    }
    f->completed += writes;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->v == V_CALLBACK && !atomic_load(&f->writer_done)) {
        /* The callback writer: one new record per completion, and all but
         * one queue slot for the start post (room for the end post). */
        size_t want = writes ? writes : FLIP_DEPTH - 1;
        if (!past(&f->deadline))
            while (want && f->next < FLIP_RECORDS) {
                size_t k = flip_submit(f, want);
                if (!k) break;
                want -= k;
            }
        if (f->next == FLIP_RECORDS || past(&f->deadline)) {
            atomic_store(&f->writer_done, true);
            pthread_mutex_lock(&f->mu);
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
        }
    }
    if (posts) {
        pthread_mutex_lock(&f->mu);
        f->posts += posts;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
}

static void *flipper(void *arg)
{
    flip *f = arg;
    while (!atomic_load(&f->stop_flipping)) {
        int32_t rc;
        if ((rc = ovl_unregister_fd(f->p, (ovl_fd)f->a)) != OVL_OK ||
            (rc = ovl_register_fd(f->p, (ovl_fd)f->b)) != OVL_OK ||
            (rc = ovl_unregister_fd(f->p, (ovl_fd)f->b)) != OVL_OK ||
            (rc = ovl_register_fd(f->p, (ovl_fd)f->a)) != OVL_OK) {
            f->flip_rc = rc;
            break;
        }
        f->flips++;
    }
    return NULL;
}

static size_t flip_completed(flip *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->completed;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Wait until `n` records completed (manual ports are polled here). */
static void flip_wait(flip *f, size_t n)
{
    if (f->v == V_MANUAL) {
        while (flip_completed(f) < n) cr_assert_geq(ovl_poll(f->p, 100), 0);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_LIMIT_MS / 1000;
    pthread_mutex_lock(&f->mu);
    while (f->completed < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT) break;
    size_t got = f->completed;
    pthread_mutex_unlock(&f->mu);
    cr_assert_geq(got, n, "waited for %zu records, %zu completed", n, got);
}

static void records_survive_flips(variant v)
{
    static flip f;
    memset(&f, 0, sizeof f);
    f.v = v;
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    f.recs = calloc(FLIP_RECORDS, sizeof *f.recs);
    cr_assert_not_null(f.recs);
    f.a = empty_file();
    f.b = empty_file();
    ovl_port_config cfg;
    cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
    cfg.queue_depth = FLIP_DEPTH;
    cfg.flags = variant_flags(v);
    cfg.callback = flip_cb;
    cfg.userdata = &f;
    int32_t rc = t_create_port(&cfg, &f.p);
    if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s not available on this host", test_backend());
    cr_assert_eq(rc, OVL_OK);
    cr_assert_eq(ovl_register_fd(f.p, (ovl_fd)f.a), OVL_OK);
    clock_gettime(CLOCK_MONOTONIC, &f.deadline);
    f.deadline.tv_sec += FLIP_SECONDS;

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flipper, &f), 0);
    if (v == V_CALLBACK) {
        /* The callback writes until the count or the deadline; wait for
         * that, then stop it for sure (it checks at every completion) and
         * let a second post through: once its callback has returned, no
         * callback submits any more and f.next is final. */
        cr_assert_eq(t_post(f.p, 0, NULL, NULL), OVL_OK);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += FLIP_SECONDS + WAIT_LIMIT_MS / 1000;
        pthread_mutex_lock(&f.mu);
        while (!atomic_load(&f.writer_done))
            if (pthread_cond_timedwait(&f.cv, &f.mu, &ts) == ETIMEDOUT) break;
        pthread_mutex_unlock(&f.mu);
        atomic_store(&f.writer_done, true);
        /* The writes in flight leave room for it (see flip_cb), but be
         * sure: with no more submits the queue only drains. Counted before
         * the try, as in rec_wait_id: a slot is free again before its
         * completion is counted, so a full queue then means every slot
         * holds a write not yet counted, and one more will come. Counted
         * after, the last of them could land in between and be waited for
         * again. */
        for (;;) {
            size_t seen = flip_completed(&f);
            if ((rc = t_post(f.p, 0, NULL, NULL)) != OVL_EQUEUEFULL) break;
            flip_wait(&f, seen + 1);
        }
        cr_assert_eq(rc, OVL_OK);
        pthread_mutex_lock(&f.mu);
        while (f.posts < 2)
            if (pthread_cond_timedwait(&f.cv, &f.mu, &ts) == ETIMEDOUT) break;
        size_t posts = f.posts;
        pthread_mutex_unlock(&f.mu);
        cr_assert_eq(posts, 2u, "the callback writer did not finish");
    } else {
        while (f.next < FLIP_RECORDS && !past(&f.deadline)) {
            size_t k = flip_submit(&f, FLIP_BATCH);
            if (v == V_MANUAL) {
                (void)ovl_poll(f.p, k ? 0 : 100);
            } else if (!k) {
                size_t done = f.next; /* queue full: wait for half of it */
                flip_wait(&f, done - FLIP_DEPTH / 2);
            }
        }
    }
    /* After the writer, so the flips overlap every record. */
    atomic_store(&f.stop_flipping, true);
    pthread_join(th, NULL);
    size_t n = f.next;
    flip_wait(&f, n);

    cr_assert_eq(f.flip_rc, OVL_OK, "a registration call failed: %s", ovl_error_name(f.flip_rc));
    cr_assert_eq(ovl_close_port(f.p), OVL_OK);
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    cr_assert_eq(ovl_port_stats(f.p, &s), OVL_OK);
    cr_assert_eq(s.inflight, 0u);
    cr_assert_eq(s.submitted, s.completed);
    cr_assert_eq(s.stale, 0u);
    cr_assert_eq(f.completed, n, "%zu records submitted, %zu completed", n, f.completed);
    cr_assert_gt(n, (size_t)1000, "only %zu records in %d s", n, FLIP_SECONDS);
    cr_assert_gt(f.flips, (size_t)10, "only %zu flips", f.flips);
    cr_assert_eq(f.wrong_ctx, 0u);
    cr_assert_eq(f.failed, 0u, "%zu of %zu records failed (first: %lld %s)", f.failed, n,
                 (long long)f.first_bad, ovl_error_name((int32_t)f.first_bad));
    cr_assert_eq(file_size(f.b), 0, "B got %lld bytes of A's records", (long long)file_size(f.b));
    cr_assert_eq(file_size(f.a), (off_t)(16 * n));
    uint64_t(*back)[2] = malloc(16 * n);
    cr_assert_not_null(back);
    cr_assert_eq(pread(f.a, back, 16 * n, 0), (ssize_t)(16 * n));
    size_t misplaced = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(back[i], f.recs[i], 16) != 0 && !misplaced++) first = i;
    cr_assert_eq(misplaced, 0u, "%zu of %zu records are not where they were written (first: %zu)",
                 misplaced, n, first);
    cr_log_info("%s %d: %zu records, %zu flips", ovl_backend_name(f.p), (int)v, n, f.flips);
    free(back);
    free(f.recs);
    close(f.a);
    close(f.b);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
}

Test(register, records_survive_flips_thread, .timeout = 60) { records_survive_flips(V_THREAD); }
Test(register, records_survive_flips_manual, .timeout = 60) { records_survive_flips(V_MANUAL); }
Test(register, records_survive_flips_sap, .timeout = 60) { records_survive_flips(V_SAP); }
Test(register, records_survive_flips_callback, .timeout = 60) { records_survive_flips(V_CALLBACK); }

/* ---- a read re-issued after its thread exited ------------------------------
 * io_uring cancels a request when the thread whose io_uring_enter issued it
 * exits, and the library issues it again (see test_stream.c). A read on a
 * registered pipe's read end, submitted by a thread that exits after the fd
 * was unregistered and its number made to name another pipe, must still
 * read the first pipe. Only io_uring holds the registered file; the other
 * backends read whatever the number names. */

typedef struct exiting {
    ovl_port *p;
    int fd;
    char buf[8];
    uint64_t id;
    int32_t rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step; /* 1: submitted; 2: may exit */
} exiting;

static void *submit_then_exit(void *arg)
{
    exiting *e = arg;
    e->rc =
        t_submit_read(e->p, (ovl_fd)e->fd, e->buf, sizeof e->buf, OVL_OFFSET_CURRENT, NULL, &e->id);
    pthread_mutex_lock(&e->mu);
    e->step = 1;
    pthread_cond_broadcast(&e->cv);
    while (e->step != 2) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void reissued_read_keeps_its_file(variant v)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, variant_flags(v));
    bool uring = is_uring(p);
    int one[2], two[2];
    cr_assert_eq(pipe(one), 0);
    cr_assert_eq(pipe(two), 0);
    int keep = dup(one[0]);
    cr_assert_geq(keep, 0);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)one[0]), OVL_OK);
    static exiting e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.fd = one[0];
    pthread_mutex_init(&e.mu, NULL);
    pthread_cond_init(&e.cv, NULL);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, submit_then_exit, &e), 0);
    pthread_mutex_lock(&e.mu);
    while (e.step != 1) pthread_cond_wait(&e.cv, &e.mu);
    pthread_mutex_unlock(&e.mu);
    cr_assert_eq(e.rc, OVL_OK);
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)one[0]), OVL_OK);
    if (uring) cr_assert_eq(dup2(two[0], one[0]), one[0]); /* the number names pipe two */
    pthread_mutex_lock(&e.mu);
    e.step = 2;
    pthread_cond_broadcast(&e.cv);
    pthread_mutex_unlock(&e.mu);
    pthread_join(th, NULL);
    /* The port has seen the exit's cancellation, if any, and re-issued. */
    size_t before = rec_count(&r);
    uint64_t post;
    cr_assert_eq(t_post(p, 0, NULL, &post), OVL_OK);
    wait_count(p, &r, v, before + 1);
    cr_assert_eq(write(one[1], "one", 3), 3);
    cr_assert_eq(write(two[1], "two", 3), 3);
    rec_wait_id(&r, e.id); /* polls a manual port itself (r.manual) */
    ovl_completion c = rec_one(&r, e.id);
    cr_assert_eq(c.result, 3, "%lld (%s)", (long long)c.result,
                 c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
    cr_assert_eq(memcmp(e.buf, "one", 3), 0, "the read went to the pipe the number names now");
    close_clean(p, &r);
    close(keep);
    close(one[0]);
    close(one[1]);
    close(two[0]);
    close(two[1]);
    pthread_mutex_destroy(&e.mu);
    pthread_cond_destroy(&e.cv);
}

Test(register, reissued_read_keeps_its_file_thread) { reissued_read_keeps_its_file(V_THREAD); }
Test(register, reissued_read_keeps_its_file_manual) { reissued_read_keeps_its_file(V_MANUAL); }
Test(register, reissued_read_keeps_its_file_sap) { reissued_read_keeps_its_file(V_SAP); }

/* ---- nothing is left referenced once ovl_close_port returns ---------------
 * Checked right after the call, with no wait: io_uring tears a ring down
 * asynchronously (io_ring_exit_work, tens of milliseconds later), so a file
 * still in the ring's table when the ring fd is closed outlives the call.
 *  - a pipe's write end, registered, used by a write, then closed by the
 *    app: its reader must see end of file;
 *  - a pipe's read end, registered, with a read in flight at close, closed
 *    by the app after close: its writer must get EPIPE;
 *  - the same with a read end that is not registered. */

typedef struct close_ops {
    ovl_port *p;
    int w_reg, r_reg, r_plain;
    char rbuf[2][8];
    uint64_t ids[3];
    int32_t rc[3];
} close_ops;

static void submit_close_ops(void *arg)
{
    close_ops *x = arg;
    x->rc[0] = t_submit_write(x->p, (ovl_fd)x->w_reg, "x", 1, OVL_OFFSET_CURRENT, NULL, &x->ids[0]);
    x->rc[1] =
        t_submit_read(x->p, (ovl_fd)x->r_reg, x->rbuf[0], 8, OVL_OFFSET_CURRENT, NULL, &x->ids[1]);
    x->rc[2] = t_submit_read(x->p, (ovl_fd)x->r_plain, x->rbuf[1], 8, OVL_OFFSET_CURRENT, NULL,
                             &x->ids[2]);
}

static void close_leaves_no_file(variant v)
{
    signal(SIGPIPE, SIG_IGN);
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, variant_flags(v));
    bool uring = is_uring(p);
    bool in_cb = v == V_CALLBACK;
    int pw[2], pr[2], pp[2];
    cr_assert_eq(pipe2(pw, O_NONBLOCK), 0);
    cr_assert_eq(pipe(pr), 0);
    cr_assert_eq(pipe(pp), 0);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)pw[1]), OVL_OK);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)pr[0]), OVL_OK);
    close_ops x = {.p = p, .w_reg = pw[1], .r_reg = pr[0], .r_plain = pp[0]};
    size_t before = rec_count(&r) + (in_cb ? 1 : 0);
    run(p, &r, v, in_cb, submit_close_ops, &x);
    for (int i = 0; i < 3; i++) cr_assert_eq(x.rc[i], OVL_OK);
    wait_count(p, &r, v, before + 1);
    cr_assert_eq(rec_one(&r, x.ids[0]).result, 1);
    cr_assert_eq(close(pw[1]), 0);
    char c;
    cr_assert_eq(read(pw[0], &c, 1), 1);
    if (uring) {
        /* The port's reference keeps the write end open. */
        cr_assert_eq(read(pw[0], &c, 1), -1);
        cr_assert_eq(errno, EAGAIN);
    }

    close_check(p, &r);
    cr_assert_eq(rec_one(&r, x.ids[1]).result, OVL_ECANCELED);
    cr_assert_eq(rec_one(&r, x.ids[2]).result, OVL_ECANCELED);

    struct pollfd pfd = {pw[0], POLLIN, 0};
    cr_assert_eq(poll(&pfd, 1, 0), 1, "the reader sees no end of file: a writer is still open");
    cr_assert(pfd.revents & POLLHUP, "revents %#x", (unsigned)pfd.revents);
    cr_assert_eq(read(pw[0], &c, 1), 0, "errno %d", errno);

    cr_assert_eq(close(pr[0]), 0);
    errno = 0;
    cr_assert_eq(write(pr[1], "y", 1), -1, "the registered read end is still open");
    cr_assert_eq(errno, EPIPE);
    cr_assert_eq(close(pp[0]), 0);
    errno = 0;
    cr_assert_eq(write(pp[1], "y", 1), -1, "the read end is still open");
    cr_assert_eq(errno, EPIPE);
    rec_free(&r);
    close(pw[0]);
    close(pr[1]);
    close(pp[1]);
}

Test(register, close_leaves_no_file_thread) { close_leaves_no_file(V_THREAD); }
Test(register, close_leaves_no_file_manual) { close_leaves_no_file(V_MANUAL); }
Test(register, close_leaves_no_file_sap) { close_leaves_no_file(V_SAP); }
Test(register, close_leaves_no_file_callback) { close_leaves_no_file(V_CALLBACK); }

#endif /* !_WIN32 */
