/* Signals: the library neither dies of them nor disturbs them.
 *
 *  - A write to a pipe without readers or to a socket whose peer is gone
 *    completes with OVL_EPIPE (or OVL_ECONNRESET) on every backend and in
 *    every delivery mode, with SIGPIPE at its default disposition, and the
 *    process lives on. Each case runs in a forked child, so a SIGPIPE that
 *    got through kills the child, not the runner, and shows as a failure.
 *  - The caller's signal state (SIGPIPE's disposition, the thread's mask, a
 *    SIGPIPE already pending) is as it was after the write.
 *  - ovl_poll(p, timeout) returns at its timeout however many signals
 *    interrupt the wait, and never returns OVL_EINTR.
 *
 * The io_uring cases run twice: as this kernel allows (RWF_NOSIGNAL, Linux
 * 6.18+) and with OVL_URING_NO_RWF_NOSIGNAL=1, the path taken on kernels
 * before 6.18 (see docs/DESIGN.md, "SIGPIPE"). */
#include "common.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- children ------------------------------------------------------------ */

/* In a child: report and exit(1). (Criterion's assertions belong to the
 * test process, not to its children.) */
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      _exit(1);                                                                                    \
    }                                                                                              \
  } while (0)

#define CHILD_SKIP 77

/* Run fn(arg) in a forked child with SIGPIPE at its default disposition and
 * nothing blocked, as a host that never heard of SIGPIPE has it. The child
 * must exit normally with 0; an alarm turns a hang into a failure. */
static void in_child(const char *what, int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        alarm(WAIT_LIMIT_MS / 1000); /* hang detector, never a timing check */
        _exit(fn(arg));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) cr_assert_eq(errno, EINTR);
    if (WIFSIGNALED(st))
        cr_assert_fail("%s: the child was killed by signal %d (%s)", what, WTERMSIG(st),
                       strsignal(WTERMSIG(st)));
    cr_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == CHILD_SKIP)
        cr_skip_test("backend %s not available on this host", test_backend());
    cr_assert_eq(WEXITSTATUS(st), 0, "%s: the child failed (its message is above)", what);
}

/* A collector for children: completions by id, under a lock. */
typedef struct crec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ovl_completion items[16];
    size_t n;
    ovl_port *p;
    /* submit-from-callback: a completion whose ctx is &req submits req */
    ovl_request req;
    int32_t req_rc;
} crec;

static void crec_cb(const ovl_completion *items, size_t n, void *ud)
{
    crec *r = ud;
    for (size_t i = 0; i < n; i++) {
        if (items[i].ctx == &r->req) {
            size_t done = 0;
            r->req_rc = t_submit_batch(r->p, &r->req, 1, &done);
        }
        pthread_mutex_lock(&r->mu);
        if (r->n < sizeof r->items / sizeof r->items[0]) r->items[r->n++] = items[i];
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
}

static size_t crec_count(crec *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait for n completions: ovl_poll on a manual port, else the callback. */
static void crec_wait(crec *r, size_t n, bool manual)
{
    if (manual) {
        while (crec_count(r) < n) {
            int32_t rc = ovl_poll(r->p, 1000);
            CHECK(rc >= 0, "ovl_poll: %s", ovl_error_name(rc));
        }
        return;
    }
    pthread_mutex_lock(&r->mu);
    while (r->n < n) pthread_cond_wait(&r->cv, &r->mu); /* alarm() bounds it */
    pthread_mutex_unlock(&r->mu);
}

/* The one completion of id (exactly one). */
static ovl_completion crec_one(crec *r, uint64_t id)
{
    ovl_completion c;
    int count = 0;
    memset(&c, 0, sizeof c);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id) {
            c = r->items[i];
            count++;
        }
    pthread_mutex_unlock(&r->mu);
    CHECK(count == 1, "op %llx completed %d times", (unsigned long long)id, count);
    return c;
}

static ovl_port *child_port(crec *r, uint32_t flags)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = 16;
    cfg.flags = flags;
    cfg.callback = crec_cb;
    cfg.userdata = r;
    ovl_port *p = NULL;
    int32_t rc = t_create_port(&cfg, &p);
    if (rc == OVL_EUNAVAIL) _exit(CHILD_SKIP);
    CHECK(rc == OVL_OK, "ovl_create_port: %s", ovl_error_name(rc));
    r->p = p;
    return p;
}

/* Close, then: nothing in flight, every op delivered once, nothing stale. */
static void child_close(crec *r)
{
    CHECK(ovl_close_port(r->p) == OVL_OK, "close");
    ovl_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    CHECK(ovl_port_stats(r->p, &s) == OVL_OK, "stats");
    CHECK(s.inflight == 0 && s.submitted == s.completed && s.stale == 0,
          "inflight %u submitted %llu completed %llu stale %llu", s.inflight,
          (unsigned long long)s.submitted, (unsigned long long)s.completed,
          (unsigned long long)s.stale);
    CHECK(crec_count(r) == s.completed, "callback saw %zu", crec_count(r));
}

/* ---- writes to a broken pipe or socket ------------------------------------ */

enum { STYLE_ONE, STYLE_BATCH, STYLE_CALLBACK, NSTYLES };
static const char *const style_name[] = {"ovl_submit_write", "ovl_submit batch",
                                         "submit from a callback"};
static const uint32_t modes[] = {0, TEST_SAP, OVL_PORT_MANUAL};
static const char *const mode_name[] = {"completion thread", "ovl_submit_and_poll",
                                        "OVL_PORT_MANUAL"};

typedef struct wcase {
    bool sock;    /* socketpair, else a pipe */
    bool waiting; /* the peer leaves while the write waits for room */
    uint32_t flags;
    int style;
    bool compat; /* OVL_URING_NO_RWF_NOSIGNAL=1: the pre-6.18 path */
} wcase;

static char payload[1 << 20];

/* Fill fd's buffer (pipe or socket) until a write would block. */
static void fill(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl");
    while (write(fd, payload, 65536) > 0) {
    }
    CHECK(errno == EAGAIN, "filling: %s", strerror(errno));
    while (write(fd, payload, 1) > 0) {
    } /* the last bytes of a socket's room */
    CHECK(fcntl(fd, F_SETFL, fl) == 0, "fcntl");
}

/* The broken write of case c, submitted in c's style; returns its id after
 * it completed, having checked it is the only completion of its id. */
static ovl_completion broken_write(crec *r, const wcase *c, int fds[2])
{
    bool manual = c->flags & OVL_PORT_MANUAL;
    ovl_port *p = r->p;
    size_t len = c->waiting ? sizeof payload : 1;
    if (c->waiting) fill(fds[1]);
    else close(fds[0]);
    ovl_request w = {OVL_OP_WRITE, 0, (ovl_fd)fds[1], payload, len, OVL_OFFSET_CURRENT, NULL, 0, 0};
    size_t want, done = 0;
    uint64_t id = 0;
    if (c->style == STYLE_ONE) {
        CHECK(t_submit_write(p, (ovl_fd)fds[1], payload, len, OVL_OFFSET_CURRENT, NULL, &id) ==
                  OVL_OK,
              "submit");
        want = 1;
    } else if (c->style == STYLE_BATCH) {
        ovl_request q[2] = {{OVL_OP_POST, 0, 0, NULL, 0, 5, NULL, 0, 0}, w};
        CHECK(t_submit_batch(p, q, 2, &done) == OVL_OK && done == 2, "batch");
        id = q[1].id;
        want = 2;
    } else {
        r->req = w;
        r->req_rc = 1;
        CHECK(t_post(p, 5, &r->req, NULL) == OVL_OK, "post");
        crec_wait(r, 1, manual); /* the callback has submitted the write */
        CHECK(r->req_rc == OVL_OK, "submit from the callback: %d", r->req_rc);
        id = r->req.id;
        want = 2;
    }
    /* The write is in flight now (issued, or queued behind a full buffer);
     * the reader goes away under it. */
    if (c->waiting) close(fds[0]);
    crec_wait(r, want, manual);
    return crec_one(r, id);
}

static int broken_write_child(void *arg)
{
    const wcase *c = arg;
    if (c->compat) setenv("OVL_URING_NO_RWF_NOSIGNAL", "1", 1);
    crec r;
    child_port(&r, c->flags);
    int fds[2];
    if (c->sock) CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socketpair");
    else CHECK(pipe(fds) == 0, "pipe");
    ovl_completion w = broken_write(&r, c, fds);
    CHECK(w.result == OVL_EPIPE || (c->sock && w.result == OVL_ECONNRESET),
          "the write completed with %lld (%s)", (long long)w.result,
          w.result < 0 ? ovl_error_name((int32_t)w.result) : "bytes");
    child_close(&r);
    close(fds[1]);
    return 0;
}

/* Every delivery mode, every submit style, both io_uring paths. */
static void broken_writes(bool sock, bool waiting)
{
    for (size_t m = 0; m < 3; m++)
        for (int st = 0; st < NSTYLES; st++)
            for (int compat = 0; compat < 2; compat++) {
                wcase c = {sock, waiting, modes[m], st, compat};
                char what[160];
                snprintf(
                    what, sizeof what, "%s, peer closed %s, %s, %s%s", sock ? "socketpair" : "pipe",
                    waiting ? "while the write waits for room" : "before the submit", mode_name[m],
                    style_name[st], compat ? ", OVL_URING_NO_RWF_NOSIGNAL=1" : "");
                in_child(what, broken_write_child, &c);
            }
}

Test(signals, pipe_closed_before_the_write_is_epipe) { broken_writes(false, false); }
Test(signals, pipe_closed_while_the_write_waits_is_epipe) { broken_writes(false, true); }
Test(signals, socket_closed_before_the_write_is_epipe) { broken_writes(true, false); }
Test(signals, socket_closed_while_the_write_waits_is_epipe) { broken_writes(true, true); }

/* ---- the caller's signal state ----------------------------------------------
 * The caller blocks SIGPIPE and SIGUSR2, has a handler of its own for
 * SIGPIPE, and (when `pending`) a SIGPIPE of its own already pending. After
 * a broken write delivered on its own thread (manual mode, or
 * ovl_submit_and_poll),
 * or on the completion thread: the same mask, the same handler, and exactly
 * the SIGPIPE it had pending - that one, or none. */
typedef struct scase {
    wcase w;
    bool pending;
} scase;

static void on_sigpipe(int sig) { (void)sig; }

static int state_child(void *arg)
{
    const scase *sc = arg;
    const wcase *c = &sc->w;
    if (c->compat) setenv("OVL_URING_NO_RWF_NOSIGNAL", "1", 1);
    struct sigaction sa, now;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    CHECK(sigaction(SIGPIPE, &sa, NULL) == 0, "sigaction");
    CHECK(sigaction(SIGPIPE, NULL, &sa) == 0, "sigaction"); /* as libc reports it */
    sigset_t block, before, after, pend;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    sigaddset(&block, SIGUSR2);
    CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0, "mask");
    /* The port's threads inherit this mask: nothing of ours reaches them. */
    crec r;
    child_port(&r, c->flags);
    if (sc->pending) CHECK(pthread_kill(pthread_self(), SIGPIPE) == 0, "raise");
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &before) == 0, "mask");

    int fds[2];
    if (c->sock) CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socketpair");
    else CHECK(pipe(fds) == 0, "pipe");
    ovl_completion w = broken_write(&r, c, fds);
    CHECK(w.result == OVL_EPIPE || (c->sock && w.result == OVL_ECONNRESET),
          "the write completed with %lld", (long long)w.result);
    child_close(&r);
    close(fds[1]);

    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &after) == 0, "mask");
    for (int s = 1; s < SIGRTMIN; s++)
        CHECK(sigismember(&before, s) == sigismember(&after, s), "signal %d: mask changed", s);
    CHECK(sigaction(SIGPIPE, NULL, &now) == 0, "sigaction");
    CHECK(now.sa_handler == on_sigpipe && now.sa_flags == sa.sa_flags,
          "SIGPIPE's disposition changed");
    for (int s = 1; s < SIGRTMIN; s++)
        CHECK(sigismember(&now.sa_mask, s) == sigismember(&sa.sa_mask, s),
              "SIGPIPE's handler mask changed");
    sigpending(&pend);
    CHECK(sigismember(&pend, SIGPIPE) == (sc->pending ? 1 : 0), "SIGPIPE %s pending",
          sc->pending ? "no longer" : "left");
    /* Exactly the caller's one: take it, and nothing is left. */
    struct timespec zero = {0, 0};
    if (sc->pending) CHECK(sigtimedwait(&block, NULL, &zero) == SIGPIPE, "take it");
    CHECK(sigtimedwait(&block, NULL, &zero) < 0 && errno == EAGAIN, "a second SIGPIPE");
    return 0;
}

static void signal_state(bool sock)
{
    for (size_t m = 0; m < 3; m++)
        for (int waiting = 0; waiting < 2; waiting++)
            for (int compat = 0; compat < 2; compat++)
                for (int pending = 0; pending < 2; pending++) {
                    scase sc = {{sock, waiting, modes[m], STYLE_ONE, compat}, pending};
                    char what[160];
                    snprintf(what, sizeof what, "%s, peer closed %s, %s, SIGPIPE %s%s",
                             sock ? "socketpair" : "pipe", waiting ? "while waiting" : "before",
                             mode_name[m], pending ? "pending before" : "not pending",
                             compat ? ", OVL_URING_NO_RWF_NOSIGNAL=1" : "");
                    in_child(what, state_child, &sc);
                }
}

Test(signals, caller_signal_state_is_kept_pipe) { signal_state(false); }
Test(signals, caller_signal_state_is_kept_socket) { signal_state(true); }

/* ---- ovl_poll under a storm of signals -------------------------------------- */

/* Lock-free, hence async-signal-safe; read by the storm thread too. */
static atomic_int usr1_hits;
static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&usr1_hits, 1);
}

#define STORM_CAP 20000 /* signals: the storm gives up (and the test fails) */

typedef struct storm {
    pthread_t target;
    atomic_int stop;
    atomic_long sent;
    ovl_port *p;
    long post_after; /* > 0: post a completion once that many were handled */
} storm;

static void *storm_main(void *arg)
{
    storm *s = arg;
    bool posted = false;
    while (!atomic_load(&s->stop) && atomic_load(&s->sent) < STORM_CAP) {
        pthread_kill(s->target, SIGUSR1);
        atomic_fetch_add(&s->sent, 1);
        if (s->post_after && !posted && atomic_load(&usr1_hits) >= s->post_after) {
            posted = true;
            (void)t_post(s->p, 1, NULL, NULL);
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return NULL;
}

static int poll_storm_child(void *arg)
{
    int sa_flags = *(int *)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = sa_flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    crec r;
    ovl_port *p = child_port(&r, OVL_PORT_MANUAL);

    /* An idle port: ovl_poll(p, 100) must come back with 0 while a signal
     * interrupts its wait every millisecond or so. */
    storm s = {pthread_self(), 0, 0, p, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, storm_main, &s) == 0, "thread");
    /* The storm has begun. (A sleep, not a spin: a sanitizer's runtime may
     * run a handler only at its next intercepted call.) */
    while (atomic_load(&usr1_hits) == 0) nanosleep(&(struct timespec){0, 100000}, NULL);
    int32_t rc = ovl_poll(p, 100);
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    CHECK(rc == 0, "ovl_poll(p, 100) under signals returned %d (%s)", rc,
          rc < 0 ? ovl_error_name(rc) : "completions");
    CHECK(atomic_load(&s.sent) < STORM_CAP,
          "the storm ran out (%ld signals) before ovl_poll returned", atomic_load(&s.sent));

    /* Waiting for ever: interrupted many times, it returns the completion
     * posted after 50 signals, never OVL_EINTR. */
    atomic_store(&usr1_hits, 0);
    storm s2 = {pthread_self(), 0, 0, p, 50};
    CHECK(pthread_create(&th, NULL, storm_main, &s2) == 0, "thread");
    rc = ovl_poll(p, -1);
    atomic_store(&s2.stop, 1);
    pthread_join(th, NULL);
    CHECK(rc == 1, "ovl_poll(p, -1) under signals returned %d (%s)", rc,
          rc < 0 ? ovl_error_name(rc) : "completions");
    child_close(&r);
    return 0;
}

Test(signals, poll_timeout_holds_under_a_signal_storm)
{
    int flags = 0;
    in_child("handler without SA_RESTART", poll_storm_child, &flags);
}

Test(signals, poll_timeout_holds_under_a_signal_storm_sa_restart)
{
    int flags = SA_RESTART;
    in_child("handler with SA_RESTART", poll_storm_child, &flags);
}
