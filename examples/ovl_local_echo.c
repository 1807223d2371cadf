/* ovl_local_echo - a local echo service and its clients through one port:
 * a named pipe on Windows, a Unix socket elsewhere, the same source.
 *
 *   ovl_local_echo [-n CLIENTS] [-r ROUNDS] [-b BYTES] [NAME]
 *
 * The service listens on NAME (default "ovl-local-echo-PID": the pipe
 * \\.\pipe\NAME on Windows, /tmp/ovl-NAME.sock on POSIX) and keeps 16
 * accepts in flight; each connection it gets is read and written back until
 * end of file. CLIENTS clients (default 64) dial it at once; each sends
 * ROUNDS chunks of BYTES bytes (default 16 x 4096) of its own pattern and
 * checks every byte that comes back. Everything runs in the port's
 * callback: every completion submits the next step. Exit status 0 if every
 * byte came back right, 1 otherwise, 77 if the backend has no local
 * endpoints. */
#include "ex_util.h"

#include <ovl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROLE_ACCEPT = 1, ROLE_SERVER, ROLE_CLIENT };
#define ACCEPTS 16
#define MAX_CLIENTS 4096

typedef struct conn {
    int role;
    int id;
    ovl_fd fd;
    uint32_t round;
    size_t off; /* bytes of this step done */
    size_t len; /* bytes of this step */
    uint8_t *out, *in;
} conn;

static struct {
    ovl_port *port;
    ovl_local *listener;
    const char *name;
    int clients, rounds;
    size_t bytes;
    conn accept_token;
    conn *cli, *srv;
    int accepted, accepts_submitted, clients_done, servers_done, failures;
    uint64_t echoed;
    ex_latch done;
    int finished;
} g;

static uint8_t pattern(int client, uint32_t round, size_t i)
{
    uint64_t x = ((uint64_t)client << 40) ^ ((uint64_t)round << 24) ^ i;
    x *= 0x9e3779b97f4a7c15ull;
    return (uint8_t)(x >> 56);
}

static void check_done(void)
{
    if (!g.finished && g.clients_done == g.clients && g.servers_done == g.clients) {
        g.finished = 1;
        ex_latch_open(&g.done);
    }
}

static void fail(conn *c, const char *what, int64_t rc, int32_t os)
{
    fprintf(stderr, "ovl_local_echo: %s %d: %s: %s (os error %d)\n",
            c->role == ROLE_CLIENT ? "client" : "server", c->id, what, ovl_error_name((int32_t)rc),
            (int)os);
    g.failures++;
}

static void submit_or_fail(conn *c, int32_t rc, const char *what)
{
    if (rc == OVL_OK) return;
    fail(c, what, rc, 0);
    if (c->role == ROLE_CLIENT) g.clients_done++;
    else g.servers_done++;
    check_done();
}

static void accept_more(void)
{
    while (g.accepts_submitted < g.clients && g.accepts_submitted - g.accepted < ACCEPTS) {
        int32_t rc = ovl_submit_local_accept(g.listener, &g.accept_token, NULL);
        if (rc != OVL_OK) {
            fprintf(stderr, "ovl_local_echo: accept: %s\n", ovl_error_name(rc));
            g.failures++;
            g.servers_done = g.clients; /* nobody will serve the rest */
            check_done();
            return;
        }
        g.accepts_submitted++;
    }
}

/* A client's next chunk: its pattern for this round, written whole. */
static void client_send(conn *c)
{
    for (size_t i = 0; i < g.bytes; i++) c->out[i] = pattern(c->id, c->round, i);
    c->off = 0;
    c->len = g.bytes;
    submit_or_fail(c, ovl_submit_write(g.port, c->fd, c->out, c->len, OVL_OFFSET_CURRENT, c, NULL),
                   "write");
}

static void on_client(conn *c, const ovl_completion *x)
{
    if (x->result < 0) {
        fail(c,
             x->op == OVL_OP_LOCAL_DIAL ? "dial"
             : x->op == OVL_OP_READ     ? "read"
                                        : "write",
             x->result, x->os_error);
        if (x->op != OVL_OP_LOCAL_DIAL) ex_close(c->fd);
        g.clients_done++;
        return;
    }
    switch (x->op) {
    case OVL_OP_LOCAL_DIAL:
        c->fd = (ovl_fd)x->result;
        client_send(c);
        return;
    case OVL_OP_WRITE:
        c->off += (size_t)x->result;
        if (c->off < c->len) {
            submit_or_fail(c,
                           ovl_submit_write(g.port, c->fd, c->out + c->off, c->len - c->off,
                                            OVL_OFFSET_CURRENT, c, NULL),
                           "write");
            return;
        }
        c->off = 0; /* now the echo */
        submit_or_fail(
            c, ovl_submit_read(g.port, c->fd, c->in, g.bytes, OVL_OFFSET_CURRENT, c, NULL), "read");
        return;
    case OVL_OP_READ:
        if (x->result == 0) {
            fail(c, "read (early end of file)", 0, 0);
            ex_close(c->fd);
            g.clients_done++;
            return;
        }
        c->off += (size_t)x->result;
        if (c->off < g.bytes) {
            submit_or_fail(c,
                           ovl_submit_read(g.port, c->fd, c->in + c->off, g.bytes - c->off,
                                           OVL_OFFSET_CURRENT, c, NULL),
                           "read");
            return;
        }
        if (memcmp(c->in, c->out, g.bytes) != 0) {
            fail(c, "echo differs", 0, 0);
            ex_close(c->fd);
            g.clients_done++;
            return;
        }
        g.echoed += g.bytes;
        if (++c->round < (uint32_t)g.rounds) {
            client_send(c);
            return;
        }
        ex_close(c->fd); /* the service reads end of file */
        g.clients_done++;
        return;
    }
}

static void on_server(conn *s, const ovl_completion *x)
{
    if (x->op == OVL_OP_READ && x->result > 0) {
        s->len = (size_t)x->result;
        s->off = 0;
        submit_or_fail(s,
                       ovl_submit_write(g.port, s->fd, s->in, s->len, OVL_OFFSET_CURRENT, s, NULL),
                       "write");
        return;
    }
    if (x->op == OVL_OP_WRITE && x->result > 0) {
        s->off += (size_t)x->result;
        if (s->off < s->len)
            submit_or_fail(s,
                           ovl_submit_write(g.port, s->fd, s->in + s->off, s->len - s->off,
                                            OVL_OFFSET_CURRENT, s, NULL),
                           "write");
        else
            submit_or_fail(
                s, ovl_submit_read(g.port, s->fd, s->in, g.bytes, OVL_OFFSET_CURRENT, s, NULL),
                "read");
        return;
    }
    /* End of file (the client is done), or an error: this one is over. */
    if (x->result < 0) fail(s, x->op == OVL_OP_READ ? "read" : "write", x->result, x->os_error);
    ex_close(s->fd);
    g.servers_done++;
}

static void on_accept(const ovl_completion *x)
{
    if (x->result < 0) {
        if (x->result != OVL_ECANCELED) {
            fprintf(stderr, "ovl_local_echo: accept: %s (os error %d)\n",
                    ovl_error_name((int32_t)x->result), (int)x->os_error);
            g.failures++;
            g.servers_done++;
        }
        return;
    }
    conn *s = &g.srv[g.accepted++];
    s->fd = (ovl_fd)x->result;
    submit_or_fail(s, ovl_submit_read(g.port, s->fd, s->in, g.bytes, OVL_OFFSET_CURRENT, s, NULL),
                   "read");
    accept_more();
}

static void on_batch(const ovl_completion *items, size_t n, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < n; i++) {
        conn *c = items[i].ctx;
        if (c->role == ROLE_ACCEPT) on_accept(&items[i]);
        else if (c->role == ROLE_SERVER) on_server(c, &items[i]);
        else on_client(c, &items[i]);
    }
    check_done();
}

static void usage(void)
{
    fprintf(stderr, "usage: ovl_local_echo [-n CLIENTS] [-r ROUNDS] [-b BYTES] [NAME]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    g.clients = 64;
    g.rounds = 16;
    g.bytes = 4096;
    static char defname[64];
    snprintf(defname, sizeof defname, "ovl-local-echo-%lu", ex_pid());
    g.name = defname;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) g.clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) g.rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) g.bytes = (size_t)ex_parse_size(argv[++i]);
        else if (argv[i][0] == '-') usage();
        else g.name = argv[i];
    }
    if (g.clients < 1 || g.clients > MAX_CLIENTS || g.rounds < 1 || g.bytes < 1 ||
        g.bytes > (64u << 20))
        usage();

    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = (uint32_t)(4 * g.clients + ACCEPTS + 16);
    cfg.callback = on_batch;
    int32_t rc = ovl_create_port(&cfg, &g.port);
    if (rc == OVL_EUNAVAIL) {
        fprintf(stderr, "ovl_local_echo: backend not available: %s\n", ovl_strerror(rc));
        return EX_EXIT_SKIP;
    }
    if (rc != OVL_OK) {
        fprintf(stderr, "ovl_local_echo: ovl_create_port: %s\n", ovl_strerror(rc));
        return 1;
    }
    ex_print_backend("ovl_local_echo", g.port);
    rc = ovl_local_listen(g.port, g.name, NULL, &g.listener);
    if (rc == OVL_ENOTSUP) {
        fprintf(stderr, "ovl_local_echo: no local endpoints on this backend\n");
        ovl_close_port(g.port);
        return EX_EXIT_SKIP;
    }
    if (rc != OVL_OK) {
        fprintf(stderr, "ovl_local_echo: listen on %s: %s\n", g.name, ovl_error_name(rc));
        ovl_close_port(g.port);
        return 1;
    }
    g.accept_token.role = ROLE_ACCEPT;
    g.cli = calloc((size_t)g.clients, sizeof *g.cli);
    g.srv = calloc((size_t)g.clients, sizeof *g.srv);
    uint8_t *mem = malloc((size_t)g.clients * 3u * g.bytes);
    if (!g.cli || !g.srv || !mem) {
        fprintf(stderr, "ovl_local_echo: out of memory\n");
        return 1;
    }
    ex_latch_init(&g.done);
    for (int i = 0; i < g.clients; i++) {
        g.cli[i].role = ROLE_CLIENT;
        g.cli[i].id = i;
        g.cli[i].out = mem + (size_t)i * 3u * g.bytes;
        g.cli[i].in = g.cli[i].out + g.bytes;
        g.srv[i].role = ROLE_SERVER;
        g.srv[i].id = i;
        g.srv[i].in = g.cli[i].in + g.bytes;
    }
    double t0 = ex_now();
    /* The callback runs on the port's thread from the first completion
     * on: submit everything as one batch so that it sees a consistent
     * count. */
    ovl_request *reqs = calloc((size_t)g.clients + ACCEPTS, sizeof *reqs);
    size_t nr = 0;
    for (; nr < ACCEPTS && (int)nr < g.clients; nr++) {
        reqs[nr].op = OVL_OP_LOCAL_ACCEPT;
        reqs[nr].buf = g.listener;
        reqs[nr].ctx = &g.accept_token;
    }
    g.accepts_submitted = (int)nr;
    for (int i = 0; i < g.clients; i++, nr++) {
        reqs[nr].op = OVL_OP_LOCAL_DIAL;
        reqs[nr].buf = (void *)g.name;
        reqs[nr].timeout_ns = 30ll * 1000000000ll; /* a busy endpoint: retry this long */
        reqs[nr].ctx = &g.cli[i];
    }
    size_t done = 0;
    rc = ovl_submit(g.port, reqs, nr, &done);
    free(reqs);
    if (rc != OVL_OK) {
        fprintf(stderr, "ovl_local_echo: submit: %s (%zu of %zu)\n", ovl_error_name(rc), done, nr);
        return 1;
    }
    ex_latch_wait(&g.done);
    double dt = ex_now() - t0;
    ovl_local_close(g.listener); /* accepts left in flight complete cancelled */
    ovl_close_port(g.port);
    uint64_t expect = (uint64_t)g.clients * (uint64_t)g.rounds * g.bytes;
    printf("ovl_local_echo: %d clients, %s, %.1f MiB echoed and checked in %.3f s (%.1f MiB/s)\n",
           g.clients, g.name, ex_mib(g.echoed), dt, ex_mib(g.echoed) / (dt > 0 ? dt : 1e-9));
    ex_latch_destroy(&g.done);
    free(mem);
    free(g.cli);
    free(g.srv);
    if (g.failures || g.echoed != expect) {
        printf("ovl_local_echo: FAILED: %d failures, %llu of %llu bytes\n", g.failures,
               (unsigned long long)g.echoed, (unsigned long long)expect);
        return 1;
    }
    return 0;
}
