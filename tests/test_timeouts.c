/* test_timeouts.c - timers, per-op timeouts and the connection ops they
 * bound (accept, connect, shutdown), written to the header's contract and
 * run in each delivery mode: a completion thread, OVL_PORT_MANUAL driven by
 * ovl_poll, and submits through ovl_submit_and_poll on a port with a
 * completion thread. A backend that refuses an op at submit
 * (OVL_ENOTSUP) skips the test. Outcomes are asserted, never durations:
 * time limits here only detect a hang. Every address is loopback. */
#include "common.h"
#include "net_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#define MS 1000000LL /* ns */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for n completions in total, driving delivery in manual mode. */
static void pump(ovl_port *p, rec *r, size_t n, uint32_t flags)
{
    (void)p, (void)flags; /* rec_wait polls a manual port itself */
    rec_wait(r, n);
}

/* A submit the backend may not offer yet: skip (after a clean close). */
static void skip_unsupported(int32_t rc, ovl_port *p, rec *r)
{
    if (rc != OVL_ENOTSUP) return;
    close_clean(p, r);
    cr_skip_test("%s: not supported by this backend", test_backend());
}

static int32_t submit1(ovl_port *p, uint32_t op, ovl_fd fd, void *buf, uint64_t len, int64_t offset,
                       int64_t timeout_ns, void *ctx, uint64_t *id)
{
    ovl_request rq;
    memset(&rq, 0, sizeof rq);
    rq.op = op;
    rq.fd = fd;
    rq.buf = buf;
    rq.len = len;
    rq.offset = offset;
    rq.ctx = ctx;
    rq.timeout_ns = timeout_ns;
    size_t n = 0;
    int32_t rc = t_submit_batch(p, &rq, 1, &n);
    if (id) *id = rq.id;
    cr_assert_eq(n, rc == OVL_OK ? 1u : 0u);
    return rc;
}

/* ---- timers ---------------------------------------------------------------- */

static void timer_fires(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    uint64_t id;
    int32_t rc = t_submit_timer(p, 1 * MS, &r, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, 0);
    cr_assert_eq(c.op, OVL_OP_TIMER);
    cr_assert_eq(c.ctx, &r);
    /* The batch form: a timer's delay is its timeout_ns. */
    rc = submit1(p, OVL_OP_TIMER, 0, NULL, 0, 0, 2 * MS, NULL, &id);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 2, flags);
    cr_assert_eq(rec_one(&r, id).result, 0);
    close_clean(p, &r);
}

static void timer_cancel(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    uint64_t id;
    int32_t rc = t_submit_timer(p, 3600 * 1000 * MS, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ECANCELED);
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT);
    close_clean(p, &r);
}

static void timer_close_inflight(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 32, flags);
    uint64_t ids[20];
    for (int i = 0; i < 20; i++) {
        int32_t rc = t_submit_timer(p, (3600 + i) * 1000 * MS, NULL, &ids[i]);
        skip_unsupported(rc, p, &r);
        cr_assert_eq(rc, OVL_OK);
    }
    /* close delivers them all (close_check: each exactly once) */
    close_check(p, &r);
    for (int i = 0; i < 20; i++) cr_assert_eq(rec_one(&r, ids[i]).result, OVL_ECANCELED);
    rec_free(&r);
}

static void timer_many(uint32_t flags)
{
    enum { N = 300 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, N, flags);
    static uint64_t ids[N];
    /* Different delays, submitted out of order (a heap, not a queue). */
    for (int i = 0; i < N; i++) {
        int64_t d = (int64_t)((i * 7919) % 50 + 1) * MS / 2;
        int32_t rc = t_submit_timer(p, d, (void *)(intptr_t)i, &ids[i]);
        skip_unsupported(rc, p, &r);
        cr_assert_eq(rc, OVL_OK);
    }
    pump(p, &r, N, flags);
    for (int i = 0; i < N; i++) {
        ovl_completion c = rec_one(&r, ids[i]);
        cr_assert_eq(c.result, 0);
        cr_assert_eq(c.ctx, (void *)(intptr_t)i);
    }
    close_clean(p, &r);
}

/* ---- accept, connect, shutdown ---------------------------------------------- */

static void accept_timeout_then_accept(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la;
    int l = listener(AF_INET, 8, &la);
    uint64_t id;
    int32_t rc = submit1(p, OVL_OP_ACCEPT, (ovl_fd)l, NULL, 0, 0, 20 * MS, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ETIMEDOUT);

    /* The listener is as it was (blocking), and a later accept works. */
    cr_assert_eq(fcntl(l, F_GETFL) & O_NONBLOCK, 0);
    ovl_addr peer;
    memset(&peer, 0, sizeof peer);
    peer.len = sizeof peer.data;
    cr_assert_eq(t_submit_accept(p, (ovl_fd)l, &peer, NULL, &id), OVL_OK);
    int c = tcp_socket();
    cr_assert_eq(connect(c, (struct sockaddr *)(void *)la.data.bytes, la.len), 0);
    pump(p, &r, 2, flags);
    ovl_completion a = rec_one(&r, id);
    cr_assert_geq(a.result, 0, "accept: %s", ovl_strerror((int32_t)a.result));
    int s = (int)a.result;
    cr_assert(fcntl(s, F_GETFD) & FD_CLOEXEC);
    /* the peer address is the client's */
    struct sockaddr_in cl;
    socklen_t cll = sizeof cl;
    cr_assert_eq(getsockname(c, (struct sockaddr *)&cl, &cll), 0);
    cr_assert_eq(peer.len, (uint32_t)sizeof(struct sockaddr_in));
    struct sockaddr_in got;
    memcpy(&got, peer.data.bytes, sizeof got);
    cr_assert_eq(got.sin_port, cl.sin_port);
    cr_assert_eq(write(c, "hi", 2), 2);
    char b[2];
    cr_assert_eq(read(s, b, 2), 2);
    close(s);
    close(c);
    close(l);
    close_clean(p, &r);
}

/* Several accepts in flight on one listener, each gets its own connection. */
static void accept_many(uint32_t flags)
{
    enum { N = 8 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 32, flags);
    ovl_addr la;
    int l = listener(AF_INET, N, &la);
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        int32_t rc = t_submit_accept(p, (ovl_fd)l, NULL, NULL, &ids[i]);
        skip_unsupported(rc, p, &r);
        cr_assert_eq(rc, OVL_OK);
    }
    int cs[N];
    for (int i = 0; i < N; i++) {
        cs[i] = tcp_socket();
        cr_assert_eq(connect(cs[i], (struct sockaddr *)(void *)la.data.bytes, la.len), 0);
    }
    pump(p, &r, N, flags);
    for (int i = 0; i < N; i++) {
        ovl_completion c = rec_one(&r, ids[i]);
        cr_assert_geq(c.result, 0, "accept: %s", ovl_strerror((int32_t)c.result));
        for (int j = 0; j < i; j++) cr_assert_neq(c.result, rec_one(&r, ids[j]).result);
    }
    for (int i = 0; i < N; i++) {
        close((int)rec_one(&r, ids[i]).result);
        close(cs[i]);
    }
    close(l);
    close_clean(p, &r);
}

/* Accepts cancelled, and in flight at close: OVL_ECANCELED, once each. */
static void accept_cancel_close(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la;
    int l = listener(AF_INET, 8, &la);
    uint64_t id, ids[4];
    int32_t rc = t_submit_accept(p, (ovl_fd)l, NULL, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ECANCELED);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(
            submit1(p, OVL_OP_ACCEPT, (ovl_fd)l, NULL, 0, 0, 3600 * 1000 * MS, NULL, &ids[i]),
            OVL_OK);
    close_check(p, &r);
    for (int i = 0; i < 4; i++) cr_assert_eq(rec_one(&r, ids[i]).result, OVL_ECANCELED);
    /* The listener is untouched: a plain accept still gets a client. */
    cr_assert_eq(fcntl(l, F_GETFL) & O_NONBLOCK, 0);
    int c = tcp_socket();
    cr_assert_eq(connect(c, (struct sockaddr *)(void *)la.data.bytes, la.len), 0);
    int a = accept(l, NULL, NULL);
    cr_assert_geq(a, 0);
    close(a);
    close(c);
    close(l);
    rec_free(&r);
}

static void connect_ok_refused(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la;
    int l = listener(AF_INET, 8, &la);
    int s = tcp_socket();
    uint64_t id;
    int32_t rc = t_submit_connect(p, (ovl_fd)s, &la, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, 0);
    cr_assert_eq(fcntl(s, F_GETFL) & O_NONBLOCK, 0, "the socket's flags changed");
    int a = accept(l, NULL, NULL);
    cr_assert_geq(a, 0);
    cr_assert_eq(write(s, "x", 1), 1);
    char b;
    cr_assert_eq(read(a, &b, 1), 1);

    /* shutdown(WR): the peer reads end of file */
    rc = t_submit_shutdown(p, (ovl_fd)s, OVL_SHUT_WR, NULL, &id);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 2, flags);
    cr_assert_eq(rec_one(&r, id).result, 0);
    cr_assert_eq(read(a, &b, 1), 0);
    close(a);
    close(s);

    /* a port nobody listens on any more: refused */
    close(l);
    s = tcp_socket();
    cr_assert_eq(t_submit_connect(p, (ovl_fd)s, &la, NULL, &id), OVL_OK);
    pump(p, &r, 3, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ECONNREFUSED);
    close(s);
    close_clean(p, &r);
}

/* The listener's accept queue length (Linux: tcpi_unacked of a listener). */
static unsigned accept_queue_len(int l)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    cr_assert_eq(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_unacked;
}

static void connect_timeout(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la;
    /* Backlog 0: one connection fills the accept queue; from then on the
     * kernel drops further SYNs, and a connect can only time out. */
    int l = listener(AF_INET, 0, &la);
    int filler = tcp_socket();
    cr_assert_eq(connect(filler, (struct sockaddr *)(void *)la.data.bytes, la.len), 0);
    uint64_t t0 = mono_ms();
    while (accept_queue_len(l) < 1) {
        cr_assert_lt(mono_ms() - t0, (uint64_t)WAIT_LIMIT_MS, "accept queue never filled");
        usleep(1000);
    }
    int s = tcp_socket(); /* blocking, as the caller made it */
    uint64_t id;
    int32_t rc = submit1(p, OVL_OP_CONNECT, (ovl_fd)s, &la, 0, 0, 50 * MS, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ETIMEDOUT);
    cr_assert_eq(fcntl(s, F_GETFL) & O_NONBLOCK, 0, "the socket's flags changed");
    close(s);
    close(filler);
    close(l);
    close_clean(p, &r);
}

/* ---- reads that time out ---------------------------------------------------- */

static void read_timeout_keeps_data(uint32_t flags, bool use_pipe)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    int fds[2];
    if (use_pipe) cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    else cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    char buf[64];
    uint64_t id;
    int32_t rc = submit1(p, OVL_OP_READ, (ovl_fd)fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT,
                         10 * MS, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, OVL_ETIMEDOUT);
    /* Nothing was consumed: the next read gets every byte. */
    const char msg[] = "all of it";
    cr_assert_eq(write(fds[1], msg, sizeof msg), (ssize_t)sizeof msg);
    rc = submit1(p, OVL_OP_READ, (ovl_fd)fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT,
                 3600 * 1000 * MS, NULL, &id);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 2, flags);
    cr_assert_eq(rec_one(&r, id).result, (int64_t)sizeof msg);
    cr_assert_eq(memcmp(buf, msg, sizeof msg), 0);
    close(fds[0]);
    close(fds[1]);
    close_clean(p, &r);
}

/* A regular-file read with a timeout: either it had not started at its
 * deadline (OVL_ETIMEDOUT) or it completes with all of its data; a read
 * the OS cannot interrupt is never cut short or completed twice. One with
 * a deadline far away just reads. */
static void file_read_timeout(uint32_t flags)
{
    enum { SZ = 4 << 20 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    int fd = temp_file(SZ, 3);
    uint8_t *buf = malloc(SZ);
    cr_assert(buf);
    uint64_t id;
    int32_t rc = submit1(p, OVL_OP_READ, (ovl_fd)fd, buf, SZ, 0, 3600 * 1000 * MS, NULL, &id);
    skip_unsupported(rc, p, &r);
    cr_assert_eq(rc, OVL_OK);
    pump(p, &r, 1, flags);
    cr_assert_eq(rec_one(&r, id).result, SZ);
    cr_assert(matches_pattern(buf, SZ, 0, 3));
    for (int i = 0; i < 20; i++) {
        memset(buf, 0, SZ);
        rc = submit1(p, OVL_OP_READ, (ovl_fd)fd, buf, SZ, 0, (i % 4 + 1) * 250000, NULL, &id);
        cr_assert_eq(rc, OVL_OK);
        pump(p, &r, (size_t)i + 2, flags);
        ovl_completion c = rec_one(&r, id);
        if (c.result != OVL_ETIMEDOUT) {
            cr_assert_eq(c.result, SZ, "result %lld", (long long)c.result);
            cr_assert(matches_pattern(buf, SZ, 0, 3));
        }
    }
    free(buf);
    close(fd);
    close_clean(p, &r);
}

/* ---- races: exactly one completion ------------------------------------------ */

typedef struct race {
    _Atomic uint32_t *seen; /* completions per ctx */
    _Atomic uint64_t n, bytes, timedout, cancelled, fired, unexpected;
} race;

static void race_cb(const ovl_completion *items, size_t n, void *ud)
{
    race *rc = ud;
    for (size_t i = 0; i < n; i++) {
        uintptr_t k = (uintptr_t)items[i].ctx;
        atomic_fetch_add(&rc->seen[k], 1);
        atomic_fetch_add(&rc->n, 1);
        if (items[i].op == OVL_OP_READ && items[i].result > 0)
            atomic_fetch_add(&rc->bytes, (uint64_t)items[i].result);
        else if (items[i].result == OVL_ETIMEDOUT) atomic_fetch_add(&rc->timedout, 1);
        else if (items[i].result == OVL_ECANCELED) atomic_fetch_add(&rc->cancelled, 1);
        else if (items[i].result == 0 && items[i].op == OVL_OP_TIMER)
            atomic_fetch_add(&rc->fired, 1);
        else atomic_fetch_add(&rc->unexpected, 1); /* asserted on the test's thread */
    }
}

static void race_pump(ovl_port *p, race *rc, uint64_t n, uint32_t flags)
{
    uint64_t t0 = mono_ms();
    while (atomic_load(&rc->n) < n) {
        if (flags & OVL_PORT_MANUAL) cr_assert_geq(ovl_poll(p, 10), 0);
        else usleep(200);
        cr_assert_lt(mono_ms() - t0, (uint64_t)WAIT_LIMIT_MS, "completions lost: %llu of %llu",
                     (unsigned long long)atomic_load(&rc->n), (unsigned long long)n);
    }
}

static uint64_t drain(int fd)
{
    uint64_t n = 0;
    char tmp[256];
    ssize_t got;
    while ((got = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT)) > 0) n += (uint64_t)got;
    return n;
}

/* Timers racing cancel, and stream reads whose timeouts race the data that
 * satisfies them: 10^5 ops (or about three seconds' worth, on a slow or
 * instrumented build), each completed exactly once, no byte lost. */
static void timeout_race(uint32_t flags)
{
    enum { ROUNDS = 100000, BATCH = 64 };
    race rc;
    memset(&rc, 0, sizeof rc);
    rc.seen = calloc(ROUNDS, sizeof *rc.seen);
    cr_assert(rc.seen);
    ovl_port_config cfg;
    cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
    cfg.queue_depth = 2 * BATCH;
    cfg.flags = flags;
    cfg.callback = race_cb;
    cfg.userdata = &rc;
    ovl_port *p = NULL;
    int32_t e = t_create_port(&cfg, &p);
    if (e == OVL_EUNAVAIL) cr_skip_test("backend %s not available", test_backend());
    cr_assert_eq(e, OVL_OK);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static uint8_t rbuf[BATCH];
    uint64_t submitted = 0, written = 0, left = 0;
    uint64_t t0 = mono_ms();
    unsigned seed = 1;
    while (submitted + BATCH <= ROUNDS && mono_ms() - t0 < 3000) {
        uint64_t ids[BATCH];
        for (int i = 0; i < BATCH; i++) {
            uintptr_t k = (uintptr_t)(submitted + (uint64_t)i);
            seed = seed * 1103515245u + 12345u;
            int64_t tmo = (int64_t)(seed >> 16) % 50000 + 1; /* up to 50 us */
            int32_t rc1;
            if (i % 2) {
                rc1 = t_submit_timer(p, tmo, (void *)k, &ids[i]);
            } else {
                rc1 = submit1(p, OVL_OP_READ, (ovl_fd)sv[0], &rbuf[i], 1, OVL_OFFSET_CURRENT, tmo,
                              (void *)k, &ids[i]);
            }
            if (rc1 == OVL_ENOTSUP) {
                ovl_close_port(p);
                free(rc.seen);
                cr_skip_test("timeouts not supported by %s", test_backend());
            }
            cr_assert_eq(rc1, OVL_OK);
            if (i % 2) {
                int32_t cr = ovl_cancel(p, ids[i]);
                cr_assert(cr == OVL_OK || cr == OVL_ENOENT);
            } else {
                cr_assert_eq(write(sv[1], "z", 1), 1);
                written++;
            }
        }
        submitted += BATCH;
        race_pump(p, &rc, submitted, flags);
        /* Nothing in flight: take the bytes no op took (their reads timed
         * out first), so that the socket never fills. */
        left += drain(sv[0]);
    }
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    cr_assert_eq(atomic_load(&rc.n), submitted);
    cr_assert_eq(atomic_load(&rc.unexpected), 0u, "a result other than data, timeout, cancel");
    for (uint64_t k = 0; k < submitted; k++)
        cr_assert_eq(atomic_load(&rc.seen[k]), 1u, "op %llu completed %u times",
                     (unsigned long long)k, atomic_load(&rc.seen[k]));
    /* Every byte written was read by an op or is still in the socket. */
    left += drain(sv[0]);
    cr_assert_eq(atomic_load(&rc.bytes) + left, written, "bytes lost");
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.inflight, 0u);
    cr_assert_eq(s.submitted, s.completed);
    cr_assert_eq(s.stale, 0u);
    close(sv[0]);
    close(sv[1]);
    free(rc.seen);
}

/* ---- bad input ---------------------------------------------------------------- */

static void bad_timeouts(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    char b[4];
    uint64_t id = 99;
    cr_assert_eq(submit1(p, OVL_OP_READ, (ovl_fd)fds[0], b, 4, OVL_OFFSET_CURRENT, -1, NULL, &id),
                 OVL_EINVAL);
    cr_assert_eq(id, 0u);
    cr_assert_eq(submit1(p, OVL_OP_POST, 0, NULL, 0, 5, 1 * MS, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit1(p, OVL_OP_TIMER, 0, NULL, 0, 0, -5, NULL, &id), OVL_EINVAL);
    cr_assert_eq(t_submit_timer(p, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(t_submit_timer(p, -1, NULL, &id), OVL_EINVAL);
    close(fds[0]);
    close(fds[1]);
    close_clean(p, &r);
}

/* ---- one Test per mode ---------------------------------------------------- */

#define IN_MODES(name, ...)                                                                        \
  Test(timeouts, name##_thread, .timeout = 60) { name(0 __VA_ARGS__); }                            \
  Test(timeouts, name##_manual, .timeout = 60) { name(OVL_PORT_MANUAL __VA_ARGS__); }              \
  Test(timeouts, name##_sap, .timeout = 60) { name(TEST_SAP __VA_ARGS__); }

IN_MODES(timer_fires)
IN_MODES(timer_cancel)
IN_MODES(timer_close_inflight)
IN_MODES(timer_many)
IN_MODES(accept_timeout_then_accept)
IN_MODES(accept_many)
IN_MODES(accept_cancel_close)
IN_MODES(connect_ok_refused)
IN_MODES(connect_timeout)
IN_MODES(file_read_timeout)
IN_MODES(timeout_race)
IN_MODES(bad_timeouts)

static void read_timeout_pipe(uint32_t flags) { read_timeout_keeps_data(flags, true); }
static void read_timeout_socket(uint32_t flags) { read_timeout_keeps_data(flags, false); }
IN_MODES(read_timeout_pipe)
IN_MODES(read_timeout_socket)
