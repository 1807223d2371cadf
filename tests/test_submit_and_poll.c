/* test_submit_and_poll.c - ovl_submit_and_poll: a submit and a poll in one
 * call, on manual ports (where io_uring makes one system call of both) and
 * on ports with a completion thread (timeout 0 only). */
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

Test(submit_and_poll, threaded_port_takes_zero_timeout_only)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, TEST_THREADED);
    ovl_request req = post_req(7);
    size_t done = 9;
    cr_assert_eq(ovl_submit_and_poll(p, &req, 1, &done, 10), OVL_EMODE);
    cr_assert_eq(done, 0u, "nothing submitted on a refused call");
    cr_assert_geq(ovl_submit_and_poll(p, &req, 1, &done, 0), 0);
    cr_assert_eq(done, 1u);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, req.id).result, 7);
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
