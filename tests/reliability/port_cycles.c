/* port_cycles.c - a service that opens a port per session: 100,000 ports
 * created and closed one after another (a completion thread, manual mode,
 * and a completion thread fed by ovl_submit_and_poll in turn), each closed
 * with a read parked on a pipe and a post in flight (or, with
 * ovl_submit_and_poll, already delivered by it). Memory held for closed ports must be bounded by the ports
 * open at one time: the resident size at the end is within 1 MiB of its
 * size after the first 1,000 cycles; fds and threads return to their
 * baseline. Exit 0 on success, 1 on failure, 77 if the backend is missing.
 *
 *   ovl_port_cycles [cycles]      (OVL_BACKEND picks the backend) */
#define _GNU_SOURCE
#include <ovl.h>

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long delivered, cancelled;

static void on_batch(const ovl_completion *items, size_t n, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&delivered, 1);
        if (items[i].result == OVL_ECANCELED) atomic_fetch_add(&cancelled, 1);
    }
}

static long rss_bytes(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    long cycles = argc > 1 ? atol(argv[1]) : 100000;
    const char *be = getenv("OVL_BACKEND");
    int pfd[2];
    if (pipe(pfd) != 0) return 1;
    /* A completion thread, manual mode, and a completion thread whose
     * submits go through ovl_submit_and_poll (the post is delivered in its
     * call, which lets the thread park, and the read then unparks it). */
    static const uint32_t modes[] = {0, OVL_PORT_MANUAL, 0};
    int fds_start = count_dir("/proc/self/fd"), threads_start = count_dir("/proc/self/task");
    int fds0 = fds_start, threads0 = threads_start;
    long rss_base = -1;
    long submitted = 0;
    char buf[8];
    for (long i = 0; i < cycles; i++) {
        ovl_port_config cfg;
        ovl_port_config_init(&cfg, sizeof cfg);
        cfg.queue_depth = 8;
        cfg.flags = modes[i % 3];
        cfg.callback = on_batch;
        ovl_port *p;
        int32_t rc = ovl_create_port(&cfg, &p);
        if (rc == OVL_EUNAVAIL && i == 0) {
            printf("port_cycles: backend %s not available: skipped\n", be ? be : "auto");
            return 77;
        }
        if (rc != OVL_OK) {
            fprintf(stderr, "cycle %ld: create: %s\n", i, ovl_strerror(rc));
            return 1;
        }
        /* In flight at close: a read that never gets data, and a post. */
        if (i % 3 == 2) { /* the third mode */
            ovl_request q[2] = {
                {OVL_OP_POST, 0, 0, NULL, 0, 1, NULL, 0, 0},
                {OVL_OP_READ, 0, (ovl_fd)pfd[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, 0, 0},
            };
            size_t done[2] = {0, 0};
            (void)ovl_submit_and_poll(p, &q[0], 1, &done[0], 0);
            (void)ovl_submit_and_poll(p, &q[1], 1, &done[1], 0);
            if (done[0] != 1 || done[1] != 1) {
                fprintf(stderr, "cycle %ld: ovl_submit_and_poll failed\n", i);
                return 1;
            }
        } else if (ovl_submit_read(p, (ovl_fd)pfd[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL,
                                   NULL) != OVL_OK ||
                   ovl_post(p, 1, NULL, NULL) != OVL_OK) {
            fprintf(stderr, "cycle %ld: submit failed\n", i);
            return 1;
        }
        submitted += 2;
        if ((rc = ovl_close_port(p)) != OVL_OK) {
            fprintf(stderr, "cycle %ld: close: %s\n", i, ovl_strerror(rc));
            return 1;
        }
        if (i == 999) {
            /* The baseline: after the allocator and any runtime helper
             * threads (a sanitizer's) have settled. */
            rss_base = rss_bytes();
            fds0 = count_dir("/proc/self/fd");
            threads0 = count_dir("/proc/self/task");
        }
    }
    long rss_end = rss_bytes();
    int fds1 = count_dir("/proc/self/fd"), threads1 = count_dir("/proc/self/task");
    long growth = rss_base >= 0 ? rss_end - rss_base : 0;
    printf("port_cycles: backend=%s cycles=%ld rss_after_1000=%ld KiB rss_end=%ld KiB "
           "growth=%ld KiB fds %d->%d threads %d->%d delivered=%ld cancelled=%ld\n",
           be ? be : "auto", cycles, rss_base / 1024, rss_end / 1024, growth / 1024, fds0, fds1,
           threads0, threads1, atomic_load(&delivered), atomic_load(&cancelled));
    int bad = 0;
    if (atomic_load(&delivered) != submitted) {
        fprintf(stderr, "FAIL: %ld submitted, %ld delivered\n", submitted, atomic_load(&delivered));
        bad = 1;
    }
    if (atomic_load(&cancelled) != cycles) {
        fprintf(stderr, "FAIL: %ld parked reads, %ld cancelled\n", cycles, atomic_load(&cancelled));
        bad = 1;
    }
    if (cycles >= 2000 && growth > 1024 * 1024) {
        fprintf(stderr, "FAIL: resident size grew by %ld KiB after the first 1,000 cycles\n",
                growth / 1024);
        bad = 1;
    }
    if (fds1 != fds0 || threads1 != threads0 || fds1 != fds_start) {
        fprintf(stderr, "FAIL: fds %d->%d, threads %d->%d\n", fds0, fds1, threads0, threads1);
        bad = 1;
    }
    close(pfd[0]);
    close(pfd[1]);
    return bad;
}
