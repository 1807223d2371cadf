/* sys.c - the real system calls behind ovl__sys (see sys.h). */
#ifndef _WIN32
#  ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#  endif
#  include "sys.h"

#  include <errno.h>
#  include <fcntl.h>
#  include <poll.h>
#  include <stdint.h>
#  include <sys/mman.h>
#  include <sys/uio.h>
#  include <sys/stat.h>
#  include <unistd.h>
#  ifdef __linux__
#    include <sys/eventfd.h>
#    include <sys/syscall.h>
#  endif

#  ifdef __linux__
static long sys_uring_setup(unsigned entries, void *params)
{
    long r = syscall(__NR_io_uring_setup, entries, params);
    return r < 0 ? -errno : r;
}
static long sys_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                            const void *arg, size_t argsz)
{
    long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    return r < 0 ? -errno : r;
}
static long sys_uring_register(int fd, unsigned opcode, const void *arg, unsigned nr_args)
{
    long r = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
    return r < 0 ? -errno : r;
}
#  else
static long sys_uring_setup(unsigned e, void *p)
{
    (void)e;
    (void)p;
    return -ENOSYS;
}
static long sys_uring_enter(int fd, unsigned a, unsigned b, unsigned c, const void *d, size_t e)
{
    (void)fd;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    (void)e;
    return -ENOSYS;
}
static long sys_uring_register(int fd, unsigned a, const void *b, unsigned c)
{
    (void)fd;
    (void)a;
    (void)b;
    (void)c;
    return -ENOSYS;
}
#  endif

static int sys_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg);
}

static int sys_wakefd(int fds[2])
{
#  ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return -1;
    fds[0] = fd;
    fds[1] = -1;
    return 0;
#  else
    if (pipe(fds) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    return 0;
#  endif
}

static int sys_fdatasync(int fd)
{
#  if defined(__APPLE__)
    return fsync(fd);
#  else
    return fdatasync(fd);
#  endif
}

static int sys_poll(struct pollfd *fds, unsigned long n, int timeout)
{
    return poll(fds, (nfds_t)n, timeout);
}

/* Offset -1: the file position, as read(2). RWF_NOWAIT: Linux 4.14 (EOPNOTSUPP
 * from older kernels, and from files that do not support it). */
#  if defined(__linux__) && defined(RWF_NOWAIT)
static ssize_t sys_read_nowait(int fd, void *buf, size_t n)
{
    struct iovec v = {buf, n};
    ssize_t r = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
    if (r < 0 && errno == ENOSYS) errno = EOPNOTSUPP; /* before Linux 4.6 */
    return r;
}
static ssize_t sys_write_nowait(int fd, const void *buf, size_t n)
{
    struct iovec v = {(void *)(uintptr_t)buf, n};
    ssize_t r = pwritev2(fd, &v, 1, -1, RWF_NOWAIT);
    if (r < 0 && errno == ENOSYS) errno = EOPNOTSUPP;
    return r;
}
#  else
static ssize_t sys_read_nowait(int fd, void *buf, size_t n)
{
    (void)fd;
    (void)buf;
    (void)n;
    errno = EOPNOTSUPP;
    return -1;
}
static ssize_t sys_write_nowait(int fd, const void *buf, size_t n)
{
    (void)fd;
    (void)buf;
    (void)n;
    errno = EOPNOTSUPP;
    return -1;
}
#  endif

#  define OVL__SYS_REAL                                                                            \
    {                                                                                              \
      sys_uring_setup, sys_uring_enter, sys_uring_register, mmap, munmap, pread, pwrite, read,     \
          write, fsync, sys_fdatasync, fstat, sys_poll, sys_thread_create, sys_wakefd, close,      \
          sys_read_nowait, sys_write_nowait,                                                       \
    }

static const ovl__syscalls real = OVL__SYS_REAL;
ovl__syscalls ovl__sys = OVL__SYS_REAL;

void ovl__sys_reset(void) { ovl__sys = real; }
#endif /* !_WIN32 */
