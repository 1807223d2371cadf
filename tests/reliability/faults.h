/* faults.h - fault injection through the ovl__sys table (sys.h). Every entry
 * is replaced ONCE, before any port exists, by a wrapper that consults an
 * injection plan; tests then arm plans (atomically) while ports run, so the
 * table itself is never rewritten under a running port. */
#ifndef OVL_REL_FAULTS_H
#define OVL_REL_FAULTS_H

#include "sys.h"

#include <stdatomic.h>
#include <stdbool.h>

/* One plan per system call. A call matches when fd is -1 or equal to the
 * call's fd (and, for io_uring_enter, its kind is in `mask`). The first
 * `skip` matching calls pass through; the next `count` are injected
 * (count < 0: forever). Injected = fail with `err`, or, if `cap` > 0 and the
 * call transfers bytes, a short transfer of at most `cap` bytes. */
typedef struct inj {
    _Atomic int count;
    _Atomic int skip;
    _Atomic int err;
    _Atomic int fd;
    _Atomic long cap;
    _Atomic unsigned mask;
    _Atomic int hits;  /* injections done */
    _Atomic int calls; /* matching calls seen (injected or not) */
} inj;

/* io_uring_enter kinds for inj.mask */
#define ENTER_SUBMIT 1u /* to_submit > 0 without GETEVENTS */
#define ENTER_WAIT 2u   /* GETEVENTS (the completion side) */
#define ENTER_OTHER 4u
#define ENTER_ANY 7u

typedef struct faults {
    inj pread, pwrite, read, write, fsync, fdatasync, poll, thread_create, uring_setup, uring_enter,
        uring_register, mmap, wakefd;
    /* io_uring_setup: if > 0, ask the kernel for this many SQ entries and
     * twice that many CQ entries instead (a deliberately tiny ring). */
    _Atomic unsigned ring_entries;
    /* io_uring_enter calls with GETEVENTS made so far (a waiter going to
     * sleep in the kernel), injected or not. */
    _Atomic int enter_waits;
    /* While wait_gate is set, io_uring_enter calls with GETEVENTS stop
     * before the kernel (a completion thread kept out of its sleep, not
     * holding any lock); gate_waiting counts the calls stopped there. */
    _Atomic int wait_gate;
    _Atomic int gate_waiting;
    /* GETEVENTS calls inside the kernel right now (a waiter asleep). */
    _Atomic int in_wait;
    /* While submit_hold is set, the first io_uring_enter that submits
     * (to_submit > 0) stops before the kernel until it is cleared
     * (submit_held: 0 none yet, 1 held, 2 let go); every other call that
     * submits while one is held adds its to_submit to submits_beside. */
    _Atomic int submit_hold;
    _Atomic int submit_held;
    _Atomic int submits_beside;
} faults;

extern faults F;

/* Install the wrappers (call before creating any port) / restore. */
void faults_install(void);
void faults_remove(void);
/* Arm a plan. */
void inj_arm(inj *f, int fd, int skip, int count, int err, long cap);

#endif
