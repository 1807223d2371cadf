/* The completion thread's spin (ovl_port_config.spin_usec): whatever it is
 * set to, a port with nothing to do costs no CPU once its last batch is
 * delivered, and every setting delivers every completion once. */
#include "common.h"

/* CPU ticks (user + system) used so far by every thread of this process
 * except the calling one: the process's total minus this thread's. */
static long stat_ticks(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which may hold spaces: "...) S ...";
     * utime and stime are fields 14 and 15, the 12th and 13th after it. */
    char *q = strrchr(buf, ')');
    cr_assert_not_null(q);
    long v[13];
    int got = sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &v[0], &v[1]);
    cr_assert_eq(got, 2, "cannot parse %s", path);
    return v[0] + v[1];
}

static long others_ticks(void)
{
    return stat_ticks("/proc/self/stat") - stat_ticks("/proc/thread-self/stat");
}

/* Posts one at a time, each awaited before the next (the pattern the
 * adaptive spin is for: it learns that spinning pays), then lets the port
 * sit idle: its threads must not use the CPU meanwhile. A spinning thread
 * would use about 30 ticks (at 100 Hz) in the 300 ms; the bound allows
 * for the last spin after the last batch and for tick rounding. */
static void idle_after_busy(uint32_t spin_usec)
{
    rec r;
    rec_init(&r);
    ovl_port_config cfg;
    cr_assert_eq(ovl_port_config_init(&cfg, sizeof cfg), OVL_OK);
    cfg.queue_depth = 16;
    cfg.spin_usec = spin_usec;
    ovl_port *p = open_port_cfg(&r, &cfg);
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ovl_post(p, i, NULL, NULL), OVL_OK);
        rec_wait(&r, (size_t)i + 1);
    }
    long before = others_ticks();
    struct timespec idle = {0, 300 * 1000 * 1000};
    while (nanosleep(&idle, &idle) != 0 && errno == EINTR) {
    }
    long used = others_ticks() - before;
    cr_assert_leq(used, 3, "an idle port's threads used %ld ticks in 300 ms (spin_usec %u)", used,
                  spin_usec);
    /* Every post came back once, in order of the values posted. */
    pthread_mutex_lock(&r.mu);
    cr_assert_eq(r.n, (size_t)N);
    for (size_t i = 0; i < r.n; i++) cr_assert_eq(r.items[i].result, (int64_t)i);
    pthread_mutex_unlock(&r.mu);
    close_clean(p, &r);
}

Test(spin, adaptive_default_idles_at_zero_cpu) { idle_after_busy(0); }

Test(spin, fixed_spin_idles_at_zero_cpu) { idle_after_busy(200); }

Test(spin, none_idles_at_zero_cpu) { idle_after_busy(OVL_SPIN_NONE); }

/* A burst of many in flight at once, then idle: the same. */
Test(spin, after_a_burst_idles_at_zero_cpu)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 256, 0);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 200; i++) cr_assert_eq(ovl_post(p, i, NULL, NULL), OVL_OK);
        rec_wait(&r, (size_t)(round + 1) * 200);
    }
    long before = others_ticks();
    struct timespec idle = {0, 300 * 1000 * 1000};
    while (nanosleep(&idle, &idle) != 0 && errno == EINTR) {
    }
    long used = others_ticks() - before;
    cr_assert_leq(used, 3, "an idle port's threads used %ld ticks in 300 ms", used);
    close_clean(p, &r);
}
