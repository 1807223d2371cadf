/* test_close_rules.c - who may close or poll a port, and when close
 * returns: handles that outlive their port, op ids that belong to one port,
 * callbacks that close or poll other ports (nested on one thread, or
 * crosswise on two), and a second close racing the first. Every case runs
 * in each delivery mode: the port's completion thread, OVL_PORT_MANUAL
 * (a driver thread polls), and submits through ovl_submit_and_poll on a
 * port with a completion thread ("sap"). */
#include "common.h"

#ifdef __linux__
#  include <sys/syscall.h>
#endif

static const uint32_t modes[] = {0, OVL_PORT_MANUAL, TEST_SAP};
#define NMODES (sizeof modes / sizeof modes[0])

static const char *mode_name(uint32_t m)
{
    return m == OVL_PORT_MANUAL ? "manual" : m == TEST_SAP ? "sap" : "thread";
}

static ovl_port *raw_port(uint32_t flags, ovl_callback cb, void *ud)
{
    ovl_port_config cfg;
    cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
    cfg.queue_depth = 16;
    cfg.flags = flags;
    cfg.callback = cb;
    cfg.userdata = ud;
    ovl_port *p = NULL;
    int32_t rc = t_create_port(&cfg, &p);
    if (rc == OVL_EUNAVAIL) cr_skip_test("backend %s not available", test_backend());
    cr_assert_eq(rc, OVL_OK, "create: %s", ovl_strerror(rc));
    return p;
}

static uint64_t ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t ms = (int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
    return ms < 0 ? 0 : (uint64_t)ms;
}

/* Spin (politely) until *flag reaches want; fail the test if it never does. */
static void await_int(atomic_int *flag, int want, const char *what)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(flag) < want) {
        cr_assert_lt(ms_since(&t0), (uint64_t)WAIT_LIMIT_MS, "never happened: %s", what);
        usleep(200);
    }
}

/* ---- a gate a callback can be held at ------------------------------------ */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_pass(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* ---- a thread that gets a port's first completions going ----------------
 * Posts n completions with one batch submit (on a "sap" port the callback
 * may run inside that call, on this thread), then, on a manual port, polls
 * until the port is closed (the callbacks then run here). */
typedef struct starter {
    pthread_t th;
    ovl_port *p;
    uint32_t flags;
    int n;
} starter;

static void *starter_main(void *arg)
{
    starter *s = arg;
    ovl_request req[16];
    memset(req, 0, sizeof req);
    for (int i = 0; i < s->n; i++) {
        req[i].op = OVL_OP_POST;
        req[i].offset = i;
    }
    size_t done = 0;
    int32_t rc = t_submit_batch(s->p, req, (size_t)s->n, &done);
    if (rc != OVL_OK || done != (size_t)s->n) return (void *)1;
    if (s->flags & OVL_PORT_MANUAL)
        while (ovl_poll(s->p, 50) >= 0) {
        }
    return NULL;
}

static void starter_run(starter *s, ovl_port *p, uint32_t flags, int n)
{
    s->p = p;
    s->flags = flags;
    s->n = n;
    cr_assert_eq(pthread_create(&s->th, NULL, starter_main, s), 0);
}

static void starter_join(starter *s)
{
    void *ret;
    pthread_join(s->th, &ret);
    cr_assert_null(ret, "the starter's submit failed");
}

/* ---- handles -------------------------------------------------------------- */

/* A handle whose port is closed stays safe to pass, also after the library
 * has given its slot to newer ports: every call says OVL_ECLOSED and none
 * reaches the port that lives there now. */
Test(close_rules, stale_handle_never_reaches_a_newer_port)
{
    ovl_port *old = raw_port(OVL_PORT_MANUAL, NULL, NULL);
    cr_assert_eq(ovl_close_port(old), OVL_OK);
    for (int i = 0; i < 200; i++) {
        ovl_port *x = raw_port(OVL_PORT_MANUAL, NULL, NULL);
        cr_assert_neq(x, old, "a new port never gets an old handle");
        uint64_t xid;
        cr_assert_eq(t_post(x, 5, NULL, &xid), OVL_OK);
        cr_assert_eq(t_post(old, 1, NULL, NULL), OVL_ECLOSED);
        cr_assert_eq(ovl_cancel(old, xid), OVL_ECLOSED);
        cr_assert_eq(ovl_poll(old, 0), OVL_ECLOSED);
        cr_assert_eq(ovl_set_callback(old, NULL, NULL), OVL_ECLOSED);
        cr_assert_eq(ovl_close_port(old), OVL_ECLOSED);
        ovl_stats s = {.size = sizeof s};
        cr_assert_eq(ovl_port_stats(x, &s), OVL_OK);
        cr_assert_eq(s.submitted, 1u, "only x's own post");
        cr_assert_eq(s.cancels, 0u);
        cr_assert_eq(ovl_poll(x, -1), 1);
        cr_assert_eq(ovl_close_port(x), OVL_OK);
    }
    /* Values that never were handles: refused, never dereferenced. */
    int local;
    cr_assert_eq(t_post((ovl_port *)&local, 1, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(ovl_close_port((ovl_port *)(uintptr_t)0x1234), OVL_EINVAL);
    cr_assert_eq(ovl_poll((ovl_port *)(~(uintptr_t)0), 0), OVL_EINVAL);
    cr_assert_str_eq(ovl_backend_name((ovl_port *)&local), "invalid");
}

/* ---- op ids belong to their port ------------------------------------------ */

/* The first op of every port used to have the same id. Ids are minted by
 * the core, whatever the mode; the parked-read form of this test, in every
 * mode, is below (POSIX). */
Test(close_rules, another_ports_id_is_unknown)
{
    rec ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    ovl_port *a = open_port(&ra, 8, OVL_PORT_MANUAL);
    ovl_port *b = open_port(&rb, 8, OVL_PORT_MANUAL);
    uint64_t ida, idb;
    cr_assert_eq(t_post(a, 1, NULL, &ida), OVL_OK);
    cr_assert_eq(t_post(b, 2, NULL, &idb), OVL_OK);
    cr_assert_neq(ida, idb, "the first ops of two ports share an id");
    cr_assert_eq(ovl_cancel(b, ida), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(a, idb), OVL_ENOENT);
    ovl_stats s = {.size = sizeof s};
    cr_assert_eq(ovl_port_stats(b, &s), OVL_OK);
    cr_assert_eq(s.cancels, 0u, "a foreign id touched nothing");
    cr_assert_eq(ovl_cancel(a, ida), OVL_OK, "the owner's id still works");
    cr_assert_eq(ovl_poll(a, -1), 1);
    cr_assert_eq(ovl_poll(b, -1), 1);
    cr_assert_eq(rec_one(&rb, idb).result, 2, "b's post intact");
    close_clean(a, &ra);
    close_clean(b, &rb);
}

/* ---- nested: a callback that polls another port, whose callback closes or
 * polls the first ------------------------------------------------------------ */

typedef struct nest {
    ovl_port *a, *b;
    atomic_int a_done;      /* A's first callback has finished */
    int32_t rc_poll_b;      /* ovl_poll(B, 0) inside A's callback */
    int32_t rc_close_a;     /* ovl_close_port(A) inside B's callback */
    int32_t rc_poll_a;      /* ovl_poll(A, 0) inside B's callback */
    int32_t rc_poll_a_wait; /* ovl_poll(A, 10) inside B's callback */
    atomic_int b_calls;
} nest;

static void nest_b_cb(const ovl_completion *it, size_t n, void *ud)
{
    (void)it;
    (void)n;
    nest *s = ud;
    if (atomic_fetch_add(&s->b_calls, 1) != 0) return;
    s->rc_close_a = ovl_close_port(s->a);
    s->rc_poll_a = ovl_poll(s->a, 0);
    s->rc_poll_a_wait = ovl_poll(s->a, 10);
}

static void nest_a_cb(const ovl_completion *it, size_t n, void *ud)
{
    (void)it;
    (void)n;
    nest *s = ud;
    if (atomic_load(&s->a_done)) return;
    s->rc_poll_b = ovl_poll(s->b, 0);
    atomic_store(&s->a_done, 1);
}

Test(close_rules, nested_close_or_poll_of_a_port_on_the_stack_is_edeadlk)
{
    for (size_t m = 0; m < NMODES; m++) {
        nest s;
        memset(&s, 0, sizeof s);
        s.a = raw_port(modes[m], nest_a_cb, &s);
        s.b = raw_port(OVL_PORT_MANUAL, nest_b_cb, &s);
        cr_assert_eq(t_post(s.b, 1, NULL, NULL), OVL_OK); /* ready for A's poll */
        starter st;
        starter_run(&st, s.a, modes[m], 1);
        await_int(&s.a_done, 1, "A's callback");
        const char *mn = mode_name(modes[m]);
        cr_assert_eq(s.rc_poll_b, 1, "%s: A's callback delivered B's post", mn);
        cr_assert_eq(s.rc_close_a, OVL_EDEADLK, "%s: close of A under A's callback", mn);
        cr_assert_eq(s.rc_poll_a, OVL_EDEADLK, "%s: poll of A under A's callback", mn);
        cr_assert_eq(s.rc_poll_a_wait, OVL_EDEADLK, "%s: waiting poll of A", mn);
        /* A is still open and works. */
        uint64_t id;
        cr_assert_eq(t_post(s.a, 9, NULL, &id), OVL_OK, "%s: A was left open", mn);
        cr_assert_eq(ovl_close_port(s.a), OVL_OK);
        starter_join(&st);
        cr_assert_eq(ovl_close_port(s.b), OVL_OK);
    }
}

/* ---- crosswise: A's callback closes B while B's closes A ------------------- */

typedef struct cross {
    ovl_port *a, *b;
    atomic_int arrived;
    atomic_int first_a, first_b;
    int32_t rc_a, rc_b; /* A's callback's close(B), B's callback's close(A) */
    atomic_int finished;
} cross;

static void cross_meet(cross *s)
{
    atomic_fetch_add(&s->arrived, 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&s->arrived) < 2 && ms_since(&t0) < (uint64_t)WAIT_LIMIT_MS) usleep(100);
}

static void cross_a_cb(const ovl_completion *it, size_t n, void *ud)
{
    (void)it;
    (void)n;
    cross *s = ud;
    if (atomic_fetch_add(&s->first_a, 1) != 0) return;
    cross_meet(s);
    s->rc_a = ovl_close_port(s->b);
    atomic_fetch_add(&s->finished, 1);
}

static void cross_b_cb(const ovl_completion *it, size_t n, void *ud)
{
    (void)it;
    (void)n;
    cross *s = ud;
    if (atomic_fetch_add(&s->first_b, 1) != 0) return;
    cross_meet(s);
    s->rc_b = ovl_close_port(s->a);
    atomic_fetch_add(&s->finished, 1);
}

Test(close_rules, ports_closing_each_other_from_callbacks_never_hang)
{
    for (size_t m = 0; m < NMODES; m++) {
        for (int round = 0; round < 5; round++) {
            cross s;
            memset(&s, 0, sizeof s);
            s.a = raw_port(modes[m], cross_a_cb, &s);
            s.b = raw_port(modes[m], cross_b_cb, &s);
            starter sa, sb;
            starter_run(&sa, s.a, modes[m], 1);
            starter_run(&sb, s.b, modes[m], 1);
            await_int(&s.finished, 2, "both callbacks' closes returned");
            const char *mn = mode_name(modes[m]);
            bool a_won = s.rc_a == OVL_OK && s.rc_b == OVL_EDEADLK;
            bool b_won = s.rc_b == OVL_OK && s.rc_a == OVL_EDEADLK;
            cr_assert(a_won || b_won, "%s: close(B) from A: %s, close(A) from B: %s", mn,
                      ovl_error_name(s.rc_a), ovl_error_name(s.rc_b));
            /* The survivor closes normally; the other is closed. */
            ovl_port *left = a_won ? s.a : s.b;
            ovl_port *gone = a_won ? s.b : s.a;
            cr_assert_eq(t_post(gone, 1, NULL, NULL), OVL_ECLOSED);
            cr_assert_eq(ovl_close_port(left), OVL_OK, "%s", mn);
            starter_join(&sa);
            starter_join(&sb);
        }
    }
}

/* ---- a second close while the first is under way -------------------------- */

typedef struct slow {
    gate g;
    atomic_int entered;
    atomic_int delivered;
    atomic_int running;
} slow;

static void slow_cb(const ovl_completion *it, size_t n, void *ud)
{
    (void)it;
    slow *s = ud;
    atomic_fetch_add(&s->running, 1);
    atomic_store(&s->entered, 1);
    gate_pass(&s->g);
    atomic_fetch_add(&s->delivered, (int)n);
    atomic_fetch_sub(&s->running, 1);
}

typedef struct closer {
    pthread_t th;
    ovl_port *p;
    slow *s;
    int32_t rc;
    int delivered_at_return;
    int running_at_return;
    atomic_int tid;
    atomic_int returned;
} closer;

static void *closer_main(void *arg)
{
    closer *c = arg;
#ifdef __linux__
    atomic_store(&c->tid, (int)syscall(SYS_gettid));
#endif
    c->rc = ovl_close_port(c->p);
    c->delivered_at_return = atomic_load(&c->s->delivered);
    c->running_at_return = atomic_load(&c->s->running);
    atomic_store(&c->returned, 1);
    return NULL;
}

/* Until thread `tid` sleeps in the kernel (blocked, not merely slow) or
 * has returned. Elsewhere than Linux: no wait (the test loses power, it
 * cannot fail wrongly). */
static void await_blocked(closer *c)
{
#ifdef __linux__
    while (atomic_load(&c->tid) == 0) usleep(100);
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", atomic_load(&c->tid));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load(&c->returned) && ms_since(&t0) < (uint64_t)WAIT_LIMIT_MS) {
        FILE *f = fopen(path, "r");
        if (!f) break;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        const char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ' && rp[2] == 'S') return;
        usleep(200);
    }
#else
    (void)c;
#endif
}

Test(close_rules, second_close_returns_only_after_the_callbacks)
{
    for (size_t m = 0; m < NMODES; m++) {
        slow s;
        memset(&s, 0, sizeof s);
        gate_init(&s.g);
        ovl_port *p = raw_port(modes[m], slow_cb, &s);
        starter st;
        starter_run(&st, p, modes[m], 8);
        await_int(&s.entered, 1, "the first callback");
        closer c1 = {.p = p, .s = &s}, c2 = {.p = p, .s = &s};
        cr_assert_eq(pthread_create(&c1.th, NULL, closer_main, &c1), 0);
        /* Until the first close has begun (cancel then says ECLOSED). */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (ovl_cancel(p, 1) != OVL_ECLOSED) {
            cr_assert_lt(ms_since(&t0), (uint64_t)WAIT_LIMIT_MS, "close never began");
            usleep(100);
        }
        cr_assert_eq(pthread_create(&c2.th, NULL, closer_main, &c2), 0);
        await_blocked(&c2);
        gate_open(&s.g);
        pthread_join(c1.th, NULL);
        pthread_join(c2.th, NULL);
        starter_join(&st);
        const char *mn = mode_name(modes[m]);
        cr_assert_eq(c1.rc, OVL_OK, "%s", mn);
        cr_assert_eq(c2.rc, OVL_ECLOSED, "%s", mn);
        cr_assert_eq(c2.delivered_at_return, 8,
                     "%s: the second close returned with "
                     "completions still to deliver",
                     mn);
        cr_assert_eq(c2.running_at_return, 0, "%s: ... or with a callback running", mn);
        cr_assert_eq(c1.delivered_at_return, 8, "%s", mn);
    }
}

#ifndef _WIN32
/* Until r has n completions: on a manual port this thread delivers them. */
static void drive(ovl_port *p, uint32_t flags, rec *r, size_t n)
{
    if (!(flags & OVL_PORT_MANUAL)) {
        rec_wait(r, n);
        return;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rec_count(r) < n) {
        cr_assert_geq(ovl_poll(p, 100), 0);
        cr_assert_lt(ms_since(&t0), (uint64_t)WAIT_LIMIT_MS, "completions never came");
    }
}

/* The defect as users met it: cancelling port A's parked read through port
 * B cancelled B's own parked read (the same id). */
Test(close_rules, another_ports_id_never_cancels_a_parked_read)
{
    for (size_t m = 0; m < NMODES; m++) {
        rec ra, rb;
        rec_init(&ra);
        rec_init(&rb);
        ovl_port *a = open_port(&ra, 8, modes[m]);
        ovl_port *b = open_port(&rb, 8, modes[m]);
        int pa[2], pb[2];
        cr_assert_eq(pipe(pa), 0);
        cr_assert_eq(pipe(pb), 0);
        char ba[4], bb[4];
        uint64_t ida, idb;
        cr_assert_eq(t_submit_read(a, (ovl_fd)pa[0], ba, sizeof ba, OVL_OFFSET_CURRENT, NULL, &ida),
                     OVL_OK);
        cr_assert_eq(t_submit_read(b, (ovl_fd)pb[0], bb, sizeof bb, OVL_OFFSET_CURRENT, NULL, &idb),
                     OVL_OK);
        cr_assert_eq(ovl_cancel(b, ida), OVL_ENOENT, "%s", mode_name(modes[m]));
        cr_assert_eq(write(pb[1], "xy", 2), 2);
        drive(b, modes[m], &rb, 1);
        cr_assert_eq(rec_one(&rb, idb).result, 2, "%s: b's read was not cancelled",
                     mode_name(modes[m]));
        cr_assert_eq(ovl_cancel(a, ida), OVL_OK);
        drive(a, modes[m], &ra, 1);
        cr_assert_eq(rec_one(&ra, ida).result, OVL_ECANCELED);
        close_clean(a, &ra);
        close_clean(b, &rb);
        for (int i = 0; i < 2; i++) {
            close(pa[i]);
            close(pb[i]);
        }
    }
}

#  include <arpa/inet.h>
#  include <dirent.h>
#  include <netinet/in.h>
#  include <sys/socket.h>

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* A port without a callback discards its completions; a connection it
 * accepted must then be closed, not leaked with its fd open. */
Test(close_rules, accepted_connection_with_no_callback_is_closed)
{
    for (size_t m = 0; m < NMODES; m++) {
        int base = open_fds();
        ovl_port *p = raw_port(modes[m], NULL, NULL);
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(l, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
        cr_assert_eq(listen(l, 8), 0);
        cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
        int32_t rc = t_submit_accept(p, (ovl_fd)l, NULL, NULL, NULL);
        if (rc == OVL_ENOTSUP) {
            close(l);
            cr_assert_eq(ovl_close_port(p), OVL_OK);
            continue; /* a backend without connection ops yet */
        }
        cr_assert_eq(rc, OVL_OK);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(c, 0);
        cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            ovl_stats s = {.size = sizeof s};
            cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
            if (s.completed == 1) break;
            if (modes[m] & OVL_PORT_MANUAL) (void)ovl_poll(p, 10);
            else usleep(200);
            cr_assert_lt(ms_since(&t0), (uint64_t)WAIT_LIMIT_MS, "the accept never completed");
        }
        /* Close returns once no delivery can run: the port's own fds are
         * gone then, and only the listener and the client stay. */
        cr_assert_eq(ovl_close_port(p), OVL_OK);
        cr_assert_eq(open_fds(), base + 2, "%s: the accepted fd was left open",
                     mode_name(modes[m]));
        close(c);
        close(l);
    }
}
#endif
