/* uring.c - the Linux io_uring backend on raw system calls (no liburing):
 * io_uring_setup/enter/register through ovl__sys, the rings mmapped here.
 * The op's token goes into each SQE's user_data and comes back in its CQE. */
#include "ovl_internal.h"

#ifdef __linux__
#  include "sys.h"

#  include <errno.h>
#  include <fcntl.h>
#  include <limits.h>
#  include <linux/io_uring.h>
#  include <poll.h>
#  include <stdio.h>
#  include <stdlib.h>
#  include <string.h>
#  include <sys/mman.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <sys/uio.h>
#  include <signal.h>
#  include <pthread.h>
#  include <time.h>
#  include <unistd.h>

#  ifndef RWF_NOSIGNAL
#    define RWF_NOSIGNAL 0x00000100 /* Linux 6.18: no SIGPIPE for this write */
#  endif

/* Internal tokens (bit 63 set: never an op's). */
#  define TOKEN_WAKE (OVL__TOKEN_INTERNAL | 1u)
#  define TOKEN_CANCEL (OVL__TOKEN_INTERNAL | 2u)
#  define TOKEN_PROBE (OVL__TOKEN_INTERNAL | 3u)
/* An op's token with this bit: the CQE of its linked timeout (see "per-op
 * timeouts"). Op generations stay below 2^30 (op.c), so no op token has
 * it, and the internal tokens above do not either. */
#  define TOKEN_LINKED_TIMEOUT (1ull << 62)

/* op->bstate bits */
#  define B_CANCEL_SENT 1u
#  define B_POLL 2u   /* a pipe write waiting in its poll stage (see "SIGPIPE") */
#  define B_LINK 4u   /* this round's linked-timeout CQE has not come yet */
#  define B_HELD 8u   /* the op's own result came first: in op->result */
#  define B_FIRED 16u /* this round's timeout fired (its CQE said -ETIME) */
#  define B_PARKED                                                                                 \
    32u /* a pipe write's poll to be armed again once the
                          timeout CQE is in */
#  define B_CONNPOLL                                                                               \
    64u                     /* a connect issued again waits for the connection
                          its first issue started (POLLOUT, then SO_ERROR) */
#  define B_UNSUP 128u      /* the kernel lacks the opcode: a NOP, OVL_ENOTSUP */
#  define B_REISSUE_SHIFT 8 /* bits 8..15: re-issues after an EFAULT (below) */
#  define B_REISSUE_MAX 16u
#  define B_TERR_SHIFT 16 /* bits 16..27: errno of a linked timeout that failed */

/* ovl__event.pad, from reap to u_settle: which CQE of the op it is. */
#  define EV_OP 0u
#  define EV_TIMEOUT 1u

/* The kernel-visible features this backend relies on, all in Linux 5.11+:
 * one mmap for both rings, no dropped CQEs on overflow, and timeouts passed
 * to io_uring_enter (manual-mode ovl_poll). */
#  define NEEDED_FEATURES (IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG)

typedef struct ring {
    int fd;
    unsigned features;
    /* SQ: head is the kernel's, tail ours (written under the port lock). */
    unsigned *sq_head, *sq_tail, *sq_flags, *sq_array;
    unsigned sq_mask, sq_entries;
    unsigned tail; /* our next tail, published on submit */
    struct io_uring_sqe *sqes;
    /* CQ: tail is the kernel's, head ours (completion-side only). */
    unsigned *cq_head, *cq_tail;
    unsigned *cq_flags; /* IORING_CQ_EVENTFD_DISABLED (ours; Linux 5.8+) */
    unsigned cq_mask;
    struct io_uring_cqe *cqes;
    void *map;
    size_t map_len;
    size_t sqes_len;
} ring;

/* A kernel file-table slot (see "registered files" below). */
typedef struct kfile {
    _Atomic uint32_t refs;  /* ops naming it, not yet delivered */
    _Atomic uint32_t state; /* KF_*; changed under the port lock */
} kfile;

enum { KF_FREE = 0, KF_LIVE = 1, KF_RETIRED = 2 };

/* opk[op index]: kernel slot + 1 that the op holds a reference on (0:
 * none), from its first SQE until its completion is delivered. */

typedef struct uring {
    ring r;
    bool fixed;               /* a sparse registered-file table exists */
    bool nosignal;            /* writes carry RWF_NOSIGNAL (Linux 6.18+) */
    int efd;                  /* manual mode: registered eventfd */
    _Atomic int wake_pending; /* one wake NOP at a time */
    ovl_port *port;
    /* Registered files (the port lock): the core's slot -> kernel slot
     * (-1: used unfixed). */
    int32_t kslot[OVL_MAX_REGISTERED_FDS];
    uint32_t nk;           /* kernel table size */
    uint32_t nretired;     /* KF_RETIRED slots */
    kfile *kf;             /* nk of them */
    _Atomic uint32_t *opk; /* depth of them */
    uint64_t ops_ok;       /* bit n: the kernel has opcode n (< 64) */
} uring;

/* ---- the ring itself ---------------------------------------------------- */

static int ring_open(ring *r, unsigned entries, unsigned cq_entries)
{
    struct io_uring_params prm;
    memset(&prm, 0, sizeof prm);
    memset(r, 0, sizeof *r);
    r->fd = -1;
    prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    prm.cq_entries = cq_entries;
    long fd = ovl__sys.io_uring_setup(entries, &prm);
    if (fd < 0) return (int)fd;
    r->fd = (int)fd;
    r->features = prm.features;
    if ((prm.features & NEEDED_FEATURES) != NEEDED_FEATURES) {
        ovl__sys.close(r->fd);
        r->fd = -1;
        return -EOPNOTSUPP;
    }
    size_t sq_len = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
    size_t cq_len = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
    /* IORING_FEAT_SINGLE_MMAP: one mapping serves both rings. */
    r->map_len = sq_len > cq_len ? sq_len : cq_len;
    r->map = ovl__sys.mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                           r->fd, IORING_OFF_SQ_RING);
    if (r->map == MAP_FAILED) {
        int e = errno;
        ovl__sys.close(r->fd);
        r->fd = -1;
        r->map = NULL;
        return -e;
    }
    r->sqes_len = prm.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = ovl__sys.mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                            r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) {
        int e = errno;
        ovl__sys.munmap(r->map, r->map_len);
        ovl__sys.close(r->fd);
        r->fd = -1;
        r->map = NULL;
        r->sqes = NULL;
        return -e;
    }
    char *m = r->map;
    r->sq_head = (unsigned *)(m + prm.sq_off.head);
    r->sq_tail = (unsigned *)(m + prm.sq_off.tail);
    r->sq_flags = (unsigned *)(m + prm.sq_off.flags);
    r->sq_array = (unsigned *)(m + prm.sq_off.array);
    r->sq_mask = *(unsigned *)(m + prm.sq_off.ring_mask);
    r->sq_entries = *(unsigned *)(m + prm.sq_off.ring_entries);
    r->cq_head = (unsigned *)(m + prm.cq_off.head);
    r->cq_tail = (unsigned *)(m + prm.cq_off.tail);
    r->cq_flags = (unsigned *)(m + prm.cq_off.flags);
    r->cq_mask = *(unsigned *)(m + prm.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(m + prm.cq_off.cqes);
    /* SQE slot i is always array entry i: fill the indirection once. */
    for (unsigned i = 0; i < r->sq_entries; i++) r->sq_array[i] = i;
    r->tail = *r->sq_tail;
    return 0;
}

static void ring_close(ring *r)
{
    if (r->sqes) ovl__sys.munmap(r->sqes, r->sqes_len);
    if (r->map) ovl__sys.munmap(r->map, r->map_len);
    if (r->fd >= 0) ovl__sys.close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* ---- exits of issuing threads --------------------------------------------
 * io_uring ties a request to the task whose io_uring_enter issued it (with
 * a shared SQ, whichever thread flushed it). When that task has exited, the
 * kernel fails what it had to finish in that task's context:
 *  - a request that was still queued or waiting for readiness (io-wq work,
 *    an armed poll of a pipe or socket) completes with -ECANCELED;
 *  - a buffered read that waited for a page (the cold file: the page-cache
 *    wake-up queues task work, io_req_task_queue) is failed by
 *    io_req_task_submit with -EFAULT once io_should_terminate_tw() sees the
 *    task exiting (Linux 5.x to 6.18 alike; measured here on 6.18: every
 *    1 MiB read from an evicted file whose submitter exited at once).
 *  - either, after part of the transfer, comes out as the part: a short
 *    count (io_fixup_rw_res), seen here as short cold 1 MiB reads.
 * Such an op is issued again (for the rest, if part was done) from the
 * reaping thread, which is alive (guarantee 1; u_settle). An unrequested
 * -ECANCELED can only come from an exit. -EFAULT can be genuine (a bad
 * buffer), so it is taken for an exit's only if some thread that called
 * io_uring_enter has exited since the op's SQE was prepared: `exits` counts
 * them (a thread-specific key's destructor, armed at a thread's first enter,
 * runs before the thread's task exits in the kernel, hence before the
 * failure is posted), and each op carries the count at its preparation. A
 * genuine EFAULT that an unrelated exit makes look suspicious is issued
 * again and fails again, at most B_REISSUE_MAX times. */
static _Atomic uint64_t exits;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_key_ok;
static OVL__THREAD_LOCAL bool exit_armed;

static void on_thread_exit(void *v)
{
    (void)v;
    atomic_fetch_add(&exits, 1);
}

static void exit_key_create(void)
{
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

/* Unloading the library must not leave a destructor behind in libc's key
 * table for threads that exit later. */
__attribute__((destructor)) static void exit_key_delete(void)
{
    if (exit_key_ok) pthread_key_delete(exit_key);
}

static inline void exit_arm(void)
{
    if (exit_armed) return;
    exit_armed = true;
    pthread_once(&exit_once, exit_key_create);
    if (exit_key_ok) pthread_setspecific(exit_key, (void *)1);
}

/* The op's stamp lives in its OVERLAPPED space, unused on Linux. */
static inline void stamp(ovl__op *op) { op->os.raw[0] = atomic_load(&exits); }

static long ring_enter(ovl_port *p, ring *r, unsigned to_submit, unsigned min_complete,
                       unsigned flags, const void *arg, size_t argsz)
{
    if (p) atomic_fetch_add_explicit(&p->syscalls, 1, memory_order_relaxed);
    exit_arm();
    return ovl__sys.io_uring_enter(r->fd, to_submit, min_complete, flags, arg, argsz);
}

/* SQEs published but not yet consumed by the kernel. */
static unsigned sq_pending(const ring *r)
{
    /* acquire on our own tail: pairs with the release in publish() done by
     * another submitter thread; acquire on head: the kernel's progress. */
    unsigned tail = __atomic_load_n(r->sq_tail, __ATOMIC_ACQUIRE);
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    return tail - head;
}

/* Make the SQEs written so far visible to the kernel. Port lock held. */
static void publish(ring *r)
{
    /* release: every SQE field written above must be visible to the kernel
     * before it can observe the new tail. */
    __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
}

/* Submit everything published. Returns 0, or -errno for an error that left
 * SQEs in the ring (they then go with the next enter of the completion
 * side: its wait always passes the pending count).
 *
 * Transient refusals (-EAGAIN kernel memory, -EBUSY CQ backlog) are retried.
 * On the delivering thread (inside this port's callback) only briefly: the
 * backlog may be ours to reap, and our own next wait submits the rest. On
 * any other thread until the SQ is drained, by us or by anyone: giving up
 * there would strand the SQEs while the completion thread sleeps in the
 * kernel with nothing else in flight to wake it (the op would never
 * complete; tests/reliability faults::uring_enter_*_lone_submit). */
static int flush(ovl_port *p, ring *r)
{
    int busy = 0;
    bool delivering = p && ovl__in_callback(p);
    for (;;) {
        unsigned n = sq_pending(r);
        if (n == 0) return 0;
        long rc = ring_enter(p, r, n, 0, 0, NULL, 0);
        if (rc >= 0) continue; /* fewer than n: go round for the rest */
        if (rc == -EINTR) continue;
        if (rc == -EAGAIN || rc == -EBUSY || rc == -ENOMEM) {
            if (delivering && busy >= 64) return (int)rc;
            /* Give the completion side a moment to reap, then retry;
             * back off to 1 ms sleeps if the refusal lasts. */
            if (busy++ < 64) ovl__yield();
            else nanosleep(&(struct timespec){0, 1000000}, NULL);
            continue;
        }
        return (int)rc;
    }
}

/* A free SQE. Port lock held. When the SQ is full (only possible when a
 * callback defers more than 2*depth entries, or the kernel refused to
 * consume), push what is there first. */
static struct io_uring_sqe *sqe_get(ovl_port *p, ring *r)
{
    for (;;) {
        unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
        if (r->tail - head < r->sq_entries) {
            struct io_uring_sqe *sqe = &r->sqes[r->tail & r->sq_mask];
            memset(sqe, 0, sizeof *sqe);
            r->tail++;
            return sqe;
        }
        publish(r);
        if (flush(p, r) < 0) ovl__yield();
    }
}

/* ---- SIGPIPE --------------------------------------------------------------
 * A write to a pipe without readers, or to a socket whose peer is gone,
 * raises SIGPIPE in the task that performs it (pipe_write and the socket
 * layers: send_sig(SIGPIPE, current, 0)), and SIGPIPE's default action
 * kills the process. Under io_uring that task is not ours to choose: an
 * inline issue runs in the io_uring_enter of whichever thread flushed the
 * SQ (an application thread), and a write that first met a full pipe or
 * socket buffer is retried by task work of the task that issued it,
 * whenever that task next returns to user space (TWA_SIGNAL without
 * COOP_TASKRUN) - so masking SIGPIPE around io_uring_enter does not cover a
 * peer that leaves while the write waits for room (verified on 6.18: the
 * process dies at the submitter's next system call). io-wq workers block
 * every signal, but they hand pollable files back to the same task work.
 *
 * Linux 6.18+: RWF_NOSIGNAL on every write (IORING_OP_WRITE passes its
 * rw_flags to kiocb_set_rw_flags like pwritev2): pipes then skip the signal
 * and sockets get MSG_NOSIGNAL, on every path, at no cost.
 * Before 6.18 (probed by pwritev2, which refuses an unknown flag with
 * EOPNOTSUPP through the same check):
 *  - sockets: IORING_OP_SEND with MSG_NOSIGNAL (5.6+);
 *  - pipes and FIFOs: io_uring never writes. The op goes in as
 *    IORING_OP_POLL_ADD(POLLOUT) under its token with bit 63 set (its poll
 *    stage); when that fires, the reaper writes itself, without blocking
 *    (RWF_NOWAIT), with SIGPIPE blocked and any SIGPIPE the write raised
 *    taken back, so the thread's signal state is as it was; -EAGAIN arms
 *    the poll again. The completion thread, ovl's own, keeps SIGPIPE
 *    blocked for its whole life and so saves the mask switches.
 * Each stream write (and each positional one: io_uring, unlike pwrite,
 * lets an offset through to a pipe and ignores it) costs one fstat there.
 * OVL_URING_NO_RWF_NOSIGNAL=1 in the environment (read at port creation)
 * takes the pre-6.18 path on any kernel: the tests use it. */
static pthread_once_t nosignal_once = PTHREAD_ONCE_INIT;
static bool nosignal_ok;

static void nosignal_probe(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    char c = 0;
    struct iovec iov = {&c, 1};
    nosignal_ok = pwritev2(fds[1], &iov, 1, -1, RWF_NOSIGNAL) == 1;
    close(fds[0]);
    close(fds[1]);
}

static bool nosignal_usable(void)
{
    const char *e = getenv("OVL_URING_NO_RWF_NOSIGNAL");
    if (e && *e && strcmp(e, "0") != 0) return false;
    pthread_once(&nosignal_once, nosignal_probe);
    return nosignal_ok;
}

enum { W_OTHER, W_SOCKET, W_FIFO };

static int write_kind(int fd)
{
    struct stat st;
    /* A bad fd: the plain write reports it, as before. */
    if (ovl__sys.fstat(fd, &st) != 0) return W_OTHER;
    if (S_ISSOCK(st.st_mode)) return W_SOCKET;
    if (S_ISFIFO(st.st_mode)) return W_FIFO;
    return W_OTHER;
}

/* Set on the completion thread, which keeps SIGPIPE blocked for life. */
static OVL__THREAD_LOCAL bool sigpipe_kept_blocked;

typedef struct sigpipe_guard {
    sigset_t old;
    bool restore; /* old is the caller's mask, to be put back */
    bool pending; /* SIGPIPE was pending before (the caller's own) */
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g)
{
    g->restore = !sigpipe_kept_blocked;
    g->pending = false;
    if (!g->restore) return;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &g->old);
    /* Pending before us needs SIGPIPE blocked before us. */
    if (sigismember(&g->old, SIGPIPE)) {
        sigset_t pend;
        sigpending(&pend);
        g->pending = sigismember(&pend, SIGPIPE) == 1;
    }
}

/* epipe: the write failed with EPIPE, so it queued SIGPIPE for this thread
 * (merged into one already pending for it, if any). */
static void sigpipe_restore(sigpipe_guard *g, bool epipe)
{
    if (epipe) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        struct timespec zero = {0, 0};
        /* Takes the thread's own first, then the process's. */
        while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
        }
        if (g->pending) {
            sigset_t pend;
            sigpending(&pend);
            /* Nothing left: ours had merged into the caller's, and we took
             * that one. Raise it again, for this thread, still blocked. */
            if (!sigismember(&pend, SIGPIPE)) pthread_kill(pthread_self(), SIGPIPE);
        }
    }
    if (g->restore) pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The write of a pipe op whose poll said POLLOUT: never blocks, never
 * raises SIGPIPE for anyone. Returns bytes or -errno (-EAGAIN: the room
 * was taken meanwhile, poll again). */
static int64_t pipe_write_now(int fd, const void *buf, uint64_t len)
{
    sigpipe_guard g;
    sigpipe_block(&g);
    struct iovec iov = {(void *)(uintptr_t)buf, (size_t)len};
    ssize_t w;
    do {
        w = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno == EOPNOTSUPP) {
        /* A kernel whose pipes refuse RWF_NOWAIT. POLLOUT means a free
         * buffer slot, which holds PIPE_BUF bytes, so that much never
         * blocks; an O_NONBLOCK pipe takes any length without blocking. */
        int fl = fcntl(fd, F_GETFL);
        size_t n = (fl >= 0 && (fl & O_NONBLOCK)) || len <= PIPE_BUF ? (size_t)len : PIPE_BUF;
        do {
            w = write(fd, buf, n);
        } while (w < 0 && errno == EINTR);
    }
    int err = w < 0 ? errno : 0;
    sigpipe_restore(&g, err == EPIPE);
    if (w >= 0) return w;
    return err == EWOULDBLOCK ? -EAGAIN : -err;
}

/* ---- registered files ----------------------------------------------------
 * An SQE with IOSQE_FIXED_FILE names a slot of the ring's file table, and
 * the kernel reads the slot only when it issues the request: in the
 * io_uring_enter that consumes the SQE (after the port lock is released, or
 * after the batch when a callback submits), or later still, in an io-wq
 * worker or for a linked request. IORING_REGISTER_FILES_UPDATE changes a
 * slot at once (Linux 5.5 up to at least 6.18), so changing a slot that an
 * unissued SQE names sends that op to another file, or fails it with EBADF.
 * Once issued, a request holds its own reference to the file.
 *
 * So a kernel slot never changes while an SQE naming it may be issued:
 * kfile.refs counts the ops that name it, from the first SQE (the port
 * lock) until the op's completion is delivered (u_settle, the port lock
 * too); an op issued again names the same slot on the same reference.
 * ovl_unregister_fd retires the slot, which is emptied, and free again,
 * when its last op is delivered; a new registration takes a free slot. Every
 * retired slot has an op in flight, so a table of OVL_MAX_REGISTERED_FDS +
 * depth slots always has a free one. The kernel caps the table at
 * RLIMIT_NOFILE; in a smaller one, when no slot is free, the fd is
 * registered without one and its ops name it like unregistered ones. */

static void files_init(ovl_port *p, uring *u)
{
    for (unsigned i = 0; i < OVL_MAX_REGISTERED_FDS; i++) u->kslot[i] = -1;
    u->opk = calloc(p->depth, sizeof *u->opk);
    uint32_t sizes[2] = {OVL_MAX_REGISTERED_FDS + p->depth, 2 * OVL_MAX_REGISTERED_FDS};
    for (int i = 0; i < 2 && u->opk; i++) {
        uint32_t n = sizes[i];
        if (i && n >= sizes[0]) break;
        int *empty = malloc(n * sizeof *empty);
        u->kf = calloc(n, sizeof *u->kf);
        if (!empty || !u->kf) {
            free(empty);
            break;
        }
        for (uint32_t k = 0; k < n; k++) empty[k] = -1;
        /* An empty (sparse) table, registered now while nothing can be in
         * flight (older kernels quiesce the ring for this call). */
        long rc = ovl__sys.io_uring_register(u->r.fd, IORING_REGISTER_FILES, empty, n);
        free(empty);
        if (rc >= 0) {
            u->nk = n;
            u->fixed = true;
            return;
        }
        free(u->kf);
        u->kf = NULL;
        if (rc != -EMFILE && rc != -ENOMEM) break; /* EMFILE: RLIMIT_NOFILE */
    }
    /* No table: registered fds are only recorded. */
    free(u->kf);
    free(u->opk);
    u->kf = NULL;
    u->opk = NULL;
}

/* Put fd (-1: nothing) into kernel slot k. Lock held. */
static int32_t kfile_set(uring *u, uint32_t k, int fd)
{
    struct io_uring_files_update up;
    memset(&up, 0, sizeof up);
    up.offset = k;
    up.fds = (uint64_t)(uintptr_t)&fd;
    long rc = ovl__sys.io_uring_register(u->r.fd, IORING_REGISTER_FILES_UPDATE, &up, 1);
    if (rc < 0) return ovl__errno_to_code((int)-rc);
    return rc == 1 ? OVL_OK : OVL_EOS;
}

/* Empty the retired slots that no SQE names any more. Lock held. */
static void kfile_sweep(uring *u)
{
    for (uint32_t k = 0; k < u->nk && u->nretired; k++) {
        if (atomic_load(&u->kf[k].state) == KF_RETIRED && atomic_load(&u->kf[k].refs) == 0) {
            (void)kfile_set(u, k, -1);
            atomic_store(&u->kf[k].state, KF_FREE);
            u->nretired--;
        }
    }
}

/* Lock held (as for every kfile change). */
static void kfile_retire(uring *u, uint32_t k)
{
    atomic_store(&u->kf[k].state, KF_RETIRED);
    u->nretired++;
    if (atomic_load(&u->kf[k].refs) == 0) kfile_sweep(u);
}

/* One op naming slot k is done. True when the caller must sweep: the slot
 * was retired and this was its last op. Lock held. */
static bool kfile_put(uring *u, uint32_t k)
{
    return atomic_fetch_sub(&u->kf[k].refs, 1) == 1 && atomic_load(&u->kf[k].state) == KF_RETIRED;
}

/* Lock held. Make the SQE name the registered file of op->fd, if it has a
 * kernel slot, and count the op there. An op issued again (an exit cut it
 * short, a pipe write's poll armed again) keeps the slot it took first:
 * the file it was submitted to, whatever the number names by now. */
static void sqe_file(ovl_port *p, uring *u, ovl__op *op, struct io_uring_sqe *sqe)
{
    uint32_t k1 = atomic_load_explicit(&u->opk[op->index], memory_order_relaxed);
    if (!k1) {
        int i;
        if (!p->nreg || (i = ovl__reg_find(p, op->fd)) < 0) return;
        int32_t k = u->kslot[p->reg[i].slot];
        if (k < 0) return;
        atomic_fetch_add(&u->kf[k].refs, 1);
        k1 = (uint32_t)k + 1u;
        atomic_store_explicit(&u->opk[op->index], k1, memory_order_relaxed);
    }
    sqe->fd = (int)(k1 - 1u);
    sqe->flags |= IOSQE_FIXED_FILE;
}

/* Lock held: op's completion is about to be delivered; its slot may be
 * emptied now if it was retired. */
static void files_done(uring *u, ovl__op *op)
{
    uint32_t k1 = atomic_load_explicit(&u->opk[op->index], memory_order_relaxed);
    if (!k1) return;
    atomic_store_explicit(&u->opk[op->index], 0, memory_order_relaxed);
    if (kfile_put(u, k1 - 1u)) kfile_sweep(u);
}

/* ---- backend interface -------------------------------------------------- */

static unsigned pow2_at_least(unsigned v)
{
    unsigned x = 1;
    while (x < v) x <<= 1;
    return x;
}

/* Which of the opcodes this backend may issue the kernel knows
 * (IORING_REGISTER_PROBE, Linux 5.6+). Every one is older than the
 * features ring_open requires (accept, connect, timeouts and linked
 * timeouts 5.5, shutdown 5.11), so a kernel ovl runs on has them all; the
 * probe is there for kernels that lack an opcode anyway (a distribution
 * that disables one). An op whose opcode is missing completes with
 * OVL_ENOTSUP; the rest of the port works as usual. */
static void probe_ops(uring *u)
{
    enum { N = 64 };
    size_t sz = sizeof(struct io_uring_probe) + N * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *pr = calloc(1, sz); /* the kernel wants it zeroed */
    u->ops_ok = ~0ull;                         /* no answer: assume the 5.11 floor */
    if (!pr) return;
    long rc = ovl__sys.io_uring_register(u->r.fd, IORING_REGISTER_PROBE, pr, N);
    if (rc >= 0) {
        u->ops_ok = 0;
        for (unsigned i = 0; i < pr->ops_len && i < N; i++)
            if (pr->ops[i].flags & IO_URING_OP_SUPPORTED) u->ops_ok |= 1ull << pr->ops[i].op;
    }
    free(pr);
}

static inline bool op_ok(const uring *u, unsigned opcode)
{
    return opcode < 64 && (u->ops_ok >> opcode) & 1u;
}

static int32_t u_init(ovl_port *p)
{
    uring *u = calloc(1, sizeof *u);
    if (!u) return OVL_ENOMEM;
    u->efd = -1;
    u->port = p;
    u->nosignal = nosignal_usable();
    atomic_init(&u->wake_pending, 0);
    /* Room for every op, its linked timeout and a cancel, so a callback's
     * deferred submits never fill the SQ; CQ twice that so it does not
     * overflow in normal use (IORING_FEAT_NODROP keeps any overflow, see
     * u_wait). */
    unsigned sq = pow2_at_least(3 * p->depth + 2);
    if (sq > 32768) sq = 32768;
    int rc = ring_open(&u->r, sq, 2 * sq);
    if (rc < 0) {
        free(u);
        return rc == -ENOMEM ? OVL_ENOMEM : OVL_EUNAVAIL;
    }
    if (p->threads_cfg) {
        /* Cap io_uring's kernel workers (io-wq: used for I/O that cannot
         * complete without blocking, O_DIRECT on many filesystems, say) at
         * the configured thread count, bounded and unbounded alike. Linux
         * 5.15+; on older kernels the cap is simply not applied. */
        unsigned max[2] = {p->threads_cfg, p->threads_cfg};
        (void)ovl__sys.io_uring_register(u->r.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, max, 2);
    }
    if (p->flags & OVL_PORT_MANUAL) {
        int fds[2];
        if (ovl__sys.wakefd(fds) < 0) {
            ring_close(&u->r);
            free(u);
            return OVL_EOS;
        }
        u->efd = fds[0];
        /* The kernel signals the eventfd for every CQE it posts, except
         * while u_wait has it disabled (see "the eventfd" there). */
        long r = ovl__sys.io_uring_register(u->r.fd, IORING_REGISTER_EVENTFD, &u->efd, 1);
        if (r < 0) {
            ovl__sys.close(u->efd);
            ring_close(&u->r);
            free(u);
            return ovl__errno_to_code((int)-r);
        }
    }
    files_init(p, u);
    probe_ops(u);
    p->be = u;
    return OVL_OK;
}

/* Lock held. The core's slot `slot` gets a kernel slot of its own; an
 * unregistration (OVL__NO_FD) retires it (see "registered files"). */
static int32_t u_register_fd(ovl_port *p, uint32_t slot, ovl_fd fd)
{
    uring *u = p->be;
    if (!u->fixed) return OVL_OK;
    if (fd == OVL__NO_FD) {
        int32_t k = u->kslot[slot];
        u->kslot[slot] = -1;
        if (k >= 0) kfile_retire(u, (uint32_t)k);
        return OVL_OK;
    }
    uint32_t k = 0;
    while (k < u->nk && atomic_load(&u->kf[k].state) != KF_FREE) k++;
    if (k == u->nk) {
        /* Only with a table cut down by RLIMIT_NOFILE: registered without a
         * slot (used like an unregistered fd), but a number that is not open
         * is refused as the kernel would refuse it. */
        struct stat st;
        return ovl__sys.fstat((int)fd, &st) < 0 ? OVL_EBADF : OVL_OK;
    }
    int32_t rc = kfile_set(u, k, (int)fd);
    if (rc != OVL_OK) return rc;
    atomic_store(&u->kf[k].state, KF_LIVE);
    u->kslot[slot] = (int32_t)k;
    return OVL_OK;
}

static void u_destroy(ovl_port *p)
{
    uring *u = p->be;
    if (!u) return;
    /* Closing the ring fd only starts the ring's teardown: the kernel
     * drops the file table in io_ring_exit_work, after an RCU grace period
     * (measured: 20-40 ms later on Linux 6.18), so a registered file would
     * outlive ovl_close_port, and a pipe's reader would not see EOF. Drop
     * the table now: nothing is in flight, and IORING_UNREGISTER_FILES
     * puts every slot's file before it returns. Nothing else was found to
     * pin a file here: a finished request drops its file when it is freed,
     * just after its CQE is posted, by the task that issued it (io-wq
     * completions through that task's task_work), and the registered
     * eventfd is held as an eventfd context, not as a file. */
    if (u->fixed) (void)ovl__sys.io_uring_register(u->r.fd, IORING_UNREGISTER_FILES, NULL, 0);
    ring_close(&u->r);
    if (u->efd >= 0) ovl__sys.close(u->efd);
    free(u->kf);
    free(u->opk);
    free(u);
}

/* A child of fork(): see ovl__backend.forget. Unmapping the rings and
 * closing this process's copies of the ring fd and eventfd leave the
 * parent's ring as it is. */
static void u_close_handle(ovl_fd h, uint32_t kind)
{
    (void)kind;
    (void)ovl__sys.close((int)h);
}

static void u_forget(ovl_port *p)
{
    uring *u = p->be;
    ring_close(&u->r);
    if (u->efd >= 0) ovl__sys.close(u->efd);
    free(u->kf);
    free(u->opk);
    free(u);
}

/* ---- per-op timeouts and timers -------------------------------------------
 * An op with timeout_ns goes in as two SQEs: the op with IOSQE_IO_LINK, then
 * IORING_OP_LINK_TIMEOUT under the op's token with bit 62. Each posts one
 * CQE, in either order:
 *  - the op finished first: its real result; the timeout, disarmed by the
 *    op's completion, -ECANCELED (or -ENOENT/-EALREADY when it expired
 *    just as the op finished, and found nothing it could stop);
 *  - the timeout fired first: it cancelled the op, which posts -ECANCELED
 *    (a poll-driven op: socket, pipe, accept, connect), and it posts -ETIME;
 *    an op it could not stop (a regular-file read inside an io-wq worker)
 *    posts its real result, the timeout -EALREADY;
 *  - the timeout's own SQE failed: the op is cancelled before it starts,
 *    the timeout posts the error.
 * The op's slot therefore waits for both (B_LINK: the timeout's CQE is still
 * to come; B_HELD: the op's came first and is kept in op->result), and only
 * then is the one completion decided: -ECANCELED with -ETIME is
 * OVL_ETIMEDOUT, anything else the op's own result. An op issued again (an
 * exit of its issuer, a pipe write whose room was taken, a connect that
 * waits for the connection its first issue started) starts a new pair only
 * after both CQEs of the last one are in, so a late CQE is never taken for
 * the new round's.
 *
 * The deadline is absolute (IORING_TIMEOUT_ABS on CLOCK_MONOTONIC), fixed
 * at submit and kept in op->os.raw[2..3]: an op issued again keeps it
 * instead of restarting its timeout ("this long after the submit"). The
 * kernel copies the timespec when it consumes the SQE, while the op is in
 * flight, so the op's own storage is enough. Timers are IORING_OP_TIMEOUT
 * (count 0) on the same deadline: -ETIME is the timer firing (result 0). */
_Static_assert(sizeof(struct __kernel_timespec) == 2 * sizeof(uint64_t),
               "the deadline fits op->os.raw[2..3]");

static void set_deadline(ovl__op *op)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct __kernel_timespec ts;
    long long ns = now.tv_nsec + op->timeout_ns % 1000000000LL;
    ts.tv_sec = (long long)now.tv_sec + op->timeout_ns / 1000000000LL + ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    memcpy(&op->os.raw[2], &ts, sizeof ts);
}

static inline bool has_link(const ovl__op *op)
{
    return op->timeout_ns > 0 && op->kind != OVL_OP_TIMER && op->kind != OVL_OP_POST;
}

/* Room for n SQEs in a row. A linked pair must reach the kernel in one
 * io_uring_enter: a link cut by the end of a submission ends there, and the
 * timeout alone would fail. Lock held. */
static void sq_reserve(ovl_port *p, ring *r, unsigned n)
{
    for (;;) {
        unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
        if (r->tail - head + n <= r->sq_entries) return;
        publish(r);
        if (flush(p, r) < 0) ovl__yield();
    }
}

/* The kernel's opcode for op as prep issues it. */
static unsigned op_opcode(const ovl__op *op)
{
    switch (op->kind) {
    case OVL_OP_ACCEPT: return IORING_OP_ACCEPT;
    case OVL_OP_CONNECT: return (op->bstate & B_CONNPOLL) ? IORING_OP_POLL_ADD : IORING_OP_CONNECT;
    case OVL_OP_SHUTDOWN: return IORING_OP_SHUTDOWN;
    case OVL_OP_TIMER: return IORING_OP_TIMEOUT;
    case OVL_OP_FSYNC: return IORING_OP_FSYNC;
    case OVL_OP_READ: return IORING_OP_READ;
    case OVL_OP_WRITE: return IORING_OP_WRITE;
    default: return IORING_OP_NOP;
    }
}

static unsigned poll_mask(unsigned ev)
{
#  if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    ev = (ev << 16) | (ev >> 16); /* the kernel swaps the halves */
#  endif
    return ev;
}

/* Write op's SQE (and its linked timeout's). Lock held. */
static void prep(ovl_port *p, uring *u, ovl__op *op)
{
    ring *r = &u->r;
    bool link = has_link(op);
    uint64_t ud = ovl__op_token(op); /* the trick: the way back */
    if (!op_ok(u, op_opcode(op)) || (link && !op_ok(u, IORING_OP_LINK_TIMEOUT))) {
        /* Per op, never per port: this one completes OVL_ENOTSUP (u_settle)
         * through a NOP, everything else runs as usual. */
        struct io_uring_sqe *nop = sqe_get(p, r);
        nop->opcode = IORING_OP_NOP;
        nop->fd = -1;
        nop->user_data = ud;
        op->bstate |= B_UNSUP;
        stamp(op);
        return;
    }
    if (link) sq_reserve(p, r, 2);
    struct io_uring_sqe *sqe = sqe_get(p, r);
    sqe->fd = (int)op->fd;
    switch (op->kind) {
    case OVL_OP_READ:
    case OVL_OP_WRITE:
        if (u->fixed) sqe_file(p, u, op, sqe);
        sqe->opcode = op->kind == OVL_OP_READ ? IORING_OP_READ : IORING_OP_WRITE;
        /* os.raw[1]: what earlier rounds of a positional transfer that an
         * exit cut short have done (u_settle); 0 on the first. */
        sqe->addr = (uint64_t)(uintptr_t)op->buf + op->os.raw[1];
        sqe->len = (uint32_t)(op->len - op->os.raw[1]);
        /* off == -1: use (and advance) the file position, which is what
         * stream I/O on pipes and sockets means. A read of a socket is a
         * recv (sock_read_iter), which never raises a signal. */
        sqe->off = op->offset >= 0 ? (uint64_t)op->offset + op->os.raw[1] : (uint64_t)-1;
        if (op->kind == OVL_OP_READ) break;
        if (u->nosignal) {
            sqe->rw_flags = RWF_NOSIGNAL; /* see "SIGPIPE" */
            break;
        }
        switch (write_kind((int)op->fd)) {
        case W_SOCKET:
            sqe->opcode = IORING_OP_SEND;
            sqe->off = 0; /* no destination address */
            sqe->msg_flags = MSG_NOSIGNAL;
            break;
        case W_FIFO: /* the poll stage: the reaper writes */
            /* A zero-length pipe write returns 0 at once and raises
             * nothing (pipe_write checks the length first); a poll for
             * room would wait for ever on a full pipe. */
            if (op->len == 0) break;
            sqe->opcode = IORING_OP_POLL_ADD;
            sqe->addr = 0;
            sqe->len = 0;
            sqe->off = 0;
            sqe->poll32_events = poll_mask(POLLOUT);
            ud |= OVL__TOKEN_INTERNAL;
            op->bstate |= B_POLL;
            break;
        default: break;
        }
        break;
    case OVL_OP_FSYNC:
        /* Through the registered file too: the number may name another
         * file by now, or none. */
        if (u->fixed) sqe_file(p, u, op, sqe);
        sqe->opcode = IORING_OP_FSYNC;
        sqe->fsync_flags = (op->flags & OVL_FSYNC_DATA) ? IORING_FSYNC_DATASYNC : 0;
        break;
    case OVL_OP_ACCEPT:
        if (u->fixed) sqe_file(p, u, op, sqe);
        sqe->opcode = IORING_OP_ACCEPT;
        /* Close-on-exec from the start: a fork+exec on another thread
         * never inherits it. */
        sqe->accept_flags = SOCK_CLOEXEC;
        if (op->buf) {
            ovl_addr *peer = op->buf;
            /* In: the room; out: the address's real length (socklen_t is
             * the uint32_t len). */
            peer->len = OVL_ADDR_MAX;
            sqe->addr = (uint64_t)(uintptr_t)peer->data.bytes;
            sqe->addr2 = (uint64_t)(uintptr_t)&peer->len;
        }
        break;
    case OVL_OP_CONNECT:
        if (u->fixed) sqe_file(p, u, op, sqe);
        if (op->bstate & B_CONNPOLL) {
            /* Issued again while the first issue's connect is under way
             * (see conn_settle): wait for it to end. */
            sqe->opcode = IORING_OP_POLL_ADD;
            sqe->poll32_events = poll_mask(POLLOUT);
            break;
        }
        sqe->opcode = IORING_OP_CONNECT;
        sqe->addr = (uint64_t)(uintptr_t)((const ovl_addr *)op->buf)->data.bytes;
        sqe->off = ((const ovl_addr *)op->buf)->len; /* addrlen */
        break;
    case OVL_OP_SHUTDOWN:
        if (u->fixed) sqe_file(p, u, op, sqe);
        sqe->opcode = IORING_OP_SHUTDOWN;
        /* OVL_SHUT_RD/WR/RDWR are SHUT_RD/WR/RDWR + 1. */
        sqe->len = op->flags - 1u;
        break;
    case OVL_OP_TIMER:
        sqe->opcode = IORING_OP_TIMEOUT;
        sqe->fd = -1;
        sqe->addr = (uint64_t)(uintptr_t)&op->os.raw[2];
        sqe->len = 1;
        sqe->off = 0; /* no completion count: a pure timer */
        sqe->timeout_flags = IORING_TIMEOUT_ABS;
        break;
    default: /* OVL_OP_POST: a NOP round trip through the ring */
        sqe->opcode = IORING_OP_NOP;
        sqe->fd = -1;
        break;
    }
    sqe->user_data = ud;
    if (link) {
        sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *t = sqe_get(p, r); /* reserved above */
        t->opcode = IORING_OP_LINK_TIMEOUT;
        t->fd = -1;
        t->addr = (uint64_t)(uintptr_t)&op->os.raw[2];
        t->len = 1;
        t->timeout_flags = IORING_TIMEOUT_ABS;
        t->user_data = ovl__op_token(op) | TOKEN_LINKED_TIMEOUT;
        op->bstate |= B_LINK;
    }
    stamp(op);
}

static void u_submit(ovl_port *p, ovl__op **ops, size_t n)
{
    uring *u = p->be;
    for (size_t i = 0; i < n; i++) {
        ops[i]->os.raw[1] = 0;
        if (ops[i]->timeout_ns > 0) set_deadline(ops[i]);
        prep(p, u, ops[i]);
    }
    publish(&u->r);
}

/* The CQE of a pipe write's poll stage (see "SIGPIPE"). Returns true with
 * *ev filled when the op is done; false when there is nothing to deliver
 * (the poll is armed again: *again is set, flush it). Delivery side. */
static bool poll_stage(uring *u, uint64_t token, int32_t res, ovl__event *ev, bool *again)
{
    ovl_port *p = u->port;
    int64_t out;
    ovl__mutex_lock(&p->lock);
    ovl__op *op = ovl__op_from_token(p, token);
    if (!op || !(op->bstate & B_POLL)) {
        p->stale++; /* never deliver it twice */
        ovl__mutex_unlock(&p->lock);
        return false;
    }
    if (op->cancel_req || (res == -ECANCELED && (op->bstate & B_FIRED))) {
        /* Nothing written yet: stopped, whatever the poll said (by its
         * timeout, if that fired: u_settle makes it OVL_ETIMEDOUT). */
        out = -ECANCELED;
    } else if (res < 0 && res != -ECANCELED) {
        out = res; /* -EBADF and the like, from the poll */
    } else {
        if (res >= 0) {
            /* Writable (or POLLERR: no readers, which the write reports).
             * The op stays INFLIGHT and only this thread (the reaper)
             * finishes it, so its fields are safe to read unlocked. */
            int fd = (int)op->fd;
            const void *buf = op->buf;
            uint64_t len = op->len;
            ovl__mutex_unlock(&p->lock);
            out = pipe_write_now(fd, buf, len);
            ovl__mutex_lock(&p->lock);
            if (out != -EAGAIN) goto done;
            if (op->cancel_req) {
                out = -ECANCELED;
                goto done;
            }
        }
        /* Room taken meanwhile, or the poll cancelled by the exit of the
         * thread that armed it (its task work fails it with -ECANCELED),
         * or by its timeout: poll again, once this round's timeout CQE
         * says which (u_settle arms it then). A cancel from now on finds
         * the new poll (its SQE goes after this one); one that came before
         * is seen above. */
        if (op->bstate & B_LINK) {
            op->bstate |= B_PARKED;
            ovl__mutex_unlock(&p->lock);
            return false;
        }
        op->bstate &= ~(B_CANCEL_SENT | B_POLL); /* prep sets B_POLL again */
        prep(p, u, op);
        publish(&u->r);
        *again = true;
        ovl__mutex_unlock(&p->lock);
        return false;
    }
done:
    ovl__mutex_unlock(&p->lock);
    ev->token = token;
    ev->pad = EV_OP;
    ev->result = out >= 0 ? out : ovl__errno_to_code((int)-out);
    ev->os_error = out >= 0 ? 0 : (int32_t)-out;
    return true;
}

/* Every event of an op, before the core delivers it (lock held): if the
 * exit of the thread that issued it failed it (see "exits of issuing
 * threads"), issue it again and return false; else return true, with *ev
 * as it is to be delivered. */
static bool settle_exit(ovl_port *p, ovl__op *op, ovl__event *ev)
{
    if (op->kind == OVL_OP_POST) return true;
    uring *u = p->be;
    uint64_t done = op->os.raw[1];
    uint32_t tries = (op->bstate >> B_REISSUE_SHIFT) & 0xffu;
    bool stale = !exit_key_ok || op->os.raw[0] != atomic_load(&exits);
    bool positional = op->offset >= 0 && (op->kind == OVL_OP_READ || op->kind == OVL_OP_WRITE);
    bool exit_made;
    if (ev->result >= 0) {
        /* Task work failed by the exit after part of the transfer reports
         * the part (io_fixup_rw_res): a short positional transfer with a
         * stale stamp is continued. A genuine one (end of file, a full
         * disk) then ends with 0 or the error, and the part is what is
         * delivered. Stream transfers are short by nature. */
        exit_made = stale && positional && ev->result > 0 &&
                    done + (uint64_t)ev->result < op->len && tries < B_REISSUE_MAX;
    } else if (ev->os_error == ECANCELED) {
        exit_made = !op->cancel_req; /* nobody asked: only an exit does that */
    } else {
        exit_made = ev->os_error == EFAULT && stale && tries < B_REISSUE_MAX;
    }
    if (exit_made && !op->cancel_req && atomic_load(&p->state) == OVL__PORT_OPEN) {
        if (ev->result > 0) op->os.raw[1] = done + (uint64_t)ev->result;
        /* A connect that waits for its first issue's connection keeps
         * waiting for it. */
        op->bstate = (op->bstate & B_CONNPOLL) | (tries < 0xffu ? tries + 1 : tries)
                                                     << B_REISSUE_SHIFT;
        prep(p, u, op);
        publish(&u->r);
        return false;
    }
    if (exit_made && ev->result < 0) {
        /* Failed by an exit, and cancel or close asked to stop it: it was
         * stopped. */
        ev->result = OVL_ECANCELED;
        ev->os_error = ECANCELED;
    }
    /* What earlier rounds transferred is part of the result. */
    if (done) {
        if (ev->result >= 0) {
            ev->result += (int64_t)done;
        } else {
            ev->result = (int64_t)done;
            ev->os_error = 0;
        }
    }
    return true;
}

/* Ask the kernel to stop op's current SQE (ovl_cancel, close, or the
 * recovery in round_done). Lock held. */
static void send_cancel(uring *u, ovl_port *p, ovl__op *op)
{
    struct io_uring_sqe *sqe = sqe_get(p, &u->r);
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    /* A pipe write in its poll stage is known by its poll's user_data. */
    sqe->addr = ovl__op_token(op) | ((op->bstate & B_POLL) ? OVL__TOKEN_INTERNAL : 0);
    sqe->user_data = TOKEN_CANCEL;
    /* Its own CQE only matters on failure (-ENOENT/-EALREADY: the op
     * completes by itself); skip it on success where supported. */
    if (u->r.features & IORING_FEAT_CQE_SKIP) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    publish(&u->r);
}

static inline bool stamp_stale(const ovl__op *op)
{
    return !exit_key_ok || op->os.raw[0] != atomic_load(&exits);
}

/* The two CQEs of an op with a linked timeout (see "per-op timeouts"):
 * returns false while this round still waits for one of them (or after it
 * armed a pipe write's poll again), true with *ev set to the round's one
 * result. Ops without a timeout pass straight through. Lock held. */
static bool round_done(ovl_port *p, uring *u, ovl__op *op, ovl__event *ev)
{
    if (ev->pad == EV_TIMEOUT) {
        int e = ev->os_error; /* a linked timeout always posts an error */
        op->bstate &= ~B_LINK;
        if (e == ETIME) {
            op->bstate |= B_FIRED;
        } else if (e != ECANCELED && e != ENOENT && e != EALREADY && e > 0 && e < 4096) {
            /* Its SQE failed, and the kernel cancelled the op with it. */
            op->bstate |= (uint32_t)e << B_TERR_SHIFT;
        }
        if (op->bstate & B_PARKED) {
            /* A pipe write's poll ended without a write (see poll_stage). */
            op->bstate &= ~B_PARKED;
            if (!(op->bstate & (B_FIRED | (0xfffu << B_TERR_SHIFT))) && !op->cancel_req) {
                op->bstate &= ~(B_CANCEL_SENT | B_POLL);
                prep(p, u, op);
                publish(&u->r);
                return false;
            }
            ev->result = OVL_ECANCELED;
            ev->os_error = ECANCELED;
        } else if (op->bstate & B_HELD) {
            ev->result = op->result;
            ev->os_error = op->os_error;
            op->bstate &= ~B_HELD;
        } else {
            /* The op's own CQE is still to come. A timeout cancelled
             * before its op finished can only be the exit of the thread
             * that issued them: the kernel fails the timeout's task work
             * (-ECANCELED) and leaves the op waiting without one. Stop the
             * op, which then goes round again as any op an exit stopped
             * (settle_exit), with a timeout, on the same deadline. Where
             * the op has finished after all, the cancel finds nothing. */
            if (e == ECANCELED && !op->cancel_req && stamp_stale(op) &&
                atomic_load(&p->state) == OVL__PORT_OPEN)
                send_cancel(u, p, op);
            return false;
        }
        ev->pad = EV_OP;
    } else if (op->bstate & B_LINK) {
        op->result = ev->result;
        op->os_error = ev->os_error;
        op->bstate |= B_HELD;
        return false;
    }
    /* Both CQEs are in. */
    uint32_t terr = (op->bstate >> B_TERR_SHIFT) & 0xfffu;
    bool fired = op->bstate & B_FIRED;
    op->bstate &= ~(B_FIRED | (0xfffu << B_TERR_SHIFT));
    if (ev->result < 0 && ev->os_error == ECANCELED) {
        if (fired) {
            ev->result = OVL_ETIMEDOUT;
            ev->os_error = ETIMEDOUT;
        } else if (terr) {
            ev->result = ovl__errno_to_code((int)terr);
            ev->os_error = (int32_t)terr;
        }
    }
    return true;
}

/* A connect issued again (an exit stopped the first issue): the first
 * issue may have started the connection. Connecting a socket whose
 * connection is under way says EALREADY: wait for it (POLLOUT) and take
 * its outcome from SO_ERROR; EISCONN: it is made. Returns false when the
 * op went round again. Lock held. */
static bool conn_settle(ovl_port *p, uring *u, ovl__op *op, ovl__event *ev)
{
    if (op->bstate & B_CONNPOLL) {
        if (ev->result < 0) return true; /* cancelled, timed out, bad fd */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt((int)op->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        ev->result = err ? ovl__errno_to_code(err) : 0;
        ev->os_error = err;
        return true;
    }
    if (((op->bstate >> B_REISSUE_SHIFT) & 0xffu) == 0) return true; /* first issue */
    if (ev->os_error == EISCONN) {
        ev->result = 0;
        ev->os_error = 0;
    } else if (ev->os_error == EALREADY && !op->cancel_req &&
               atomic_load(&p->state) == OVL__PORT_OPEN) {
        op->bstate = (op->bstate & ~(uint32_t)B_CANCEL_SENT) | B_CONNPOLL;
        prep(p, u, op);
        publish(&u->r);
        return false;
    }
    return true;
}

static bool u_settle(ovl_port *p, ovl__op *op, ovl__event *ev)
{
    uring *u = p->be;
    if (op->kind != OVL_OP_POST) {
        if (op->bstate & B_UNSUP) {
            ev->result = OVL_ENOTSUP;
            ev->os_error = EOPNOTSUPP;
        } else {
            if (!round_done(p, u, op, ev)) return false; /* the other CQE */
            if (op->kind == OVL_OP_TIMER && ev->os_error == ETIME) {
                ev->result = 0; /* the timer fired */
                ev->os_error = 0;
            }
            if (op->kind == OVL_OP_CONNECT && !conn_settle(p, u, op, ev)) return false;
            if (!settle_exit(p, op, ev)) return false; /* issued again */
        }
    }
    if (u->fixed) files_done(u, op);
    /* An accepted connection nobody receives (no callback) is closed by
     * the core's delivery, through close_handle. */
    return true;
}

static void u_cancel(ovl_port *p, ovl__op *op)
{
    uring *u = p->be;
    if (op->bstate & B_CANCEL_SENT) return; /* one cancel SQE per op */
    op->bstate |= B_CANCEL_SENT;
    send_cancel(u, p, op);
}

static void u_kick(ovl_port *p, bool from_cb)
{
    uring *u = p->be;
    /* From a callback, the SQEs wait for the flush after the batch: the
     * completion thread's next io_uring_enter (or ovl_poll's kick). */
    if (from_cb) return;
    flush(p, &u->r);
}

static void u_wake(ovl_port *p)
{
    uring *u = p->be;
    int expected = 0;
    if (atomic_compare_exchange_strong(&u->wake_pending, &expected, 1)) {
        ovl__mutex_lock(&p->lock);
        struct io_uring_sqe *sqe = sqe_get(p, &u->r);
        sqe->opcode = IORING_OP_NOP;
        sqe->fd = -1;
        sqe->user_data = TOKEN_WAKE;
        publish(&u->r);
        ovl__mutex_unlock(&p->lock);
    }
    flush(p, &u->r);
}

/* Harvest every available CQE (up to cap real events). Completion side only.
 * *internal is set when wake/cancel CQEs were consumed. */
static size_t reap(uring *u, ovl__event *out, size_t cap, bool *internal)
{
    ring *r = &u->r;
    /* Only the holder of deliver_lock writes the head; the completion
     * thread's wait_ready reads it concurrently, hence the atomic load. */
    unsigned head = __atomic_load_n(r->cq_head, __ATOMIC_RELAXED);
    /* acquire: the CQE contents written by the kernel are visible once we
     * see its tail move. */
    unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    size_t n = 0;
    bool reissued = false;
    while (head != tail && n < cap) {
        const struct io_uring_cqe *cqe = &r->cqes[head & r->cq_mask];
        uint64_t ud = cqe->user_data;
        if ((ud & OVL__TOKEN_INTERNAL) && (ud & ~OVL__TOKEN_INTERNAL) >> 32) {
            /* An op's token (its generation is never 0) with bit 63: a
             * pipe write's poll stage. */
            if (poll_stage(u, ud & ~OVL__TOKEN_INTERNAL, cqe->res, &out[n], &reissued)) n++;
        } else if (ud & OVL__TOKEN_INTERNAL) {
            if (ud == TOKEN_WAKE) atomic_store(&u->wake_pending, 0);
            *internal = true;
        } else {
            /* An op's CQE, or (bit 62) its linked timeout's: u_settle
             * pairs them under the op's own id. */
            ovl__event *ev = &out[n++];
            ev->token = ud & ~TOKEN_LINKED_TIMEOUT;
            ev->pad = (ud & TOKEN_LINKED_TIMEOUT) ? EV_TIMEOUT : EV_OP;
            if (cqe->res >= 0) {
                ev->result = cqe->res;
                ev->os_error = 0;
            } else {
                ev->result = ovl__errno_to_code(-cqe->res);
                ev->os_error = -cqe->res;
            }
        }
        head++;
    }
    /* release: we are done reading those CQEs; the kernel may reuse them. */
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    /* Re-armed polls go to the kernel from this (living) thread now: the
     * caller may return with what it reaped and not enter again soon. */
    if (reissued) flush(u->port, r);
    return n;
}

/* CQEs the kernel has posted that nobody has reaped. Any thread. */
static unsigned cq_ready(const ring *r)
{
    /* acquire: pairs with the kernel's release of the CQ tail (and with a
     * reaper's release of the head). */
    return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) -
           __atomic_load_n(r->cq_head, __ATOMIC_ACQUIRE);
}

/* ---- the eventfd (manual mode) ---------------------------------------------
 * ovl_port_event's eventfd tells an outside poller that completions wait
 * with nobody reaping them. The kernel signals it for every CQE it posts,
 * which includes the CQEs of the reaping thread itself (page-cache reads
 * complete inside its io_uring_enter): each would wake the outside poller
 * for nothing. So while a thread is in u_wait (it holds deliver_lock: the
 * only reaper) the eventfd is disabled through the CQ ring's flags
 * (IORING_CQ_EVENTFD_DISABLED, Linux 5.8+, below this backend's 5.11
 * floor), and re-enabled when it leaves; if CQEs remain then, the thread
 * signals the eventfd itself.
 *
 * No lost wake-up: a CQE posted while the flag is set is either reaped by
 * this thread or seen by its check on the way out. The kernel posts a CQE
 * by storing the CQ tail (release), then, in __io_cq_unlock_post, wakes
 * the CQ waiters (io_cqring_wake: wq_has_sleeper, a full barrier), then
 * reads cq_flags to decide on the eventfd (io_commit_cqring_flush ->
 * io_eventfd_signal). We store the cleared flag, a full barrier (seq_cst),
 * then load the tail. Dekker's pattern: the kernel sees the flag cleared
 * (and signals), or we see its tail (and signal). Only the holder of
 * deliver_lock writes the flags word, and the kernel never writes it. */
static void efd_disable(ring *r)
{
    __atomic_store_n(r->cq_flags, *r->cq_flags | IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELAXED);
}

static void efd_enable(uring *u)
{
    ring *r = &u->r;
    __atomic_store_n(r->cq_flags, *r->cq_flags & ~IORING_CQ_EVENTFD_DISABLED, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(r->cq_tail, __ATOMIC_SEQ_CST) != *r->cq_head) {
        uint64_t one = 1;
        (void)!ovl__sys.write(u->efd, &one, sizeof one);
    }
}

static size_t u_wait_locked(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap);

/* What a reaper's io_uring_enter should submit of the pend SQEs published:
 * none while a submitter from outside a callback is between its submit and
 * the end of its kick (p->kickers, ovl_internal.h). It is about to push
 * them itself, and two threads entering with SQEs at once serialize on the
 * ring's submission lock: the second spins in the kernel for as long as
 * the first takes to issue the batch (page-cache reads run inline there),
 * then finds nothing left. The look is a read-modify-write, as is the
 * submitter's leaving: if the look comes first, the submitter's next kick
 * sees what this thread published before it. */
static unsigned reaper_submits(ovl_port *p, unsigned pend)
{
    if (!pend) return 0;
    return atomic_fetch_add(&p->kickers, 0) ? 0 : pend;
}

static size_t u_wait(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap)
{
    uring *u = p->be;
    if (u->efd < 0) return u_wait_locked(p, timeout_ms, out, cap);
    efd_disable(&u->r);
    size_t n = u_wait_locked(p, timeout_ms, out, cap);
    efd_enable(u);
    return n;
}

static size_t u_wait_locked(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap)
{
    uring *u = p->be;
    ring *r = &u->r;
    if (u->efd >= 0 && timeout_ms == 0 && cq_ready(r) == 0 && sq_pending(r) == 0) {
        /* Manual mode, a poll that does not wait (an outside poller's
         * answer to the eventfd): reset the eventfd before reaping; a CQE
         * posted after this point is reaped here or signals it again on
         * the way out (efd_enable), so an outside poller never misses
         * one. A poll that waits skips the reset: it is rare on a port an
         * outside poller watches, and a stale signal is the spurious
         * readiness the header allows (the outside poller's
         * ovl_poll(port, 0) that finds nothing resets it). With CQEs
         * already waiting, leave it signalled (at worst one spurious
         * wake-up of an outside poller) and save the read: most ovl_poll
         * calls of a busy port find completions. With submits pending
         * (ovl_submit_and_poll: they go in below) the CQ is empty only
         * because they have not been made yet: no read either. */
        uint64_t v;
        (void)!ovl__sys.read(u->efd, &v, sizeof v);
    }
    for (;;) {
        unsigned pend = reaper_submits(p, sq_pending(r));
        bool overflow = __atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW;
        /* A timed wait with nothing to reap yet: the timed io_uring_enter
         * below submits and waits in one call (as the untimed one here
         * does), and reaps what completed inside it all the same. */
        bool timed_merge = timeout_ms > 0 && !overflow && cq_ready(r) == 0;
        if ((pend || overflow) && !timed_merge) {
            /* Submit what the previous batch's callbacks queued BEFORE
             * reaping. Reads that hit the page cache (and NOPs) complete
             * inside this very call, so their CQEs join the batch reaped
             * below. Reaping first and submitting after would split the ops
             * in flight into two cohorts that alternate for ever, each
             * costing its own io_uring_enter (measured: 2 enters per 64
             * posts instead of 1, and 10-20% of the NOP rate). When the CQ
             * is empty and we may sleep, the same call waits for the first
             * completion; GETEVENTS also moves overflowed CQEs back into
             * the ring. */
            unsigned minc = (timeout_ms < 0 && cq_ready(r) == 0) ? 1u : 0u;
            unsigned flags = (minc || overflow) ? IORING_ENTER_GETEVENTS : 0u;
            ring_enter(p, r, pend, minc, flags, NULL, 0);
        }
        bool internal = false;
        size_t n = reap(u, out, cap, &internal);
        if (n || internal) return n;
        if (timeout_ms == 0) return 0;
        pend = reaper_submits(p, sq_pending(r)); /* normally 0 now; a failed submit retries */
        /* One system call submits anything left and sleeps until at least
         * one completion is there. */
        long rc;
        if (timeout_ms > 0) {
            struct __kernel_timespec ts;
            struct io_uring_getevents_arg arg;
            memset(&arg, 0, sizeof arg);
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000LL;
            arg.ts = (uint64_t)(uintptr_t)&ts;
            arg.sigmask_sz = _NSIG / 8;
            rc = ring_enter(p, r, pend, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                            sizeof arg);
            /* One timed wait per call, whatever ended it: the timeout is
             * relative, so going round again after -EINTR would restart
             * the full timeout at every signal (a signal every 20 ms kept
             * ovl_poll(p, 100) waiting for ever). The caller (ovl_poll)
             * measures its deadline from its own start and calls again
             * with what is left. With an SA_RESTART handler the kernel
             * does not restart io_uring_enter either (Linux 6.18: the CQ
             * wait returns -EINTR, never -ERESTARTSYS), so this covers
             * both. */
            if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
                ovl__yield(); /* should not happen with a valid ring */
            internal = false;
            return reap(u, out, cap, &internal);
        } else {
            rc = ring_enter(p, r, pend, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        }
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            /* Should not happen with a valid ring; avoid a hot loop. */
            ovl__yield();
        }
    }
}

/* The completion thread's sleep (see ovl__backend.wait_ready): submit what
 * is queued and wait in the kernel until the CQ holds an entry, but leave
 * the entries to whoever takes deliver_lock first. A submitter that calls
 * ovl_poll(p, 0) right after its io_uring_enter completed page-cache reads
 * inline usually wins, and takes its own completions with no cross-CPU
 * hand-off; this thread then finds the CQ empty and sleeps again. */
static void u_wait_ready(ovl_port *p)
{
    uring *u = p->be;
    ring *r = &u->r;
    if (!u->nosignal && !sigpipe_kept_blocked) {
        /* Only the completion thread comes here: ovl's own thread, whose
         * mask is ovl's to set. It writes to pipes (see "SIGPIPE"). */
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &s, NULL);
        sigpipe_kept_blocked = true;
    }
    if (cq_ready(r)) return;
    unsigned pend = reaper_submits(p, sq_pending(r));
    long rc = ring_enter(p, r, pend, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    /* Return after one wake-up even if a polling caller took the entries
     * meanwhile: the completion thread then re-checks whether to park. */
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && !cq_ready(r))
        ovl__yield(); /* should not happen with a valid ring */
}

static int32_t u_event_fd(ovl_port *p, ovl_fd *out)
{
    uring *u = p->be;
    if (u->efd < 0) return OVL_EMODE;
    *out = (ovl_fd)u->efd;
    return OVL_OK;
}

/* ---- probe -------------------------------------------------------------- */

static const char *setup_reason(int err)
{
    switch (err) {
    case EPERM:
        return "io_uring_setup failed: EPERM (blocked by seccomp, or "
               "kernel.io_uring_disabled)";
    case ENOSYS: return "io_uring_setup failed: ENOSYS (kernel without io_uring)";
    case ENOMEM: return "io_uring_setup failed: ENOMEM (locked-memory limit?)";
    case EOPNOTSUPP:
        return "io_uring lacks SINGLE_MMAP/NODROP/EXT_ARG (kernel older "
               "than 5.11)";
    case EINVAL:
        return "io_uring_setup failed: EINVAL (kernel too old for the "
               "flags used)";
    default: return "io_uring_setup failed";
    }
}

/* A throw-away ring and one NOP round trip (backend.c caches the answer). */
static int32_t u_probe(const char **reason)
{
    ring r;
    int rc = ring_open(&r, 4, 8);
    if (rc < 0) {
        *reason = setup_reason(-rc);
        return OVL_EUNAVAIL;
    }
    struct io_uring_sqe *sqe = &r.sqes[r.tail & r.sq_mask];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = TOKEN_PROBE;
    r.tail++;
    publish(&r);
    long e;
    do {
        e = ring_enter(NULL, &r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    } while (e == -EINTR);
    unsigned tail = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE);
    bool ok =
        e >= 0 && tail != *r.cq_head && r.cqes[*r.cq_head & r.cq_mask].user_data == TOKEN_PROBE;
    ring_close(&r);
    *reason =
        ok ? "io_uring available (NOP round trip ok)" : "io_uring_enter failed on a NOP (blocked?)";
    return ok ? OVL_OK : OVL_EUNAVAIL;
}

static const ovl__backend uring_backend = {
    .name = "uring",
    .id = OVL_BACKEND_URING,
    .probe = u_probe,
    .wait_submits = true,
    .net_ops = true,
    .timeouts = true,
    .init = u_init,
    .submit = u_submit,
    .settle = u_settle,
    .cancel = u_cancel,
    .kick = u_kick,
    .wait = u_wait,
    .wake = u_wake,
    .wait_ready = u_wait_ready,
    .event_fd = u_event_fd,
    .register_fd = u_register_fd,
    .destroy = u_destroy,
    .forget = u_forget,
    .close_handle = u_close_handle,
};
const ovl__backend *const ovl__backend_uring = &uring_backend;

#else /* !__linux__ */
const ovl__backend *const ovl__backend_uring = NULL;
#endif
