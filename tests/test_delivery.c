/* Delivery: where and when callbacks run - the completion thread (one at a
 * time, batched, submits from callbacks), manual mode (ovl_poll, the
 * event handle, close draining), ovl_poll(p, 0) sharing delivery with a
 * completion thread, and submits through ovl_submit_and_poll on such a
 * port. */
#include "common.h"

#ifndef _WIN32
#  include <poll.h>
#endif

/* ---- where callbacks run ------------------------------------------------- */

typedef struct poster_arg {
    ovl_port *p;
    int n;
    atomic_int accepted;
} poster_arg;

static void *poster(void *arg)
{
    poster_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        int32_t rc;
        while ((rc = ovl_post(a->p, i, (void *)(uintptr_t)(i + 1), NULL)) == OVL_EQUEUEFULL)
            sched_yield();
        if (rc == OVL_OK) atomic_fetch_add(&a->accepted, 1);
    }
    return NULL;
}

Test(delivery, callbacks_run_on_the_port_thread_serialized)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, 0);
    enum { THREADS = 4, EACH = 500 };
    pthread_t th[THREADS];
    poster_arg a = {p, EACH, 0};
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, poster, &a);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&a.accepted), THREADS * EACH);
    rec_wait(&r, THREADS * EACH);
    cr_assert(r.cb_thread_set);
    cr_assert_eq(r.cb_thread_changes, 0, "every callback on one thread");
    cr_assert_not(pthread_equal(r.cb_thread, pthread_self()),
                  "callbacks run on the port's thread, not the submitter's");
    for (int t = 0; t < THREADS; t++) cr_assert_not(pthread_equal(r.cb_thread, th[t]));
    cr_assert_leq(r.batches, (size_t)(THREADS * EACH));
    for (size_t i = 0; i < r.n; i++) {
        cr_assert_eq(r.items[i].op, OVL_OP_POST);
        cr_assert_eq((uintptr_t)r.items[i].ctx, (uintptr_t)r.items[i].result + 1,
                     "post value and ctx round trip");
        cr_assert_eq(r.items[i].os_error, 0);
    }
    close_clean(p, &r);
}

/* Posts through the batch call: the value travels in offset, a post with
 * any other field set is refused, and the call stops there. */
Test(delivery, batch_posts_through_ovl_submit)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, 0);
    ovl_request q[4];
    int64_t vals[4] = {-5, INT64_MAX, INT64_MIN, 0};
    for (int i = 0; i < 4; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].op = OVL_OP_POST;
        q[i].offset = vals[i];
        q[i].ctx = (void *)(uintptr_t)(i + 1);
    }
    q[2].len = 1;
    size_t done = 9;
    cr_assert_eq(ovl_submit(p, q, 4, &done), OVL_EINVAL);
    cr_assert_eq(done, 2u);
    cr_assert_eq(q[2].id, 0u);
    cr_assert_eq(q[3].id, 0u);
    rec_wait(&r, 2);
    for (int i = 0; i < 2; i++) {
        ovl_completion c = rec_one(&r, q[i].id);
        cr_assert_eq(c.op, OVL_OP_POST);
        cr_assert_eq(c.result, vals[i]);
        cr_assert_eq(c.ctx, q[i].ctx);
        cr_assert_eq(c.os_error, 0);
    }
    ovl_request bad[3];
    for (int i = 0; i < 3; i++) {
        memset(&bad[i], 0, sizeof bad[i]);
        bad[i].op = OVL_OP_POST;
    }
    bad[0].fd = 3;
    bad[1].buf = q;
    bad[2].flags = 1;
    for (int i = 0; i < 3; i++) cr_assert_eq(ovl_submit(p, &bad[i], 1, NULL), OVL_EINVAL);
    q[2].len = 0;
    cr_assert_eq(ovl_submit(p, &q[2], 2, &done), OVL_OK);
    cr_assert_eq(done, 2u);
    rec_wait(&r, 4);
    for (int i = 2; i < 4; i++) cr_assert_eq(rec_one(&r, q[i].id).result, vals[i]);
    close_clean(p, &r);
}

/* A callback that submits more: a chain of posts, each made from the
 * previous one's callback, until 100. */
static void chain_hook(rec *r, const ovl_completion *c)
{
    if (c->op == OVL_OP_POST && c->result < 100)
        cr_assert_eq(ovl_post(r->port, c->result + 1, NULL, NULL), OVL_OK);
}

Test(delivery, callback_submits_more)
{
    rec r;
    rec_init(&r);
    r.hook = chain_hook;
    ovl_port *p = open_port(&r, 4, 0);
    cr_assert_eq(ovl_post(p, 0, NULL, NULL), OVL_OK);
    rec_wait(&r, 101);
    for (size_t i = 0; i < 101; i++) cr_assert_eq(r.items[i].result, (int64_t)i);
    close_clean(p, &r);
}

static atomic_int close_rc = 1;
static void close_hook(rec *r, const ovl_completion *c)
{
    if (c->result == 1) {
        atomic_store(&close_rc, ovl_close_port(r->port));
        /* the port still works from here */
        cr_assert_eq(ovl_post(r->port, 2, NULL, NULL), OVL_OK);
    }
}

Test(delivery, close_from_own_callback_is_edeadlk)
{
    rec r;
    rec_init(&r);
    r.hook = close_hook;
    ovl_port *p = open_port(&r, 4, 0);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(atomic_load(&close_rc), OVL_EDEADLK);
    close_clean(p, &r);
}

Test(delivery, set_callback_replaces)
{
    rec r1, r2;
    rec_init(&r1);
    rec_init(&r2);
    ovl_port *p = open_port(&r1, 4, 0);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    rec_wait(&r1, 1);
    cr_assert_eq(ovl_set_callback(p, rec_cb, &r2), OVL_OK);
    cr_assert_eq(ovl_post(p, 2, NULL, NULL), OVL_OK);
    rec_wait(&r2, 1);
    cr_assert_eq(rec_count(&r1), 1u);
    cr_assert_eq(r2.items[0].result, 2);
    cr_assert_eq(ovl_set_callback(NULL, rec_cb, &r2), OVL_EINVAL);
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    rec_free(&r1);
    rec_free(&r2);
}

/* ---- manual mode ---------------------------------------------------------- */

Test(delivery, poll_with_completion_thread)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 4, 0);
    cr_assert_eq(ovl_poll(p, 0), 0, "nothing in flight, nothing delivered");
    cr_assert_eq(ovl_poll(p, 10), 0, "nothing in flight: times out");
    ovl_fd fd;
    cr_assert_eq(ovl_port_event(p, &fd), OVL_EMODE);
    cr_assert_eq(ovl_poll(NULL, 0), OVL_EINVAL);
    close_clean(p, &r);
}

Test(delivery, manual_mode_delivers_on_caller_thread)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    cr_assert_eq(ovl_poll(p, 0), 0, "nothing to deliver yet");
    cr_assert_eq(ovl_poll(p, 20), 0, "times out with nothing");
    for (int i = 0; i < 3; i++) cr_assert_eq(ovl_post(p, i, NULL, NULL), OVL_OK);
    int got = 0;
    while (got < 3) {
        int32_t n = ovl_poll(p, WAIT_LIMIT_MS);
        cr_assert_gt(n, 0);
        got += n;
    }
    cr_assert_eq(got, 3);
    cr_assert_eq(rec_count(&r), 3u);
    cr_assert(pthread_equal(r.cb_thread, pthread_self()), "delivered on the caller");
    close_clean(p, &r);
}

#ifdef _WIN32
Test(delivery, manual_mode_event_fd_not_on_iocp)
{
    /* Documented: IOCP has no pollable handle in this version. */
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(p, &efd), OVL_ENOTSUP);
    close_clean(p, &r);
}
#else
Test(delivery, manual_mode_event_fd)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    ovl_fd efd;
    cr_assert_eq(ovl_port_event(p, NULL), OVL_EINVAL);
    cr_assert_eq(ovl_port_event(p, &efd), OVL_OK);
    struct pollfd pf = {(int)efd, POLLIN, 0};
    cr_assert_eq(ovl_post(p, 5, NULL, NULL), OVL_OK);
    cr_assert_eq(poll(&pf, 1, WAIT_LIMIT_MS), 1, "readable once a completion is ready");
    cr_assert_eq(ovl_poll(p, 0), 1);
    cr_assert_eq(r.items[0].result, 5);
    /* It may still be readable (documented: a poll that delivered does not
     * pay a read() to reset it); a poll that finds nothing resets it. */
    cr_assert_eq(ovl_poll(p, 0), 0);
    pf.revents = 0;
    cr_assert_eq(poll(&pf, 1, 0), 0, "reset by the ovl_poll that found nothing");
    cr_assert_eq(ovl_post(p, 6, NULL, NULL), OVL_OK);
    cr_assert_eq(poll(&pf, 1, WAIT_LIMIT_MS), 1, "readable again for the next completion");
    cr_assert_eq(ovl_poll(p, 0), 1);
    close_clean(p, &r);
}
#endif

static atomic_int poll_rc = 1;
static void poll_hook(rec *r, const ovl_completion *c)
{
    (void)c;
    atomic_store(&poll_rc, ovl_poll(r->port, 0));
}

Test(delivery, poll_from_callback_is_edeadlk)
{
    rec r;
    rec_init(&r);
    r.hook = poll_hook;
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    cr_assert_eq(ovl_poll(p, WAIT_LIMIT_MS), 1);
    cr_assert_eq(atomic_load(&poll_rc), OVL_EDEADLK);
    close_clean(p, &r);
}

/* A manual port whose callback answers every completion with a post (the
 * event-loop pattern): each ovl_poll must still return, after about one
 * queue's worth, and not run the loop for ever on the caller's thread. */
static atomic_int forever_stop;
static void forever_hook(rec *r, const ovl_completion *c)
{
    (void)c;
    if (!atomic_load(&forever_stop)) cr_assert_eq(ovl_post(r->port, 0, NULL, NULL), OVL_OK);
}

Test(delivery, manual_poll_returns_while_callbacks_resubmit)
{
    rec r;
    rec_init(&r);
    r.hook = forever_hook;
    atomic_store(&forever_stop, 0);
    enum { DEPTH = 8 };
    ovl_port *p = open_port(&r, DEPTH, OVL_PORT_MANUAL);
    for (int i = 0; i < DEPTH; i++) cr_assert_eq(ovl_post(p, i, NULL, NULL), OVL_OK);
    for (int round = 0; round < 3; round++) {
        int32_t n = ovl_poll(p, round == 0 ? 0 : WAIT_LIMIT_MS);
        cr_assert_gt(n, 0);
        cr_assert_leq(n, 2 * DEPTH, "one poll delivered %d", n);
    }
    atomic_store(&forever_stop, 1);
    while (ovl_poll(p, 0) > 0) {
    }
    close_clean(p, &r);
}

Test(delivery, manual_close_delivers_remaining)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char buf[4];
    uint64_t id;
    cr_assert_eq(ovl_submit_read(p, fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_OK);
    cr_assert_eq(ovl_post(p, 3, NULL, NULL), OVL_OK);
    /* close delivers both on this thread: the post, and the read cancelled */
    close_check(p, &r);
    cr_assert(pthread_equal(r.cb_thread, pthread_self()));
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, OVL_ECANCELED);
    rec_free(&r);
    close(fds[0]);
    close(fds[1]);
}

Test(delivery, spinning_port_delivers_and_closes)
{
    /* spin_usec is opt-in; it changes how the thread waits, not what it
     * delivers. */
    rec r;
    rec_init(&r);
    r.hook = chain_hook;
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = 4;
    cfg.spin_usec = 200;
    ovl_port *p = open_port_cfg(&r, &cfg);
    cr_assert_eq(ovl_post(p, 0, NULL, NULL), OVL_OK);
    rec_wait(&r, 101);
    close_clean(p, &r);
}

/* Several threads driving one manual port with ovl_poll(p, 0): a call that
 * finds another thread delivering returns at once, yet every completion is
 * delivered exactly once and callbacks never overlap. */
typedef struct pollers {
    ovl_port *p;
    rec *r;
    size_t want;
    atomic_int errors;
} pollers;

static void *poll_loop(void *arg)
{
    pollers *a = arg;
    while (rec_count(a->r) < a->want) {
        int32_t n = ovl_poll(a->p, 0);
        if (n < 0) atomic_fetch_add(&a->errors, 1);
        if (n <= 0) sched_yield();
    }
    return NULL;
}

Test(delivery, concurrent_zero_timeout_polls)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, OVL_PORT_MANUAL);
    enum { N = 2000 };
    pollers a = {p, &r, N, 0};
    pthread_t th[3];
    for (int t = 0; t < 3; t++) pthread_create(&th[t], NULL, poll_loop, &a);
    for (int i = 0; i < N; i++) {
        int32_t rc;
        while ((rc = ovl_post(p, i, NULL, NULL)) == OVL_EQUEUEFULL) sched_yield();
        cr_assert_eq(rc, OVL_OK);
    }
    for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&a.errors), 0);
    close_clean(p, &r);
}

/* ---- ovl_poll(p, 0) on a port with a completion thread --------------------- */

static _Thread_local bool tl_poller;
static atomic_size_t polled_items;
static atomic_int cb_poll_rc = 1;

static void polled_hook(rec *r, const ovl_completion *c)
{
    if (tl_poller) atomic_fetch_add(&polled_items, 1);
    if (c->result == 0) atomic_store(&cb_poll_rc, ovl_poll(r->port, 0));
}

typedef struct post_poll_arg {
    ovl_port *p;
    int n;
    atomic_llong polled; /* sum of what ovl_poll returned */
    atomic_int errors;
} post_poll_arg;

static void *post_then_poll(void *arg)
{
    post_poll_arg *a = arg;
    tl_poller = true;
    for (int i = 0; i < a->n; i++) {
        int32_t rc;
        while ((rc = t_post(a->p, i, NULL, NULL)) == OVL_EQUEUEFULL) sched_yield();
        if (rc != OVL_OK) atomic_fetch_add(&a->errors, 1);
        rc = ovl_poll(a->p, 0);
        if (rc < 0) atomic_fetch_add(&a->errors, 1);
        else atomic_fetch_add(&a->polled, rc);
    }
    return NULL;
}

/* Submitters that poll right after posting share delivery with the
 * completion thread: whoever wins, every completion is delivered once,
 * callbacks never overlap, and exactly the completions an ovl_poll counted
 * ran on that caller's thread. */
/* Three threads post and then poll on a port with `flags`; returns the
 * sum of what their ovl_poll calls reported. */
static long long post_poll_threads(rec *r, ovl_port **out, uint32_t flags)
{
    r->hook = polled_hook;
    atomic_store(&polled_items, 0);
    ovl_port *p = *out = open_port(r, 64, flags);
    enum { THREADS = 3, EACH = 2000 };
    post_poll_arg a = {.p = p, .n = EACH};
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, post_then_poll, &a);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    rec_wait(r, THREADS * EACH);
    cr_assert_eq(atomic_load(&a.errors), 0);
    return atomic_load(&a.polled);
}

Test(delivery, zero_timeout_poll_shares_delivery_with_the_thread)
{
    rec r;
    rec_init(&r);
    ovl_port *p;
    long long polled = post_poll_threads(&r, &p, 0);
    cr_assert_eq((size_t)polled, atomic_load(&polled_items),
                 "ovl_poll counted %lld, its callbacks saw %zu", polled,
                 atomic_load(&polled_items));
    cr_assert_eq(atomic_load(&cb_poll_rc), OVL_EDEADLK, "poll from a callback");
    close_clean(p, &r);
}

static atomic_int hold_cb, in_hold;
static void hold_hook(rec *r, const ovl_completion *c)
{
    (void)r;
    if (c->result != 1) return;
    atomic_store(&in_hold, 1);
    while (atomic_load(&hold_cb)) sched_yield();
}

/* While the completion thread is inside a callback, ovl_poll(p, 0) returns
 * 0 at once rather than wait for it; the thread then delivers the rest. */
Test(delivery, zero_timeout_poll_does_not_wait_for_the_thread)
{
    rec r;
    rec_init(&r);
    r.hook = hold_hook;
    atomic_store(&hold_cb, 1);
    atomic_store(&in_hold, 0);
    ovl_port *p = open_port(&r, 8, 0);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&in_hold)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000, "callback never ran");
        sched_yield();
    }
    cr_assert_eq(ovl_post(p, 2, NULL, NULL), OVL_OK);
    cr_assert_eq(ovl_poll(p, 0), 0);
    cr_assert_eq(rec_count(&r), 0u);
    atomic_store(&hold_cb, 0);
    rec_wait(&r, 2);
    close_clean(p, &r);
}

/* Posts made with ovl_submit_and_poll on several threads (each also polls
 * afterwards) and the completion thread share delivery: every completion
 * once, callbacks never overlap, and at least the ones ovl_poll counted
 * ran on pollers. */
Test(delivery, submit_and_poll_shares_delivery)
{
    rec r;
    rec_init(&r);
    ovl_port *p;
    long long polled = post_poll_threads(&r, &p, TEST_SAP);
    cr_assert_geq(atomic_load(&polled_items), (size_t)polled);
    close_clean(p, &r);
}

#ifndef _WIN32
/* ovl_submit_and_poll: while such calls are active the completion thread
 * may leave their completions to them (and park); an op that no call will
 * take (a pipe read whose data comes later) must still be delivered while
 * another thread keeps posting without pause, and after it stops. */
typedef struct busy_poster {
    ovl_port *p;
    atomic_int stop;
    atomic_long posted;
} busy_poster;

static void *post_until_stopped(void *arg)
{
    busy_poster *b = arg;
    while (!atomic_load(&b->stop)) {
        int32_t rc = t_post(b->p, 1, NULL, NULL);
        if (rc == OVL_OK) atomic_fetch_add(&b->posted, 1);
        else if (rc != OVL_EQUEUEFULL) break;
    }
    return NULL;
}

Test(delivery, submit_and_poll_port_delivers_late_completions_while_others_submit)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, TEST_SAP);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    busy_poster b = {.p = p};
    pthread_t th;
    pthread_create(&th, NULL, post_until_stopped, &b);
    while (atomic_load(&b.posted) < 100) sched_yield(); /* it is posting */
    static uint8_t rb[2][8];
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) {
        int32_t rc;
        while ((rc = t_submit_read(p, (ovl_fd)pfd[0], rb[i], 4, OVL_OFFSET_CURRENT, rb[i],
                                   &ids[i])) == OVL_EQUEUEFULL)
            sched_yield(); /* the poster fills the queue at times */
        cr_assert_eq(rc, OVL_OK);
        if (i == 1) {
            atomic_store(&b.stop, 1);
            pthread_join(th, NULL);
        }
        cr_assert_eq(write(pfd[1], "wxyz", 4), 4);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int count = 0;
        while (rec_find(&r, ids[i], &count), count == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            cr_assert_lt(t.tv_sec - t0.tv_sec, WAIT_LIMIT_MS / 1000,
                         "pipe read %d never delivered (%s)", i,
                         i ? "after the poster stopped" : "while another thread posts");
            sched_yield();
        }
        ovl_completion c = rec_one(&r, ids[i]);
        cr_assert_eq(c.result, 4, "read %d: %lld (%s)", i, (long long)c.result,
                     c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
        cr_assert_eq(memcmp(rb[i], "wxyz", 4), 0);
    }
    rec_wait(&r, 2 + (size_t)atomic_load(&b.posted));
    close_clean(p, &r);
    close(pfd[0]);
    close(pfd[1]);
}
#endif

/* An ovl_poll(p, 0) that finds another thread delivering returns 0 at once,
 * and that thread looks again before it lets go: a completion that came
 * after its last reap is delivered without anyone polling again (an
 * edge-triggered outside poller, woken for it, may not look again). */
static atomic_int held_state; /* 1: the first callback waits, 2: go on */
static void hold_first(rec *r, const ovl_completion *c)
{
    (void)r;
    if (c->result != 1) return;
    atomic_store(&held_state, 1);
    while (atomic_load(&held_state) != 2) sched_yield();
}

static void *poll_thread(void *arg)
{
    rec *r = arg;
    return (void *)(intptr_t)ovl_poll(r->port, WAIT_LIMIT_MS);
}

Test(delivery, busy_poll_makes_the_holder_look_again)
{
    rec r;
    rec_init(&r);
    r.hook = hold_first;
    atomic_store(&held_state, 0);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, poll_thread, &r), 0);
    while (atomic_load(&held_state) != 1) sched_yield();
    /* The other thread holds delivery, inside its callback. */
    uint64_t id = 0;
    cr_assert_eq(ovl_post(p, 2, NULL, &id), OVL_OK);
    /* On io_uring the post is ready now (a NOP done inside the submit). */
    cr_assert_eq(ovl_poll(p, 0), 0, "delivery is taken: returns at once");
    atomic_store(&held_state, 2);
    void *ret;
    cr_assert_eq(pthread_join(t, &ret), 0);
    if (strcmp(ovl_backend_name(p), "uring") == 0) {
        cr_assert_eq((intptr_t)ret, 2, "the holder looked again and delivered the second post");
        cr_assert_eq(rec_count(&r), 2u);
        cr_assert_eq(rec_one(&r, id).result, 2);
    } else {
        cr_assert_geq((intptr_t)ret, 1);
    }
    while (rec_count(&r) < 2) cr_assert_geq(ovl_poll(p, WAIT_LIMIT_MS), 0);
    close_clean(p, &r);
}
