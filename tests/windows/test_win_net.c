/* test_win_net.c - connections and timers on the IOCP backend: accept
 * (AcceptEx), connect (ConnectEx), shutdown, timers and per-op timeouts
 * (the deadline heap plus CancelIoEx), over TCP loopback. Every test ends
 * with every op delivered exactly once and no stale packet.
 *
 * Wine runs these on Linux sockets, which differ from Windows' AFD in ways
 * the tests name where they matter (see docs/WINDOWS.md): a refused
 * loopback connect fails at once under wine but only after SYN retries
 * (about 2 s) on Windows, and a listener whose backlog is full leaves a
 * connect pending under wine (Linux drops the SYN) where Windows refuses
 * it. These tests call ovl_associate themselves. */
#include "../common.h"

#include <mswsock.h>
#include <stdarg.h>

/* ---- helpers -------------------------------------------------------------- */

static ovl_port *net_port(rec *r, uint32_t depth, uint32_t flags)
{
    rec_init(r);
    ovl_port *p = open_port(r, depth, flags);
    cr_assert_str_eq(ovl_backend_name(p), "iocp");
    return p;
}

static void wsa(void)
{
    WSADATA w;
    cr_assert_eq(WSAStartup(MAKEWORD(2, 2), &w), 0);
}

static bool on_wine(void)
{
    return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

static void assoc_s(ovl_port *p, SOCKET s)
{
    int32_t rc = ovl_associate(p, (ovl_fd)s);
    cr_assert_eq(rc, OVL_OK, "ovl_associate: %s", ovl_strerror(rc));
}

static SOCKET tcp_socket(int af)
{
    SOCKET s = socket(af, SOCK_STREAM, IPPROTO_TCP);
    cr_assert_neq(s, INVALID_SOCKET, "socket: %d", WSAGetLastError());
    return s;
}

/* A loopback address of family af, port 0 (to bind) or as given. */
static ovl_addr loopback(int af, uint16_t port)
{
    ovl_addr a;
    memset(&a, 0, sizeof a);
    if (af == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)(void *)a.data.bytes;
        sa->sin_family = AF_INET;
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa->sin_port = htons(port);
        a.len = sizeof *sa;
    } else {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)(void *)a.data.bytes;
        sa->sin6_family = AF_INET6;
        sa->sin6_addr = in6addr_loopback;
        sa->sin6_port = htons(port);
        a.len = sizeof *sa;
    }
    return a;
}

static uint16_t addr_port(const ovl_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)(const void *)a->data.bytes;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

/* A listening socket on loopback (family af) with the given backlog; *at
 * receives its address. Returns INVALID_SOCKET if the family is missing. */
static SOCKET try_listener(int af, int backlog, ovl_addr *at)
{
    SOCKET l = socket(af, SOCK_STREAM, IPPROTO_TCP);
    if (l == INVALID_SOCKET) return l;
    *at = loopback(af, 0);
    int len = (int)at->len;
    if (bind(l, (struct sockaddr *)at->data.bytes, len) != 0 || listen(l, backlog) != 0 ||
        getsockname(l, (struct sockaddr *)at->data.bytes, &len) != 0) {
        closesocket(l);
        return INVALID_SOCKET;
    }
    at->len = (uint32_t)len;
    return l;
}

static SOCKET listener(int af, int backlog, ovl_addr *at)
{
    SOCKET l = try_listener(af, backlog, at);
    cr_assert_neq(l, INVALID_SOCKET, "listener: %d", WSAGetLastError());
    return l;
}

/* One request through ovl_submit, with a timeout. */
static int32_t submit_req(ovl_port *p, uint32_t op, ovl_fd fd, void *buf, uint32_t flags,
                          int64_t timeout_ns, void *ctx, uint64_t *id)
{
    ovl_request r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.fd = fd;
    r.buf = buf;
    r.flags = flags;
    r.timeout_ns = timeout_ns;
    r.ctx = ctx;
    int32_t rc = ovl_submit(p, &r, 1, NULL);
    if (id) *id = r.id;
    return rc;
}

/* Wait for the completion of `id` and return it (exactly once). */
static ovl_completion wait_id(rec *r, uint64_t id)
{
    rec_wait_id(r, id);
    return rec_one(r, id);
}

static bool delivered(rec *r, uint64_t id)
{
    int c;
    return rec_find(r, id, &c) != NULL;
}

static double now_s(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}

#define MS 1000000ll /* ns */

/* A connection made through ovl: accept on a listener of family af and
 * connect an unbound client to it. */
static void ovl_pair(ovl_port *p, rec *r, int af, SOCKET *server, SOCKET *client, ovl_addr *peer)
{
    ovl_addr at;
    SOCKET l = listener(af, 4, &at);
    assoc_s(p, l);
    SOCKET c = tcp_socket(af);
    assoc_s(p, c);
    uint64_t aid, cid;
    cr_assert_eq(ovl_submit_accept(p, (ovl_fd)l, peer, &at, &aid), OVL_OK);
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)c, &at, NULL, &cid), OVL_OK);
    ovl_completion x = wait_id(r, cid);
    cr_assert_eq(x.result, 0, "connect: %s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_eq(x.op, OVL_OP_CONNECT);
    x = wait_id(r, aid);
    cr_assert_geq(x.result, 0, "accept: %s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_eq(x.op, OVL_OP_ACCEPT);
    cr_assert_eq(x.ctx, &at);
    *server = (SOCKET)x.result;
    *client = c;
    closesocket(l);
}

/* Read exactly n bytes from s through ovl. */
static void read_all(ovl_port *p, rec *r, SOCKET s, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        uint64_t id;
        cr_assert_eq(
            ovl_submit_read(p, (ovl_fd)s, buf + got, n - got, OVL_OFFSET_CURRENT, NULL, &id),
            OVL_OK);
        ovl_completion x = wait_id(r, id);
        cr_assert_gt(x.result, 0, "read: %lld %s os %d", (long long)x.result,
                     ovl_strerror((int32_t)x.result), x.os_error);
        got += (size_t)x.result;
    }
}

static void write_all(ovl_port *p, rec *r, SOCKET s, const char *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        uint64_t id;
        cr_assert_eq(
            ovl_submit_write(p, (ovl_fd)s, buf + put, n - put, OVL_OFFSET_CURRENT, NULL, &id),
            OVL_OK);
        ovl_completion x = wait_id(r, id);
        cr_assert_gt(x.result, 0, "write: %s os %d", ovl_strerror((int32_t)x.result), x.os_error);
        put += (size_t)x.result;
    }
}

/* ---- accept and connect ---------------------------------------------------- */

static void echo_family(int af)
{
    rec r;
    ovl_port *p = net_port(&r, 16, 0);
    SOCKET s, c;
    ovl_addr peer;
    memset(&peer, 0xee, sizeof peer);
    ovl_pair(p, &r, af, &s, &c, &peer);

    /* The peer address AcceptEx reported is the client's own address (the
     * client was unbound: ConnectEx needed the library to bind it). */
    SOCKADDR_STORAGE local;
    int llen = sizeof local;
    cr_assert_eq(getsockname(c, (struct sockaddr *)&local, &llen), 0);
    cr_assert_eq(peer.len, (uint32_t)llen);
    cr_assert_eq(memcmp(peer.data.bytes, &local, (size_t)llen), 0,
                 "peer address is not the client's");
    cr_assert_eq(peer.reserved, 0u);
    /* SO_UPDATE_ACCEPT_CONTEXT / SO_UPDATE_CONNECT_CONTEXT were applied:
     * both sockets know their peers. */
    SOCKADDR_STORAGE sa;
    int slen = sizeof sa;
    cr_assert_eq(getpeername(s, (struct sockaddr *)&sa, &slen), 0, "getpeername(accepted): %d",
                 WSAGetLastError());
    slen = sizeof sa;
    cr_assert_eq(getpeername(c, (struct sockaddr *)&sa, &slen), 0, "getpeername(connected): %d",
                 WSAGetLastError());
    /* The accepted socket is already bound to this port. */
    cr_assert_eq(ovl_associate(p, (ovl_fd)s), OVL_EINVAL);

    static const char msg[] = "echo through AcceptEx and ConnectEx";
    char in[64] = {0};
    write_all(p, &r, c, msg, sizeof msg);
    read_all(p, &r, s, in, sizeof msg);
    cr_assert_eq(memcmp(in, msg, sizeof msg), 0);
    write_all(p, &r, s, in, sizeof msg);
    memset(in, 0, sizeof in);
    read_all(p, &r, c, in, sizeof msg);
    cr_assert_eq(memcmp(in, msg, sizeof msg), 0);
    close_clean(p, &r);
    closesocket(s);
    closesocket(c);
}

Test(net, echo_ipv4, .timeout = 30)
{
    wsa();
    echo_family(AF_INET);
}

Test(net, echo_ipv6, .timeout = 30)
{
    wsa();
    ovl_addr at;
    SOCKET l = try_listener(AF_INET6, 1, &at);
    if (l == INVALID_SOCKET) cr_skip_test("no IPv6 loopback here (%d)", WSAGetLastError());
    closesocket(l);
    echo_family(AF_INET6);
}

/* ---- 64 clients, many accepts in flight -------------------------------- */

enum { NCLI = 64, NACC = 16, PAYLOAD = 24 * 1024, CHUNK = 4096 };

typedef struct echo echo;
typedef struct econn {
    echo *e;
    SOCKET s;
    int id;        /* client: its index (the payload's seed); server: -1 */
    bool eof_wait; /* client: shut down, waiting for the server's EOF */
    size_t sent, got;
    size_t pend; /* server: bytes of buf still to echo back */
    size_t at;   /* server: offset in buf of the next echo write */
    uint8_t buf[CHUNK];
    ovl_addr peer;
} econn;

struct echo {
    ovl_port *port;
    SOCKET l;
    econn cli[NCLI], srv[NCLI], acc[NACC];
    int accepted, accepts_started;
    atomic_int done;
    atomic_int failed;
    char why[256];
    HANDLE all_done;
};

static void efail(echo *e, const char *what, int64_t v)
{
    if (atomic_fetch_add(&e->failed, 1) == 0)
        snprintf(e->why, sizeof e->why, "%s: %lld (%s)", what, (long long)v,
                 ovl_strerror((int32_t)v));
    SetEvent(e->all_done);
}

static void finished(echo *e)
{
    if (atomic_fetch_add(&e->done, 1) + 1 == 2 * NCLI) SetEvent(e->all_done);
}

static void esubmit(echo *e, int32_t rc, const char *what)
{
    if (rc != OVL_OK) efail(e, what, rc);
}

static void client_write(econn *c)
{
    size_t n = PAYLOAD - c->sent < CHUNK ? PAYLOAD - c->sent : CHUNK;
    /* The source must stay valid until the completion: each client keeps
     * its own payload window in buf while a write is in flight (reads only
     * start once every byte is written). */
    for (size_t i = 0; i < n; i++) c->buf[i] = pattern_at(c->sent + i, (unsigned)c->id);
    esubmit(c->e,
            ovl_submit_write(c->e->port, (ovl_fd)c->s, c->buf, n, OVL_OFFSET_CURRENT, c, NULL),
            "client write submit");
}

static void conn_read(econn *c)
{
    esubmit(c->e,
            ovl_submit_read(c->e->port, (ovl_fd)c->s, c->buf, CHUNK, OVL_OFFSET_CURRENT, c, NULL),
            "read submit");
}

static void start_accept(echo *e, econn *slot)
{
    e->accepts_started++;
    esubmit(e, ovl_submit_accept(e->port, (ovl_fd)e->l, &slot->peer, slot, NULL), "accept submit");
}

static void echo_cb(const ovl_completion *items, size_t n, void *ud)
{
    echo *e = ud;
    for (size_t i = 0; i < n; i++) {
        const ovl_completion *x = &items[i];
        econn *c = x->ctx;
        switch (x->op) {
        case OVL_OP_ACCEPT: {
            if (x->result < 0) {
                efail(e, "accept", x->result);
                break;
            }
            if (x->result == 0 || c->peer.len == 0) efail(e, "accept address", c->peer.len);
            econn *s = &e->srv[e->accepted++];
            s->e = e;
            s->s = (SOCKET)x->result;
            s->id = -1;
            conn_read(s);
            if (e->accepts_started < NCLI) start_accept(e, c);
            break;
        }
        case OVL_OP_CONNECT:
            if (x->result != 0) {
                efail(e, "connect", x->result);
                break;
            }
            client_write(c);
            break;
        case OVL_OP_WRITE:
            if (x->result <= 0) {
                efail(e, "write", x->result);
                break;
            }
            if (c->id >= 0) {
                c->sent += (size_t)x->result;
                if (c->sent < PAYLOAD) client_write(c);
                else conn_read(c);
            } else {
                c->at += (size_t)x->result;
                c->pend -= (size_t)x->result;
                if (c->pend)
                    esubmit(e,
                            ovl_submit_write(e->port, (ovl_fd)c->s, c->buf + c->at, c->pend,
                                             OVL_OFFSET_CURRENT, c, NULL),
                            "echo write");
                else conn_read(c);
            }
            break;
        case OVL_OP_READ:
            if (x->result < 0) {
                efail(e, "read", x->result);
                break;
            }
            if (c->id < 0) { /* server: echo, or close at the client's EOF */
                if (x->result == 0) {
                    closesocket(c->s);
                    finished(e);
                    break;
                }
                c->pend = (size_t)x->result;
                c->at = 0;
                esubmit(e,
                        ovl_submit_write(e->port, (ovl_fd)c->s, c->buf, c->pend, OVL_OFFSET_CURRENT,
                                         c, NULL),
                        "echo write");
                break;
            }
            if (c->eof_wait) { /* client: the server closed after our EOF */
                if (x->result != 0) efail(e, "bytes after the echo", x->result);
                closesocket(c->s);
                finished(e);
                break;
            }
            if (!matches_pattern(c->buf, (size_t)x->result, c->got, (unsigned)c->id)) {
                efail(e, "echoed bytes differ, client", c->id);
                break;
            }
            c->got += (size_t)x->result;
            if (c->got > PAYLOAD) efail(e, "too many bytes echoed", (int64_t)c->got);
            else if (c->got < PAYLOAD) conn_read(c);
            else {
                c->eof_wait = true;
                esubmit(e, ovl_submit_shutdown(e->port, (ovl_fd)c->s, OVL_SHUT_WR, c, NULL),
                        "shutdown submit");
            }
            break;
        case OVL_OP_SHUTDOWN:
            if (x->result != 0) efail(e, "shutdown", x->result);
            else conn_read(c);
            break;
        default: efail(e, "unexpected op", x->op);
        }
    }
}

Test(net, many_clients_echo_every_byte, .timeout = 120)
{
    wsa();
    static echo e;
    memset(&e, 0, sizeof e);
    e.all_done = CreateEventW(NULL, TRUE, FALSE, NULL);
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = 2 * NCLI + NACC + 8;
    cfg.callback = echo_cb;
    cfg.userdata = &e;
    cr_assert_eq(ovl_create_port(&cfg, &e.port), OVL_OK);
    ovl_addr at;
    e.l = listener(AF_INET, SOMAXCONN, &at);
    assoc_s(e.port, e.l);
    for (int i = 0; i < NACC; i++) {
        e.acc[i].e = &e;
        e.acc[i].id = -1;
        start_accept(&e, &e.acc[i]);
    }
    for (int i = 0; i < NCLI; i++) {
        econn *c = &e.cli[i];
        c->e = &e;
        c->id = i;
        c->s = tcp_socket(AF_INET);
        assoc_s(e.port, c->s);
        cr_assert_eq(ovl_submit_connect(e.port, (ovl_fd)c->s, &at, c, NULL), OVL_OK);
    }
    DWORD w = WaitForSingleObject(e.all_done, 90000);
    cr_assert_eq(w, WAIT_OBJECT_0, "timed out: %d of %d connections done", atomic_load(&e.done),
                 2 * NCLI);
    cr_assert_eq(atomic_load(&e.failed), 0, "%s", e.why);
    cr_assert_eq(e.accepted, NCLI);
    for (int i = 0; i < NCLI; i++) cr_assert_eq(e.cli[i].got, (size_t)PAYLOAD);
    cr_assert_eq(ovl_close_port(e.port), OVL_OK);
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(ovl_port_stats(e.port, &st), OVL_OK);
    cr_assert_eq(st.inflight, 0u);
    cr_assert_eq(st.stale, 0u);
    cr_assert_eq(st.submitted, st.completed);
    closesocket(e.l);
    CloseHandle(e.all_done);
}

/* ---- connect errors ---------------------------------------------------------- */

Test(net, connect_refused, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    /* A port that was just listening and is not any more. */
    ovl_addr at;
    closesocket(listener(AF_INET, 1, &at));
    SOCKET c = tcp_socket(AF_INET);
    assoc_s(p, c);
    uint64_t id;
    double t0 = now_s();
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)c, &at, NULL, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    /* Windows retries the SYN before it gives up on loopback (about 2 s);
     * wine answers at once. Either way: refused, with the OS's code. */
    cr_assert_eq(x.result, OVL_ECONNREFUSED, "%s os %d", ovl_strerror((int32_t)x.result),
                 x.os_error);
    cr_assert(x.os_error == ERROR_CONNECTION_REFUSED || x.os_error == WSAECONNREFUSED,
              "os_error %d", x.os_error);
    cr_log_info("refused after %.3f s", now_s() - t0);
    close_clean(p, &r);
    closesocket(c);
}

/* ---- timeouts ---------------------------------------------------------------- */

Test(net, accept_times_out_then_accepts, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    ovl_addr at, peer;
    SOCKET l = listener(AF_INET, 4, &at);
    assoc_s(p, l);
    uint64_t id;
    double t0 = now_s();
    cr_assert_eq(submit_req(p, OVL_OP_ACCEPT, (ovl_fd)l, &peer, 0, 100 * MS, NULL, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    double dt = now_s() - t0;
    cr_assert_eq(x.result, OVL_ETIMEDOUT, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_geq(dt, 0.099, "timed out after %.3f s", dt);
    cr_assert_lt(dt, 10.0);
    /* The listener is unharmed: a timed accept that a client beats. */
    SOCKET c = tcp_socket(AF_INET);
    assoc_s(p, c);
    cr_assert_eq(submit_req(p, OVL_OP_ACCEPT, (ovl_fd)l, &peer, 0, 10000 * MS, NULL, &id), OVL_OK);
    uint64_t cid;
    cr_assert_eq(submit_req(p, OVL_OP_CONNECT, (ovl_fd)c, &at, 0, 10000 * MS, NULL, &cid), OVL_OK);
    cr_assert_eq(wait_id(&r, cid).result, 0);
    x = wait_id(&r, id);
    cr_assert_geq(x.result, 0, "%s", ovl_strerror((int32_t)x.result));
    closesocket((SOCKET)x.result);
    close_clean(p, &r);
    closesocket(c);
    closesocket(l);
}

Test(net, read_times_out_then_a_later_read_gets_all, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET s, c;
    ovl_pair(p, &r, AF_INET, &s, &c, NULL);
    char in[32] = {0};
    ovl_request rq;
    memset(&rq, 0, sizeof rq);
    rq.op = OVL_OP_READ;
    rq.fd = (ovl_fd)s;
    rq.buf = in;
    rq.len = sizeof in;
    rq.offset = OVL_OFFSET_CURRENT;
    rq.timeout_ns = 80 * MS;
    double t0 = now_s();
    cr_assert_eq(ovl_submit(p, &rq, 1, NULL), OVL_OK);
    ovl_completion x = wait_id(&r, rq.id);
    cr_assert_eq(x.result, OVL_ETIMEDOUT, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_geq(now_s() - t0, 0.079);
    /* The connection is intact and nothing was lost: what the peer sends
     * now is all there for the next read. */
    static const char msg[] = "after the timeout";
    cr_assert_eq(send(c, msg, sizeof msg, 0), (int)sizeof msg);
    read_all(p, &r, s, in, sizeof msg);
    cr_assert_eq(memcmp(in, msg, sizeof msg), 0);
    close_clean(p, &r);
    closesocket(s);
    closesocket(c);
}

Test(net, op_that_finishes_first_keeps_its_result, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET s, c;
    ovl_pair(p, &r, AF_INET, &s, &c, NULL);
    char in[8];
    ovl_request rq;
    memset(&rq, 0, sizeof rq);
    rq.op = OVL_OP_READ;
    rq.fd = (ovl_fd)s;
    rq.buf = in;
    rq.len = sizeof in;
    rq.offset = OVL_OFFSET_CURRENT;
    rq.timeout_ns = 150 * MS;
    cr_assert_eq(ovl_submit(p, &rq, 1, NULL), OVL_OK);
    cr_assert_eq(send(c, "abc", 3, 0), 3);
    ovl_completion x = wait_id(&r, rq.id);
    cr_assert_eq(x.result, 3, "%s", ovl_strerror((int32_t)x.result));
    /* Its deadline went with it: nothing fires later, no stale packet
     * (close_clean checks), and a timer beyond it arrives alone. */
    uint64_t t;
    cr_assert_eq(ovl_submit_timer(p, 300 * MS, NULL, &t), OVL_OK);
    cr_assert_eq(wait_id(&r, t).result, 0);
    cr_assert_eq(rec_count(&r), 4u); /* accept, connect, read, timer */
    /* A write with a timeout that completes at once: its real result. */
    memset(&rq, 0, sizeof rq);
    rq.op = OVL_OP_WRITE;
    rq.fd = (ovl_fd)c;
    rq.buf = "xyz";
    rq.len = 3;
    rq.offset = OVL_OFFSET_CURRENT;
    rq.timeout_ns = 1; /* 1 ns: expired before anyone looks */
    cr_assert_eq(ovl_submit(p, &rq, 1, NULL), OVL_OK);
    x = wait_id(&r, rq.id);
    /* Either the write finished first (3) or the deadline got it first
     * (OVL_ETIMEDOUT); never both, never another code. */
    cr_assert(x.result == 3 || x.result == OVL_ETIMEDOUT, "%lld", (long long)x.result);
    close_clean(p, &r);
    closesocket(s);
    closesocket(c);
}

/* Deadlines racing data: a read either gets bytes (it finished first) or
 * times out without taking any, so what the reads return adds up to
 * exactly what was sent, in order, and every op completes once. */
typedef struct racer {
    SOCKET s;
    size_t total;
} racer;

static void *race_sender(void *arg)
{
    racer *rc = arg;
    uint8_t b[97];
    for (size_t off = 0; off < rc->total;) {
        size_t n = rc->total - off < sizeof b ? rc->total - off : sizeof b;
        for (size_t i = 0; i < n; i++) b[i] = pattern_at(off + i, 7);
        if (send(rc->s, (const char *)b, (int)n, 0) != (int)n) break;
        off += n;
        Sleep((DWORD)(off / n) % 3); /* gaps for the deadlines to hit */
    }
    return NULL;
}

Test(net, timeouts_racing_data_lose_nothing, .timeout = 60)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET s, c;
    ovl_pair(p, &r, AF_INET, &s, &c, NULL);
    racer rc = {c, 48 * 1024};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, race_sender, &rc), 0);
    static uint8_t got[48 * 1024];
    size_t have = 0;
    int timeouts = 0, reads = 0;
    unsigned seed = 1;
    while (have < rc.total) {
        ovl_request rq;
        memset(&rq, 0, sizeof rq);
        rq.op = OVL_OP_READ;
        rq.fd = (ovl_fd)s;
        rq.buf = got + have;
        rq.len = rc.total - have < 300 ? rc.total - have : 300;
        rq.offset = OVL_OFFSET_CURRENT;
        rq.timeout_ns = (int64_t)(rand_r(&seed) % 3000 + 1) * 1000; /* 1 us .. 3 ms */
        cr_assert_eq(ovl_submit(p, &rq, 1, NULL), OVL_OK);
        ovl_completion x = wait_id(&r, rq.id);
        reads++;
        if (x.result == OVL_ETIMEDOUT) {
            timeouts++;
            continue;
        }
        cr_assert_gt(x.result, 0, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
        have += (size_t)x.result;
    }
    pthread_join(th, NULL);
    cr_assert(matches_pattern(got, rc.total, 0, 7), "bytes lost or reordered");
    cr_log_info("%d reads, %d timed out", reads, timeouts);
    close_clean(p, &r);
    closesocket(s);
    closesocket(c);
}

/* Timers racing their cancel: one completion each, 0 or OVL_ECANCELED. */
Test(net, timers_racing_cancel, .timeout = 60)
{
    rec r;
    ovl_port *p = net_port(&r, 64, 0);
    enum { N = 400 };
    static uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        int32_t rc;
        while ((rc = ovl_submit_timer(p, (i % 7) * 100000 + 1, NULL, &ids[i])) == OVL_EQUEUEFULL)
            Sleep(1);
        cr_assert_eq(rc, OVL_OK);
        if (i % 2) {
            rc = ovl_cancel(p, ids[i]);
            cr_assert(rc == OVL_OK || rc == OVL_ENOENT);
        }
    }
    rec_wait(&r, N);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        int64_t v = rec_one(&r, ids[i]).result;
        cr_assert(v == 0 || (v == OVL_ECANCELED && (i % 2)), "timer %d: %lld", i, (long long)v);
        cancelled += v == OVL_ECANCELED;
    }
    cr_log_info("%d of %d cancelled in time", cancelled, N / 2);
    close_clean(p, &r);
}

/* A listener that takes no more connections (backlog full): under wine
 * (Linux) further connects stay pending; on Windows they are refused. */
static SOCKET full_listener(ovl_addr *at, SOCKET held[4])
{
    SOCKET l = listener(AF_INET, 1, at);
    for (int i = 0; i < 4; i++) {
        held[i] = tcp_socket(AF_INET);
        u_long nb = 1;
        ioctlsocket(held[i], FIONBIO, &nb);
        (void)connect(held[i], (struct sockaddr *)at->data.bytes, (int)at->len);
    }
    Sleep(100); /* let the handshakes that can complete do so */
    return l;
}

Test(net, connect_times_out, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    ovl_addr at;
    SOCKET held[4];
    SOCKET l = full_listener(&at, held);
    SOCKET c = tcp_socket(AF_INET);
    assoc_s(p, c);
    uint64_t id;
    cr_assert_eq(submit_req(p, OVL_OP_CONNECT, (ovl_fd)c, &at, 0, 200 * MS, NULL, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    if (on_wine())
        cr_assert_eq(x.result, OVL_ETIMEDOUT, "%s os %d", ovl_strerror((int32_t)x.result),
                     x.os_error);
    else /* AFD refuses at once when the backlog is full */
        cr_assert(x.result == OVL_ETIMEDOUT || x.result == OVL_ECONNREFUSED || x.result == 0, "%s",
                  ovl_strerror((int32_t)x.result));
    close_clean(p, &r);
    closesocket(c);
    for (int i = 0; i < 4; i++) closesocket(held[i]);
    closesocket(l);
}

/* ---- timers -------------------------------------------------------------------- */

Test(net, timers_fire_in_deadline_order, .timeout = 30)
{
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    static const int64_t delay_ms[] = {90, 30, 60, 1};
    uint64_t ids[4];
    double t0 = now_s();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ovl_submit_timer(p, delay_ms[i] * MS, (void *)(intptr_t)i, &ids[i]), OVL_OK);
    rec_wait(&r, 4);
    double dt = now_s() - t0;
    cr_assert_geq(dt, 0.089);
    /* Delivered in deadline order, each with 0 and its ctx. */
    static const int order[] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(r.items[i].id, ids[order[i]], "position %d", i);
        cr_assert_eq(r.items[i].result, 0);
        cr_assert_eq(r.items[i].op, OVL_OP_TIMER);
        cr_assert_eq(r.items[i].ctx, (void *)(intptr_t)order[i]);
    }
    close_clean(p, &r);
}

Test(net, earlier_timer_wakes_the_waiting_thread, .timeout = 30)
{
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    uint64_t slow, fast;
    cr_assert_eq(ovl_submit_timer(p, 60000 * MS, NULL, &slow), OVL_OK);
    Sleep(50); /* the completion thread now sleeps until the 60 s deadline */
    double t0 = now_s();
    cr_assert_eq(ovl_submit_timer(p, 20 * MS, NULL, &fast), OVL_OK);
    cr_assert_eq(wait_id(&r, fast).result, 0);
    cr_assert_lt(now_s() - t0, 5.0, "the sleeping thread was not woken for the earlier timer");
    cr_assert_not(delivered(&r, slow));
    cr_assert_eq(ovl_cancel(p, slow), OVL_OK);
    ovl_completion x = wait_id(&r, slow);
    cr_assert_eq(x.result, OVL_ECANCELED);
    cr_assert_eq(x.os_error, 0);
    cr_assert_eq(ovl_cancel(p, slow), OVL_ENOENT);
    close_clean(p, &r);
}

Test(net, timers_cancelled_by_close, .timeout = 30)
{
    rec r;
    ovl_port *p = net_port(&r, 16, 0);
    uint64_t ids[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(ovl_submit_timer(p, (int64_t)(3600 + i) * 1000 * MS, NULL, &ids[i]), OVL_OK);
    double t0 = now_s();
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    cr_assert_lt(now_s() - t0, 5.0);
    for (int i = 0; i < 8; i++) cr_assert_eq(rec_one(&r, ids[i]).result, OVL_ECANCELED);
    rec_free(&r);
}

Test(net, timers_in_manual_mode, .timeout = 30)
{
    rec r;
    ovl_port *p = net_port(&r, 8, OVL_PORT_MANUAL);
    uint64_t id;
    cr_assert_eq(ovl_submit_timer(p, 50 * MS, NULL, &id), OVL_OK);
    cr_assert_eq(ovl_poll(p, 0), 0);
    /* ovl_poll's own wait is cut short by the deadline. */
    double t0 = now_s();
    int32_t n = ovl_poll(p, 10000);
    double dt = now_s() - t0;
    cr_assert_eq(n, 1);
    cr_assert_lt(dt, 5.0);
    cr_assert_eq(rec_one(&r, id).result, 0);
    /* For ever (-1) too. */
    cr_assert_eq(ovl_submit_timer(p, 20 * MS, NULL, &id), OVL_OK);
    cr_assert_eq(ovl_poll(p, -1), 1);
    cr_assert_eq(rec_one(&r, id).result, 0);
    /* A poll shorter than the timer returns 0 on time, the timer later. */
    cr_assert_eq(ovl_submit_timer(p, 2000 * MS, NULL, &id), OVL_OK);
    t0 = now_s();
    cr_assert_eq(ovl_poll(p, 30), 0);
    cr_assert_lt(now_s() - t0, 1.5);
    while (ovl_poll(p, 1000) == 0) {
    }
    cr_assert_eq(rec_one(&r, id).result, 0);
    /* Cancel, then close with one pending. */
    cr_assert_eq(ovl_submit_timer(p, 60000 * MS, NULL, &id), OVL_OK);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    cr_assert_eq(ovl_poll(p, 1000), 1);
    cr_assert_eq(rec_one(&r, id).result, OVL_ECANCELED);
    cr_assert_eq(ovl_submit_timer(p, 60000 * MS, NULL, &id), OVL_OK);
    close_clean(p, &r);
}

/* ---- cancel and close with connections in flight ------------------------- */

Test(net, cancel_and_close_with_accepts_connects_timers_in_flight, .timeout = 60)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 64, 0);
    ovl_addr at, at2;
    SOCKET l = listener(AF_INET, 8, &at);
    assoc_s(p, l);
    SOCKET held[4];
    SOCKET full = full_listener(&at2, held);
    enum { NA = 8, NC = 4 };
    uint64_t acc[NA], con[NC], tim[2];
    static ovl_addr peers[NA];
    SOCKET cs[NC];
    for (int i = 0; i < NA; i++)
        cr_assert_eq(ovl_submit_accept(p, (ovl_fd)l, &peers[i], NULL, &acc[i]), OVL_OK);
    for (int i = 0; i < NC; i++) {
        cs[i] = tcp_socket(AF_INET);
        assoc_s(p, cs[i]);
        cr_assert_eq(ovl_submit_connect(p, (ovl_fd)cs[i], &at2, NULL, &con[i]), OVL_OK);
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(ovl_submit_timer(p, 3600000 * MS, NULL, &tim[i]), OVL_OK);
    /* Cancel half of each. */
    for (int i = 0; i < NA / 2; i++) cr_assert_eq(ovl_cancel(p, acc[i]), OVL_OK);
    for (int i = 0; i < NC / 2; i++) cr_assert_eq(ovl_cancel(p, con[i]), OVL_OK);
    cr_assert_eq(ovl_cancel(p, tim[0]), OVL_OK);
    for (int i = 0; i < NA / 2; i++)
        cr_assert_eq(wait_id(&r, acc[i]).result, OVL_ECANCELED, "accept %d", i);
    cr_assert_eq(wait_id(&r, tim[0]).result, OVL_ECANCELED);
    for (int i = 0; i < NC / 2; i++) {
        int64_t v = wait_id(&r, con[i]).result;
        if (on_wine())
            cr_assert_eq(v, OVL_ECANCELED, "connect %d: %s", i, ovl_strerror((int32_t)v));
        else cr_assert(v == OVL_ECANCELED || v == OVL_ECONNREFUSED || v == 0, "%lld", (long long)v);
    }
    /* The listener still works with accepts cancelled on it: one client
     * takes one of the remaining accepts. */
    SOCKET c = tcp_socket(AF_INET);
    size_t before = rec_count(&r); /* before connect: the accept may beat its return */
    cr_assert_eq(connect(c, (struct sockaddr *)at.data.bytes, (int)at.len), 0);
    rec_wait(&r, before + 1);
    /* Close: everything else completes, exactly once, cancelled (the one
     * accept the client took delivered its socket). */
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    int sockets = 0;
    for (int i = NA / 2; i < NA; i++) {
        ovl_completion x = rec_one(&r, acc[i]);
        if (x.result >= 0) {
            sockets++;
            closesocket((SOCKET)x.result);
        } else {
            cr_assert_eq(x.result, OVL_ECANCELED, "%s", ovl_strerror((int32_t)x.result));
        }
    }
    cr_assert_eq(sockets, 1);
    for (int i = NC / 2; i < NC; i++) {
        int64_t v = rec_one(&r, con[i]).result;
        if (on_wine()) cr_assert_eq(v, OVL_ECANCELED, "%s", ovl_strerror((int32_t)v));
    }
    cr_assert_eq(rec_one(&r, tim[1]).result, OVL_ECANCELED);
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(ovl_port_stats(p, &st), OVL_OK);
    cr_assert_eq(st.inflight, 0u);
    cr_assert_eq(st.stale, 0u);
    cr_assert_eq(st.submitted, st.completed);
    rec_free(&r);
    closesocket(c);
    for (int i = 0; i < NC; i++) closesocket(cs[i]);
    for (int i = 0; i < 4; i++) closesocket(held[i]);
    closesocket(full);
    closesocket(l);
}

/* The value a new socket's handle gets: Windows and wine both hand out the
 * lowest free handle slots first, so leaked handles push it up. (wine's
 * GetProcessHandleCount is a stub that always says 0, hence this.) */
static uintptr_t next_handle_value(void)
{
    SOCKET s = tcp_socket(AF_INET);
    closesocket(s);
    return (uintptr_t)s;
}

/* Every accept that does not deliver a socket closes the one the library
 * created for it: handles do not pile up with them. */
Test(net, cancelled_and_timed_out_accepts_leak_no_socket, .timeout = 60)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 64, 0);
    ovl_addr at;
    SOCKET l = listener(AF_INET, 8, &at);
    assoc_s(p, l);
    uintptr_t h0 = 0;
    enum { ROUNDS = 6, PER = 32 };
    /* One round first: Winsock's own first-use handles are not ours. */
    for (int round = 0; round < ROUNDS; round++) {
        if (round == 1) h0 = next_handle_value();
        uint64_t ids[PER];
        for (int i = 0; i < PER; i++)
            cr_assert_eq(submit_req(p, OVL_OP_ACCEPT, (ovl_fd)l, NULL, 0, (i % 2) ? 5 * MS : 0,
                                    NULL, &ids[i]),
                         OVL_OK);
        for (int i = 0; i < PER; i += 2) cr_assert_eq(ovl_cancel(p, ids[i]), OVL_OK);
        for (int i = 0; i < PER; i++) {
            int64_t v = wait_id(&r, ids[i]).result;
            cr_assert(v == ((i % 2) ? OVL_ETIMEDOUT : OVL_ECANCELED), "accept %d: %s", i,
                      ovl_strerror((int32_t)v));
        }
    }
    uintptr_t h1 = next_handle_value();
    /* 160 leaked sockets would move it by 160 handle slots (4 apart). */
    cr_assert_lt(h1, h0 + 4 * 32, "new handles went from %#llx to %#llx over %d accepts",
                 (unsigned long long)h0, (unsigned long long)h1, (ROUNDS - 1) * PER);
    close_clean(p, &r);
    closesocket(l);
}

/* ---- shutdown and reset ------------------------------------------------------ */

Test(net, half_close_is_eof_for_the_peer, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET s, c;
    ovl_pair(p, &r, AF_INET, &s, &c, NULL);
    char in[16];
    uint64_t rid, sid;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)s, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
                 OVL_OK);
    write_all(p, &r, c, "last", 4);
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)c, OVL_SHUT_WR, NULL, &sid), OVL_OK);
    ovl_completion x = wait_id(&r, sid);
    cr_assert_eq(x.result, 0, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_eq(x.op, OVL_OP_SHUTDOWN);
    x = wait_id(&r, rid);
    cr_assert_eq(x.result, 4);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)s, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
                 OVL_OK);
    cr_assert_eq(wait_id(&r, rid).result, 0, "the peer's half-close is end of file");
    /* Only one direction is closed: the server still talks to the client. */
    write_all(p, &r, s, "reply", 5);
    read_all(p, &r, c, in, 5);
    cr_assert_eq(memcmp(in, "reply", 5), 0);
    /* Sending after our own SHUT_WR fails. */
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)c, "x", 1, OVL_OFFSET_CURRENT, NULL, &rid), OVL_OK);
    x = wait_id(&r, rid);
    cr_assert_lt(x.result, 0, "a write after SHUT_WR");
    cr_log_info("write after SHUT_WR: %s (os %d)", ovl_strerror((int32_t)x.result), x.os_error);
    /* SHUT_RD and SHUT_RDWR are accepted too. */
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)s, OVL_SHUT_RD, NULL, &sid), OVL_OK);
    cr_assert_eq(wait_id(&r, sid).result, 0);
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)s, OVL_SHUT_RDWR, NULL, &sid), OVL_OK);
    cr_assert_eq(wait_id(&r, sid).result, 0);
    close_clean(p, &r);
    closesocket(s);
    closesocket(c);
}

Test(net, peer_reset, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET s, c;
    ovl_pair(p, &r, AF_INET, &s, &c, NULL);
    char in[16];
    uint64_t rid;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)c, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
                 OVL_OK);
    /* An abortive close: linger on with a zero timeout sends RST. */
    struct linger lg = {1, 0};
    cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg), 0);
    closesocket(s);
    ovl_completion x = wait_id(&r, rid);
    cr_assert_eq(x.result, OVL_ECONNRESET, "%lld %s os %d", (long long)x.result,
                 ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_neq(x.os_error, 0);
    /* Writing to the reset connection fails too. */
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)c, "x", 1, OVL_OFFSET_CURRENT, NULL, &rid), OVL_OK);
    x = wait_id(&r, rid);
    cr_assert(x.result == OVL_ECONNRESET || x.result == OVL_EPIPE || x.result == OVL_ECONNABORTED,
              "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    close_clean(p, &r);
    closesocket(c);
}

/* ---- a read and a write in flight at once on one socket -------------------- */

/* Side A keeps one write (64 KiB chunks of a known pattern; a short write
 * resubmits the rest of its chunk) and one read in flight on the same
 * socket at the same time; side B echoes everything back (read, then write
 * it all). Every completion's count is checked (a write of n > 0 bytes
 * completes with 1..n, never 0), and every byte A reads back, in order.
 * The ovl_echo socketpair port saw writes complete with 0 bytes and a
 * reordered stream under exactly this overlap. */
enum { DX_CHUNK = 64 * 1024, DX_TOTAL = 8 << 20, DX_ROUNDS = 4 };

typedef struct duplex {
    ovl_port *port;
    SOCKET a, b;
    const uint8_t *src; /* DX_TOTAL bytes of pattern: A's write source */
    size_t sent, got;   /* A: bytes written, bytes read back (checked) */
    size_t chunk_end;   /* A: end of the chunk being written */
    size_t wlen;        /* A: length of the write in flight */
    size_t bpend, bat;  /* B: bytes of bbuf still to echo, from bat */
    bool a_shut, b_shut;
    uint64_t writes, short_writes, reads, b_writes;
    atomic_int failed;
    char why[256];
    HANDLE done;
    uint8_t rbuf[DX_CHUNK]; /* A's read buffer */
    uint8_t bbuf[DX_CHUNK]; /* B's echo buffer */
} duplex;

static void dx_fail(duplex *d, const char *fmt, ...)
{
    if (atomic_fetch_add(&d->failed, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->why, sizeof d->why, fmt, ap);
        va_end(ap);
    }
    SetEvent(d->done);
}

static void dx_submit(duplex *d, int32_t rc, const char *what)
{
    if (rc != OVL_OK) dx_fail(d, "%s: %s", what, ovl_strerror(rc));
}

static void dx_a_write(duplex *d)
{
    if (d->sent == d->chunk_end)
        d->chunk_end = d->sent + (DX_TOTAL - d->sent < DX_CHUNK ? DX_TOTAL - d->sent : DX_CHUNK);
    d->wlen = d->chunk_end - d->sent;
    dx_submit(d,
              ovl_submit_write(d->port, (ovl_fd)d->a, d->src + d->sent, d->wlen, OVL_OFFSET_CURRENT,
                               &d->a, NULL),
              "A write");
}

static void dx_a_read(duplex *d)
{
    dx_submit(
        d,
        ovl_submit_read(d->port, (ovl_fd)d->a, d->rbuf, DX_CHUNK, OVL_OFFSET_CURRENT, &d->a, NULL),
        "A read");
}

static void dx_b_read(duplex *d)
{
    dx_submit(
        d,
        ovl_submit_read(d->port, (ovl_fd)d->b, d->bbuf, DX_CHUNK, OVL_OFFSET_CURRENT, &d->b, NULL),
        "B read");
}

static void dx_b_write(duplex *d)
{
    dx_submit(d,
              ovl_submit_write(d->port, (ovl_fd)d->b, d->bbuf + d->bat, d->bpend,
                               OVL_OFFSET_CURRENT, &d->b, NULL),
              "B write");
}

static void dx_cb(const ovl_completion *items, size_t n, void *ud)
{
    duplex *d = ud;
    for (size_t i = 0; i < n; i++) {
        const ovl_completion *x = &items[i];
        if (atomic_load(&d->failed)) return;
        bool side_a = x->ctx == &d->a;
        if (x->op == OVL_OP_SHUTDOWN) {
            if (x->result != 0) dx_fail(d, "shutdown: %s", ovl_strerror((int32_t)x->result));
            continue;
        }
        if (x->result < 0) {
            dx_fail(d, "%s %s: %s (os %d)", side_a ? "A" : "B",
                    x->op == OVL_OP_READ ? "read" : "write", ovl_strerror((int32_t)x->result),
                    x->os_error);
            continue;
        }
        if (side_a && x->op == OVL_OP_WRITE) {
            d->writes++;
            if (x->result == 0 || (size_t)x->result > d->wlen) {
                dx_fail(d, "A write %llu of %zu bytes at %zu completed with %lld",
                        (unsigned long long)d->writes, d->wlen, d->sent, (long long)x->result);
                continue;
            }
            if ((size_t)x->result < d->wlen) d->short_writes++;
            d->sent += (size_t)x->result;
            if (d->sent < DX_TOTAL) dx_a_write(d);
            else {
                d->a_shut = true;
                dx_submit(d, ovl_submit_shutdown(d->port, (ovl_fd)d->a, OVL_SHUT_WR, &d->a, NULL),
                          "A shutdown");
            }
        } else if (side_a) { /* A read: the next bytes of the pattern, in order */
            d->reads++;
            size_t r = (size_t)x->result;
            if (r == 0) {
                if (d->got != DX_TOTAL) dx_fail(d, "A: end of file after %zu bytes", d->got);
                else SetEvent(d->done);
                continue;
            }
            if (d->got + r > DX_TOTAL) {
                dx_fail(d, "A read %zu bytes past the %d sent", d->got + r - DX_TOTAL, DX_TOTAL);
                continue;
            }
            if (memcmp(d->rbuf, d->src + d->got, r) != 0) {
                size_t k = 0;
                while (d->rbuf[k] == d->src[d->got + k]) k++;
                dx_fail(d,
                        "A read %llu (%zu bytes at %zu): first wrong byte at stream offset "
                        "%zu (%zu bytes written so far)",
                        (unsigned long long)d->reads, r, d->got, d->got + k, d->sent);
                continue;
            }
            d->got += r;
            dx_a_read(d);
        } else if (x->op == OVL_OP_READ) { /* B: echo it, or pass the EOF on */
            if (x->result == 0) {
                d->b_shut = true;
                dx_submit(d, ovl_submit_shutdown(d->port, (ovl_fd)d->b, OVL_SHUT_WR, &d->b, NULL),
                          "B shutdown");
                continue;
            }
            d->bpend = (size_t)x->result;
            d->bat = 0;
            dx_b_write(d);
        } else { /* B write */
            d->b_writes++;
            if (x->result == 0 || (size_t)x->result > d->bpend) {
                dx_fail(d, "B write of %zu bytes completed with %lld", d->bpend,
                        (long long)x->result);
                continue;
            }
            d->bat += (size_t)x->result;
            d->bpend -= (size_t)x->result;
            if (d->bpend) dx_b_write(d);
            else dx_b_read(d);
        }
    }
}

/* A connected loopback TCP pair made with plain Winsock (blocking accept and
 * connect), both ends associated with p. */
static void plain_pair(ovl_port *p, SOCKET *a, SOCKET *b)
{
    ovl_addr at;
    SOCKET l = listener(AF_INET, 1, &at);
    *a = tcp_socket(AF_INET);
    cr_assert_eq(connect(*a, (struct sockaddr *)at.data.bytes, (int)at.len), 0, "connect: %d",
                 WSAGetLastError());
    *b = accept(l, NULL, NULL);
    cr_assert_neq(*b, INVALID_SOCKET, "accept: %d", WSAGetLastError());
    closesocket(l);
    assoc_s(p, *a);
    assoc_s(p, *b);
}

Test(net, read_and_write_in_flight_on_one_socket, .timeout = 120)
{
    wsa();
    uint8_t *src = malloc(DX_TOTAL);
    cr_assert_not_null(src);
    for (size_t i = 0; i < DX_TOTAL; i++) src[i] = pattern_at(i, 7);
    duplex *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    for (int round = 0; round < DX_ROUNDS; round++) {
        memset(d, 0, sizeof *d);
        d->src = src;
        d->done = CreateEventW(NULL, TRUE, FALSE, NULL);
        ovl_port_config cfg;
        ovl_port_config_init(&cfg, sizeof cfg);
        cfg.queue_depth = 16;
        cfg.callback = dx_cb;
        cfg.userdata = d;
        cr_assert_eq(ovl_create_port(&cfg, &d->port), OVL_OK);
        plain_pair(d->port, &d->a, &d->b);
        dx_b_read(d);
        dx_a_read(d);
        dx_a_write(d);
        DWORD w = WaitForSingleObject(d->done, 60000);
        cr_assert_eq(w, WAIT_OBJECT_0, "round %d timed out: %zu sent, %zu read back", round,
                     d->sent, d->got);
        int failed = atomic_load(&d->failed);
        cr_assert_eq(ovl_close_port(d->port), OVL_OK);
        cr_assert_eq(failed, 0, "round %d: %s", round, d->why);
        cr_assert_eq(d->got, (size_t)DX_TOTAL);
        cr_log_info("round %d: %llu writes (%llu short), %llu reads, %llu echo writes", round,
                    (unsigned long long)d->writes, (unsigned long long)d->short_writes,
                    (unsigned long long)d->reads, (unsigned long long)d->b_writes);
        ovl_stats st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        cr_assert_eq(ovl_port_stats(d->port, &st), OVL_OK);
        cr_assert_eq(st.inflight, 0u);
        cr_assert_eq(st.stale, 0u, "stale packets: %llu", (unsigned long long)st.stale);
        cr_assert_eq(st.submitted, st.completed);
        closesocket(d->a);
        closesocket(d->b);
        CloseHandle(d->done);
    }
    free(d);
    free(src);
}

/* ---- bad input --------------------------------------------------------------- */

Test(net, bad_input, .timeout = 30)
{
    wsa();
    rec r;
    ovl_port *p = net_port(&r, 8, 0);
    SOCKET sock = tcp_socket(AF_INET);
    assoc_s(p, sock);
    ovl_addr a = loopback(AF_INET, 9);
    uint64_t id = 77;
    /* At submit, nothing in flight afterwards. */
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)sock, NULL, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    ovl_addr bad = a;
    bad.len = 0;
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)sock, &bad, NULL, &id), OVL_EINVAL);
    bad.len = OVL_ADDR_MAX + 1;
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)sock, &bad, NULL, &id), OVL_EINVAL);
    cr_assert_eq(ovl_submit_accept(p, (ovl_fd)INVALID_SOCKET, NULL, NULL, &id), OVL_EBADF);
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)INVALID_SOCKET, &a, NULL, &id), OVL_EBADF);
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)sock, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)sock, 4, NULL, &id), OVL_EINVAL);
    cr_assert_eq(ovl_submit_timer(p, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(ovl_submit_timer(p, -5, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_CONNECT, (ovl_fd)sock, &a, 0, -1, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_ACCEPT, (ovl_fd)sock, NULL, 0, -1, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_TIMER, 0, NULL, 0, -1, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_TIMER, (ovl_fd)sock, NULL, 0, MS, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_POST, 0, NULL, 0, MS, NULL, &id), OVL_EINVAL);
    cr_assert_eq(submit_req(p, OVL_OP_ACCEPT, (ovl_fd)sock, NULL, 1, 0, NULL, &id), OVL_EINVAL);
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(ovl_port_stats(p, &st), OVL_OK);
    cr_assert_eq(st.submitted, 0u);

    /* In the completion: what only the OS can tell. */
    /* Accept on a socket that is not listening: OVL_EINVAL. */
    cr_assert_eq(ovl_submit_accept(p, (ovl_fd)sock, NULL, NULL, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EINVAL, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    /* Shutdown of a socket that is not connected: OVL_ENOTCONN. */
    cr_assert_eq(ovl_submit_shutdown(p, (ovl_fd)sock, OVL_SHUT_WR, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_ENOTCONN, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    /* A handle that is not a socket (a file): OVL_EBADF for all three. */
    int fd = mkstemp(NULL);
    cr_assert_geq(fd, 0);
    ovl_fd file = (ovl_fd)(uintptr_t)(HANDLE)(intptr_t)fd;
    cr_assert_eq(ovl_submit_accept(p, file, NULL, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EBADF, "accept on a file: %s os %d", ovl_strerror((int32_t)x.result),
                 x.os_error);
    cr_assert_eq(ovl_submit_connect(p, file, &a, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EBADF, "connect on a file: %s os %d",
                 ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_eq(ovl_submit_shutdown(p, file, OVL_SHUT_RDWR, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EBADF, "shutdown on a file: %s os %d",
                 ovl_strerror((int32_t)x.result), x.os_error);
    close(fd);
    /* A closed socket. */
    SOCKET gone = tcp_socket(AF_INET);
    closesocket(gone);
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)gone, &a, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EBADF, "connect on a closed socket: %s os %d",
                 ovl_strerror((int32_t)x.result), x.os_error);
    /* An address of a family the socket is not: an error, not a crash. */
    ovl_addr six = loopback(AF_INET6, 9);
    SOCKET s4 = tcp_socket(AF_INET);
    assoc_s(p, s4);
    cr_assert_eq(ovl_submit_connect(p, (ovl_fd)s4, &six, NULL, &id), OVL_OK);
    x = wait_id(&r, id);
    cr_assert_lt(x.result, 0);
    cr_log_info("IPv4 socket to an IPv6 address: %s (os %d)", ovl_strerror((int32_t)x.result),
                x.os_error);
    close_clean(p, &r);
    closesocket(sock);
    closesocket(s4);
}
