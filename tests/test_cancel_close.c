/* Cancellation, close with ops in flight, back-pressure, concurrent
 * submitters: the exactly-once guarantee under pressure. */
#include "common.h"

Test(cancel_close, cancel_an_idle_pipe_read)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char buf[8];
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, buf, &id), OVL_OK);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    rec_wait(&r, 1);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, OVL_ECANCELED);
    cr_assert_eq(c.ctx, buf);
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT, "already delivered");
    /* the pipe still works for a new read */
    uint64_t id2;
    cr_assert_eq(t_submit_read(p, fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, &id2), OVL_OK);
    cr_assert_eq(write(fds[1], "z", 1), 1);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, id2).result, 1);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}

Test(cancel_close, cancel_unknown_ids)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    cr_assert_eq(ovl_cancel(p, 0), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(p, 0xdeadbeefcafeull), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(p, 0x7fffffff00000001ull), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(NULL, 1), OVL_EINVAL);
    uint64_t id;
    cr_assert_eq(t_post(p, 1, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT, "completed id");
    /* a stale id: same slot, older generation */
    uint64_t id2;
    cr_assert_eq(t_post(p, 2, NULL, &id2), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT);
    close_clean(p, &r);
}

Test(cancel_close, close_with_ops_in_flight_completes_each_once)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, 0);
    enum { PIPES = 16, FILES = 16 };
    int pf[PIPES][2];
    char pb[PIPES][8];
    uint64_t pid[PIPES], fid[FILES];
    int fd = temp_file(1 << 20, 9);
    static char fb[FILES][65536];
    for (int i = 0; i < PIPES; i++) {
        cr_assert_eq(pipe(pf[i]), 0);
        cr_assert_eq(t_submit_read(p, pf[i][0], pb[i], 8, OVL_OFFSET_CURRENT, NULL, &pid[i]),
                     OVL_OK);
    }
    for (int i = 0; i < FILES; i++)
        cr_assert_eq(t_submit_read(p, fd, fb[i], sizeof fb[i], (int64_t)i * 65536, NULL, &fid[i]),
                     OVL_OK);
    uint64_t post;
    cr_assert_eq(t_post(p, 9, NULL, &post), OVL_OK);
    close_check(p, &r);
    cr_assert_eq(rec_count(&r), (size_t)(PIPES + FILES + 1));
    for (int i = 0; i < PIPES; i++) cr_assert_eq(rec_one(&r, pid[i]).result, OVL_ECANCELED);
    for (int i = 0; i < FILES; i++) {
        ovl_completion c = rec_one(&r, fid[i]);
        /* finished first (real result) or cancelled: both are legal */
        cr_assert(c.result == 65536 || c.result == OVL_ECANCELED, "%lld", (long long)c.result);
        if (c.result == 65536)
            cr_assert(matches_pattern((uint8_t *)fb[i], 65536, (uint64_t)i * 65536, 9));
    }
    cr_assert_eq(rec_one(&r, post).result, 9);
    rec_free(&r);
    for (int i = 0; i < PIPES; i++) {
        close(pf[i][0]);
        close(pf[i][1]);
    }
    close(fd);
}

Test(cancel_close, back_pressure_is_a_distinct_error)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 4, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char buf[4][4];
    uint64_t ids[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t_submit_read(p, fds[0], buf[i], 4, OVL_OFFSET_CURRENT, NULL, &ids[i]),
                     OVL_OK);
    uint64_t id = 5;
    cr_assert_eq(t_submit_read(p, fds[0], buf[0], 4, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_EQUEUEFULL);
    cr_assert_eq(id, 0u);
    cr_assert_eq(t_post(p, 1, NULL, NULL), OVL_EQUEUEFULL, "posts count too");
    ovl_request q = {OVL_OP_READ, 0, (ovl_fd)fds[0], buf[0], 4, OVL_OFFSET_CURRENT, NULL, 0, 0};
    size_t done = 9;
    cr_assert_eq(t_submit_batch(p, &q, 1, &done), OVL_EQUEUEFULL);
    cr_assert_eq(done, 0u);
    ovl_stats s = {.size = sizeof s};
    ovl_port_stats(p, &s);
    cr_assert_eq(s.inflight, 4u);
    cr_assert_eq(s.submitted, 4u, "refused submits leave nothing behind");
    /* one slot frees up once a completion is delivered */
    cr_assert_eq(ovl_cancel(p, ids[0]), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(t_post(p, 1, NULL, NULL), OVL_OK);
    rec_wait(&r, 2);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}

/* ---- concurrent submitters -------------------------------------------------- */

typedef struct sub_arg {
    ovl_port *p;
    rec *r;
    int fd;
    int n;
    int seed;
    uint8_t (*bufs)[4096];
    uint64_t *ids;
    int64_t *offs;
} sub_arg;

static void *submitter(void *arg)
{
    sub_arg *a = arg;
    unsigned s = (unsigned)a->seed;
    for (int i = 0; i < a->n; i++) {
        a->offs[i] = (int64_t)(rand_r(&s) % 255) * 4096;
        int32_t rc;
        while ((rc = t_submit_read(a->p, a->fd, a->bufs[i], 4096, a->offs[i], NULL, &a->ids[i])) ==
               OVL_EQUEUEFULL)
            sched_yield(); /* back-pressure: retry once something completed */
        cr_assert_eq(rc, OVL_OK);
    }
    return NULL;
}

Test(cancel_close, concurrent_submitters)
{
    rec r;
    rec_init(&r);
    /* The submitters retry a full queue until a completion thread drains
     * it. */
    ovl_port *p = open_port(&r, 32, TEST_THREADED);
    int fd = temp_file(1 << 20, 10);
    enum { T = 4, N = 300 };
    static uint8_t bufs[T][N][4096];
    static uint64_t ids[T][N];
    static int64_t offs[T][N];
    sub_arg a[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        sub_arg x = {p, &r, fd, N, t + 1, bufs[t], ids[t], offs[t]};
        a[t] = x;
        pthread_create(&th[t], NULL, submitter, &a[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    rec_wait(&r, T * N);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            int c;
            const ovl_completion *cp = rec_find(&r, ids[t][i], &c);
            cr_assert_eq(c, 1);
            cr_assert_eq(cp->result, 4096);
            cr_assert(matches_pattern(bufs[t][i], 4096, (uint64_t)offs[t][i], 10));
        }
    close_clean(p, &r);
    close(fd);
}

/* Close while other threads are submitting: they see OVL_ECLOSED, every op
 * accepted before completes exactly once, nothing crashes. */
typedef struct race_arg {
    ovl_port *p;
    atomic_int accepted;
    atomic_int closed_seen;
} race_arg;

static void *race_poster(void *arg)
{
    race_arg *a = arg;
    for (;;) {
        int32_t rc = t_post(a->p, 1, NULL, NULL);
        if (rc == OVL_OK) atomic_fetch_add(&a->accepted, 1);
        else if (rc == OVL_ECLOSED) {
            atomic_fetch_add(&a->closed_seen, 1);
            return NULL;
        } else if (rc != OVL_EQUEUEFULL) {
            cr_assert_fail("unexpected %d", rc);
        }
    }
}

Test(cancel_close, close_while_submitting)
{
    rec r;
    rec_init(&r);
    /* The posters only get 1000 posts in if a completion thread drains
     * them meanwhile. */
    ovl_port *p = open_port(&r, 16, TEST_THREADED);
    race_arg a = {p, 0, 0};
    pthread_t th[3];
    for (int t = 0; t < 3; t++) pthread_create(&th[t], NULL, race_poster, &a);
    while (atomic_load(&a.accepted) < 1000) sched_yield();
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&a.closed_seen), 3);
    ovl_stats s = {.size = sizeof s};
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.submitted, (uint64_t)atomic_load(&a.accepted));
    cr_assert_eq(s.completed, s.submitted);
    cr_assert_eq(rec_count(&r), (size_t)s.completed);
    cr_assert_eq(s.inflight, 0u);
    rec_free(&r);
}

/* A callback that cancels: cancel of a parked read from the callback of
 * another op. */
static uint64_t parked_id;
static void cancel_hook(rec *r, const ovl_completion *c)
{
    if (c->op == OVL_OP_POST) cr_assert_eq(ovl_cancel(r->port, parked_id), OVL_OK);
}

Test(cancel_close, cancel_from_callback)
{
    rec r;
    rec_init(&r);
    r.hook = cancel_hook;
    ovl_port *p = open_port(&r, 8, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char buf[4];
    cr_assert_eq(t_submit_read(p, fds[0], buf, 4, OVL_OFFSET_CURRENT, NULL, &parked_id), OVL_OK);
    cr_assert_eq(t_post(p, 0, NULL, NULL), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, parked_id).result, OVL_ECANCELED);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}
