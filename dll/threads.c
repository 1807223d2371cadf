/* threads.c - the portable POSIX fallback backend: a bounded worker pool
 * doing pread/pwrite/fsync and stream reads/writes, and one readiness thread
 * that parks stream ops (pipes, sockets, ttys) in epoll (Linux) or poll()
 * (elsewhere) so an idle pipe never holds a worker hostage. Used when
 * io_uring is missing or blocked. Every queue here is protected by the port
 * lock.
 *
 * Two rules make a worker safe from the fds it is given:
 *  - An op never does I/O on the caller's fd number: at submit it takes its
 *    own reference to the open file (a duplicate), as io_uring holds one
 *    from submission, and works and parks on that (see "the op's file").
 *  - A stream op never makes a call that can wait for readiness: the fd may
 *    be blocking (the application owns its flags; we never change them) and
 *    shared by several ops, so "poll said readable" does not mean "read will
 *    not block" (another op may take the data first). See stream_io().
 *
 * Op states (op->bstate):
 *   PENDING - submitted, its file reference not taken yet (see t_kick);
 *             a cancel is seen there and completes it with OVL_ECANCELED
 *   QUEUED  - in the work queue; a cancel completes it with OVL_ECANCELED
 *   WAITING - a stream op parked in the readiness set; cancel likewise
 *   RUNNING - inside a system call on a worker; it completes normally
 *             (pread on a regular file cannot be interrupted portably; a
 *             stream call never waits, so it returns promptly)
 *   TIMER   - a timer (OVL_OP_TIMER), only in the deadline heap
 *   DONE    - result known, in the done list for the completion side
 *
 * Connections (see "accept" and "connect" below): an accept waits for its
 * listener to be readable like a stream read, then is taken by the port's
 * acceptor thread, never by a worker; a connect is started on a worker,
 * parked until the socket is writable, then finished with SO_ERROR; a
 * shutdown is one call on a worker.
 *
 * Deadlines: an op submitted with a timeout, and every timer, sits in a
 * min-heap of deadlines (preallocated, one slot per op of the pool) that the
 * readiness thread waits on. An op still QUEUED or WAITING at its deadline
 * completes OVL_ETIMEDOUT; a RUNNING one is only marked, and completes with
 * its real result, or OVL_ETIMEDOUT if the call found nothing to do (it
 * would otherwise park again). Every move between states happens under the
 * port lock and ends in complete() at most once, so a deadline, readiness,
 * a cancel and close never produce two completions for one op. */
#include "ovl_internal.h"

#ifndef _WIN32
#  include "sys.h"

#  include <errno.h>
#  include <fcntl.h>
#  include <limits.h>
#  include <poll.h>
#  include <signal.h>
#  include <stdio.h>
#  include <stdlib.h>
#  include <string.h>
#  include <sys/ioctl.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <time.h>
#  include <unistd.h>
/* OVL_THREADS_POLL forces the portable poll() variant (to test it here). */
#  if defined(__linux__) && !defined(OVL_THREADS_POLL)
#    include <sys/epoll.h>
#    define USE_EPOLL 1
#  endif

enum { B_QUEUED = 1, B_WAITING, B_RUNNING, B_DONE, B_PENDING, B_TIMER };

typedef struct list {
    ovl__op *head, *tail;
} list;

/* An op's place in the deadline heap (t->dl, indexed by op->index). */
typedef struct dl_slot {
    uint64_t at;      /* CLOCK_MONOTONIC ns */
    uint32_t hpos;    /* index in t->heap + 1; 0 = not in the heap */
    uint32_t expired; /* its deadline passed while it was RUNNING */
} dl_slot;

typedef struct tb {
    ovl_port *p;
    /* Registered fds (ovl_register_fd): the port's own duplicate per slot
     * (-1: none), so that the registered file stays reachable after the
     * caller closes its number, as io_uring's fixed files do. Lock. */
    int reg_dup[OVL_MAX_REGISTERED_FDS];
    list work;    /* QUEUED, for the workers */
    list accq;    /* QUEUED accepts, for the acceptor thread */
    list waiting; /* WAITING (readiness) */
    list done;    /* DONE */
    size_t nwaiting;
    ovl__cond work_cond;
    ovl__cond done_cond;
    bool stop;
    bool woken; /* wake() called since the last wait */
    pthread_t *workers;
    uint32_t nworkers;
    pthread_t poller;
    bool poller_started;
    pthread_t acceptor; /* started with the first accept (see accept) */
    bool acceptor_started;
    ovl__cond acc_cond;
    dl_slot *dl;    /* depth entries */
    ovl__op **heap; /* depth entries: min-heap on dl[].at */
    uint32_t nheap;
    int pwake[2]; /* wakes the readiness thread */
    int efd[2];   /* manual mode: pollable handle */
    /* Threads asleep in t_wait for completions (under the port lock). While
     * one is, a completion goes to it and the manual-mode handle stays
     * quiet: an outside poller woken for a completion that a reaping
     * thread then takes only wakes up to find nothing. */
    uint32_t reapers;
#  ifdef USE_EPOLL
    int epfd;      /* one registration per parked op, on its own fd */
    size_t nretry; /* parked ops with a borrowed fd (see park) */
#  else
    struct pollfd *pfds; /* readiness thread's scratch, depth + 1 */
    ovl__op **pops;
    uint64_t *ptok;
#  endif
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

/* ---- deadlines -------------------------------------------------------------
 * A binary min-heap of the ops that have a deadline, ordered by it; each op
 * knows its position (dl_slot.hpos) so that one that completes otherwise
 * leaves the heap in O(log n). Port lock held for all. */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dl_at(const tb *t, const ovl__op *op) { return t->dl[op->index].at; }

static inline void heap_set(tb *t, uint32_t i, ovl__op *op)
{
    t->heap[i] = op;
    t->dl[op->index].hpos = i + 1;
}

static void heap_up(tb *t, uint32_t i)
{
    ovl__op *op = t->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (dl_at(t, t->heap[parent]) <= dl_at(t, op)) break;
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, op);
}

static void heap_down(tb *t, uint32_t i)
{
    ovl__op *op = t->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= t->nheap) break;
        if (c + 1 < t->nheap && dl_at(t, t->heap[c + 1]) < dl_at(t, t->heap[c])) c++;
        if (dl_at(t, t->heap[c]) >= dl_at(t, op)) break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, op);
}

/* Returns true if op is now the nearest deadline (the readiness thread
 * must recompute its wait). */
static bool heap_push(tb *t, ovl__op *op)
{
    uint32_t i = t->nheap++;
    t->heap[i] = op;
    heap_up(t, i);
    return t->dl[op->index].hpos == 1;
}

static void heap_remove(tb *t, ovl__op *op)
{
    uint32_t i = t->dl[op->index].hpos - 1;
    t->dl[op->index].hpos = 0;
    ovl__op *last = t->heap[--t->nheap];
    if (i == t->nheap) return;
    heap_set(t, i, last);
    heap_up(t, i);
    heap_down(t, t->dl[last->index].hpos - 1);
}

/* The readiness thread's wait: `dflt` (-1 = forever), shortened to the
 * nearest deadline, rounded up to the millisecond (an early wake-up would
 * only spin). */
static int wait_ms(tb *t, int dflt)
{
    if (!t->nheap) return dflt;
    uint64_t now = now_ns(), at = dl_at(t, t->heap[0]);
    if (at <= now) return 0;
    uint64_t ms = (at - now + 999999u) / 1000000u;
    if (ms > INT_MAX) ms = INT_MAX;
    return dflt >= 0 && (uint64_t)dflt < ms ? dflt : (int)ms;
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

/* ---- the op's file --------------------------------------------------------
 * At submit every read, write and fsync takes its own reference to the
 * caller's open file: fcntl(F_DUPFD_CLOEXEC), before the submit call returns
 * (see t_kick for where exactly). All its I/O
 * and its readiness registration use that duplicate, never the caller's
 * number, so a caller that closes the fd while the op is queued or parked
 * (a mistake, but not ours to punish) and a new file that reuses the number
 * never meet the op: it completes on its own file, as on io_uring, and a
 * correct op on the newcomer is not disturbed (epoll keys a registration by
 * file and number and drops it only when the file itself is released, so a
 * registration made on the caller's number would silently vanish at the
 * caller's close, or fire for the newcomer). A duplicate's number is unique
 * while it is open, so nothing keyed by it can alias another file.
 *
 * The duplicate is closed before the completion is delivered: once the
 * caller holds the completion, the op no longer pins the file, and the
 * caller's own close has its full effect (EOF for a pipe's reader, FIN on a
 * socket). A worker closes it as soon as the result is known; an op that
 * ends without a worker (cancelled while queued or parked, or failed at
 * submit) has it closed by the completion side (t_wait), outside the port
 * lock. A stream op may swap its duplicate for a reopened description of the
 * same file (no_nowait); the rules above hold for whichever it holds.
 *
 * A process out of fds (EMFILE, ENFILE: a queue deeper than the soft
 * RLIMIT_NOFILE, whose usual default is 1024, is enough) cannot duplicate.
 * Failing the op would break programs that worked before; instead it
 * borrows the caller's number, as this backend always did: correct unless
 * the caller also closes that fd while the op is in flight. A borrowed
 * stream op is not registered with epoll (two on one number would be one
 * registration), it is retried on a short timer instead (see park).
 *
 * The state lives in op->os, which only the IOCP backend uses otherwise:
 * raw[0] the op's fd (-1: none), raw[1] how a stream op does its I/O
 * (H_*, decided on its first attempt), raw[2] whether its fd is registered
 * with epoll, raw[3] whether the fd is the caller's (borrowed). A worker owns them while the op is RUNNING; otherwise they
 * change under the port lock, or, for a DONE op, on the completion side. */
enum {
    H_UNKNOWN = 0, /* not tried yet */
    H_PLAIN,       /* regular file, block device: read/write (no readiness) */
    H_SOCKET,      /* recv/send with MSG_DONTWAIT */
    H_NOWAIT,      /* ovl__sys.read_nowait/write_nowait (RWF_NOWAIT) */
    H_NONBLOCK,    /* read/write on a non-blocking open file description */
    H_POLLED,      /* no way to ask for non-blocking I/O: poll, then call */
};

static inline int op_fd(const ovl__op *op) { return (int)(int64_t)op->os.raw[0]; }
static inline void op_set_fd(ovl__op *op, int fd) { op->os.raw[0] = (uint64_t)(int64_t)fd; }
static inline uint32_t op_how(const ovl__op *op) { return (uint32_t)op->os.raw[1]; }
static inline void op_set_how(ovl__op *op, uint32_t h) { op->os.raw[1] = h; }
static inline bool op_armed(const ovl__op *op) { return op->os.raw[2] != 0; }
static inline void op_set_armed(ovl__op *op, bool a) { op->os.raw[2] = a; }
static inline bool op_borrowed(const ovl__op *op) { return op->os.raw[3] != 0; }
static inline void op_set_borrowed(ovl__op *op, bool b) { op->os.raw[3] = b; }

static void op_file_init(ovl__op *op)
{
    op_set_fd(op, -1);
    op_set_how(op, H_UNKNOWN);
    op_set_armed(op, false);
    op_set_borrowed(op, false);
}

static void rd_forget(tb *t, ovl__op *op);

/* Drop the op's file: its readiness registration first (it would outlive
 * the duplicate's number while the file stays open elsewhere), then the
 * duplicate. No lock needed: the caller owns the op (RUNNING or DONE). */
static void op_file_release(tb *t, ovl__op *op)
{
    int fd = op_fd(op);
    if (fd < 0) return;
    if (op_armed(op)) rd_forget(t, op);
    if (!op_borrowed(op)) ovl__sys.close(fd);
    op_set_fd(op, -1);
    op_set_borrowed(op, false);
}

/* Lock held: the op's result is known; hand it to the completion side. */
static void complete(ovl_port *p, tb *t, ovl__op *op, int64_t res, int32_t oserr)
{
    if (t->dl[op->index].hpos) heap_remove(t, op);
    op->bstate = B_DONE;
    op->result = op->kind == OVL_OP_POST ? op->result : res;
    op->os_error = oserr;
    bool was_empty = t->done.head == NULL;
    list_push(&t->done, op);
    if (was_empty) {
        /* Wake the waiter at most once per batch: only the transition from
         * empty to non-empty needs a signal. */
        ovl__cond_signal(&t->done_cond);
        if ((p->flags & OVL_PORT_MANUAL) && t->reapers == 0) signal_fd(t->efd);
    }
}

static void complete_errno(ovl_port *p, tb *t, ovl__op *op, int err)
{
    complete(p, t, op, ovl__errno_to_code(err), err);
}

/* ---- the I/O itself (no lock) -------------------------------------------- */

#  ifdef __linux__
/* A tty that is not a pseudo-terminal master. Reopening a pty master would
 * allocate a new pty pair (Linux) instead of reaching this one. */
static bool tty_not_master(int fd)
{
    if (!isatty(fd)) return false;
#    ifdef TIOCGPTN
    unsigned n;
    if (ioctl(fd, TIOCGPTN, &n) == 0) return false;
#    endif
    return true;
}
#  endif

/* The stream op's file takes no per-call non-blocking request (a tty, a
 * named FIFO, anything without RWF_NOWAIT support on this kernel: Linux 6.x
 * still has it for anonymous pipes, sockets and eventfd reads, not for
 * FIFOs opened by name, ttys or eventfd writes). Find another way that never
 * waits, without touching the caller's file status flags (its O_NONBLOCK is
 * shared by every fd on its open file description, in other threads and
 * processes too):
 *  - a FIFO or a tty: open it again through /proc/self/fd with O_NONBLOCK,
 *    a private open file description on the same pipe or terminal (libuv
 *    does this for ttys), which replaces the op's duplicate;
 *  - a description that is already non-blocking: plain calls are safe;
 *  - otherwise fail the op (OVL_ENOTSUP) rather than risk a worker blocked
 *    for good, except where the OS has nothing better at all (no RWF_NOWAIT
 *    outside Linux): there, poll then call, which does not block as long as
 *    one op at a time uses the fd and direction.
 * Returns the new H_* or -errno. */
static int no_nowait(ovl__op *op)
{
    int fd = op_fd(op);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
#  ifdef __linux__
    struct stat st;
    if (ovl__sys.fstat(fd, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && tty_not_master(fd)))) {
        char path[40];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int nfd;
        do {
            nfd = open(path, (fl & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        } while (nfd < 0 && errno == EINTR);
        if (nfd >= 0) {
            if (!op_borrowed(op)) ovl__sys.close(fd);
            op_set_fd(op, nfd);
            op_set_borrowed(op, false);
            return H_NONBLOCK;
        }
        /* A FIFO opened for writing only cannot be reopened so while it has
         * no reader: a write would fail with EPIPE, so that is the answer. */
        if (errno == ENXIO && S_ISFIFO(st.st_mode) && (fl & O_ACCMODE) == O_WRONLY) return -EPIPE;
    }
#  endif
    if (fl & O_NONBLOCK) return H_NONBLOCK;
#  ifdef __linux__
    return -EOPNOTSUPP;
#  else
    return H_POLLED;
#  endif
}

#  ifndef __linux__
/* H_POLLED writes to a blocking pipe: a pipe that polls writable has room
 * for PIPE_BUF bytes, so write a chunk, check again, and stop (a short
 * write) when it is full. */
static ssize_t polled_write(int fd, const char *buf, size_t len)
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
#  endif

/* One attempt at a stream op's I/O, by method; -1 and errno on failure. */
static ssize_t stream_call(ovl__op *op, int fd, uint32_t how)
{
    bool rd = op->kind == OVL_OP_READ;
    switch (how) {
    case H_SOCKET:
        return rd ? recv(fd, op->buf, op->len, MSG_DONTWAIT)
                  : send(fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    case H_NOWAIT:
        return rd ? ovl__sys.read_nowait(fd, op->buf, op->len)
                  : ovl__sys.write_nowait(fd, op->buf, op->len);
#  ifndef __linux__
    case H_POLLED: {
        struct pollfd pf = {fd, rd ? POLLIN : POLLOUT, 0};
        int pr = ovl__sys.poll(&pf, 1, 0);
        if (pr < 0) return -1;
        if (pr == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (pf.revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
        return rd ? ovl__sys.read(fd, op->buf, op->len) : polled_write(fd, op->buf, op->len);
    }
#  endif
    default: /* H_PLAIN, H_NONBLOCK */
        return rd ? ovl__sys.read(fd, op->buf, op->len) : ovl__sys.write(fd, op->buf, op->len);
    }
}

/* A stream op (OVL_OFFSET_CURRENT): bytes, or -errno; -EAGAIN means "not
 * ready, park me". Tried at once, with no readiness check first: the calls
 * used never wait, and a ready fd costs one system call. */
static int64_t stream_io(ovl__op *op)
{
    uint32_t how = op_how(op);
    if (how == H_UNKNOWN) {
        struct stat st;
        if (ovl__sys.fstat(op_fd(op), &st) != 0) return -errno;
        if (S_ISSOCK(st.st_mode)) how = H_SOCKET;
        else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)) how = H_PLAIN;
        else how = H_NOWAIT;
        op_set_how(op, how);
    }
    ssize_t r;
    for (;;) {
        do {
            r = stream_call(op, op_fd(op), how);
        } while (r < 0 && errno == EINTR);
        if (r >= 0 || how != H_NOWAIT || errno != EOPNOTSUPP) break;
        int h = no_nowait(op);
        if (h < 0) {
            /* "len == 0 completes with 0" even where I/O is impossible. */
            return op->len == 0 && h == -EOPNOTSUPP ? 0 : h;
        }
        how = (uint32_t)h;
        op_set_how(op, how);
    }
    if (r >= 0) return r;
    int e = errno == EWOULDBLOCK ? EAGAIN : errno;
    /* A zero-length op does not wait for readiness (recv of 0 bytes on an
     * empty socket says EAGAIN; io_uring completes it with 0 at once). */
    if (e == EAGAIN && op->len == 0) return 0;
    return -e;
}

/* ---- connections (no lock) ------------------------------------------------
 * accept: the call that takes a connection off a listener has no
 * per-call non-blocking form on POSIX (accept4's SOCK_NONBLOCK is about
 * the NEW socket; MSG_DONTWAIT does not apply; the listener's O_NONBLOCK
 * belongs to its open file description, which the application shares, and
 * a socket cannot be reopened as a private description the way a FIFO
 * can). So an accept op first parks until its listener is readable, as a
 * stream read does, and then goes to the port's one acceptor thread, never
 * to a worker: it polls the listener once more (no wait) and calls accept4
 * only if a connection is there. Within a port only that thread accepts,
 * so the library's own accepts never take a connection from under each
 * other. On a non-blocking listener accept4 cannot block at all (a
 * connection taken meanwhile by someone else is EAGAIN: the op parks
 * again). On a blocking listener that the application (or another port or
 * process) also accepts on, a connection can be taken between that poll
 * and accept4; the acceptor thread then waits inside accept4 for the next
 * one, which the OS offers no way to interrupt without changing the
 * listener's flags or signal state: that op is RUNNING (a cancel or its
 * timeout does not stop it, close waits for it, as for a pread), the
 * workers and every other op of the port except later accepts are not
 * affected, and the connection it gets is delivered to it. Nothing is
 * ever changed on the listener.
 *
 * The new connection is made close-on-exec and blocking (as the OS makes
 * it); an accept op completes only with it (or an error), so the
 * connection always reaches the caller, on close too. */

/* A listener that is not readable now: -EAGAIN (park). Else the new fd,
 * or -errno; the peer's address goes to the op's ovl_addr, if any. */
static int64_t do_accept(ovl__op *op)
{
    int fd = op_fd(op);
    struct pollfd pf = {fd, POLLIN, 0};
    int pr;
    do {
        pr = ovl__sys.poll(&pf, 1, 0);
    } while (pr < 0 && errno == EINTR);
    if (pr < 0) return -errno;
    if (pr == 0) return -EAGAIN;
    if (pf.revents & POLLNVAL) return -EBADF;
    /* POLLIN, or POLLHUP/POLLERR on a socket that is not listening:
     * accept4 answers at once (EINVAL) there. */
    ovl_addr *peer = op->buf;
    socklen_t cap = 0;
    struct sockaddr *sa = NULL;
    if (peer) {
        cap = OVL_ADDR_MAX; /* the whole struct, whatever len says on entry */
        sa = (struct sockaddr *)(void *)peer->data.bytes;
    }
    socklen_t len = cap;
    int nfd;
    do {
#  ifdef __APPLE__
        /* No accept4: close-on-exec right after (a fork() by another
         * thread in between may inherit it). */
        nfd = accept(fd, sa, sa ? &len : NULL);
        if (nfd >= 0) (void)fcntl(nfd, F_SETFD, FD_CLOEXEC);
#  else
        nfd = accept4(fd, sa, sa ? &len : NULL, SOCK_CLOEXEC);
#  endif
    } while (nfd < 0 && errno == EINTR);
    if (nfd < 0) {
        int e = errno;
        /* Taken by someone else, or a connection reset while queued (the
         * next one may be fine): not an error of this op, wait again. */
        if (e == EWOULDBLOCK || e == ECONNABORTED) return -EAGAIN;
        return -e;
    }
    if (peer) peer->len = len < cap ? len : cap;
    return nfd;
}

/* connect: a socket's connect is either blocking or not by its open file
 * description's O_NONBLOCK; no call takes a per-call non-blocking flag. A
 * blocking connect would hold a worker for the whole handshake (minutes
 * when SYNs are dropped), and nothing could cancel it or time it out. So:
 *   - a non-blocking socket: connect, then park until writable;
 *   - a BLOCKING socket: the ONE place this backend changes a file status
 *     flag. O_NONBLOCK is set right before connect(2) and the previous
 *     flags are restored right after it returns (EINPROGRESS: the
 *     handshake goes on in the kernel whatever the flag, and readiness and
 *     SO_ERROR work on blocking sockets too), a window of one system call.
 *     A socket being connected is not yet in use for I/O, so only a thread
 *     that changes the same description's flags in that window could see
 *     the difference (its change may be undone by the restore).
 * Then, once writable, SO_ERROR is the answer. A connect whose deadline
 * passes or that is cancelled while waiting completes OVL_ETIMEDOUT /
 * OVL_ECANCELED and leaves the socket as it is (still connecting in the
 * kernel): the caller closes it. */
enum { C_START = 0, C_INPROGRESS = 1 };

static int64_t do_connect(ovl__op *op)
{
    int fd = op_fd(op);
    if (op_how(op) == C_INPROGRESS) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) return -errno;
        if (err) return -err;
        /* Writable without an error: connected, unless the wake-up was
         * spurious (then wait again). */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
            return errno == ENOTCONN ? -EAGAIN : -errno;
        return 0;
    }
    const ovl_addr *a = op->buf;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    bool set = !(fl & O_NONBLOCK);
    if (set && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    int r = connect(fd, (const struct sockaddr *)(const void *)a->data.bytes, (socklen_t)a->len);
    int e = r < 0 ? errno : 0;
    if (set) (void)fcntl(fd, F_SETFL, fl);
    if (r == 0) return 0;
    /* EINTR: the connect goes on asynchronously, as EINPROGRESS. EAGAIN
     * (a Unix socket whose listener's backlog is full) is the answer: a
     * retry would find the socket writable at once and spin. */
    if (e == EINPROGRESS || e == EINTR) {
        op_set_how(op, C_INPROGRESS);
        return -EAGAIN;
    }
    return -e;
}

static int64_t do_shutdown(ovl__op *op)
{
    int how = op->flags == OVL_SHUT_RD ? SHUT_RD : op->flags == OVL_SHUT_WR ? SHUT_WR : SHUT_RDWR;
    return shutdown(op_fd(op), how) < 0 ? -errno : 0;
}

/* Whether a -EAGAIN from the op's call means "park until ready". */
static bool may_park(const ovl__op *op)
{
    switch (op->kind) {
    case OVL_OP_READ:
    case OVL_OP_WRITE: return op->offset < 0;
    case OVL_OP_CONNECT: return op_how(op) == C_INPROGRESS;
    case OVL_OP_ACCEPT: return true;
    default: return false;
    }
}

/* The readiness an op waits for: readable (read, accept) or writable. */
static inline bool wants_in(const ovl__op *op)
{
    return op->kind == OVL_OP_READ || op->kind == OVL_OP_ACCEPT;
}

static int64_t do_io(ovl__op *op)
{
    int fd = op_fd(op);
    ssize_t r;
    if (op->kind == OVL_OP_CONNECT) return do_connect(op);
    if (op->kind == OVL_OP_SHUTDOWN) return do_shutdown(op);
    if (op->kind == OVL_OP_ACCEPT) return do_accept(op);
    if (op->kind == OVL_OP_FSYNC) {
        do {
            r = (op->flags & OVL_FSYNC_DATA) ? ovl__sys.fdatasync(fd) : ovl__sys.fsync(fd);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 0;
    }
    if (op->offset >= 0) {
        do {
            r = op->kind == OVL_OP_READ ? ovl__sys.pread(fd, op->buf, op->len, (off_t)op->offset)
                                        : ovl__sys.pwrite(fd, op->buf, op->len, (off_t)op->offset);
        } while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : r;
    }
    return stream_io(op);
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

/* A RUNNING op's call returned r: whether it is to park (-EAGAIN on an op
 * that waits for readiness). If not, its file is let go here, outside the
 * lock, rather than on the completion side. No lock. */
static bool ran_unlocked(tb *t, ovl__op *op, int64_t r)
{
    bool again = r == -EAGAIN && may_park(op);
    if (!again) op_file_release(t, op);
    return again;
}

/* Lock held: then park it, unless a cancel or its deadline came meanwhile
 * (t_wait releases the file of an op that ends so), or complete it. */
static void ran(ovl_port *p, tb *t, ovl__op *op, int64_t r, bool again)
{
    if (again) {
        if (op->cancel_req) {
            complete_errno(p, t, op, ECANCELED);
        } else if (t->dl[op->index].expired) {
            complete_errno(p, t, op, ETIMEDOUT);
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
        bool again = ran_unlocked(t, op, r);
        ovl__mutex_lock(&p->lock);
        ran(p, t, op, r, again);
    }
    ovl__mutex_unlock(&p->lock);
    return NULL;
}

/* The acceptor thread: the only place an accept op's accept4 runs (see
 * "connections"). Started with the port's first accept. */
static void *acceptor_main(void *arg)
{
    ovl_port *p = arg;
    tb *t = p->be;
    ovl__mutex_lock(&p->lock);
    for (;;) {
        while (!t->accq.head && !t->stop) ovl__cond_wait(&t->acc_cond, &p->lock);
        if (!t->accq.head) break;
        ovl__op *op = list_pop(&t->accq);
        op->bstate = B_RUNNING;
        ovl__mutex_unlock(&p->lock);
        int64_t r = do_accept(op);
        bool again = ran_unlocked(t, op, r);
        ovl__mutex_lock(&p->lock);
        ran(p, t, op, r, again);
    }
    ovl__mutex_unlock(&p->lock);
    return NULL;
}

/* ---- readiness ------------------------------------------------------------
 * park() puts a stream op that is not ready into the readiness set, unpark()
 * takes it out again when it is cancelled, make_ready() when its fd is
 * ready. Port lock held for all three. The readiness thread moves ready ops
 * back to the work queue, where a worker retries them. Each op waits on its
 * own fd (the op's duplicate), so several ops on one file are independent
 * registrations: all are retried when it becomes ready, and those that find
 * nothing park again (keep one op per stream direction for strict order). */

#  ifdef USE_EPOLL
/* Linux: one registration per parked op, on its own duplicate, one-shot and
 * tagged with the op's token. One-shot: the kernel disarms it when it
 * reports the op ready, so nothing needs undoing on the way to a worker, and
 * parking again re-arms it (EPOLL_CTL_MOD). The token: an event read by the
 * readiness thread for an op that has been cancelled (and its slot reused)
 * meanwhile is recognised as stale and dropped. */
#    define WAKE_TAG 0u /* never a token: an op's index + 1 is never 0 */

/* A borrowed op waits unregistered: the readiness thread retries every such
 * op each RETRY_MS while there are any. */
#    define RETRY_MS 5

static int park(tb *t, ovl__op *op)
{
    if (op_borrowed(op)) {
        op->bstate = B_WAITING;
        list_push(&t->waiting, op);
        t->nwaiting++;
        if (t->nretry++ == 0) signal_fd(t->pwake); /* adopt the timer */
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (wants_in(op) ? EPOLLIN : EPOLLOUT) | EPOLLONESHOT;
    ev.data.u64 = ovl__op_token(op);
    int fd = op_fd(op);
    int r = epoll_ctl(t->epfd, op_armed(op) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (r < 0 && errno == ENOENT) r = epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (r < 0 && errno == EEXIST) r = epoll_ctl(t->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (r < 0) {
        /* EPERM: a file epoll cannot wait on (regular files never get
         * here: they are never "not ready"). Report it rather than spin. */
        return errno == EPERM ? EAGAIN : errno;
    }
    op_set_armed(op, true);
    op->bstate = B_WAITING;
    list_push(&t->waiting, op);
    t->nwaiting++;
    return 0;
}

/* The registration itself is dropped with the op's file (rd_forget); until
 * then a one-shot event for it is at worst stale, and ignored. */
static void unpark(tb *t, ovl__op *op)
{
    list_remove(&t->waiting, op);
    t->nwaiting--;
    if (op_borrowed(op)) t->nretry--;
}

static void rd_forget(tb *t, ovl__op *op)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    (void)epoll_ctl(t->epfd, EPOLL_CTL_DEL, op_fd(op), &ev);
    op_set_armed(op, false);
}

static void make_ready(tb *t, ovl__op *op);
static void wake_queues(tb *t);
static void expire(ovl_port *p, tb *t);

static void *poller_main(void *arg)
{
    ovl_port *p = arg;
    tb *t = p->be;
    struct epoll_event evs[64];
    ovl__mutex_lock(&p->lock);
    while (!t->stop) {
        int timeout = wait_ms(t, t->nretry ? RETRY_MS : -1);
        ovl__mutex_unlock(&p->lock);
        int n = epoll_wait(t->epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) ovl__yield();
        ovl__mutex_lock(&p->lock);
        expire(p, t);
        bool moved = false;
        if (t->nretry) {
            for (ovl__op *op = t->waiting.head, *next; op; op = next) {
                next = op->next;
                if (!op_borrowed(op)) continue;
                make_ready(t, op);
                moved = true;
            }
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == WAKE_TAG) {
                drain_fd(t->pwake[0]);
                continue;
            }
            ovl__op *op = ovl__op_from_token(p, tag);
            if (!op || op->bstate != B_WAITING) continue; /* stale */
            make_ready(t, op);
            moved = true;
        }
        if (moved) wake_queues(t);
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
    ev.data.u64 = WAKE_TAG;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->pwake[0], &ev) < 0) return errno;
    return 0;
}

static void rd_free(tb *t)
{
    if (t->epfd >= 0) ovl__sys.close(t->epfd);
}

#  else /* poll(): macOS, the BSDs */

static int park(tb *t, ovl__op *op)
{
    op->bstate = B_WAITING;
    list_push(&t->waiting, op);
    t->nwaiting++;
    signal_fd(t->pwake); /* rebuild the poll set */
    return 0;
}

/* Nothing is registered anywhere: the poll set is rebuilt from `waiting`. */
static void rd_forget(tb *t, ovl__op *op)
{
    (void)t;
    op_set_armed(op, false);
}

static void make_ready(tb *t, ovl__op *op);
static void wake_queues(tb *t);
static void expire(ovl_port *p, tb *t);

static void unpark(tb *t, ovl__op *op)
{
    list_remove(&t->waiting, op);
    t->nwaiting--;
    signal_fd(t->pwake);
}

/* poll() on every parked op's own fd plus the wake fd; the set is rebuilt
 * per wake-up, O(parked ops), fine for a fallback bounded by queue_depth.
 * An op cancelled while poll() runs may have its fd closed (even reused)
 * under it: a spurious or POLLNVAL result, dropped by the token check. */
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
            t->pfds[n].fd = op_fd(op);
            t->pfds[n].events = wants_in(op) ? POLLIN : POLLOUT;
            t->pfds[n].revents = 0;
            t->pops[n] = op;
            t->ptok[n] = ovl__op_token(op);
            n++;
        }
        int timeout = wait_ms(t, -1);
        ovl__mutex_unlock(&p->lock);
        int r = ovl__sys.poll(t->pfds, n, timeout);
        if (r < 0 && errno != EINTR) ovl__yield();
        if (t->pfds[0].revents) drain_fd(t->pwake[0]);
        ovl__mutex_lock(&p->lock);
        /* First the deadlines: an op whose fd turned ready as its deadline
         * passed is settled by one of the two, under this lock. */
        expire(p, t);
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
        if (moved) wake_queues(t);
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
#  endif

/* The queue an op waits in when QUEUED: accepts go to the acceptor
 * thread, everything else to the workers. */
static inline list *queue_of(tb *t, const ovl__op *op)
{
    return op->kind == OVL_OP_ACCEPT ? &t->accq : &t->work;
}

/* Lock held: a parked op's fd is ready; a worker (an accept: the acceptor
 * thread) retries it. */
static void make_ready(tb *t, ovl__op *op)
{
    unpark(t, op);
    op->bstate = B_QUEUED;
    list_push(queue_of(t, op), op);
}

/* Lock held: after make_ready()s, wake who takes them. */
static void wake_queues(tb *t)
{
    if (t->work.head) ovl__cond_broadcast(&t->work_cond);
    if (t->accq.head) ovl__cond_signal(&t->acc_cond);
}

/* Lock held: settle every op whose deadline has passed (see "deadlines"
 * at the top). A timer completes 0; a queued or parked op OVL_ETIMEDOUT
 * (t_wait releases its file); a RUNNING one is only marked, for ran(). */
static void expire(ovl_port *p, tb *t)
{
    if (!t->nheap) return;
    uint64_t now = now_ns();
    while (t->nheap && dl_at(t, t->heap[0]) <= now) {
        ovl__op *op = t->heap[0];
        heap_remove(t, op);
        switch (op->bstate) {
        case B_TIMER: complete(p, t, op, 0, 0); break;
        case B_QUEUED:
            list_remove(queue_of(t, op), op);
            complete_errno(p, t, op, ETIMEDOUT);
            break;
        case B_WAITING:
            unpark(t, op);
            complete_errno(p, t, op, ETIMEDOUT);
            break;
        default: /* RUNNING (PENDING and DONE ops are never in the heap) */
            t->dl[op->index].expired = 1;
            break;
        }
    }
}

/* ---- backend interface --------------------------------------------------- */

static void t_free(tb *t)
{
    for (unsigned i = 0; i < OVL_MAX_REGISTERED_FDS; i++)
        if (t->reg_dup[i] >= 0) ovl__sys.close(t->reg_dup[i]);
    if (t->pwake[0] >= 0) ovl__sys.close(t->pwake[0]);
    if (t->pwake[1] >= 0) ovl__sys.close(t->pwake[1]);
    if (t->efd[0] >= 0) ovl__sys.close(t->efd[0]);
    if (t->efd[1] >= 0) ovl__sys.close(t->efd[1]);
    ovl__cond_destroy(&t->work_cond);
    ovl__cond_destroy(&t->done_cond);
    ovl__cond_destroy(&t->acc_cond);
    free(t->workers);
    free(t->dl);
    free(t->heap);
    rd_free(t);
    free(t);
}

static void t_stop_threads(ovl_port *p, tb *t, uint32_t nworkers)
{
    ovl__mutex_lock(&p->lock);
    t->stop = true;
    ovl__cond_broadcast(&t->work_cond);
    ovl__cond_broadcast(&t->acc_cond);
    bool acceptor = t->acceptor_started;
    ovl__mutex_unlock(&p->lock);
    signal_fd(t->pwake);
    for (uint32_t i = 0; i < nworkers; i++) pthread_join(t->workers[i], NULL);
    if (t->poller_started) pthread_join(t->poller, NULL);
    if (acceptor) pthread_join(t->acceptor, NULL);
}

static int32_t t_init(ovl_port *p)
{
    tb *t = calloc(1, sizeof *t);
    if (!t) return OVL_ENOMEM;
    t->p = p;
    for (unsigned i = 0; i < OVL_MAX_REGISTERED_FDS; i++) t->reg_dup[i] = -1;
    t->pwake[0] = t->pwake[1] = t->efd[0] = t->efd[1] = -1;
    ovl__cond_init(&t->work_cond);
    ovl__cond_init(&t->done_cond);
    ovl__cond_init(&t->acc_cond);
#  ifdef USE_EPOLL
    t->epfd = -1;
#  endif
    t->workers = calloc(p->nthreads, sizeof *t->workers);
    /* The deadline heap is sized for the whole pool here: no allocation
     * per op. */
    t->dl = calloc(p->depth, sizeof *t->dl);
    t->heap = calloc(p->depth, sizeof *t->heap);
    if (!t->workers || !t->dl || !t->heap) {
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
 * for the waiters the parent's threads registered, who never come). The
 * child's copies of the ops' own file references are left to exec or exit
 * (close-on-exec): a parent thread may have been closing one at the fork,
 * and closing a number the child has since reused would be worse. */
static void t_forget(ovl_port *p)
{
    tb *t = p->be;
    int fds[] = {t->pwake[0], t->pwake[1], t->efd[0], t->efd[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) ovl__sys.close(fds[i]);
    free(t->workers);
    free(t->dl);
    free(t->heap);
    rd_free(t); /* closes this process's copy of the epoll fd, frees */
    free(t);
}

/* Give the op its own reference to the caller's file (see "the op's
 * file"): 0, or the errno to complete it with (a closed fd is its
 * OVL_EBADF, as on io_uring). Out of fds, it borrows the caller's. */
static int take_file(ovl__op *op)
{
    int fd;
    do {
        fd = fcntl((int)op->fd, F_DUPFD_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        op_set_fd(op, (int)op->fd);
        op_set_borrowed(op, true);
        return 0;
    }
    if (fd < 0) return errno;
    op_set_fd(op, fd);
    return 0;
}

/* Ops this thread has submitted whose file references are still to be
 * taken: t_submit runs under the port lock, which every worker, the
 * readiness thread and the completion side take for every op, and a dup is
 * a system call (about a microsecond on a VM; holding the lock over it cost
 * half the 4 KiB page-cache read rate at depth 64). So t_submit only lists
 * them here, and t_kick, which the api calls on the same thread right after
 * releasing the lock (from a callback too) and before the submit returns to
 * the caller, takes the references and queues the ops. Nothing runs in
 * between that could submit elsewhere; close waits for submitters that are
 * between the two (the users count), and a callback's kick happens before
 * the callback returns. The links (op->next) are this thread's: no one else
 * touches a PENDING op's links or file fields. */
static OVL__THREAD_LOCAL struct {
    ovl_port *p;
    ovl__op *head, *tail;
} pend;

/* Lock held: a QUEUED op joins its queue; the caller wakes the workers.
 * Returns false if it went to the acceptor thread (woken here) or could
 * not: the acceptor thread starts with the port's first accept, so that a
 * port that never accepts does not pay for it. */
static bool enqueue(ovl_port *p, tb *t, ovl__op *op)
{
    if (op->kind == OVL_OP_ACCEPT) {
        if (!t->acceptor_started) {
            int e = ovl__sys.thread_create(&t->acceptor, acceptor_main, p);
            if (e) {
                complete_errno(p, t, op, e);
                return false;
            }
            t->acceptor_started = true;
        }
        op->bstate = B_QUEUED;
        list_push(&t->accq, op);
        ovl__cond_signal(&t->acc_cond);
        return false;
    }
    op->bstate = B_QUEUED;
    list_push(&t->work, op);
    return true;
}

/* Lock held: an op with a deadline enters the heap; wakes the readiness
 * thread when it is the nearest. */
static void arm_deadline(tb *t, ovl__op *op)
{
    if (op->timeout_ns > 0 && heap_push(t, op)) signal_fd(t->pwake);
}

static void t_close_handle(ovl_fd h, uint32_t kind)
{
    (void)kind;
    (void)ovl__sys.close((int)h);
}

/* Lock held. Registering takes the port's own duplicate of the file;
 * unregistering drops it (ops submitted before hold their own duplicates,
 * taken under the lock at submit: see t_submit). */
static int32_t t_register_fd(ovl_port *p, uint32_t slot, ovl_fd fd)
{
    tb *t = p->be;
    if (fd == OVL__NO_FD) {
        if (t->reg_dup[slot] >= 0) ovl__sys.close(t->reg_dup[slot]);
        t->reg_dup[slot] = -1;
        return OVL_OK;
    }
    int d;
    do {
        d = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    } while (d < 0 && errno == EINTR);
    if (d < 0) return errno == EBADF ? OVL_EBADF : ovl__errno_to_code(errno);
    t->reg_dup[slot] = d;
    return OVL_OK;
}

/* Lock held: an op on a registered fd takes its reference from the port's
 * duplicate now, while the registration cannot change (a later unregister
 * closes that duplicate): it then runs on the file registered when it was
 * submitted, even if the caller closes its number. Returns 0 (done, or not
 * registered: t_kick takes it from the caller's number) or an errno. */
static int take_registered_file(ovl_port *p, tb *t, ovl__op *op)
{
    int i;
    if (!p->nreg || (i = ovl__reg_find(p, op->fd)) < 0) return 0;
    int src = t->reg_dup[p->reg[i].slot];
    if (src < 0) return 0;
    int fd;
    do {
        fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) return 0; /* borrow, as take_file */
    if (fd < 0) return errno;
    op_set_fd(op, fd);
    return 0;
}

static void t_submit(ovl_port *p, ovl__op **ops, size_t n)
{
    tb *t = p->be;
    bool queued = false;
    uint64_t now = 0;
    for (size_t i = 0; i < n; i++) {
        ovl__op *op = ops[i];
        op_file_init(op);
        if (op->kind == OVL_OP_POST) {
            complete(p, t, op, 0, 0);
            continue;
        }
        /* The deadline counts from the submit; the op enters the heap when
         * it leaves PENDING (t_kick), a timer at once. */
        dl_slot *d = &t->dl[op->index];
        d->expired = 0;
        if (op->timeout_ns > 0) {
            if (!now) now = now_ns();
            d->at = (uint64_t)op->timeout_ns > UINT64_MAX - now ? UINT64_MAX
                                                                : now + (uint64_t)op->timeout_ns;
        }
        if (op->kind == OVL_OP_TIMER) {
            op->bstate = B_TIMER;
            arm_deadline(t, op);
            continue;
        }
        int re = take_registered_file(p, t, op);
        if (re) {
            complete_errno(p, t, op, re);
            continue;
        }
        if (!pend.head || pend.p == p) {
            /* The kick that follows takes its file reference (unless it
             * has one already: a registered fd's). */
            op->bstate = B_PENDING;
            op->next = NULL;
            if (pend.head) pend.tail->next = op;
            else pend.head = op;
            pend.tail = op;
            pend.p = p;
            continue;
        }
        /* Another port's ops pending on this thread: cannot happen (every
         * submit is followed by its kick before the thread can submit
         * elsewhere), but if it did, take the reference here. */
        int e = op_fd(op) >= 0 ? 0 : take_file(op);
        if (e) {
            complete_errno(p, t, op, e);
            continue;
        }
        if (enqueue(p, t, op)) queued = true;
        if (op->bstate == B_QUEUED) arm_deadline(t, op);
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
        list_remove(queue_of(t, op), op);
        complete_errno(p, t, op, ECANCELED);
        break;
    case B_TIMER: complete_errno(p, t, op, ECANCELED); break;
    case B_WAITING:
        unpark(t, op);
        complete_errno(p, t, op, ECANCELED);
        break;
    default:
        /* PENDING: its kick sees cancel_req and completes it; RUNNING:
         * completes normally (documented); DONE: already has its result. */
        break;
    }
}

static void t_kick(ovl_port *p, bool from_cb)
{
    /* Not deferred for a callback's submits: the callback may close its fd
     * right after the submit returns. */
    (void)from_cb;
    if (!pend.head || pend.p != p) return;
    ovl__op *head = pend.head;
    pend.head = pend.tail = NULL;
    pend.p = NULL;
    for (ovl__op *op = head; op; op = op->next) op->os_error = op_fd(op) >= 0 ? 0 : take_file(op);
    tb *t = p->be;
    size_t queued = 0;
    ovl__mutex_lock(&p->lock);
    for (ovl__op *op = head, *next; op; op = next) {
        next = op->next;
        if (op->os_error) {
            complete_errno(p, t, op, op->os_error);
        } else if (op->cancel_req) {
            /* ovl_cancel or close came first; t_wait releases the file. */
            complete_errno(p, t, op, ECANCELED);
        } else {
            if (enqueue(p, t, op)) queued++;
            if (op->bstate == B_QUEUED) arm_deadline(t, op);
        }
    }
    if (queued > 1) ovl__cond_broadcast(&t->work_cond);
    else if (queued) ovl__cond_signal(&t->work_cond);
    ovl__mutex_unlock(&p->lock);
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
        /* A reaper: what completes while it sleeps is its to take (the
         * loop takes it under this lock before any exit), so complete()
         * leaves the manual-mode handle alone meanwhile. */
        t->reapers++;
        if (timeout_ms < 0) {
            ovl__cond_wait(&t->done_cond, &p->lock);
        } else {
            uint64_t now = ovl__now_ms();
            if (now < deadline)
                ovl__cond_timedwait_ms(&t->done_cond, &p->lock, (int64_t)(deadline - now));
        }
        t->reapers--;
        if (timeout_ms > 0 && ovl__now_ms() >= deadline && !t->done.head) break;
    }
    t->woken = false;
    /* Manual mode: the handle was drained above; if completions are left
     * (more than cap, or ovl_poll stopped early), make it readable again so
     * an outside event loop comes back for them. */
    bool more = (p->flags & OVL_PORT_MANUAL) && t->done.head;
    ovl__mutex_unlock(&p->lock);
    /* Ops that ended without a worker (cancelled while queued or parked)
     * still hold their file: release it before the completion is delivered.
     * The ops are DONE and not yet harvested, so they are ours. */
    for (size_t i = 0; i < n; i++) {
        ovl__op *op = &p->ops[ovl__token_index(out[i].token)];
        if (op_fd(op) >= 0) op_file_release(t, op);
    }
    if (more) signal_fd(t->efd);
    return n;
}

/* The caller reaps what completes until it turns this off, so complete()
 * leaves the manual-mode handle alone meanwhile (see reapers). */
static void t_quiet_event(ovl_port *p, bool on)
{
    tb *t = p->be;
    ovl__mutex_lock(&p->lock);
    if (on) t->reapers++;
    else t->reapers--;
    bool more = !on && t->reapers == 0 && t->done.head;
    ovl__mutex_unlock(&p->lock);
    if (more) signal_fd(t->efd);
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
    .name = "threads",
    .id = OVL_BACKEND_THREADS,
    .net_ops = true,
    .timeouts = true,
    .init = t_init,
    .submit = t_submit,
    .cancel = t_cancel,
    .kick = t_kick,
    .wait = t_wait,
    .wake = t_wake,
    .quiet_event = t_quiet_event,
    .event_fd = t_event_fd,
    .destroy = t_destroy,
    .forget = t_forget,
    .close_handle = t_close_handle,
    .register_fd = t_register_fd,
};
const ovl__backend *const ovl__backend_threads = &threads_backend;

#else
const ovl__backend *const ovl__backend_threads = NULL;
#endif /* !_WIN32 */
