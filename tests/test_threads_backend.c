/* The threads backend's cancellation contract, made deterministic with the
 * system-call table (linked statically to reach ovl__sys): a pread that
 * blocks until the test opens a gate keeps the only worker busy, so the next
 * op is provably still queued when it is cancelled. */
#include "common.h"
#include "sys.h"

#include <semaphore.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static sem_t gate, entered;
static int gated_fd = -1;

/* The backend does its I/O on its own duplicate of the caller's fd, so
 * "the test's file" means the same open file description, not the same
 * number. */
static bool same_file(int a, int b)
{
    if (a == b) return true;
    long r = syscall(SYS_kcmp, (long)getpid(), (long)getpid(), 0 /* KCMP_FILE */, (long)a, (long)b);
    if (r >= 0) return r == 0;
    struct stat sa, sb; /* no kcmp (seccomp, CONFIG_KCMP=n): same inode */
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static ssize_t gated_pread(int fd, void *buf, size_t n, off_t off)
{
    if (same_file(fd, gated_fd)) {
        sem_post(&entered);
        sem_wait(&gate);
    }
    return pread(fd, buf, n, off);
}

static ovl_port *threads_port(rec *r, uint32_t workers)
{
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.backend = OVL_BACKEND_THREADS;
    cfg.queue_depth = 8;
    cfg.threads = workers;
    return open_port_cfg(r, &cfg);
}

/* A temp file whose preads block at the gate, and a one-worker port. */
static int gated_setup(rec *r, ovl_port **p, size_t size, unsigned seed)
{
    sem_init(&gate, 0, 0);
    sem_init(&entered, 0, 0);
    int fd = temp_file(size, seed);
    gated_fd = fd;
    ovl__sys.pread = gated_pread;
    rec_init(r);
    *p = threads_port(r, 1);
    return fd;
}

Test(threads_backend, queued_op_is_cancelled_before_it_runs_running_op_completes)
{
    rec r;
    ovl_port *p;
    int fd = gated_setup(&r, &p, 8192, 12);
    char a[4096], b[4096];
    uint64_t running, queued;
    cr_assert_eq(ovl_submit_read(p, fd, a, sizeof a, 0, NULL, &running), OVL_OK);
    sem_wait(&entered); /* the only worker is now inside pread */
    cr_assert_eq(ovl_submit_read(p, fd, b, sizeof b, 4096, NULL, &queued), OVL_OK);
    cr_assert_eq(ovl_cancel(p, queued), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, queued).result, OVL_ECANCELED, "cancelled before it ran");
    /* cancelling the running one is accepted, but it completes normally */
    cr_assert_eq(ovl_cancel(p, running), OVL_OK);
    sem_post(&gate);
    rec_wait(&r, 2);
    ovl_completion c = rec_one(&r, running);
    cr_assert_eq(c.result, 4096, "an op inside a blocking call completes normally");
    cr_assert(matches_pattern((uint8_t *)a, 4096, 0, 12));
    close_clean(p, &r);
    ovl__sys_reset();
    close(fd);
}

typedef struct opener {
    ovl_port *p;
    uint64_t id;
} opener;

/* Opens the gate once close has begun: ovl_cancel answers OVL_ECLOSED from
 * the moment close marks the port closing (the handle stays valid). */
static void *open_gate_after_close_starts(void *arg)
{
    opener *o = arg;
    while (ovl_cancel(o->p, o->id) != OVL_ECLOSED) sched_yield();
    sem_post(&gate);
    return NULL;
}

Test(threads_backend, close_waits_for_the_running_op)
{
    rec r;
    ovl_port *p;
    int fd = gated_setup(&r, &p, 4096, 13);
    char a[4096];
    uint64_t id;
    cr_assert_eq(ovl_submit_read(p, fd, a, sizeof a, 0, NULL, &id), OVL_OK);
    sem_wait(&entered);
    /* the gate opens only after close has started: close must wait for the
     * op rather than free it under the worker */
    pthread_t th;
    opener o = {p, id};
    cr_assert_eq(pthread_create(&th, NULL, open_gate_after_close_starts, &o), 0);
    close_check(p, &r);
    pthread_join(th, NULL);
    cr_assert_eq(rec_one(&r, id).result, 4096);
    rec_free(&r);
    ovl__sys_reset();
    close(fd);
}
