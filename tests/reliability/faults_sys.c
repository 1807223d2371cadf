/* faults_sys.c - the wrappers behind faults.h. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include "faults.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

faults F;
static ovl__syscalls real;

void inj_arm(inj *f, int fd, int skip, int count, int err, long cap)
{
    atomic_store(&f->count, 0); /* disarm while changing */
    atomic_store(&f->fd, fd);
    atomic_store(&f->skip, skip);
    atomic_store(&f->err, err);
    atomic_store(&f->cap, cap);
    atomic_store(&f->hits, 0);
    atomic_store(&f->calls, 0);
    if (!atomic_load(&f->mask)) atomic_store(&f->mask, ENTER_ANY);
    atomic_store(&f->count, count);
}

/* Is fd the armed fd's open file description? The threads backend does its
 * I/O on its own duplicate of the caller's fd, never on the number given. */
static bool same_file(int want, int fd)
{
    if (want == fd) return true;
    if (fd < 0) return false;
    long r = syscall(SYS_kcmp, (long)getpid(), (long)getpid(), KCMP_FILE, (long)want, (long)fd);
    if (r >= 0) return r == 0;
    struct stat a, b; /* no kcmp (seccomp, CONFIG_KCMP=n): same inode */
    return fstat(want, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Does this call get the fault? */
static bool take(inj *f, int fd)
{
    int want = atomic_load(&f->fd);
    if (want != -1 && !same_file(want, fd)) return false;
    atomic_fetch_add(&f->calls, 1);
    int c = atomic_load(&f->count);
    if (c == 0) return false;
    int s = atomic_load(&f->skip);
    while (s > 0)
        if (atomic_compare_exchange_weak(&f->skip, &s, s - 1)) return false;
    if (c > 0) {
        while (c > 0 && !atomic_compare_exchange_weak(&f->count, &c, c - 1)) {
        }
        if (c <= 0) return false;
    }
    atomic_fetch_add(&f->hits, 1);
    return true;
}

static ssize_t xfer(inj *f, int fd, size_t *n)
{
    if (!take(f, fd)) return 0;
    long cap = atomic_load(&f->cap);
    if (cap > 0) {
        if (*n > (size_t)cap) *n = (size_t)cap;
        return 0;
    }
    errno = atomic_load(&f->err);
    return -1;
}

static ssize_t w_pread(int fd, void *b, size_t n, off_t o)
{
    if (xfer(&F.pread, fd, &n) < 0) return -1;
    return real.pread(fd, b, n, o);
}
static ssize_t w_pwrite(int fd, const void *b, size_t n, off_t o)
{
    if (xfer(&F.pwrite, fd, &n) < 0) return -1;
    return real.pwrite(fd, b, n, o);
}
static ssize_t w_read(int fd, void *b, size_t n)
{
    if (xfer(&F.read, fd, &n) < 0) return -1;
    return real.read(fd, b, n);
}
static ssize_t w_write(int fd, const void *b, size_t n)
{
    if (xfer(&F.write, fd, &n) < 0) return -1;
    return real.write(fd, b, n);
}
/* The threads backend's never-waiting stream calls share the plans of
 * read and write: they are its stream reads and writes. */
static ssize_t w_read_nowait(int fd, void *b, size_t n)
{
    if (xfer(&F.read, fd, &n) < 0) return -1;
    return real.read_nowait(fd, b, n);
}
static ssize_t w_write_nowait(int fd, const void *b, size_t n)
{
    if (xfer(&F.write, fd, &n) < 0) return -1;
    return real.write_nowait(fd, b, n);
}
static int w_fsync(int fd)
{
    if (take(&F.fsync, fd)) {
        errno = atomic_load(&F.fsync.err);
        return -1;
    }
    return real.fsync(fd);
}
static int w_fdatasync(int fd)
{
    if (take(&F.fdatasync, fd)) {
        errno = atomic_load(&F.fdatasync.err);
        return -1;
    }
    return real.fdatasync(fd);
}
static int w_poll(struct pollfd *p, unsigned long n, int t)
{
    if (take(&F.poll, -1)) {
        errno = atomic_load(&F.poll.err);
        return -1;
    }
    return real.poll(p, n, t);
}
static int w_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (take(&F.thread_create, -1)) return atomic_load(&F.thread_create.err);
    return real.thread_create(t, fn, arg);
}
static int w_wakefd(int fds[2])
{
    if (take(&F.wakefd, -1)) {
        errno = atomic_load(&F.wakefd.err);
        return -1;
    }
    return real.wakefd(fds);
}
static long w_uring_setup(unsigned entries, void *params)
{
    if (take(&F.uring_setup, -1)) return -atomic_load(&F.uring_setup.err);
    unsigned small = atomic_load(&F.ring_entries);
    if (small) {
        struct io_uring_params *p = params;
        entries = small;
        if (p->flags & IORING_SETUP_CQSIZE) p->cq_entries = 2 * small;
    }
    return real.io_uring_setup(entries, params);
}
static long w_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                          const void *arg, size_t argsz)
{
    unsigned kind = (flags & IORING_ENTER_GETEVENTS) ? ENTER_WAIT
                    : to_submit                      ? ENTER_SUBMIT
                                                     : ENTER_OTHER;
    if (kind == ENTER_WAIT) {
        atomic_fetch_add(&F.enter_waits, 1);
        if (atomic_load(&F.wait_gate)) {
            atomic_fetch_add(&F.gate_waiting, 1);
            while (atomic_load(&F.wait_gate)) usleep(200);
            atomic_fetch_sub(&F.gate_waiting, 1);
        }
    }
    if (to_submit && atomic_load(&F.submit_hold)) {
        int none = 0;
        if (atomic_compare_exchange_strong(&F.submit_held, &none, 1)) {
            while (atomic_load(&F.submit_hold)) usleep(200);
            atomic_store(&F.submit_held, 2);
        } else if (atomic_load(&F.submit_held) == 1) {
            atomic_fetch_add(&F.submits_beside, (int)to_submit);
        }
    }
    if ((atomic_load(&F.uring_enter.mask) & kind) && take(&F.uring_enter, -1))
        return -atomic_load(&F.uring_enter.err);
    if (kind == ENTER_WAIT) atomic_fetch_add(&F.in_wait, 1);
    long rc = real.io_uring_enter(fd, to_submit, min_complete, flags, arg, argsz);
    if (kind == ENTER_WAIT) atomic_fetch_sub(&F.in_wait, 1);
    return rc;
}
static long w_uring_register(int fd, unsigned op, const void *arg, unsigned n)
{
    if (take(&F.uring_register, -1)) return -atomic_load(&F.uring_register.err);
    return real.io_uring_register(fd, op, arg, n);
}
static void *w_mmap(void *a, size_t l, int p, int fl, int fd, off_t o)
{
    if (take(&F.mmap, -1)) {
        errno = atomic_load(&F.mmap.err);
        return MAP_FAILED;
    }
    return real.mmap(a, l, p, fl, fd, o);
}

void faults_install(void)
{
    ovl__sys_reset();
    real = ovl__sys;
    memset(&F, 0, sizeof F);
    inj *all[] = {&F.pread,          &F.pwrite, &F.read,          &F.write,       &F.fsync,
                  &F.fdatasync,      &F.poll,   &F.thread_create, &F.uring_setup, &F.uring_enter,
                  &F.uring_register, &F.mmap,   &F.wakefd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        atomic_store(&all[i]->fd, -1);
        atomic_store(&all[i]->mask, ENTER_ANY);
    }
    ovl__sys.pread = w_pread;
    ovl__sys.pwrite = w_pwrite;
    ovl__sys.read = w_read;
    ovl__sys.write = w_write;
    ovl__sys.read_nowait = w_read_nowait;
    ovl__sys.write_nowait = w_write_nowait;
    ovl__sys.fsync = w_fsync;
    ovl__sys.fdatasync = w_fdatasync;
    ovl__sys.poll = w_poll;
    ovl__sys.thread_create = w_thread_create;
    ovl__sys.wakefd = w_wakefd;
    ovl__sys.io_uring_setup = w_uring_setup;
    ovl__sys.io_uring_enter = w_uring_enter;
    ovl__sys.io_uring_register = w_uring_register;
    ovl__sys.mmap = w_mmap;
}

void faults_remove(void) { ovl__sys_reset(); }
