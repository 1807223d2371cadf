/* test_lock_rules.c - the lock checks of OVL_DEBUG_LOCKS builds fire: code
 * that needs the port lock aborts when its caller does not hold it (in a
 * child process, so that the abort is the observation). Other builds have
 * no checks, and the test says so by skipping. */
#include "common.h"
#include "ovl_internal.h"

#include <signal.h>
#include <sys/wait.h>

Test(lock_rules, op_alloc_without_the_port_lock_aborts)
{
#ifndef OVL_DEBUG_LOCKS
    cr_skip_test("lock checks are compiled in only with OVL_DEBUG_LOCKS");
#else
    rec r;
    rec_init(&r);
    ovl_port *h = open_port(&r, 8, OVL_PORT_MANUAL);
    int32_t rc;
    ovl_port *p = ovl__port_get(h, &rc);
    cr_assert_not_null(p);
    /* Held: fine. */
    ovl__mutex_lock(&p->lock);
    ovl__op *op = ovl__op_alloc(p);
    cr_assert_not_null(op);
    ovl__op_release(p, op);
    ovl__mutex_unlock(&p->lock);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        (void)ovl__op_alloc(p); /* not held: must abort */
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the check did not fire");
    close_clean(h, &r);
#endif
}
