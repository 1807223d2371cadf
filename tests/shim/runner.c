/* runner.c - the main() behind the Criterion shim (criterion.h beside it),
 * used where Criterion cannot run: the mingw-w64 build (not packaged) and the
 * ThreadSanitizer build (Criterion's inheritable arena fails under TSan).
 * Without arguments it runs every registered test in a child process of its
 * own (Windows: the same .exe with --run suite::name; POSIX: fork), enforcing
 * each test's timeout,
 * and prints a Criterion-style line per test and a synthesis. A child's exit
 * code says how its test ended: 0 passed, 2 failed, 3 skipped; anything else
 * (an exception code such as 0xC0000005) is a crash.
 *
 *   ovl_tests_win.exe                  run everything
 *   ovl_tests_win.exe --filter TEXT    only tests whose suite::name contains TEXT
 *   ovl_tests_win.exe --list           list the tests
 *   ovl_tests_win.exe --run S::N       run one test in this process
 * Environment: CRS_TIMEOUT = default per-test timeout in seconds (60). */
#include "criterion/criterion.h"

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
#else
#  include <signal.h>
#  include <sys/wait.h>
#  include <time.h>
#  include <unistd.h>
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_PASS 0
#define EXIT_FAIL 2
#define EXIT_SKIP 3

static struct crs_test *tests;
static size_t ntests;
static volatile long failures; /* non-fatal (cr_expect) failures */

void crs_register(struct crs_test *t)
{
    t->next = tests;
    tests = t;
    ntests++;
}

/* ---- value formatting ---------------------------------------------------- */

const char *crs_fmt_ll(char *buf, long long v)
{
    snprintf(buf, 48, "%lld", v);
    return buf;
}
const char *crs_fmt_ull(char *buf, unsigned long long v)
{
    snprintf(buf, 48, "%llu (0x%llx)", v, v);
    return buf;
}
const char *crs_fmt_ptr(char *buf, const void *v)
{
    snprintf(buf, 48, "%p", v);
    return buf;
}
const char *crs_fmt_dbl(char *buf, double v)
{
    snprintf(buf, 48, "%g", v);
    return buf;
}

/* ---- in the child ------------------------------------------------------- */

static void end_now(int code)
{
    fflush(stdout);
    fflush(stderr);
    /* Other threads (a port's completion thread) may hold locks: do not run
     * exit handlers or DLL detach code, just stop. */
#ifdef _WIN32
    TerminateProcess(GetCurrentProcess(), (UINT)code);
    ExitProcess((UINT)code); /* not reached */
#else
    _exit(code);
#endif
}

static void report(int fatal, const char *file, int line, const char *expr, const char *values,
                   const char *fmt, va_list ap)
{
    char msg[1024] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s%s%s%s\n", base, line, expr,
            values ? " (" : "", values ? values : "", values ? ")" : "");
    if (msg[0]) fprintf(stderr, "[----]   %s\n", msg);
    if (fatal) end_now(EXIT_FAIL);
    __atomic_add_fetch(&failures, 1, __ATOMIC_SEQ_CST);
}

void crs_assert_fail(int fatal, const char *file, int line, const char *expr, const char *values,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(fatal, file, line, expr, values, fmt, ap);
    va_end(ap);
}

void crs_assert_fatal(const char *file, int line, const char *expr, const char *values,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(1, file, line, expr, values, fmt, ap);
    va_end(ap);
    for (;;) {
    }
}

void crs_skip(const char *fmt, ...)
{
    char msg[1024] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[SKIP] %s\n", msg);
    end_now(EXIT_SKIP);
    for (;;) {
    }
}

void crs_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static struct crs_test *find_test(const char *full)
{
    for (struct crs_test *t = tests; t; t = t->next) {
        size_t ls = strlen(t->suite);
        if (!strncmp(full, t->suite, ls) && !strncmp(full + ls, "::", 2) &&
            !strcmp(full + ls + 2, t->name))
            return t;
    }
    return NULL;
}

static int run_here(const char *full)
{
    struct crs_test *t = find_test(full);
    if (!t) {
        fprintf(stderr, "no such test: %s\n", full);
        return 64;
    }
    if (t->data.init) t->data.init();
    t->fn();
    if (t->data.fini) t->data.fini();
    fflush(stdout);
    fflush(stderr);
    return failures ? EXIT_FAIL : EXIT_PASS;
}

/* ---- the parent --------------------------------------------------------- */

static int cmp_tests(const void *a, const void *b)
{
    const struct crs_test *x = *(struct crs_test *const *)a;
    const struct crs_test *y = *(struct crs_test *const *)b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

#ifdef _WIN32
static double now_s(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}

/* Run one test in a child; returns 0 (exit code in *code_out), -1 (could not
 * start) or -2 (timed out). */
static int run_child(const char *self, struct crs_test *t, double timeout, unsigned long *code_out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" --run %s::%s", self, t->suite, t->name);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    fflush(stdout);
    fflush(stderr);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "CreateProcess failed: %lu\n", GetLastError());
        *code_out = GetLastError();
        return -1;
    }
    DWORD w = WaitForSingleObject(pi.hProcess, (DWORD)(timeout * 1000.0));
    DWORD code = 0;
    int timed_out = 0;
    if (w == WAIT_TIMEOUT) {
        TerminateProcess(pi.hProcess, 0xDEAD);
        WaitForSingleObject(pi.hProcess, INFINITE);
        timed_out = 1;
    }
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    *code_out = code;
    return timed_out ? -2 : 0;
}
#else
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* POSIX: fork; the child runs the test with an alarm as its timeout. A
 * signal death is reported as 0x100 + the signal number (a crash). */
static int run_child(const char *self, struct crs_test *t, double timeout, unsigned long *code_out)
{
    (void)self;
    char full[512];
    snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        *code_out = 0;
        return -1;
    }
    if (pid == 0) {
        alarm((unsigned)(timeout + 0.999));
        end_now(run_here(full));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) return -2;
    *code_out =
        WIFEXITED(st) ? (unsigned long)WEXITSTATUS(st) : 0x100ul + (unsigned long)WTERMSIG(st);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--run") && i + 1 < argc) return run_here(argv[i + 1]);
        if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--list")) {
            for (struct crs_test *t = tests; t; t = t->next) printf("%s::%s\n", t->suite, t->name);
            return 0;
        } else {
            fprintf(stderr, "usage: %s [--filter TEXT | --list | --run SUITE::NAME]\n", argv[0]);
            return 64;
        }
    }

    struct crs_test **all = calloc(ntests ? ntests : 1, sizeof *all);
    size_t n = 0;
    for (struct crs_test *t = tests; t; t = t->next) all[n++] = t;
    qsort(all, n, sizeof *all, cmp_tests);

    char self[4096] = "";
#ifdef _WIN32
    GetModuleFileNameA(NULL, self, sizeof self);
#endif
    double deflt = 60.0;
    const char *env = getenv("CRS_TIMEOUT");
    if (env && atof(env) > 0) deflt = atof(env);

    size_t tested = 0, passed = 0, failed = 0, crashed = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        struct crs_test *t = all[i];
        char full[512];
        snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
        if (filter && !strstr(full, filter)) continue;
        if (t->data.disabled) {
            printf("[SKIP] %s: disabled\n", full);
            skipped++;
            continue;
        }
        double timeout = t->data.timeout > 0 ? t->data.timeout : deflt;
        double t0 = now_s();
        unsigned long code = 0;
        int r = run_child(self, t, timeout, &code);
        double dt = now_s() - t0;
        if (r == -2) {
            printf("[FAIL] %s: timed out after %.0f s\n", full, timeout);
            tested++;
            failed++;
        } else if (r < 0) {
            printf("[FAIL] %s: could not start (error %lu)\n", full, code);
            tested++;
            failed++;
        } else if (code == EXIT_PASS) {
            printf("[PASS] %s (%.2f s)\n", full, dt);
            tested++;
            passed++;
        } else if (code == EXIT_SKIP) {
            printf("[SKIP] %s\n", full);
            skipped++;
        } else if (code == EXIT_FAIL) {
            printf("[FAIL] %s (%.2f s)\n", full, dt);
            tested++;
            failed++;
        } else {
            printf("[FAIL] %s: CRASH, exit code 0x%08lx\n", full, code);
            tested++;
            crashed++;
        }
    }
    free(all);
    printf("[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: %zu | Skipped: "
           "%zu\n",
           tested, passed, failed, crashed, skipped);
    return (failed || crashed) ? 1 : 0;
}
