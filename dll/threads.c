/* threads.c - the portable POSIX fallback backend: a bounded worker pool
 * doing pread/pwrite/fsync (and stream read/write once ready), and one
 * readiness thread that parks stream ops (pipes, sockets) in epoll (Linux)
 * or poll() (elsewhere) so an idle pipe never holds a worker hostage. Used when io_uring is missing or
 * blocked. Every queue here is protected by the port lock.
 *
 * Op states (op->bstate):
 *   QUEUED  - in the work queue; a cancel completes it with OVL_ECANCELED
 *   WAITING - a stream op parked in the readiness set; cancel likewise
 *   RUNNING - inside a system call on a worker; it completes normally
 *             (pread on a regular file cannot be interrupted portably)
 *   DONE    - result known, in the done list for the completion side */
#include "ovl_internal.h"

#ifndef _WIN32
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
/* OVL_THREADS_POLL forces the portable poll() variant (to test it here). */
#if defined(__linux__) && !defined(OVL_THREADS_POLL)
#include <sys/epoll.h>
#define USE_EPOLL 1
#endif

enum { B_QUEUED = 1, B_WAITING, B_RUNNING, B_DONE };

typedef struct list {
    ovl__op *head, *tail;
} list;

typedef struct tb {
    ovl_port *p;
    list work;          /* QUEUED */
    list waiting;       /* WAITING (readiness) */
    list done;          /* DONE */
    size_t nwaiting;
    ovl__cond work_cond;
    ovl__cond done_cond;
    bool stop;
    bool woken;          /* wake() called since the last wait */
    pthread_t *workers;
    uint32_t nworkers;
    pthread_t poller;
    bool poller_started;
    int pwake[2];        /* wakes the readiness thread */
    int efd[2];          /* manual mode: pollable handle */
#ifdef USE_EPOLL
    int epfd;
    struct fdent *fds;   /* per fd: parked reads/writes, registered mask */
    size_t nfds;
#else
    struct pollfd *pfds; /* readiness thread's scratch, depth + 1 */
    ovl__op **pops;
    uint64_t *ptok;
#endif
} tb;

/* ---- intrusive lists (op->next / op->prev) ------------------------------- */

static void list_push(list *l, ovl__op *op)
{
    op->next = NULL;
    op->prev = l->tail;
    if (l->tail) l->tail->next = op;
    else l->head = op;
    l->tail = op;
}

static void list_remove(list *l, ovl__op *op)
{
    if (op->prev) op->prev->next = op->next;
    else l->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else l->tail = op->prev;
    op->next = op->prev = NULL;
}

static ovl__op *list_pop(list *l)
{
    ovl__op *op = l->head;
    if (op) list_remove(l, op);
    return op;
}

static void signal_fd(int fds[2])
{
    uint64_t one = 1;
    int fd = fds[1] >= 0 ? fds[1] : fds[0];
    if (fd >= 0) (void)!ovl__sys.write(fd, &one, sizeof one);
}

static void drain_fd(int fd)
{
    uint64_t buf[8];
    if (fd < 0) return;
    while (ovl__sys.read(fd, buf, sizeof buf) > 0) {
    }
}

/* Lock held: the op's result is known; hand it to the completion side. */
static void complete(ovl_port *p, tb *t, ovl__op *op, int64_t res, int32_t oserr)
{
    op->bstate = B_DONE;
    op->result = op->kind == OVL_OP_POST ? op->result : res;
    op->os_error = oserr;
    bool was_empty = t->done.head == NULL;
    list_push(&t->done, op);
    if (was_empty) {
        /* Wake the waiter at most once per batch: only the transition from
         * empty to non-empty needs a signal. */
        ovl__cond_signal(&t->done_cond);
        if (p->flags & OVL_PORT_MANUAL) signal_fd(t->efd);
    }
}

static void complete_errno(ovl_port *p, tb *t, ovl__op *op, int err)
{
    complete(p, t, op, ovl__errno_to_code(err), err);
}

/* ---- the I/O itself (no lock) -------------------------------------------- */

/* What kind of stream: a socket (send/recv with MSG_DONTWAIT), a FIFO
 * opened blocking (writes must be chunked, see below), or anything else. */
enum { S_OTHER, S_SOCKET, S_BLOCKING_FIFO };

static int stream_kind(int fd)
{
    struct stat st;
    if (ovl__sys.fstat(fd, &st) != 0) return S_OTHER;
    if (S_ISSOCK(st.st_mode)) return S_SOCKET;
    if (S_ISFIFO(st.st_mode)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK)) return S_BLOCKING_FIFO;
    }
    return S_OTHER;
}

/* Write to a blocking pipe without ever blocking: a pipe that polls
 * writable has a free buffer slot, so PIPE_BUF bytes always fit; write a
 * chunk, check again, and stop (a short write) when it is full. One op thus
 * moves up to the pipe's free space instead of one page. */
static ssize_t fifo_write(int fd, const char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done < PIPE_BUF ? len - done : PIPE_BUF;
        ssize_t r = ovl__sys.write(fd, buf + done, chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)r;
        if ((size_t)r < chunk || done == len) break;
        struct pollfd pf = {fd, POLLOUT, 0};
        if (ovl__sys.poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT)) break;
    }
    return (ssize_t)done;
}

static int64_t do_io(ovl__op *op)
{
    int fd = (int)op->fd;
    ssize_t r;
    if (op->kind == OVL_OP_FSYNC) {
        do {
            r = (op->flags & OVL_FSYNC_DATA) ? ovl__sys.fdatasync(fd)
                                              : ovl__sys.fsync(fd);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 0;
    }
    if (op->offset >= 0) {
        do {
            r = op->kind == OVL_OP_READ
                    ? ovl__sys.pread(fd, op->buf, op->len, (off_t)op->offset)
                    : ovl__sys.pwrite(fd, op->buf, op->len, (off_t)op->offset);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : r;
    }
    /* Stream: only after poll() said ready, so this does not block. */
    struct pollfd pf = {fd, op->kind == OVL_OP_READ ? POLLIN : POLLOUT, 0};
    int pr;
    do {
        pr = ovl__sys.poll(&pf, 1, 0);
    } while (pr < 0 && errno == EINTR);
    if (pr < 0) return -errno;
    if (pr == 0) return -EAGAIN;
    if (pf.revents & POLLNVAL) return -EBADF;
    size_t len = op->len;
    int kind = stream_kind(fd);
    do {
        if (kind == S_SOCKET) {
            r = op->kind == OVL_OP_READ
                    ? recv(fd, op->buf, len, MSG_DONTWAIT)
                    : send(fd, op->buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else if (op->kind == OVL_OP_READ) {
            r = ovl__sys.read(fd, op->buf, len);
        } else if (kind == S_BLOCKING_FIFO) {
            r = fifo_write(fd, op->buf, len);
        } else {
            r = ovl__sys.write(fd, op->buf, len);
        }
    } while (r < 0 && errno == EINTR);
    if (r < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return r;
}

/* ---- threads ------------------------------------------------------------- */

static void block_sigpipe(void)
{
    /* Writing to a pipe without readers must become EPIPE, not kill the
     * process: SIGPIPE is sent to the writing thread, so block it here. */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static int park(tb *t, ovl__op *op);
static void unpark(tb *t, ovl__op *op);

static void *worker_main(void *arg)
{
    ovl_port *p = arg;
    tb *t = p->be;
    block_sigpipe();
    ovl__mutex_lock(&p->lock);
    for (;;) {
        while (!t->work.head && !t->stop) ovl__cond_wait(&t->work_cond, &p->lock);
        if (!t->work.head) break; /* stop, queue empty */
        ovl__op *op = list_pop(&t->work);
        op->bstate = B_RUNNING;
        ovl__mutex_unlock(&p->lock);
        /* The op's fields are stable while RUNNING: only this worker owns
         * it until complete(). */
        int64_t r = do_io(op);
        ovl__mutex_lock(&p->lock);
        if (r == -EAGAIN && op->offset < 0 && op->kind != OVL_OP_FSYNC) {
            if (op->cancel_req) {
                complete_errno(p, t, op, ECANCELED);
            } else {
                int e = park(t, op);
                if (e) complete_errno(p, t, op, e);
            }
        } else if (r < 0) {
            complete_errno(p, t, op, (int)-r);
        } else {
            complete(p, t, op, r, 0);
        }
    }
    ovl__mutex_unlock(&p->lock);
    return NULL;
}

/* ---- readiness ------------------------------------------------------------
 * park() puts a stream op that is not ready into the readiness set, unpark()
 * takes it out (cancel, or ready). Port lock held for both. Ops stay on the
 * `waiting` list either way; the readiness thread moves ready ones back to
 * the work queue, where a worker retries them. Several ops parked on one fd
 * and direction are all retried when it becomes ready; those that find
 * nothing park again (keep one op per stream direction for strict order). */

static void make_ready(tb *t, ovl__op *op)
{
    unpark(t, op);
    op->bstate = B_QUEUED;
    list_push(&t->work, op);
}

#ifdef USE_EPOLL
/* Linux: one epoll registration per fd, level-triggered, its mask the union
 * of the directions that have parked ops. */
typedef struct fdent {
    uint32_t nread, nwrite; /* parked ops per direction */
    uint32_t mask;          /* what epoll has registered (0 = nothing) */
} fdent;

static int fd_sync(tb *t, int fd)
{
    fdent *e = &t->fds[fd];
    uint32_t want = (e->nread ? EPOLLIN : 0u) | (e->nwrite ? EPOLLOUT : 0u);
    if (want == e->mask) return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = want;
    ev.data.fd = fd;
    int r;
    if (!want) r = epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, &ev);
    else if (!e->mask) r = epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev);
    else r = epoll_ctl(t->epfd, EPOLL_CTL_MOD, fd, &ev);
    /* The fd may have been closed and reopened under us (epoll forgets a
     * closed file): register afresh. */
    if (r < 0 && errno == ENOENT && want) r = epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (r < 0 && errno == EEXIST && want) r = epoll_ctl(t->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (r < 0 && !want) r = 0; /* already gone */
    if (r < 0) return errno;
    e->mask = want;
    return 0;
}

static int park(tb *t, ovl__op *op)
{
    int fd = (int)op->fd;
    if ((size_t)fd >= t->nfds) {
        /* Grow the fd table (rare: the first time a higher fd parks). */
        size_t n = t->nfds ? t->nfds : 64;
        while (n <= (size_t)fd) n *= 2;
        fdent *f = realloc(t->fds, n * sizeof *f);
        if (!f) return ENOMEM;
        memset(f + t->nfds, 0, (n - t->nfds) * sizeof *f);
        t->fds = f;
        t->nfds = n;
    }
    fdent *e = &t->fds[fd];
    if (op->kind == OVL_OP_READ) e->nread++;
    else e->nwrite++;
    int err = fd_sync(t, fd);
    if (err) {
        if (op->kind == OVL_OP_READ) e->nread--;
        else e->nwrite--;
        fd_sync(t, fd);
        /* EPERM: not pollable (a regular file): it is always ready. */
        if (err != EPERM) return err;
        op->bstate = B_QUEUED;
        list_push(&t->work, op);
        ovl__cond_signal(&t->work_cond);
        return 0;
    }
    op->bstate = B_WAITING;
    list_push(&t->waiting, op);
    t->nwaiting++;
    return 0;
}

static void unpark(tb *t, ovl__op *op)
{
    int fd = (int)op->fd;
    list_remove(&t->waiting, op);
    t->nwaiting--;
    fdent *e = &t->fds[fd];
    if (op->kind == OVL_OP_READ) e->nread--;
    else e->nwrite--;
    fd_sync(t, fd);
}

static void *poller_main(void *arg)
{
    ovl_port *p = arg;
    tb *t = p->be;
    struct epoll_event evs[64];
    ovl__mutex_lock(&p->lock);
    while (!t->stop) {
        ovl__mutex_unlock(&p->lock);
        int n = epoll_wait(t->epfd, evs, 64, -1);
        if (n < 0 && errno != EINTR) ovl__yield();
        ovl__mutex_lock(&p->lock);
        bool moved = false;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint32_t ev = evs[i].events;
            if (fd == t->pwake[0]) {
                drain_fd(fd);
                continue;
            }
            bool rd = ev & (EPOLLIN | EPOLLERR | EPOLLHUP);
            bool wr = ev & (EPOLLOUT | EPOLLERR | EPOLLHUP);
            for (ovl__op *op = t->waiting.head, *next; op; op = next) {
                next = op->next;
                if ((int)op->fd != fd) continue;
                if (op->kind == OVL_OP_READ ? !rd : !wr) continue;
                make_ready(t, op);
                moved = true;
            }
        }
        if (moved) ovl__cond_broadcast(&t->work_cond);
    }
    ovl__mutex_unlock(&p->lock);
    return NULL;
}

static int rd_init(ovl_port *p, tb *t)
{
    (void)p;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0) return errno;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = t->pwake[0];
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->pwake[0], &ev) < 0) return errno;
    return 0;
}

static void rd_free(tb *t)
{
    if (t->epfd >= 0) ovl__sys.close(t->epfd);
    free(t->fds);
}

#else /* poll(): macOS, the BSDs */

static int park(tb *t, ovl__op *op)
{
    op->bstate = B_WAITING;
    list_push(&t->waiting, op);
    t->nwaiting++;
    signal_fd(t->pwake); /* rebuild the poll set */
    return 0;
}

static void unpark(tb *t, ovl__op *op)
{
    list_remove(&t->waiting, op);
    t->nwaiting--;
    signal_fd(t->pwake);
}

/* poll() on every parked op plus the wake fd; the set is rebuilt per
 * wake-up, O(parked ops), fine for a fallback bounded by queue_depth. */
static void *poller_main(void *arg)
{
    ovl_port *p = arg;
    tb *t = p->be;
    ovl__mutex_lock(&p->lock);
    while (!t->stop) {
        size_t n = 0;
        t->pfds[n].fd = t->pwake[0];
        t->pfds[n].events = POLLIN;
        t->pfds[n].revents = 0;
        n++;
        for (ovl__op *op = t->waiting.head; op; op = op->next) {
            t->pfds[n].fd = (int)op->fd;
            t->pfds[n].events = op->kind == OVL_OP_READ ? POLLIN : POLLOUT;
            t->pfds[n].revents = 0;
            t->pops[n] = op;
            t->ptok[n] = ovl__op_token(op);
            n++;
        }
        ovl__mutex_unlock(&p->lock);
        int r = ovl__sys.poll(t->pfds, n, -1);
        if (r < 0 && errno != EINTR) ovl__yield();
        if (t->pfds[0].revents) drain_fd(t->pwake[0]);
        ovl__mutex_lock(&p->lock);
        if (r <= 0) continue;
        bool moved = false;
        for (size_t i = 1; i < n; i++) {
            ovl__op *op = t->pops[i];
            /* Still the same op, still parked? (It may have been cancelled
             * and its slot reused while we were in poll().) */
            if (!t->pfds[i].revents || op->state != OVL__OP_INFLIGHT ||
                ovl__op_token(op) != t->ptok[i] || op->bstate != B_WAITING)
                continue;
            make_ready(t, op);
            moved = true;
        }
        if (moved) ovl__cond_broadcast(&t->work_cond);
    }
    ovl__mutex_unlock(&p->lock);
    return NULL;
}

static int rd_init(ovl_port *p, tb *t)
{
    t->pfds = calloc(p->depth + 1, sizeof *t->pfds);
    t->pops = calloc(p->depth + 1, sizeof *t->pops);
    t->ptok = calloc(p->depth + 1, sizeof *t->ptok);
    return (t->pfds && t->pops && t->ptok) ? 0 : ENOMEM;
}

static void rd_free(tb *t)
{
    free(t->pfds);
    free(t->pops);
    free(t->ptok);
}
#endif

/* ---- backend interface --------------------------------------------------- */

static void t_free(tb *t)
{
    if (t->pwake[0] >= 0) ovl__sys.close(t->pwake[0]);
    if (t->pwake[1] >= 0) ovl__sys.close(t->pwake[1]);
    if (t->efd[0] >= 0) ovl__sys.close(t->efd[0]);
    if (t->efd[1] >= 0) ovl__sys.close(t->efd[1]);
    ovl__cond_destroy(&t->work_cond);
    ovl__cond_destroy(&t->done_cond);
    free(t->workers);
    rd_free(t);
    free(t);
}

static void t_stop_threads(ovl_port *p, tb *t, uint32_t nworkers)
{
    ovl__mutex_lock(&p->lock);
    t->stop = true;
    ovl__cond_broadcast(&t->work_cond);
    ovl__mutex_unlock(&p->lock);
    signal_fd(t->pwake);
    for (uint32_t i = 0; i < nworkers; i++) pthread_join(t->workers[i], NULL);
    if (t->poller_started) pthread_join(t->poller, NULL);
}

static int32_t t_init(ovl_port *p)
{
    tb *t = calloc(1, sizeof *t);
    if (!t) return OVL_ENOMEM;
    t->p = p;
    t->pwake[0] = t->pwake[1] = t->efd[0] = t->efd[1] = -1;
    ovl__cond_init(&t->work_cond);
    ovl__cond_init(&t->done_cond);
#ifdef USE_EPOLL
    t->epfd = -1;
#endif
    t->workers = calloc(p->nthreads, sizeof *t->workers);
    if (!t->workers) {
        t_free(t);
        return OVL_ENOMEM;
    }
    int e = 0;
    if (ovl__sys.wakefd(t->pwake) < 0 ||
        ((p->flags & OVL_PORT_MANUAL) && ovl__sys.wakefd(t->efd) < 0))
        e = errno;
    if (!e) e = rd_init(p, t);
    if (e) {
        int32_t rc = ovl__errno_to_code(e);
        t_free(t);
        return rc == OVL_EOS ? OVL_ENOMEM : rc;
    }
    p->be = t;
    /* A worker that cannot start fails the whole port (OVL_EAGAIN): a pool
     * smaller than configured would silently change the port's behaviour. */
    uint32_t started = 0;
    int err = ovl__sys.thread_create(&t->poller, poller_main, p);
    if (err == 0) {
        t->poller_started = true;
        for (; started < p->nthreads; started++) {
            err = ovl__sys.thread_create(&t->workers[started], worker_main, p);
            if (err) break;
        }
    }
    if (err) {
        t_stop_threads(p, t, started);
        p->be = NULL;
        t_free(t);
        return OVL_EAGAIN;
    }
    t->nworkers = started;
    return OVL_OK;
}

static void t_destroy(ovl_port *p)
{
    tb *t = p->be;
    if (!t) return;
    t_stop_threads(p, t, t->nworkers);
    t_free(t);
}

/* A child of fork(): see ovl__backend.forget. The workers and the poller
 * stayed in the parent; the conds are not destroyed (glibc's destroy waits
 * for the waiters the parent's threads registered, who never come). */
static void t_forget(ovl_port *p)
{
    tb *t = p->be;
    int fds[] = {t->pwake[0], t->pwake[1], t->efd[0], t->efd[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) ovl__sys.close(fds[i]);
    free(t->workers);
    rd_free(t); /* closes this process's copy of the epoll fd, frees */
    free(t);
}

static void t_submit(ovl_port *p, ovl__op **ops, size_t n)
{
    tb *t = p->be;
    bool queued = false;
    for (size_t i = 0; i < n; i++) {
        ovl__op *op = ops[i];
        if (op->kind == OVL_OP_POST) {
            complete(p, t, op, 0, 0);
            continue;
        }
        op->bstate = B_QUEUED;
        list_push(&t->work, op);
        queued = true;
    }
    if (queued) {
        if (n > 1) ovl__cond_broadcast(&t->work_cond);
        else ovl__cond_signal(&t->work_cond);
    }
}

static void t_cancel(ovl_port *p, ovl__op *op)
{
    tb *t = p->be;
    switch (op->bstate) {
    case B_QUEUED:
        list_remove(&t->work, op);
        complete_errno(p, t, op, ECANCELED);
        break;
    case B_WAITING:
        unpark(t, op);
        complete_errno(p, t, op, ECANCELED);
        break;
    default:
        /* RUNNING: completes normally (documented); DONE: already has its
         * result. */
        break;
    }
}

static void t_kick(ovl_port *p, bool from_cb)
{
    (void)p;
    (void)from_cb; /* submit already signalled the workers under the lock */
}

static size_t t_wait(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap)
{
    tb *t = p->be;
    if (p->flags & OVL_PORT_MANUAL) drain_fd(t->efd[0]);
    uint64_t deadline = timeout_ms > 0 ? ovl__now_ms() + (uint64_t)timeout_ms : 0;
    size_t n = 0;
    ovl__mutex_lock(&p->lock);
    for (;;) {
        while (n < cap && t->done.head) {
            ovl__op *op = list_pop(&t->done);
            out[n].token = ovl__op_token(op);
            out[n].result = op->result;
            out[n].os_error = op->os_error;
            n++;
        }
        if (n || t->woken || timeout_ms == 0) break;
        if (timeout_ms < 0) {
            ovl__cond_wait(&t->done_cond, &p->lock);
        } else {
            uint64_t now = ovl__now_ms();
            if (now >= deadline) break;
            ovl__cond_timedwait_ms(&t->done_cond, &p->lock, (int64_t)(deadline - now));
        }
    }
    t->woken = false;
    /* Manual mode: the handle was drained above; if completions are left
     * (more than cap, or ovl_poll stopped early), make it readable again so
     * an outside event loop comes back for them. */
    bool more = (p->flags & OVL_PORT_MANUAL) && t->done.head;
    ovl__mutex_unlock(&p->lock);
    if (more) signal_fd(t->efd);
    return n;
}

static void t_wake(ovl_port *p)
{
    tb *t = p->be;
    ovl__mutex_lock(&p->lock);
    t->woken = true;
    ovl__cond_broadcast(&t->done_cond);
    ovl__mutex_unlock(&p->lock);
    if (p->flags & OVL_PORT_MANUAL) signal_fd(t->efd);
}

static int32_t t_event_fd(ovl_port *p, ovl_fd *out)
{
    tb *t = p->be;
    *out = (ovl_fd)t->efd[0];
    return OVL_OK;
}

static const ovl__backend threads_backend = {
    .name = "threads", .id = OVL_BACKEND_THREADS, .init = t_init,
    .submit = t_submit, .cancel = t_cancel, .kick = t_kick, .wait = t_wait,
    .wake = t_wake, .event_fd = t_event_fd, .destroy = t_destroy,
    .forget = t_forget,
};
const ovl__backend *const ovl__backend_threads = &threads_backend;

#else
const ovl__backend *const ovl__backend_threads = NULL;
#endif /* !_WIN32 */
