/* platform.h - the few OS primitives the portable core needs (mutex,
 * condition variable, thread, thread-local, monotonic clock), as thin
 * static inline wrappers: pthreads on POSIX, Win32 on Windows. This is the
 * only place besides the backend files and errors.c that knows the OS. */
#ifndef OVL_PLATFORM_H
#define OVL_PLATFORM_H

#include <stdint.h>
#include <stdatomic.h>

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>

typedef SRWLOCK ovl__mutex;
typedef CONDITION_VARIABLE ovl__cond;
typedef HANDLE ovl__thread;
typedef DWORD ovl__tid;
#  define OVL__THREAD_LOCAL __thread
#  define OVL__MUTEX_INITIALIZER SRWLOCK_INIT

/* Rejects values that can never be a HANDLE or SOCKET: 0, INVALID_HANDLE_VALUE,
 * and anything that is not a sign-extended 32-bit value (64-bit Windows
 * keeps handles to 32 significant bits for 32/64-bit interop). */
static inline int ovl__fd_plausible(uint64_t fd)
{
    int64_t s = (int64_t)fd;
    return fd != 0 && fd != (uint64_t)(uintptr_t)INVALID_HANDLE_VALUE && fd != UINT64_MAX &&
           s == (int64_t)(int32_t)s;
}

static inline int ovl__mutex_init(ovl__mutex *m)
{
    InitializeSRWLock(m);
    return 0;
}
static inline void ovl__mutex_destroy(ovl__mutex *m) { (void)m; }
static inline void ovl__mutex_lock(ovl__mutex *m) { AcquireSRWLockExclusive(m); }
static inline void ovl__mutex_unlock(ovl__mutex *m) { ReleaseSRWLockExclusive(m); }
static inline int ovl__mutex_trylock(ovl__mutex *m) { return TryAcquireSRWLockExclusive(m) != 0; }
static inline int ovl__cond_init(ovl__cond *c)
{
    InitializeConditionVariable(c);
    return 0;
}
static inline void ovl__cond_destroy(ovl__cond *c) { (void)c; }
static inline void ovl__cond_wait(ovl__cond *c, ovl__mutex *m)
{
    SleepConditionVariableSRW(c, m, INFINITE, 0);
}
/* Returns 0 when signalled (or spuriously), nonzero on timeout. */
static inline int ovl__cond_timedwait_ms(ovl__cond *c, ovl__mutex *m, int64_t ms)
{
    return SleepConditionVariableSRW(c, m, (DWORD)ms, 0) ? 0 : 1;
}
static inline void ovl__cond_signal(ovl__cond *c) { WakeConditionVariable(c); }
static inline void ovl__cond_broadcast(ovl__cond *c) { WakeAllConditionVariable(c); }

typedef struct {
    void *(*fn)(void *);
    void *arg;
} ovl__thread_start;
static DWORD WINAPI ovl__thread_tramp(LPVOID p)
{
    ovl__thread_start s = *(ovl__thread_start *)p;
    HeapFree(GetProcessHeap(), 0, p);
    s.fn(s.arg);
    return 0;
}
static inline int ovl__thread_create(ovl__thread *t, void *(*fn)(void *), void *arg)
{
    ovl__thread_start *s = HeapAlloc(GetProcessHeap(), 0, sizeof *s);
    if (!s) return -1;
    s->fn = fn;
    s->arg = arg;
    *t = CreateThread(NULL, 0, ovl__thread_tramp, s, 0, NULL);
    if (!*t) {
        HeapFree(GetProcessHeap(), 0, s);
        return -1;
    }
    return 0;
}
static inline void ovl__thread_join(ovl__thread t)
{
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
static inline uint64_t ovl__now_ms(void) { return GetTickCount64(); }
static inline uint64_t ovl__now_us(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (uint64_t)(c.QuadPart / f.QuadPart) * 1000000u +
           (uint64_t)(c.QuadPart % f.QuadPart) * 1000000u / (uint64_t)f.QuadPart;
}
static inline void ovl__yield(void) { SwitchToThread(); }
static inline void ovl__cpu_relax(void) { YieldProcessor(); }

/* Run fn once per process. */
typedef INIT_ONCE ovl__once;
#  define OVL__ONCE_INIT INIT_ONCE_STATIC_INIT
typedef struct {
    void (*fn)(void);
} ovl__once_fn;
static BOOL CALLBACK ovl__once_tramp(PINIT_ONCE o, PVOID arg, PVOID *ctx)
{
    (void)o;
    (void)ctx;
    ((ovl__once_fn *)arg)->fn();
    return TRUE;
}
static inline void ovl__once_run(ovl__once *o, void (*fn)(void))
{
    ovl__once_fn w = {fn};
    InitOnceExecuteOnce(o, ovl__once_tramp, &w, NULL);
}
/* No fork() on Windows. */
static inline void ovl__atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    (void)prepare;
    (void)parent;
    (void)child;
}

#else /* POSIX */
#  include <pthread.h>
#  include <sched.h>
#  include <time.h>
#  include <errno.h>

/* OVL_DEBUG_LOCKS (a CMake option; the test suite runs one such build):
 * every mutex records its owner, so that code which needs a lock can check
 * that its caller holds it (OVL__ASSERT_HELD; a failure aborts with the
 * place). Otherwise a mutex is a plain pthread mutex and the check is
 * nothing. */
#  ifdef OVL_DEBUG_LOCKS
typedef struct {
    pthread_mutex_t m;
    _Atomic uintptr_t owner;
} ovl__mutex;
#    define OVL__MUTEX_INITIALIZER                                                                 \
      {                                                                                            \
        PTHREAD_MUTEX_INITIALIZER, 0                                                               \
      }
#    define OVL__PM(x) (&(x)->m)
static inline uintptr_t ovl__self(void) { return (uintptr_t)pthread_self(); }
static inline void ovl__owned(ovl__mutex *m, int mine)
{
    atomic_store_explicit(&m->owner, mine ? ovl__self() : 0, memory_order_relaxed);
}
#  else
typedef pthread_mutex_t ovl__mutex;
#    define OVL__MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#    define OVL__PM(x) (x)
#    define ovl__owned(m, mine) ((void)0)
#  endif
typedef pthread_cond_t ovl__cond;
typedef pthread_t ovl__thread;
#  define OVL__THREAD_LOCAL _Thread_local

/* POSIX fds are non-negative ints. */
static inline int ovl__fd_plausible(uint64_t fd) { return fd <= 0x7fffffffu; }

static inline int ovl__mutex_init(ovl__mutex *m)
{
    ovl__owned(m, 0);
    return pthread_mutex_init(OVL__PM(m), NULL);
}
static inline void ovl__mutex_destroy(ovl__mutex *m) { pthread_mutex_destroy(OVL__PM(m)); }
static inline void ovl__mutex_lock(ovl__mutex *m)
{
    pthread_mutex_lock(OVL__PM(m));
    ovl__owned(m, 1);
}
static inline void ovl__mutex_unlock(ovl__mutex *m)
{
    ovl__owned(m, 0);
    pthread_mutex_unlock(OVL__PM(m));
}
/* 1 when acquired. */
static inline int ovl__mutex_trylock(ovl__mutex *m)
{
    if (pthread_mutex_trylock(OVL__PM(m)) != 0) return 0;
    ovl__owned(m, 1);
    return 1;
}
static inline int ovl__cond_init(ovl__cond *c)
{
    pthread_condattr_t a;
    int r;
    pthread_condattr_init(&a);
#  if !defined(__APPLE__)
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
#  endif
    r = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return r;
}
static inline void ovl__cond_destroy(ovl__cond *c) { pthread_cond_destroy(c); }
static inline void ovl__cond_wait(ovl__cond *c, ovl__mutex *m)
{
    ovl__owned(m, 0);
    pthread_cond_wait(c, OVL__PM(m));
    ovl__owned(m, 1);
}
static inline int ovl__cond_timedwait_ms(ovl__cond *c, ovl__mutex *m, int64_t ms)
{
    struct timespec ts;
#  if defined(__APPLE__)
    /* Apple has no pthread_condattr_setclock: the condvar measures an
     * absolute deadline on CLOCK_REALTIME, so a CLOCK_MONOTONIC one (seconds
     * since boot) is long past and every wait would time out at once (a
     * timed ovl_poll on the threads backend would spin). A relative wait
     * does not depend on the condvar's clock; the callers check their own
     * deadline on ovl__now_ms(), so an early return is only a spurious
     * wake-up to them. */
    int r;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    ovl__owned(m, 0);
    r = pthread_cond_timedwait_relative_np(c, OVL__PM(m), &ts);
    ovl__owned(m, 1);
    return r == ETIMEDOUT;
#  else
    int r;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    ovl__owned(m, 0);
    r = pthread_cond_timedwait(c, OVL__PM(m), &ts);
    ovl__owned(m, 1);
    return r == ETIMEDOUT;
#  endif
}
static inline void ovl__cond_signal(ovl__cond *c) { pthread_cond_signal(c); }
static inline void ovl__cond_broadcast(ovl__cond *c) { pthread_cond_broadcast(c); }
/* Thread start goes through the syscall table (fault injection), see sys.h. */
static inline uint64_t ovl__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
static inline uint64_t ovl__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
static inline void ovl__yield(void) { sched_yield(); }
typedef pthread_once_t ovl__once;
#  define OVL__ONCE_INIT PTHREAD_ONCE_INIT
static inline void ovl__once_run(ovl__once *o, void (*fn)(void)) { pthread_once(o, fn); }
static inline void ovl__atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    pthread_atfork(prepare, parent, child);
}
static inline void ovl__cpu_relax(void)
{
#  if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#  elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#  endif
}
#endif /* _WIN32 */

/* Abort, naming the place, where code that needs lock `m` runs without it
 * (OVL_DEBUG_LOCKS builds on POSIX; nothing otherwise). */
#if defined(OVL_DEBUG_LOCKS) && !defined(_WIN32)
#  include <stdio.h>
#  include <stdlib.h>
#  define OVL__ASSERT_HELD(m)                                                                      \
    do {                                                                                           \
      if (atomic_load_explicit(&(m)->owner, memory_order_relaxed) != ovl__self()) {                \
        fprintf(stderr, "ovl: %s:%d: %s not held\n", __FILE__, __LINE__, #m);                      \
        abort();                                                                                   \
      }                                                                                            \
    } while (0)
#else
#  define OVL__ASSERT_HELD(m) ((void)0)
#endif

#endif /* OVL_PLATFORM_H */
