/* The fallback for real: a child process installs a seccomp filter that
 * makes io_uring_setup fail with EPERM (what Docker's default profile
 * does), then auto mode must pick threads, say why, and do correct I/O. */
#include "common.h"

#include "seccomp_block.h"

#include <sys/wait.h>

/* Runs in the child; returns the exit status (0 = all good). */
static int child(void)
{
    if (block_io_uring() != 0) return 10;
    unsetenv("OVL_BACKEND");
    uint32_t b = 0;
    const char *why = ovl_backend_reason(&b);
    fprintf(stderr, "auto under seccomp: %s\n", why);
    if (b != OVL_BACKEND_THREADS) return 11;
    if (!strstr(why, "EPERM") || !strstr(why, ": using threads")) return 12;
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    ovl_port *p = NULL;
    cfg.backend = OVL_BACKEND_URING;
    if (ovl_create_port(&cfg, &p) != OVL_EUNAVAIL) return 13; /* explicit: no substitute */
    cfg.backend = OVL_BACKEND_AUTO;
    cfg.flags = OVL_PORT_MANUAL;
    if (ovl_create_port(&cfg, &p) != OVL_OK) return 14;
    if (strcmp(ovl_backend_name(p), "threads") != 0) return 15;
    char path[] = "/tmp/ovl-fallback-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    uint8_t data[8192], back[8192];
    for (size_t i = 0; i < sizeof data; i++) data[i] = pattern_at(i, 11);
    if (pwrite(fd, data, sizeof data, 0) != (ssize_t)sizeof data) return 16;
    uint64_t id;
    if (ovl_submit_read(p, fd, back, sizeof back, 0, NULL, &id) != OVL_OK) return 17;
    if (ovl_poll(p, WAIT_LIMIT_MS) != 1) return 18;
    if (memcmp(data, back, sizeof back) != 0) return 19;
    if (ovl_close_port(p) != OVL_OK) return 20;
    close(fd);
    return 0;
}

Test(fallback, seccomp_blocked_io_uring_falls_back_to_threads)
{
    /* The filter is per process and irreversible: do it in a child. */
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) _exit(child());
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child crashed");
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed at step %d", WEXITSTATUS(st));
}
