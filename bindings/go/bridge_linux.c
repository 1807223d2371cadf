/* bridge_linux.c - the queue's lock (a pthread mutex) and wake-up (an
 * eventfd that Go's poller waits on: no thread is parked in C). */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bridge_os.h"

int govl__lock_init(govl__lock *l) { return pthread_mutex_init(l, NULL); }
void govl__lock_destroy(govl__lock *l) { pthread_mutex_destroy(l); }
void govl__lock_take(govl__lock *l) { pthread_mutex_lock(l); }
void govl__lock_give(govl__lock *l) { pthread_mutex_unlock(l); }

int govl__wake_init(govl__wake *w)
{
    /* Nonblocking, so that os.NewFile registers it with the poller. */
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->given = 0;
    return w->fd < 0 ? -1 : 0;
}

/* The eventfd belongs to the Go side once it has taken it (govl__wake_fd:
 * it wraps it in an *os.File and closes it); a queue whose drainer never
 * took it (manual mode waits on the port's own eventfd) closes it here. */
void govl__wake_destroy(govl__wake *w)
{
    if (w->fd >= 0 && !w->given) close(w->fd);
    w->fd = -1;
}

void govl__wake_signal(govl__wake *w)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter would overflow: it is already readable. */
    while (write(w->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int govl__wake_fd(govl__wake *w)
{
    w->given = 1;
    return w->fd;
}

void govl__wake_wait(govl__wake *w) { (void)w; }
