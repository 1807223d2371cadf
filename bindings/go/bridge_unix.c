//go:build unix && !linux

/* bridge_unix.c - the queue's lock (a pthread mutex) and wake-up on macOS
 * and the BSDs: a pipe, since there is no eventfd. Go reads the read end
 * through its poller (kqueue), so no thread is parked in C; the callback
 * writes a byte to the write end. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "bridge_os.h"

int govl__lock_init(govl__lock *l) { return pthread_mutex_init(l, NULL); }
void govl__lock_destroy(govl__lock *l) { pthread_mutex_destroy(l); }
void govl__lock_take(govl__lock *l) { pthread_mutex_lock(l); }
void govl__lock_give(govl__lock *l) { pthread_mutex_unlock(l); }

int govl__wake_init(govl__wake *w)
{
    int fds[2];
    w->fd = w->wfd = -1;
    w->given = 0;
    /* macOS has no pipe2: the flags are set right after. Nonblocking, so
     * that os.NewFile registers the read end with the poller and a full
     * pipe never blocks the callback. */
    if (pipe(fds) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0 ||
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0) {
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
    }
    w->fd = fds[0];
    w->wfd = fds[1];
    return 0;
}

/* The read end belongs to the Go side once it has taken it (govl__wake_fd:
 * it wraps it in an *os.File and closes it); a queue whose drainer never
 * took it (manual mode waits on the port's own pipe) closes it here. */
void govl__wake_destroy(govl__wake *w)
{
    if (w->fd >= 0 && !w->given) close(w->fd);
    if (w->wfd >= 0) close(w->wfd);
    w->fd = w->wfd = -1;
}

void govl__wake_signal(govl__wake *w)
{
    char one = 1;
    /* EAGAIN: the pipe is full, so it is readable already. */
    while (write(w->wfd, &one, 1) < 0 && errno == EINTR)
        ;
}

int govl__wake_fd(govl__wake *w)
{
    w->given = 1;
    return w->fd;
}

void govl__wake_wait(govl__wake *w) { (void)w; }
