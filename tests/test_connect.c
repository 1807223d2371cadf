/* Connections and timers: accept, connect, shutdown, timers and per-op
 * timeouts, to the header's contract, in every delivery mode (completion
 * thread, OVL_PORT_MANUAL driven by ovl_poll, submits through
 * ovl_submit_and_poll on a threaded port). A backend
 * that refuses an op at submit with OVL_ENOTSUP skips the test; any other
 * answer is checked. Loopback addresses only. */
#include "common.h"
#include "net_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ---- helpers -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A submit the backend may not offer: skip the test on OVL_ENOTSUP. */
static int32_t need(int32_t rc, const char *what)
{
    if (rc == OVL_ENOTSUP) cr_skip_test("%s: OVL_ENOTSUP on backend %s", what, test_backend());
    return rc;
}

/* One request through ovl_submit (the only way to give a timeout). */
static int32_t sub(ovl_port *p, uint32_t op, uint32_t flags, int fd, void *buf, uint64_t len,
                   int64_t timeout_ns, void *ctx, uint64_t *id)
{
    ovl_request q;
    memset(&q, 0, sizeof q);
    q.op = op;
    q.flags = flags;
    q.fd = (ovl_fd)fd;
    q.buf = buf;
    q.len = len;
    q.offset = (op == OVL_OP_READ || op == OVL_OP_WRITE) ? OVL_OFFSET_CURRENT : 0;
    q.ctx = ctx;
    q.timeout_ns = timeout_ns;
    size_t done = 0;
    int32_t rc = t_submit_batch(p, &q, 1, &done);
    if (id) *id = q.id;
    cr_assert_eq(done, rc == OVL_OK ? 1u : 0u);
    return rc;
}

/* Wait for n completions in all: ovl_poll drives a manual port. */
static void wait_n(ovl_port *p, rec *r, uint32_t flags, size_t n)
{
    (void)p, (void)flags; /* rec_wait polls a manual port itself */
    rec_wait(r, n);
}

/* Submit one op and wait for its completion. */
static ovl_completion run1(ovl_port *p, rec *r, uint32_t flags, uint32_t op, uint32_t oflags,
                           int fd, void *buf, uint64_t len, int64_t timeout_ns)
{
    uint64_t id;
    size_t before = rec_count(r);
    cr_assert_eq(need(sub(p, op, oflags, fd, buf, len, timeout_ns, NULL, &id), "submit"), OVL_OK);
    wait_n(p, r, flags, before + 1);
    return rec_one(r, id);
}

/* Transfer exactly len bytes with ops on the port (short transfers go on). */
static void xfer_all(ovl_port *p, rec *r, uint32_t flags, uint32_t op, int fd, void *buf,
                     size_t len)
{
    for (size_t off = 0; off < len;) {
        ovl_completion c = run1(p, r, flags, op, 0, fd, (char *)buf + off, len - off, 0);
        cr_assert_gt(c.result, 0, "%s: %s", op == OVL_OP_READ ? "read" : "write",
                     ovl_error_name((int32_t)c.result));
        off += (size_t)c.result;
    }
}

#define MODES(name)                                                                                \
  Test(connect, name) { name##_body(0); }                                                          \
  Test(connect, name##_manual) { name##_body(OVL_PORT_MANUAL); }                                   \
  Test(connect, name##_sap) { name##_body(TEST_SAP); }

/* ---- echo through accept and connect ------------------------------------- */

static void echo(uint32_t flags, int family)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la, peer;
    int l = listener(family, 8, &la);
    int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c, 0);
    memset(&peer, 0xee, sizeof peer);
    uint64_t aid, cid;
    cr_assert_eq(need(t_submit_accept(p, (ovl_fd)l, &peer, &peer, &aid), "accept"), OVL_OK);
    cr_assert_eq(need(t_submit_connect(p, (ovl_fd)c, &la, &la, &cid), "connect"), OVL_OK);
    wait_n(p, &r, flags, 2);
    ovl_completion ca = rec_one(&r, aid), cc = rec_one(&r, cid);
    cr_assert_eq(cc.result, 0, "connect: %s", ovl_error_name((int32_t)cc.result));
    cr_assert_eq(cc.op, OVL_OP_CONNECT);
    cr_assert_eq(cc.ctx, &la);
    cr_assert_geq(ca.result, 0, "accept: %s", ovl_error_name((int32_t)ca.result));
    cr_assert_eq(ca.op, OVL_OP_ACCEPT);
    cr_assert_eq(ca.ctx, &peer);
    int s = (int)ca.result;
    cr_assert_eq(fcntl(s, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "accepted close-on-exec");
    /* The peer's address: the family, and for TCP the client's own port. */
    cr_assert_gt(peer.len, 0u);
    cr_assert_leq(peer.len, OVL_ADDR_MAX);
    cr_assert_eq(family_of(&peer), family);
    if (family != AF_UNIX) {
        ovl_addr mine;
        socklen_t ml = OVL_ADDR_MAX;
        cr_assert_eq(getsockname(c, (struct sockaddr *)mine.data.bytes, &ml), 0);
        cr_assert_eq(peer.len, (uint32_t)ml);
        cr_assert_eq(memcmp(peer.data.bytes, mine.data.bytes, ml), 0);
    }
    /* Rounds of 16 KiB: client -> server -> back, every byte checked. */
    enum { CH = 16384, ROUNDS = 8 };
    static uint8_t out[CH], mid[CH], back[CH];
    for (unsigned k = 0; k < ROUNDS; k++) {
        for (size_t i = 0; i < CH; i++) out[i] = pattern_at(i + k * CH, 5);
        xfer_all(p, &r, flags, OVL_OP_WRITE, c, out, CH);
        xfer_all(p, &r, flags, OVL_OP_READ, s, mid, CH);
        xfer_all(p, &r, flags, OVL_OP_WRITE, s, mid, CH);
        xfer_all(p, &r, flags, OVL_OP_READ, c, back, CH);
        cr_assert(matches_pattern(back, CH, (uint64_t)k * CH, 5), "round %u", k);
    }
    close_clean(p, &r);
    close(s);
    close(c);
    listener_close(l, &la);
}

static void echo_tcp4_body(uint32_t flags) { echo(flags, AF_INET); }
static void echo_tcp6_body(uint32_t flags)
{
    if (!have_ipv6_loopback()) cr_skip_test("no ::1 on this host");
    echo(flags, AF_INET6);
}
static void echo_unix_body(uint32_t flags) { echo(flags, AF_UNIX); }
MODES(echo_tcp4)
MODES(echo_tcp6)
MODES(echo_unix)

/* ---- many clients, many accepts in flight --------------------------------- */

static void many_clients_body(uint32_t flags)
{
    enum { CLIENTS = 200, WAVE = 50, MSG = 256 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 4 * WAVE, flags);
    ovl_addr la;
    int l = listener(AF_INET, 256, &la);
    bool seen[CLIENTS];
    memset(seen, 0, sizeof seen);
    static uint8_t cbuf[WAVE][MSG], sbuf[WAVE][MSG];
    for (unsigned base = 0; base < CLIENTS; base += WAVE) {
        /* A wave: WAVE accepts in flight, then WAVE connects, one batch. */
        ovl_request q[2 * WAVE];
        int cli[WAVE], srv[WAVE];
        memset(q, 0, sizeof q);
        for (unsigned i = 0; i < WAVE; i++) {
            q[i].op = OVL_OP_ACCEPT;
            q[i].fd = (ovl_fd)l;
            cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            cr_assert_geq(cli[i], 0);
            q[WAVE + i].op = OVL_OP_CONNECT;
            q[WAVE + i].fd = (ovl_fd)cli[i];
            q[WAVE + i].buf = &la;
        }
        size_t before = rec_count(&r), done = 0;
        int32_t rc = t_submit_batch(p, q, WAVE, &done);
        cr_assert_eq(need(rc, "accept"), OVL_OK);
        cr_assert_eq(t_submit_batch(p, q + WAVE, WAVE, &done), OVL_OK);
        wait_n(p, &r, flags, before + 2 * WAVE);
        for (unsigned i = 0; i < WAVE; i++) {
            ovl_completion a = rec_one(&r, q[i].id), c = rec_one(&r, q[WAVE + i].id);
            cr_assert_eq(c.result, 0, "connect: %s", ovl_error_name((int32_t)c.result));
            cr_assert_geq(a.result, 0, "accept: %s", ovl_error_name((int32_t)a.result));
            srv[i] = (int)a.result;
        }
        /* Each client sends its number and a pattern; whichever accepted
         * connection gets it echoes it back. */
        before = rec_count(&r);
        for (unsigned i = 0; i < WAVE; i++) {
            unsigned id = base + i;
            for (unsigned k = 0; k < MSG; k++) cbuf[i][k] = pattern_at(k, id);
            memcpy(cbuf[i], &id, sizeof id);
            cr_assert_eq(
                t_submit_write(p, (ovl_fd)cli[i], cbuf[i], MSG, OVL_OFFSET_CURRENT, NULL, NULL),
                OVL_OK);
        }
        wait_n(p, &r, flags, before + WAVE);
        for (unsigned i = 0; i < WAVE; i++) {
            xfer_all(p, &r, flags, OVL_OP_READ, srv[i], sbuf[i], MSG);
            unsigned id;
            memcpy(&id, sbuf[i], sizeof id);
            cr_assert_lt(id, (unsigned)CLIENTS);
            cr_assert_not(seen[id], "client %u accepted twice", id);
            seen[id] = true;
            cr_assert(matches_pattern(sbuf[i] + sizeof id, MSG - sizeof id, sizeof id, id));
            xfer_all(p, &r, flags, OVL_OP_WRITE, srv[i], sbuf[i], MSG);
        }
        for (unsigned i = 0; i < WAVE; i++) {
            uint8_t back[MSG];
            xfer_all(p, &r, flags, OVL_OP_READ, cli[i], back, MSG);
            cr_assert_eq(memcmp(back, cbuf[i], MSG), 0, "client %u", base + i);
            close(cli[i]);
            close(srv[i]);
        }
    }
    for (unsigned i = 0; i < CLIENTS; i++) cr_assert(seen[i], "client %u never accepted", i);
    close_clean(p, &r);
    listener_close(l, &la);
}
MODES(many_clients)

/* ---- refused, timed out ---------------------------------------------------- */

static void connect_refused_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    /* Bound, never listening: the port stays ours and refuses. */
    ovl_addr a;
    int b = listener(AF_INET, -1, &a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint64_t id;
    cr_assert_eq(need(t_submit_connect(p, (ovl_fd)c, &a, NULL, &id), "connect"), OVL_OK);
    wait_n(p, &r, flags, 1);
    ovl_completion cc = rec_one(&r, id);
    cr_assert_eq(cc.result, OVL_ECONNREFUSED, "%s", ovl_error_name((int32_t)cc.result));
    cr_assert_eq(cc.os_error, ECONNREFUSED);
    close_clean(p, &r);
    close(c);
    close(b);
}
MODES(connect_refused)

/* A listener whose accept queue is full (backlog 0 holds one connection):
 * the kernel drops further SYNs, so a connect to it waits. For a listening
 * TCP socket, TCP_INFO's tcpi_unacked is the accept queue's length. */
static int full_listener(ovl_addr *a, int *filler)
{
    int l = listener(AF_INET, 0, a);
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(*filler, (struct sockaddr *)a->data.bytes, a->len), 0);
    uint64_t end = now_ns() + (uint64_t)WAIT_LIMIT_MS * 1000000ull;
    for (;;) {
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        cr_assert_eq(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
        if (ti.tcpi_unacked >= 1) break;
        cr_assert_lt(now_ns(), end, "accept queue never filled");
        sched_yield();
    }
    return l;
}

static void connect_timeout_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    ovl_addr a;
    int filler;
    int l = full_listener(&a, &filler);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int64_t to = 50 * 1000000LL;
    uint64_t t0 = now_ns();
    ovl_completion cc = run1(p, &r, flags, OVL_OP_CONNECT, 0, c, &a, 0, to);
    uint64_t dt = now_ns() - t0;
    cr_assert_eq(cc.result, OVL_ETIMEDOUT, "%s", ovl_error_name((int32_t)cc.result));
    cr_assert_geq(dt, (uint64_t)to, "timed out after %llu ns", (unsigned long long)dt);
    close_clean(p, &r);
    close(c);
    close(filler);
    close(l);
}
MODES(connect_timeout)

static void accept_timeout_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    ovl_addr a;
    int l = listener(AF_INET, 8, &a);
    const int64_t to = 20 * 1000000LL;
    uint64_t t0 = now_ns();
    ovl_completion c = run1(p, &r, flags, OVL_OP_ACCEPT, 0, l, NULL, 0, to);
    cr_assert_eq(c.result, OVL_ETIMEDOUT, "%s", ovl_error_name((int32_t)c.result));
    cr_assert_geq(now_ns() - t0, (uint64_t)to);
    /* The listener still works: a connection made now is accepted. */
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(cl, (struct sockaddr *)a.data.bytes, a.len), 0);
    c = run1(p, &r, flags, OVL_OP_ACCEPT, 0, l, NULL, 0, to * 500);
    cr_assert_geq(c.result, 0, "%s", ovl_error_name((int32_t)c.result));
    close((int)c.result);
    close_clean(p, &r);
    close(cl);
    close(l);
}
MODES(accept_timeout)

static void read_timeout_keeps_data_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int fds[2];
    tcp_pair(fds);
    char buf[256];
    ovl_completion c = run1(p, &r, flags, OVL_OP_READ, 0, fds[0], buf, sizeof buf, 20000000);
    cr_assert_eq(c.result, OVL_ETIMEDOUT, "%s", ovl_error_name((int32_t)c.result));
    /* Nothing was lost: everything sent afterwards is read. */
    char msg[200];
    for (unsigned i = 0; i < sizeof msg; i++) msg[i] = (char)pattern_at(i, 3);
    cr_assert_eq(write(fds[1], msg, sizeof msg), (ssize_t)sizeof msg);
    size_t got = 0;
    while (got < sizeof msg) {
        c = run1(p, &r, flags, OVL_OP_READ, 0, fds[0], buf + got, sizeof buf - got,
                 (int64_t)WAIT_LIMIT_MS * 1000000LL);
        cr_assert_gt(c.result, 0, "%s", ovl_error_name((int32_t)c.result));
        got += (size_t)c.result;
    }
    cr_assert_eq(got, sizeof msg);
    cr_assert_eq(memcmp(buf, msg, sizeof msg), 0);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}
MODES(read_timeout_keeps_data)

/* Timeouts racing completions: reads whose byte is sent just before, with
 * timeouts of a few nanoseconds to microseconds, and zero-length reads with
 * timeouts. Every op completes exactly once (close_check counts ids), with
 * its byte or OVL_ETIMEDOUT, and no byte is lost or read twice. */
static void timeout_race_body(uint32_t flags)
{
    enum { PAIRS = 32, ROUNDS = 100000 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 2 * PAIRS, flags);
    int fds[PAIRS][2];
    uint64_t sent[PAIRS] = {0}, got[PAIRS] = {0};
    static char rb[PAIRS][4];
    for (int i = 0; i < PAIRS; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[i]), 0);
        /* The writer must never block: when many reads time out (a loaded
         * machine), unread bytes pile up until the socket is full. */
        cr_assert_eq(fcntl(fds[i][1], F_SETFL, O_NONBLOCK), 0);
    }
    uint64_t end = now_ns() + 4000000000ull; /* a few seconds at most */
    unsigned rounds = 0, timed = 0, x = 12345;
    ovl_request q[PAIRS];
    bool send[PAIRS], empty[PAIRS];
    unsigned won = 0, lost = 0; /* reads that waited: got the byte, timed out */
    while (rounds < ROUNDS && now_ns() < end) {
        memset(q, 0, sizeof q);
        for (int i = 0; i < PAIRS; i++) {
            x = x * 1103515245u + 12345u;
            send[i] = (x >> 16) & 1;
            int unread = 0;
            cr_assert_eq(ioctl(fds[i][0], FIONREAD, &unread), 0);
            empty[i] = unread == 0;
            q[i].op = OVL_OP_READ;
            q[i].fd = (ovl_fd)fds[i][0];
            q[i].buf = rb[i];
            q[i].len = ((x >> 20) & 7) == 0 ? 0 : 1; /* now and then 0 bytes */
            q[i].offset = OVL_OFFSET_CURRENT;
            q[i].ctx = (void *)(uintptr_t)i;
            /* 1 ns to 2 ms, spread evenly on a log scale: the batch's own
             * submit takes tens of microseconds here, so the race with the
             * writes below is somewhere in that range, whatever the host. */
            q[i].timeout_ns = ((int64_t)1 << ((x >> 4) % 21)) + (int64_t)((x >> 9) & 1023);
        }
        size_t before = rec_count(&r), done = 0;
        cr_assert_eq(need(t_submit_batch(p, q, PAIRS, &done), "read with a timeout"), OVL_OK);
        /* The bytes go out while the reads wait and their timers run: each
         * wake-up races its timer. A byte whose read timed out is found by
         * a later round's read at once (the other order). */
        for (int i = 0; i < PAIRS; i++) {
            if (!send[i]) continue;
            ssize_t w = write(fds[i][1], "b", 1);
            if (w < 0 && errno == EAGAIN) continue; /* full: not sent */
            cr_assert_eq(w, 1);
            sent[i]++;
        }
        wait_n(p, &r, flags, before + PAIRS);
        for (int i = 0; i < PAIRS; i++) {
            ovl_completion c = rec_one(&r, q[i].id);
            cr_assert_eq((uintptr_t)c.ctx, (uintptr_t)i);
            if (c.result == OVL_ETIMEDOUT) {
                timed++;
                if (empty[i] && send[i] && q[i].len) lost++;
            } else {
                if (empty[i] && c.result == 1) won++;
                cr_assert(c.result == 0 || c.result == 1, "%s", ovl_error_name((int32_t)c.result));
                cr_assert(q[i].len == 1 || c.result == 0);
                got[i] += (uint64_t)c.result;
            }
        }
        rounds += PAIRS;
        /* The recorder keeps every completion; start afresh each round. */
        pthread_mutex_lock(&r.mu);
        r.n = 0;
        pthread_mutex_unlock(&r.mu);
    }
    for (int i = 0; i < PAIRS; i++) {
        int unread = -1;
        cr_assert_eq(ioctl(fds[i][0], FIONREAD, &unread), 0);
        cr_assert_eq(got[i] + (uint64_t)unread, sent[i], "pair %d: lost or doubled bytes", i);
    }
    cr_log_info("timeout race: %u ops, %u timed out; of the reads that waited for their byte, "
                "%u got it, %u timed out",
                rounds, timed, won, lost);
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.submitted, (uint64_t)rounds);
    cr_assert_eq(s.completed, (uint64_t)rounds);
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.inflight, 0u);
    cr_assert_eq(s.stale, 0u);
    rec_free(&r);
    for (int i = 0; i < PAIRS; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
}
MODES(timeout_race)

/* ---- timers ----------------------------------------------------------------- */

static void timers_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    /* Fire: result 0, not before its delay. */
    uint64_t id, t0 = now_ns();
    cr_assert_eq(need(t_submit_timer(p, 10000000, &r, &id), "timer"), OVL_OK);
    wait_n(p, &r, flags, 1);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, 0, "%s", ovl_error_name((int32_t)c.result));
    cr_assert_eq(c.op, OVL_OP_TIMER);
    cr_assert_eq(c.ctx, &r);
    cr_assert_geq(now_ns() - t0, 10000000ull);
    /* Several at once, with different delays: each fires, once. */
    uint64_t ids[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t_submit_timer(p, (int64_t)(3 - i) * 5000000, NULL, &ids[i]), OVL_OK);
    wait_n(p, &r, flags, 4);
    for (int i = 0; i < 3; i++) cr_assert_eq(rec_one(&r, ids[i]).result, 0);
    /* Cancel. */
    cr_assert_eq(t_submit_timer(p, 60ll * 1000000000, NULL, &id), OVL_OK);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    wait_n(p, &r, flags, 5);
    cr_assert_eq(rec_one(&r, id).result, OVL_ECANCELED);
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT);
    /* Bad delays. */
    cr_assert_eq(t_submit_timer(p, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(t_submit_timer(p, -1, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    ovl_request q;
    memset(&q, 0, sizeof q);
    q.op = OVL_OP_TIMER;
    q.timeout_ns = 1000;
    q.fd = 3;
    cr_assert_eq(t_submit_batch(p, &q, 1, NULL), OVL_EINVAL, "a timer takes no fd");
    /* Close with timers in flight: each completes once, cancelled. */
    uint64_t pend[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(t_submit_timer(p, 60ll * 1000000000, NULL, &pend[i]), OVL_OK);
    close_check(p, &r);
    for (int i = 0; i < 8; i++) cr_assert_eq(rec_one(&r, pend[i]).result, OVL_ECANCELED);
    rec_free(&r);
}
MODES(timers)

/* ---- cancel and close with connection ops in flight ------------------------ */

static void cancel_in_flight_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, flags);
    ovl_addr la, fa;
    int l = listener(AF_INET, 8, &la), filler;
    int fl = full_listener(&fa, &filler);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint64_t ida, idc, idt;
    cr_assert_eq(need(t_submit_accept(p, (ovl_fd)l, NULL, NULL, &ida), "accept"), OVL_OK);
    cr_assert_eq(need(t_submit_connect(p, (ovl_fd)c, &fa, NULL, &idc), "connect"), OVL_OK);
    cr_assert_eq(need(t_submit_timer(p, 60ll * 1000000000, NULL, &idt), "timer"), OVL_OK);
    cr_assert_eq(ovl_cancel(p, ida), OVL_OK);
    cr_assert_eq(ovl_cancel(p, idc), OVL_OK);
    cr_assert_eq(ovl_cancel(p, idt), OVL_OK);
    wait_n(p, &r, flags, 3);
    cr_assert_eq(rec_one(&r, ida).result, OVL_ECANCELED);
    cr_assert_eq(rec_one(&r, idc).result, OVL_ECANCELED);
    cr_assert_eq(rec_one(&r, idt).result, OVL_ECANCELED);
    /* The listener still accepts afterwards. */
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(cl, (struct sockaddr *)la.data.bytes, la.len), 0);
    ovl_completion a = run1(p, &r, flags, OVL_OP_ACCEPT, 0, l, NULL, 0, 0);
    cr_assert_geq(a.result, 0);
    close((int)a.result);
    close_clean(p, &r);
    close(cl);
    close(c);
    close(filler);
    close(fl);
    close(l);
}
MODES(cancel_in_flight)

static void close_in_flight_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 32, flags);
    ovl_addr la, fa;
    int l = listener(AF_INET, 8, &la), filler;
    int fl = full_listener(&fa, &filler);
    enum { N = 4 };
    int cs[N];
    uint64_t ids[3 * N];
    for (int i = 0; i < N; i++) {
        cs[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(need(t_submit_accept(p, (ovl_fd)l, NULL, NULL, &ids[3 * i]), "accept"),
                     OVL_OK);
        cr_assert_eq(
            need(t_submit_connect(p, (ovl_fd)cs[i], &fa, NULL, &ids[3 * i + 1]), "connect"),
            OVL_OK);
        cr_assert_eq(need(t_submit_timer(p, 60ll * 1000000000, NULL, &ids[3 * i + 2]), "timer"),
                     OVL_OK);
    }
    close_check(p, &r);
    for (int i = 0; i < 3 * N; i++) cr_assert_eq(rec_one(&r, ids[i]).result, OVL_ECANCELED);
    rec_free(&r);
    for (int i = 0; i < N; i++) close(cs[i]);
    close(filler);
    close(fl);
    close(l);
}
MODES(close_in_flight)

/* ---- peer reset, half-close ---------------------------------------------- */

static void reset_by_peer(int fd)
{
    struct linger lg = {1, 0}; /* close sends RST */
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
}

static void peer_reset_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    /* A read in flight when the peer resets. */
    int fds[2];
    tcp_pair(fds);
    char buf[64];
    uint64_t id;
    cr_assert_eq(t_submit_read(p, (ovl_fd)fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_OK);
    reset_by_peer(fds[1]);
    wait_n(p, &r, flags, 1);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, OVL_ECONNRESET, "%s", ovl_error_name((int32_t)c.result));
    close(fds[0]);
    /* Writes to a reset connection: ECONNRESET, then EPIPE; never SIGPIPE
     * (which would kill the test). */
    tcp_pair(fds);
    reset_by_peer(fds[1]);
    int32_t last = 0;
    for (int i = 0; i < 1000 && last >= 0; i++) {
        c = run1(p, &r, flags, OVL_OP_WRITE, 0, fds[0], buf, sizeof buf, 0);
        last = (int32_t)c.result;
    }
    cr_assert(last == OVL_ECONNRESET || last == OVL_EPIPE, "%s", ovl_error_name(last));
    close(fds[0]);
    close_clean(p, &r);
}
MODES(peer_reset)

static void half_close_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int fds[2];
    tcp_pair(fds);
    char buf[16];
    ovl_completion c = run1(p, &r, flags, OVL_OP_SHUTDOWN, OVL_SHUT_WR, fds[0], NULL, 0, 0);
    cr_assert_eq(c.result, 0, "%s", ovl_error_name((int32_t)c.result));
    cr_assert_eq(c.op, OVL_OP_SHUTDOWN);
    /* The peer reads end of file ... */
    c = run1(p, &r, flags, OVL_OP_READ, 0, fds[1], buf, sizeof buf, 0);
    cr_assert_eq(c.result, 0, "EOF expected: %s", ovl_error_name((int32_t)c.result));
    /* ... and still talks back. */
    xfer_all(p, &r, flags, OVL_OP_WRITE, fds[1], "reply", 5);
    memset(buf, 0, sizeof buf);
    xfer_all(p, &r, flags, OVL_OP_READ, fds[0], buf, 5);
    cr_assert_str_eq(buf, "reply");
    /* Writing after SHUT_WR fails (EPIPE), without SIGPIPE. */
    c = run1(p, &r, flags, OVL_OP_WRITE, 0, fds[0], "x", 1, 0);
    cr_assert_eq(c.result, OVL_EPIPE, "%s", ovl_error_name((int32_t)c.result));
    /* Shut down the rest. */
    c = run1(p, &r, flags, OVL_OP_SHUTDOWN, OVL_SHUT_RDWR, fds[1], NULL, 0, 0);
    cr_assert_eq(c.result, 0);
    c = run1(p, &r, flags, OVL_OP_READ, 0, fds[0], buf, sizeof buf, 0);
    cr_assert_eq(c.result, 0);
    /* A socket that is not connected: the completion says so. */
    int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c = run1(p, &r, flags, OVL_OP_SHUTDOWN, OVL_SHUT_RD, u, NULL, 0, 0);
    cr_assert_eq(c.result, OVL_ENOTCONN, "%s", ovl_error_name((int32_t)c.result));
    close(u);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}
MODES(half_close)

/* ---- back-pressure ---------------------------------------------------------- */

static void back_pressure_body(uint32_t flags)
{
    enum { DEPTH = 8 };
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, DEPTH, flags);
    ovl_addr la;
    int l = listener(AF_INET, 8, &la);
    uint64_t ids[DEPTH], id = 99;
    for (int i = 0; i < DEPTH; i++)
        cr_assert_eq(need(t_submit_accept(p, (ovl_fd)l, NULL, NULL, &ids[i]), "accept"), OVL_OK);
    cr_assert_eq(t_submit_accept(p, (ovl_fd)l, NULL, NULL, &id), OVL_EQUEUEFULL);
    cr_assert_eq(id, 0u);
    cr_assert_eq(t_submit_timer(p, 1000, NULL, &id), OVL_EQUEUEFULL);
    cr_assert_eq(t_submit_connect(p, (ovl_fd)l, &la, NULL, &id), OVL_EQUEUEFULL);
    cr_assert_eq(t_submit_shutdown(p, (ovl_fd)l, OVL_SHUT_RD, NULL, &id), OVL_EQUEUEFULL);
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.inflight, (uint32_t)DEPTH);
    /* One connection frees one slot. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)la.data.bytes, la.len), 0);
    wait_n(p, &r, flags, 1);
    int accepted = -1;
    for (int i = 0; i < DEPTH; i++) {
        int n;
        const ovl_completion *f = rec_find(&r, ids[i], &n);
        if (f) {
            cr_assert_geq(f->result, 0);
            accepted = (int)f->result;
        }
    }
    cr_assert_geq(accepted, 0);
    close(accepted);
    cr_assert_eq(t_submit_timer(p, 1000, NULL, &id), OVL_OK);
    close_check(p, &r);
    cr_assert_eq(rec_count(&r), (size_t)DEPTH + 1);
    rec_free(&r);
    close(c);
    close(l);
}
MODES(back_pressure)

/* ---- bad input ------------------------------------------------------------- */

static void bad_input_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint64_t id = 99;
    /* Accept on a socket that does not listen: the completion says so. */
    ovl_completion c = run1(p, &r, flags, OVL_OP_ACCEPT, 0, s, NULL, 0, 0);
    cr_assert_eq(c.result, OVL_EINVAL, "%s", ovl_error_name((int32_t)c.result));
    /* Connect: no address, an empty one, one too long. */
    ovl_addr a;
    memset(&a, 0, sizeof a);
    cr_assert_eq(t_submit_connect(p, (ovl_fd)s, NULL, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    a.len = 0;
    cr_assert_eq(t_submit_connect(p, (ovl_fd)s, &a, NULL, &id), OVL_EINVAL);
    a.len = OVL_ADDR_MAX + 1;
    cr_assert_eq(t_submit_connect(p, (ovl_fd)s, &a, NULL, &id), OVL_EINVAL);
    /* A length the OS finds too short is the completion's. */
    ovl_addr la;
    int l = listener(AF_INET, 4, &la);
    la.len = 4;
    c = run1(p, &r, flags, OVL_OP_CONNECT, 0, s, &la, 0, 0);
    cr_assert_eq(c.result, OVL_EINVAL, "%s", ovl_error_name((int32_t)c.result));
    /* Handles that can never be: OVL_EBADF at submit. */
    cr_assert_eq(t_submit_accept(p, UINT64_MAX, NULL, NULL, &id), OVL_EBADF);
    cr_assert_eq(t_submit_shutdown(p, UINT64_MAX, OVL_SHUT_WR, NULL, &id), OVL_EBADF);
    /* Shutdown's how. */
    cr_assert_eq(t_submit_shutdown(p, (ovl_fd)s, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(t_submit_shutdown(p, (ovl_fd)s, 4, NULL, &id), OVL_EINVAL);
    cr_assert_eq(t_submit_shutdown(p, (ovl_fd)s, 7, NULL, &id), OVL_EINVAL);
    /* Negative timeouts, on any op. */
    char buf[4];
    cr_assert_eq(sub(p, OVL_OP_READ, 0, s, buf, sizeof buf, -1, NULL, &id), OVL_EINVAL);
    cr_assert_eq(sub(p, OVL_OP_ACCEPT, 0, l, NULL, 0, -5, NULL, &id), OVL_EINVAL);
    cr_assert_eq(sub(p, OVL_OP_TIMER, 0, 0, NULL, 0, -5, NULL, &id), OVL_EINVAL);
    /* A post with a timeout. */
    cr_assert_eq(sub(p, OVL_OP_POST, 0, 0, NULL, 0, 1000, NULL, &id), OVL_EINVAL);
    /* Fields an op does not use must be 0. */
    cr_assert_eq(sub(p, OVL_OP_ACCEPT, 0, l, NULL, 4, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(sub(p, OVL_OP_SHUTDOWN, OVL_SHUT_WR, s, buf, 0, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    /* A closed fd in the completion. */
    int dead = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    close(dead);
    c = run1(p, &r, flags, OVL_OP_ACCEPT, 0, dead, NULL, 0, 0);
    cr_assert_eq(c.result, OVL_EBADF, "%s", ovl_error_name((int32_t)c.result));
    close_clean(p, &r);
    close(s);
    close(l);
}
MODES(bad_input)

/* ---- timeouts of ops whose issuing thread exits ----------------------------
 * io_uring runs a linked timeout's expiry in the task that issued it; once
 * that thread has exited, the kernel drops the expiry (the op stays armed
 * without a timeout) or fails the op itself. Either way the op must still
 * time out on time, or complete with its data, exactly once. */
typedef struct exiter {
    ovl_port *p;
    ovl_request q;
    int32_t rc;
} exiter;

static void *submit_and_exit(void *arg)
{
    exiter *e = arg;
    e->rc = t_submit_batch(e->p, &e->q, 1, NULL);
    return NULL;
}

static uint64_t submit_from_thread(ovl_port *p, int fd, void *buf, size_t len, int64_t timeout_ns)
{
    exiter e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.q.op = OVL_OP_READ;
    e.q.fd = (ovl_fd)fd;
    e.q.buf = buf;
    e.q.len = len;
    e.q.offset = OVL_OFFSET_CURRENT;
    e.q.timeout_ns = timeout_ns;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, submit_and_exit, &e), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(need(e.rc, "read with a timeout"), OVL_OK);
    return e.q.id;
}

static void timeout_outlives_its_thread_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int fds[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    char buf[8];
    /* Nothing comes: it times out, not before its deadline. */
    uint64_t t0 = now_ns();
    uint64_t id = submit_from_thread(p, fds[0], buf, sizeof buf, 30000000);
    wait_n(p, &r, flags, 1);
    cr_assert_eq(rec_one(&r, id).result, OVL_ETIMEDOUT, "%s",
                 ovl_error_name((int32_t)rec_one(&r, id).result));
    cr_assert_geq(now_ns() - t0, 30000000ull);
    /* Data comes before the deadline: it is read, once. */
    id = submit_from_thread(p, fds[0], buf, sizeof buf, (int64_t)WAIT_LIMIT_MS * 1000000LL);
    cr_assert_eq(write(fds[1], "late", 4), 4);
    wait_n(p, &r, flags, 2);
    cr_assert_eq(rec_one(&r, id).result, 4, "%s", ovl_error_name((int32_t)rec_one(&r, id).result));
    cr_assert_eq(memcmp(buf, "late", 4), 0);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}
MODES(timeout_outlives_its_thread)

/* A connect under way when its issuing thread exits: the kernel fails it
 * when the connection is made (its task work sees the exit); issued again,
 * it must report the connection its first issue made. The SYN to a full
 * accept queue is dropped, and the client's retransmission (about a second
 * later) gets through once the queue has room. */
static void *connect_and_exit(void *arg)
{
    exiter *e = arg;
    e->rc = t_submit_batch(e->p, &e->q, 1, NULL);
    return NULL;
}

static void connect_outlives_its_thread_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    ovl_addr a;
    int filler;
    int l = full_listener(&a, &filler);
    /* With a timeout: its expiry, dropped by the kernel with the thread,
     * still ends the connect on time (issued again, the connect finds its
     * first SYN under way and waits for it). */
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    exiter e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.q.op = OVL_OP_CONNECT;
    e.q.fd = (ovl_fd)c2;
    e.q.buf = &a;
    e.q.timeout_ns = 100000000;
    pthread_t t;
    uint64_t t0 = now_ns();
    cr_assert_eq(pthread_create(&t, NULL, connect_and_exit, &e), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(need(e.rc, "connect with a timeout"), OVL_OK);
    wait_n(p, &r, flags, 1);
    ovl_completion c2c = rec_one(&r, e.q.id);
    cr_assert_eq(c2c.result, OVL_ETIMEDOUT, "%s", ovl_error_name((int32_t)c2c.result));
    cr_assert_geq(now_ns() - t0, 100000000ull);
    close(c2); /* its SYN must not take the queue's room below */
    /* Without a timeout: the connection is made, and reported. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&e, 0, sizeof e);
    e.p = p;
    e.q.op = OVL_OP_CONNECT;
    e.q.fd = (ovl_fd)c;
    e.q.buf = &a;
    cr_assert_eq(pthread_create(&t, NULL, connect_and_exit, &e), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(need(e.rc, "connect"), OVL_OK);
    /* Room in the queue: the retransmitted SYN is answered. */
    int f = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(f, 0);
    wait_n(p, &r, flags, 2);
    ovl_completion cc = rec_one(&r, e.q.id);
    cr_assert_eq(cc.result, 0, "%s", ovl_error_name((int32_t)cc.result));
    /* And it is this client's connection. */
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(s, 0);
    struct sockaddr_storage x, y;
    socklen_t xl = sizeof x, yl = sizeof y;
    cr_assert_eq(getsockname(c, (struct sockaddr *)&x, &xl), 0);
    cr_assert_eq(getpeername(s, (struct sockaddr *)&y, &yl), 0);
    cr_assert_eq(xl, yl);
    cr_assert_eq(memcmp(&x, &y, xl), 0);
    close_clean(p, &r);
    close(s);
    close(f);
    close(c);
    close(filler);
    close(l);
}
MODES(connect_outlives_its_thread)

/* ---- a pipe write with a timeout -------------------------------------------
 * A write that waits for room in a full pipe times out having written
 * nothing, and one whose room comes in time writes all of it. Before Linux
 * 6.18 io_uring never writes pipes for ovl (its poll stage, see
 * docs/DESIGN.md), so the timeout then races a poll that is armed again. */
static size_t fill_pipe(int wfd)
{
    int fl = fcntl(wfd, F_GETFL);
    cr_assert_eq(fcntl(wfd, F_SETFL, fl | O_NONBLOCK), 0);
    char junk[4096];
    memset(junk, 'f', sizeof junk);
    size_t n = 0;
    for (;;) {
        ssize_t w = write(wfd, junk, sizeof junk);
        if (w < 0) break;
        n += (size_t)w;
    }
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(fcntl(wfd, F_SETFL, fl), 0);
    return n;
}

static void pipe_write_timeout_body(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int pf[2];
    cr_assert_eq(pipe2(pf, O_CLOEXEC), 0);
    size_t filled = fill_pipe(pf[1]);
    char msg[100];
    for (unsigned i = 0; i < sizeof msg; i++) msg[i] = (char)pattern_at(i, 8);
    ovl_completion c = run1(p, &r, flags, OVL_OP_WRITE, 0, pf[1], msg, sizeof msg, 30000000);
    cr_assert_eq(c.result, OVL_ETIMEDOUT, "%s", ovl_error_name((int32_t)c.result));
    /* Room in time: all of it goes (a pipe write of at most PIPE_BUF bytes
     * is atomic). */
    uint64_t id;
    size_t before = rec_count(&r);
    cr_assert_eq(sub(p, OVL_OP_WRITE, 0, pf[1], msg, sizeof msg, (int64_t)WAIT_LIMIT_MS * 1000000LL,
                     NULL, &id),
                 OVL_OK);
    char buf[4096];
    for (size_t got = 0; got < filled;) {
        ssize_t n = read(pf[0], buf, filled - got < sizeof buf ? filled - got : sizeof buf);
        cr_assert_gt(n, 0);
        for (ssize_t i = 0; i < n; i++) cr_assert_eq(buf[i], 'f', "the timed-out write wrote");
        got += (size_t)n;
    }
    wait_n(p, &r, flags, before + 1);
    c = rec_one(&r, id);
    cr_assert_eq(c.result, (int64_t)sizeof msg, "%s", ovl_error_name((int32_t)c.result));
    cr_assert_eq(read(pf[0], buf, sizeof buf), (ssize_t)sizeof msg);
    cr_assert_eq(memcmp(buf, msg, sizeof msg), 0);
    close_clean(p, &r);
    close(pf[0]);
    close(pf[1]);
}
MODES(pipe_write_timeout)
