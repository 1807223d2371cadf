/* bridge_windows.c - the queue's lock (an SRW lock) and wake-up (an
 * auto-reset event a goroutine waits on inside govl_wait, as go-winio's
 * completion goroutine sits in GetQueuedCompletionStatus). */
#include "bridge_os.h"

int govl__lock_init(govl__lock *l)
{
    InitializeSRWLock(l);
    return 0;
}
void govl__lock_destroy(govl__lock *l) { (void)l; }
void govl__lock_take(govl__lock *l) { AcquireSRWLockExclusive(l); }
void govl__lock_give(govl__lock *l) { ReleaseSRWLockExclusive(l); }

int govl__wake_init(govl__wake *w)
{
    w->event = CreateEventW(NULL, FALSE, FALSE, NULL);
    return w->event ? 0 : -1;
}

void govl__wake_destroy(govl__wake *w)
{
    if (w->event) CloseHandle(w->event);
    w->event = NULL;
}

void govl__wake_signal(govl__wake *w) { SetEvent(w->event); }

int govl__wake_fd(govl__wake *w)
{
    (void)w;
    return -1;
}

void govl__wake_wait(govl__wake *w) { WaitForSingleObject(w->event, INFINITE); }
