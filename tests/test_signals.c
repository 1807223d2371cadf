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
#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            _exit(1);                                                        \
        }                                                                    \
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
        cr_assert_fail("%s: the child was killed by signal %d (%s)", what,
                       WTERMSIG(st), strsignal(WTERMSIG(st)));
    cr_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == CHILD_SKIP)
        cr_skip_test("backend %s not available on this host", test_backend());
    cr_assert_eq(WEXITSTATUS(st), 0, "%s: the child failed (its message is above)", what);
}

/* A collector for children: completions by id, under a lock. */
typedef struct crec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ovl_completion items[64];
    size_t n;
    ovl_port *p;
    /* submit-from-callback: when the post `trigger` arrives, submit req */
    uint64_t trigger;
    ovl_request req;
    int32_t req_rc;
} crec;

static void crec_cb(const ovl_completion *items, size_t n, void *ud)
{
    crec *r = ud;
    for (size_t i = 0; i < n; i++) {
        if (r->trigger && items[i].id == r->trigger) {
            size_t done = 0;
            r->req_rc = ovl_submit(r->p, &r->req, 1, &done);
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
    int32_t rc = ovl_create_port(&cfg, &p);
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

/* ---- ovl_poll under a storm of signals -------------------------------------- */

static volatile sig_atomic_t usr1_hits;
static void on_usr1(int sig)
{
    (void)sig;
    usr1_hits++;
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
        if (s->post_after && !posted && usr1_hits >= s->post_after) {
            posted = true;
            (void)ovl_post(s->p, 1, NULL, NULL);
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
    while (usr1_hits == 0) sched_yield(); /* the storm has begun */
    int32_t rc = ovl_poll(p, 100);
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    CHECK(rc == 0, "ovl_poll(p, 100) under signals returned %d (%s)", rc,
          rc < 0 ? ovl_error_name(rc) : "completions");
    CHECK(atomic_load(&s.sent) < STORM_CAP,
          "the storm ran out (%ld signals) before ovl_poll returned", atomic_load(&s.sent));

    /* Waiting for ever: interrupted many times, it returns the completion
     * posted after 50 signals, never OVL_EINTR. */
    usr1_hits = 0;
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
