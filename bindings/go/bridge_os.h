/* bridge_os.h - the two OS primitives the completion queue needs: a lock
 * and a wake-up Go can wait on. Implemented in bridge_linux.c (mutex +
 * eventfd read through Go's poller), bridge_unix.c (macOS, the BSDs: mutex
 * + pipe read through Go's poller) and bridge_windows.c (SRW lock + event
 * a goroutine waits on in a C call). */
#ifndef GOVL_BRIDGE_OS_H
#define GOVL_BRIDGE_OS_H

#if defined(_WIN32)
#  include <windows.h>
typedef SRWLOCK govl__lock;
typedef struct {
    HANDLE event;
} govl__wake;
#else
#  include <pthread.h>
typedef pthread_mutex_t govl__lock;
#  if defined(__linux__)
/* An eventfd: fd, and whether the Go side took it (then Go closes it). */
typedef struct {
    int fd, given;
} govl__wake;
#  else
/* A pipe: fd is the read end (Go's once given), wfd the write end. */
typedef struct {
    int fd, wfd, given;
} govl__wake;
#  endif
#endif

int govl__lock_init(govl__lock *l);
void govl__lock_destroy(govl__lock *l);
void govl__lock_take(govl__lock *l);
void govl__lock_give(govl__lock *l);

int govl__wake_init(govl__wake *w);
void govl__wake_destroy(govl__wake *w);
void govl__wake_signal(govl__wake *w);
int govl__wake_fd(govl__wake *w);
void govl__wake_wait(govl__wake *w);

#endif
