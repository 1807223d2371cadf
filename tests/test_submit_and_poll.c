/* test_submit_and_poll.c - ovl_submit_and_poll: a submit and a poll in one
 * call, on manual ports (where io_uring makes one system call of both) and
 * on ports with a completion thread (timeout 0: what is ready; a timeout:
 * the caller takes over delivery while it waits). */
#include "common.h"

#ifdef __linux__
#  include <sys/syscall.h>
#endif

static ovl_request post_req(int64_t v)
{
    ovl_request r;
    memset(&r, 0, sizeof r);
    r.op = OVL_OP_POST;
    r.offset = v;
    return r;
}

Test(submit_and_poll, manual_port_submits_and_delivers)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    ovl_request req[2] = {post_req(41), post_req(42)};
    size_t done = 0;
    int32_t got = ovl_submit_and_poll(p, req, 2, &done, -1);
    cr_assert_eq(done, 2u);
    cr_assert_geq(got, 1, "a waiting call delivers at least one");
    while (rec_count(&r) < 2) cr_assert_geq(ovl_poll(p, -1), 0);
    cr_assert_eq(rec_one(&r, req[0].id).result, 41);
    cr_assert_eq(rec_one(&r, req[1].id).result, 42);
    /* n == 0 is a poll. */
    cr_assert_eq(ovl_submit_and_poll(p, NULL, 0, NULL, 0), 0);
    close_clean(p, &r);
}

/* io_uring: with delivery free, the submission rides on the system call
 * that waits, timed or not: one io_uring_enter for a post's whole round
 * trip. */
Test(submit_and_poll, one_system_call_on_io_uring)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    if (strcmp(ovl_backend_name(p), "uring") != 0) {
        close_clean(p, &r);
        cr_skip_test("io_uring only");
    }
    for (int i = 0; i < 20; i++) {
        ovl_stats a = {.size = sizeof a}, b = {.size = sizeof b};
        cr_assert_eq(ovl_port_stats(p, &a), OVL_OK);
        ovl_request req = post_req(i);
        size_t done = 0;
        /* A timed wait as well as an untimed one. */
        cr_assert_eq(ovl_submit_and_poll(p, &req, 1, &done, i % 2 ? 5000 : -1), 1);
        cr_assert_eq(ovl_port_stats(p, &b), OVL_OK);
        cr_assert_eq(b.syscalls - a.syscalls, 1u, "round %d: %llu system calls", i,
                     (unsigned long long)(b.syscalls - a.syscalls));
    }
    close_clean(p, &r);
}

/* The same for an operation that completes later (a pipe read, its data
 * written by another thread 20 ms on): the timed wait submits it in the
 * io_uring_enter that waits, not in one of its own first. */
static void *write_later(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cr_assert_eq(write(fd, "x", 1), 1);
    return NULL;
}

Test(submit_and_poll, one_system_call_for_a_timed_wait_on_io_uring)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    if (strcmp(ovl_backend_name(p), "uring") != 0) {
        close_clean(p, &r);
        cr_skip_test("io_uring only");
    }
    for (int i = 0; i < 3; i++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        char c = 0;
        ovl_request req;
        memset(&req, 0, sizeof req);
        req.op = OVL_OP_READ;
        req.fd = (ovl_fd)fds[0];
        req.buf = &c;
        req.len = 1;
        req.offset = OVL_OFFSET_CURRENT;
        ovl_stats a = {.size = sizeof a}, b = {.size = sizeof b};
        cr_assert_eq(ovl_port_stats(p, &a), OVL_OK);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, write_later, (void *)(intptr_t)fds[1]), 0);
        size_t done = 0;
        cr_assert_eq(ovl_submit_and_poll(p, &req, 1, &done, WAIT_LIMIT_MS), 1);
        cr_assert_eq(ovl_port_stats(p, &b), OVL_OK);
        pthread_join(t, NULL);
        cr_assert_eq(rec_one(&r, req.id).result, 1);
        cr_assert_eq(c, 'x');
        /* A signal may cut the wait short (one more); two every time is
         * what to catch. */
        cr_assert_leq(b.syscalls - a.syscalls, i == 0 ? 2u : 1u, "round %d: %llu system calls", i,
                      (unsigned long long)(b.syscalls - a.syscalls));
        close(fds[0]);
        close(fds[1]);
    }
    close_clean(p, &r);
}

Test(submit_and_poll, threaded_port_takes_a_timeout)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, TEST_THREADED);
    ovl_request req = post_req(7);
    size_t done = 9;
    /* Delivered by this call, or by the completion thread before the call
     * took over delivery (then the call waits out its 10 ms). */
    int32_t got = ovl_submit_and_poll(p, &req, 1, &done, 10);
    cr_assert(got == 0 || got == 1, "got %d", got);
    cr_assert_eq(done, 1u);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, req.id).result, 7);
    cr_assert_eq(ovl_poll(p, 5), 0, "nothing in flight: times out");
    cr_assert_eq(ovl_submit_and_poll(p, NULL, 0, NULL, 5), 0);
    close_clean(p, &r);
}

Test(submit_and_poll, a_bad_request_stops_the_batch_and_the_poll)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    ovl_request req[2] = {post_req(1), post_req(2)};
    req[1].op = 99;
    size_t done = 0;
    cr_assert_eq(ovl_submit_and_poll(p, req, 2, &done, -1), OVL_EINVAL);
    cr_assert_eq(done, 1u);
    cr_assert_neq(req[0].id, 0u);
    cr_assert_eq(req[1].id, 0u);
    cr_assert_eq(rec_count(&r), 0u, "no delivery by a failed call");
    while (rec_count(&r) < 1) cr_assert_geq(ovl_poll(p, -1), 0);
    cr_assert_eq(rec_one(&r, req[0].id).result, 1);
    cr_assert_eq(ovl_submit_and_poll(p, NULL, 1, &done, 0), OVL_EINVAL);
    close_clean(p, &r);
    cr_assert_eq(ovl_submit_and_poll(p, req, 1, &done, 0), OVL_ECLOSED);
}

static void sap_hook(rec *r, const ovl_completion *c)
{
    (void)c;
    ovl_request req = post_req(5);
    size_t done = 7;
    r->hook_data = (void *)(intptr_t)ovl_submit_and_poll(r->port, &req, 1, &done, 0);
    r->hook = NULL;
}

Test(submit_and_poll, from_own_callback_is_edeadlk)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    r.hook = sap_hook;
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    cr_assert_eq(ovl_poll(p, -1), 1);
    cr_assert_eq((int32_t)(intptr_t)r.hook_data, OVL_EDEADLK);
    close_clean(p, &r);
}

#ifndef _WIN32
#  include <poll.h>

static bool readable(ovl_fd efd)
{
    struct pollfd pf = {(int)efd, POLLIN, 0};
    return poll(&pf, 1, 0) == 1;
}

/* io_uring, manual mode: the port's eventfd is for an outside poller, so
 * the completions a call reaps itself do not signal it; the kernel's
 * signal is disabled while a thread reaps (IORING_CQ_EVENTFD_DISABLED).
 * Here the posts complete inside the call's own io_uring_enter. */
Test(submit_and_poll, event_fd_quiet_for_what_the_call_reaps)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    if (strcmp(ovl_backend_name(p), "uring") != 0) {
        close_clean(p, &r);
        cr_skip_test("io_uring only");
    }
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(p, &efd), OVL_OK);
    for (int i = 0; i < 20; i++) {
        ovl_request req[8];
        for (int k = 0; k < 8; k++) req[k] = post_req(k);
        size_t done = 0;
        int32_t timeout = i % 2 ? -1 : 0;
        cr_assert_eq(ovl_submit_and_poll(p, req, 8, &done, timeout), 8, "round %d", i);
        cr_assert_not(readable(efd), "round %d: signalled for completions the call reaped", i);
    }
    close_clean(p, &r);
}

/* The first batch's completions each post once more, from the callback
 * (deferred: the call's next round submits them inside its own system
 * call, with the eventfd disabled); the call stops after one queue's
 * worth and leaves those completions in the ring. The eventfd must say so
 * by the time the call returns, or an outside poller would sleep on them. */
static void repost_first_batch(rec *r, const ovl_completion *c)
{
    if (c->op == OVL_OP_POST && c->result < 256)
        cr_assert_eq(ovl_post(r->port, 1000, NULL, NULL), OVL_OK);
}

Test(submit_and_poll, event_fd_signalled_for_what_the_call_leaves)
{
    enum { DEPTH = 512 };
    rec r;
    rec_init(&r);
    r.hook = repost_first_batch;
    ovl_port *p = open_port(&r, DEPTH, OVL_PORT_MANUAL);
    if (strcmp(ovl_backend_name(p), "uring") != 0) {
        close_clean(p, &r);
        cr_skip_test("io_uring only");
    }
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(p, &efd), OVL_OK);
    static ovl_request req[DEPTH];
    for (int k = 0; k < DEPTH; k++) req[k] = post_req(k);
    size_t done = 0;
    int32_t got = ovl_submit_and_poll(p, req, DEPTH, &done, 0);
    cr_assert_eq(done, (size_t)DEPTH);
    cr_assert_eq(got, DEPTH, "one queue's worth, then the call returns");
    ovl_stats st = {.size = sizeof st};
    cr_assert_eq(ovl_port_stats(p, &st), OVL_OK);
    cr_assert_gt(st.inflight, 0u, "the reposts are left for the next poll");
    cr_assert(readable(efd), "completions left in the ring, eventfd not signalled");
    int32_t total = 0, n;
    while ((n = ovl_poll(p, 0)) > 0) total += n;
    cr_assert_eq(n, 0);
    cr_assert_eq((uint32_t)total, st.inflight);
    cr_assert_not(readable(efd), "reset by the ovl_poll that found nothing");
    close_clean(p, &r);
}

#  ifdef __linux__
/* Every backend, manual mode: a read that completes while the calling
 * thread sleeps inside ovl_submit_and_poll is that thread's to take, so
 * the port's event handle, which is for an outside poller, stays quiet.
 * The data is written only once the waiter is seen asleep (its state in
 * /proc is S), so the completion happens during the wait, not before. */
typedef struct sleeper_arg {
    ovl_port *p;
    int fd;
    char buf[8];
    _Atomic pid_t tid;
    int32_t rc;
    size_t done;
} sleeper_arg;

static void *sleeper(void *arg)
{
    sleeper_arg *a = arg;
    atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
    ovl_request q;
    memset(&q, 0, sizeof q);
    q.op = OVL_OP_READ;
    q.fd = (ovl_fd)a->fd;
    q.buf = a->buf;
    q.len = sizeof a->buf;
    q.offset = OVL_OFFSET_CURRENT;
    a->rc = ovl_submit_and_poll(a->p, &q, 1, &a->done, -1);
    return NULL;
}

static char task_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *q = strrchr(buf, ')');
    return q && q[1] == ' ' ? q[2] : '?';
}

Test(submit_and_poll, event_fd_quiet_while_a_caller_sleeps_for_it)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, OVL_PORT_MANUAL);
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(p, &efd), OVL_OK);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    sleeper_arg a = {.p = p, .fd = fds[0]};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sleeper, &a), 0);
    pid_t tid;
    while ((tid = atomic_load(&a.tid)) == 0) sched_yield();
    /* Asleep, and stays so: a thread that is still on its way into the
     * wait can show S for a moment (a lock), so ask several times. */
    for (int seen = 0; seen < 50;) {
        if (task_state(tid) == 'S') seen++;
        else seen = 0;
        sched_yield();
    }
    cr_assert_not(readable(efd), "signalled before anything completed");
    cr_assert_eq(write(fds[1], "wake", 4), 4);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, 1, "the sleeping call delivers the read: %d", a.rc);
    cr_assert_eq(a.done, 1u);
    cr_assert_eq(memcmp(a.buf, "wake", 4), 0);
    cr_assert_not(readable(efd), "signalled for a completion its sleeping caller took");
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}
#  endif
#endif

/* ---- ovl_submit_and_poll on a port with a completion thread ----------------
 * The call delivers what completed inside its submit on the calling thread
 * and, on io_uring, lets the completion thread wait outside the kernel
 * while nothing is in flight (the port's park hint). Plain submits and
 * posts never deliver on their caller and clear the hint. Whatever the
 * hint, every op is delivered: these tests leave ops to the completion
 * thread right after ovl_submit_and_poll calls, with the thread parked
 * where the host lets us see it (io_uring: asleep in a futex wait, not in
 * io_uring_enter). */

/* OVL_PORT_INLINE is retired: refused, alone or with OVL_PORT_MANUAL. */
Test(submit_and_poll, inline_flag_is_refused)
{
    const uint32_t flags[] = {OVL_PORT_INLINE, OVL_PORT_INLINE | OVL_PORT_MANUAL};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        ovl_port_config cfg;
        cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
        cfg.flags = flags[i];
        ovl_port *p = (ovl_port *)&cfg; /* must be cleared */
        cr_assert_eq(ovl_create_port(&cfg, &p), OVL_EINVAL, "flags %#x", flags[i]);
        cr_assert_null(p);
    }
}

static pthread_t test_thread;
static atomic_int plain_seen, plain_on_caller, sap_on_caller, late_on_caller;
#ifdef __linux__
static atomic_int cb_tid; /* the thread that delivered the last tag_probe */
#endif
static int tag_plain, tag_sap, tag_late, tag_probe;

/* Which thread each tagged completion was delivered on. */
static void where_hook(rec *r, const ovl_completion *c)
{
    (void)r;
    bool here = pthread_equal(pthread_self(), test_thread);
    if (c->ctx == &tag_plain) {
        atomic_fetch_add(&plain_seen, 1);
        if (here) atomic_fetch_add(&plain_on_caller, 1);
    } else if (c->ctx == &tag_sap) {
        if (here) atomic_fetch_add(&sap_on_caller, 1);
    } else if (c->ctx == &tag_late) {
        if (here) atomic_fetch_add(&late_on_caller, 1);
    } else if (c->ctx == &tag_probe) {
#ifdef __linux__
        atomic_store(&cb_tid, (int)syscall(SYS_gettid));
#endif
    }
}

static ovl_port *where_port(rec *r)
{
    rec_init(r);
    r->hook = where_hook;
    test_thread = pthread_self();
    atomic_store(&plain_seen, 0);
    atomic_store(&plain_on_caller, 0);
    atomic_store(&sap_on_caller, 0);
    atomic_store(&late_on_caller, 0);
    return open_port(r, 64, TEST_THREADED);
}

/* One request through ovl_submit_and_poll(..., 0); returns its id. */
static uint64_t sap1(ovl_port *p, ovl_request q)
{
    size_t done = 0;
    int32_t rc = ovl_submit_and_poll(p, &q, 1, &done, 0);
    cr_assert_geq(rc, 0, "ovl_submit_and_poll: %s", ovl_strerror(rc));
    cr_assert_eq(done, 1u);
    return q.id;
}

static ovl_request tagged_post(void *tag, int64_t v)
{
    ovl_request q = post_req(v);
    q.ctx = tag;
    return q;
}

static bool on_uring(ovl_port *p) { return strcmp(ovl_backend_name(p), "uring") == 0; }

Test(submit_and_poll, plain_submits_never_deliver_on_the_caller)
{
    enum { ROUNDS = 200 };
    rec r;
    ovl_port *p = where_port(&r);
    int fd = temp_file(1 << 16, 5);
    static uint8_t buf[2][512];
    size_t n = 0;
    for (int i = 0; i < ROUNDS; i++) {
        /* Sets the hint (io_uring), and may deliver here. */
        sap1(p, tagged_post(&tag_sap, i));
        /* Right after it: a post and page-cache reads, whose io_uring
         * completions are there before the submit returns. */
        cr_assert_eq(ovl_post(p, i, &tag_plain, NULL), OVL_OK);
        int64_t off = (int64_t)(i % 128) * 512;
        cr_assert_eq(ovl_submit_read(p, (ovl_fd)fd, buf[0], 512, off, &tag_plain, NULL), OVL_OK);
        ovl_request q;
        memset(&q, 0, sizeof q);
        q.op = OVL_OP_READ;
        q.fd = (ovl_fd)fd;
        q.buf = buf[1];
        q.len = 512;
        q.offset = off;
        q.ctx = &tag_plain;
        size_t done = 0;
        cr_assert_eq(ovl_submit(p, &q, 1, &done), OVL_OK);
        n += 4;
        rec_wait(&r, n); /* the buffers are free again */
    }
    cr_assert_eq(atomic_load(&plain_seen), 3 * ROUNDS);
    cr_assert_eq(atomic_load(&plain_on_caller), 0, "a plain submit delivered on its caller");
    if (on_uring(p))
        cr_assert_gt(atomic_load(&sap_on_caller), 0, "ovl_submit_and_poll never delivered itself");
    close_clean(p, &r);
    close(fd);
}

static ovl_request tagged_timer(void *tag, int64_t delay_ns)
{
    ovl_request q;
    memset(&q, 0, sizeof q);
    q.op = OVL_OP_TIMER;
    q.timeout_ns = delay_ns;
    q.ctx = tag;
    return q;
}

/* With a timeout, ovl_submit_and_poll on a port with a completion thread
 * takes over delivery while it waits: an op that completes later (a 20 ms
 * timer) is delivered inside the call, on the caller's thread, not handed
 * over by the completion thread. */
Test(submit_and_poll, threaded_wait_delivers_late_completions_on_the_caller)
{
    enum { ROUNDS = 10 };
    rec r;
    ovl_port *p = where_port(&r);
    for (int i = 0; i < ROUNDS; i++) {
        size_t n = rec_count(&r), done = 0;
        ovl_request q = tagged_timer(&tag_late, 20 * 1000 * 1000);
        int32_t got = ovl_submit_and_poll(p, &q, 1, &done, -1);
        cr_assert_eq(done, 1u);
        cr_assert_eq(got, 1, "round %d: %d delivered", i, got);
        cr_assert_eq(rec_count(&r), n + 1);
        cr_assert_eq(rec_one(&r, q.id).result, 0);
        /* ovl_poll with a timeout: the same, for an op submitted before. */
        uint64_t id;
        cr_assert_eq(ovl_submit_timer(p, 20 * 1000 * 1000, &tag_late, &id), OVL_OK);
        cr_assert_eq(ovl_poll(p, -1), 1);
        cr_assert_eq(rec_one(&r, id).result, 0);
    }
    cr_assert_eq(atomic_load(&late_on_caller), 2 * ROUNDS);
    close_clean(p, &r);
}

/* A wait that times out leaves what is in flight to the completion thread
 * (woken if it was parked): a long timer, cancelled afterwards, completes
 * there. */
Test(submit_and_poll, threaded_wait_that_times_out_leaves_the_op_to_the_thread)
{
    rec r;
    ovl_port *p = where_port(&r);
    for (int i = 0; i < 5; i++) {
        size_t n = rec_count(&r), done = 0;
        ovl_request q = tagged_timer(&tag_plain, 60ll * 1000 * 1000 * 1000);
        cr_assert_eq(ovl_submit_and_poll(p, &q, 1, &done, 5), 0);
        cr_assert_eq(done, 1u);
        cr_assert_eq(ovl_cancel(p, q.id), OVL_OK);
        rec_wait(&r, n + 1);
        cr_assert_eq(rec_one(&r, q.id).result, OVL_ECANCELED);
    }
    cr_assert_eq(atomic_load(&plain_on_caller), 0, "delivered by a call that had returned");
    close_clean(p, &r);
}

typedef struct {
    ovl_port *p;
    atomic_int tid;
    atomic_bool entered;
    int32_t rc;
} waiter_arg;

static void *waiter(void *arg)
{
    waiter_arg *a = arg;
#ifdef __linux__
    atomic_store(&a->tid, (int)syscall(SYS_gettid));
#endif
    atomic_store(&a->entered, true);
    a->rc = ovl_poll(a->p, -1);
    return NULL;
}

/* Close while another thread waits in ovl_poll(p, -1) on a port with a
 * completion thread and nothing in flight: the wait ends with OVL_ECLOSED
 * and close returns (the test's timeout is the hang detector). */
Test(submit_and_poll, close_ends_a_threaded_wait, .timeout = 60)
{
    for (int i = 0; i < 5; i++) {
        rec r;
        rec_init(&r);
        ovl_port *p = open_port(&r, 16, TEST_THREADED);
        waiter_arg a = {.p = p};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, waiter, &a), 0);
        while (!atomic_load(&a.entered)) sched_yield();
#ifdef __linux__
        /* Asleep in the wait (or on the way into it, in a later round). */
        if (i < 3) {
            pid_t tid = (pid_t)atomic_load(&a.tid);
            while (task_state(tid) != 'S') sched_yield();
        }
#endif
        cr_assert_eq(ovl_close_port(p), OVL_OK);
        cr_assert_eq(pthread_join(t, NULL), 0);
        cr_assert_eq(a.rc, OVL_ECLOSED);
        rec_free(&r);
    }
}

#ifdef __linux__
#  include <dirent.h>

/* This process's threads (their tids), io_uring's own workers (iou-*)
 * left out. */
static int list_threads(pid_t *out, int cap)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[320], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        if (!strncmp(comm, "iou-", 4)) continue;
        if (n < cap) out[n] = (pid_t)atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* The thread count once it is back to `want`, or what it is after the
 * wait limit. A joined thread can still be listed for a moment: the
 * kernel wakes pthread_join when the thread's tid is cleared, early in its
 * exit, and removes it from /proc/self/task only later. */
static int threads_back_to(int want)
{
    pid_t tids[256];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int n = list_threads(tids, 256);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (n == want || t.tv_sec - t0.tv_sec >= WAIT_LIMIT_MS / 1000) return n;
        sched_yield();
    }
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A where_port and, on io_uring, its completion thread's tid (0 on other
 * backends, whose completion thread never parks): the thread that
 * delivers a plain post, which only the completion thread does. The post
 * is delivered before this returns (one completion on r). */
static ovl_port *open_port_ct(rec *r, pid_t *ct)
{
    ovl_port *p = where_port(r);
    *ct = 0;
    atomic_store(&cb_tid, 0);
    cr_assert_eq(ovl_post(p, 0, &tag_probe, NULL), OVL_OK);
    rec_wait(r, 1);
    cr_assert_neq(atomic_load(&cb_tid), 0);
    if (on_uring(p)) *ct = (pid_t)atomic_load(&cb_tid);
    return p;
}

/* The first number of /proc/self/task/TID/syscall: the system call the
 * thread is blocked in (-1: running or unknown). */
static long blocked_in(pid_t tid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    char *end;
    long nr = strtol(buf, &end, 10);
    return end == buf ? -1 : nr;
}

/* io_uring: wait until the completion thread is parked, i.e. asleep in a
 * futex wait (its park; nothing else it could wait for in a futex is
 * held), not in io_uring_enter. Several looks in a row, as a thread on its
 * way somewhere may pass through a futex. A no-op elsewhere (ct == 0). */
static void wait_parked(pid_t ct)
{
    if (!ct) return;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int seen = 0; seen < 20;) {
        seen = blocked_in(ct) == SYS_futex ? seen + 1 : 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                     "the completion thread never parked (in system call %ld)", blocked_in(ct));
        sched_yield();
    }
}

static ovl_request pipe_read(int fd, void *buf, size_t len, void *tag)
{
    ovl_request q;
    memset(&q, 0, sizeof q);
    q.op = OVL_OP_READ;
    q.fd = (ovl_fd)fd;
    q.buf = buf;
    q.len = len;
    q.offset = OVL_OFFSET_CURRENT;
    q.ctx = tag;
    return q;
}

/* `posts` posts through ovl_submit_and_poll, delivered (on this thread or
 * the completion thread), then the completion thread seen parked. Returns
 * the completion count before the posts. */
static size_t sap_posts_then_park(ovl_port *p, rec *r, pid_t ct, int posts)
{
    size_t n = rec_count(r);
    for (int k = 0; k < posts; k++) sap1(p, tagged_post(&tag_sap, k));
    rec_wait(r, n + (size_t)posts);
    wait_parked(ct);
    return n;
}

/* An op that does not complete inside ovl_submit_and_poll (a pipe read
 * whose data the test writes afterwards) is delivered by the completion
 * thread, which the call left parked. */
Test(submit_and_poll, late_completion_goes_to_the_completion_thread)
{
    rec r;
    pid_t ct;
    ovl_port *p = open_port_ct(&r, &ct);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    static char buf[8];
    for (int i = 0; i < 20; i++) {
        size_t n = sap_posts_then_park(p, &r, ct, 1);
        uint64_t id = sap1(p, pipe_read(pfd[0], buf, sizeof buf, &tag_late));
        cr_assert_eq(rec_count(&r), n + 1, "an empty pipe's read completed");
        cr_assert_eq(write(pfd[1], "late", 4), 4);
        rec_wait(&r, n + 2);
        cr_assert_eq(rec_one(&r, id).result, 4);
        cr_assert_eq(memcmp(buf, "late", 4), 0);
    }
    cr_assert_eq(atomic_load(&late_on_caller), 0);
    close_clean(p, &r);
    close(pfd[0]);
    close(pfd[1]);
}

/* From ovl_submit_and_poll to plain submits: the first plain one clears
 * the hint while the thread may be parked. Its read, its post and the
 * plain ones after it are all delivered, by the completion thread. */
Test(submit_and_poll, plain_submits_after_submit_and_poll_are_delivered)
{
    rec r;
    pid_t ct;
    ovl_port *p = open_port_ct(&r, &ct);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    static char buf[8];
    for (int i = 0; i < 20; i++) {
        size_t n = sap_posts_then_park(p, &r, ct, 3);
        uint64_t id, post;
        cr_assert_eq(ovl_submit_read(p, (ovl_fd)pfd[0], buf, sizeof buf, OVL_OFFSET_CURRENT,
                                     &tag_plain, &id),
                     OVL_OK);
        cr_assert_eq(ovl_post(p, 9, &tag_plain, &post), OVL_OK);
        rec_wait(&r, n + 4); /* the post, while the read waits */
        cr_assert_eq(rec_one(&r, post).result, 9);
        cr_assert_eq(write(pfd[1], "data", 4), 4);
        rec_wait(&r, n + 5);
        cr_assert_eq(rec_one(&r, id).result, 4);
        for (int k = 0; k < 3; k++) cr_assert_eq(ovl_post(p, k, &tag_plain, NULL), OVL_OK);
        rec_wait(&r, n + 8);
    }
    cr_assert_eq(atomic_load(&plain_seen), 20 * 5);
    cr_assert_eq(atomic_load(&plain_on_caller), 0);
    close_clean(p, &r);
    close(pfd[0]);
    close(pfd[1]);
}

/* Close while the completion thread is parked: it returns (the test's
 * timeout is the hang detector) and leaves no thread or fd behind. */
Test(submit_and_poll, close_with_a_parked_thread, .timeout = 60)
{
    /* Whatever a first port starts once for the process (the backend
     * probe's throw-away ring; a sanitizer's own helper thread at the
     * first pthread_create) is not this test's: one port before counting. */
    {
        rec r;
        ovl_port *p = where_port(&r);
        close_check(p, &r);
        rec_free(&r);
    }
    pid_t tids[256];
    int threads0 = list_threads(tids, 256), fds0 = count_fds();
    for (int i = 0; i < 10; i++) {
        rec r;
        pid_t ct;
        ovl_port *p = open_port_ct(&r, &ct);
        sap_posts_then_park(p, &r, ct, 1);
        close_check(p, &r);
        rec_free(&r);
        cr_assert_eq(count_fds(), fds0, "an fd left behind");
        cr_assert_eq(threads_back_to(threads0), threads0, "a thread left behind");
    }
}
#endif
