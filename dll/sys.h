/* sys.h - the table of system calls the POSIX backends go through (SQLite's
 * aSyscall idea). Production code calls ovl__sys.NAME(...); a test build
 * (linking the static archive) may overwrite entries to inject EINTR, EAGAIN,
 * ENOMEM, EIO, short transfers or a failing thread start, then restore them
 * with ovl__sys_reset(). Overwrite only while no port is open. */
#ifndef OVL_SYS_H
#define OVL_SYS_H

#ifndef _WIN32
#  include <pthread.h>
#  include <stddef.h>
#  include <sys/types.h>

struct pollfd;
struct stat;

typedef struct ovl__syscalls {
    /* io_uring (Linux); raw syscall results: >= 0 or -errno. */
    long (*io_uring_setup)(unsigned entries, void *params);
    long (*io_uring_enter)(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                           const void *arg, size_t argsz);
    long (*io_uring_register)(int fd, unsigned opcode, const void *arg, unsigned nr_args);
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*munmap)(void *addr, size_t len);
    /* threads backend; libc convention: -1 and errno. */
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    ssize_t (*read)(int fd, void *buf, size_t n);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*fstat)(int fd, struct stat *st);
    int (*poll)(struct pollfd *fds, unsigned long nfds, int timeout);
    /* thread start: 0 or an errno value (pthread convention). */
    int (*thread_create)(pthread_t *t, void *(*fn)(void *), void *arg);
    /* wake-up handle: an eventfd on Linux, a pipe elsewhere (fds[1] = -1 for
     * an eventfd). 0 or -1 and errno. */
    int (*wakefd)(int fds[2]);
    int (*close)(int fd);
    /* threads backend, stream I/O that must not wait: a read or write at the
     * file position that fails with EAGAIN instead of blocking, whatever the
     * fd's O_NONBLOCK flag (Linux: preadv2/pwritev2 with RWF_NOWAIT), or
     * with EOPNOTSUPP where the file or the OS cannot do that. */
    ssize_t (*read_nowait)(int fd, void *buf, size_t n);
    ssize_t (*write_nowait)(int fd, const void *buf, size_t n);
} ovl__syscalls;

extern ovl__syscalls ovl__sys;
/* Restore every entry to the real system call. */
void ovl__sys_reset(void);

static inline int ovl__thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return ovl__sys.thread_create(t, fn, arg);
}
static inline void ovl__thread_join(pthread_t t) { pthread_join(t, NULL); }

#endif /* !_WIN32 */
#endif /* OVL_SYS_H */
