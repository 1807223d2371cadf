/* consumer.c - a program built against an INSTALLED ovl (tests/install):
 * it includes <ovl.h> from the prefix, links libovl from the prefix, checks
 * that header and library agree on the version, writes a file through a
 * port and reads it back. Manual mode keeps it free of threads. */
#include <ovl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static int64_t results[2];

static void on_done(const ovl_completion *items, size_t n, void *userdata)
{
    (void)userdata;
    for (size_t i = 0; i < n; i++) results[(intptr_t)items[i].ctx] = items[i].result;
}

static int poll_one(ovl_port *port)
{
    int32_t got = ovl_poll(port, 5000);
    if (got != 1) {
        fprintf(stderr, "consumer: ovl_poll: %d (%s)\n", got,
                got < 0 ? ovl_strerror(got) : "timeout");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "?";
    if (ovl_version() != OVL_VERSION_HEX) {
        fprintf(stderr, "consumer: header %#x but library %#x\n", (unsigned)OVL_VERSION_HEX,
                (unsigned)ovl_version());
        return 1;
    }
    char path[] = "/tmp/ovl-consumer-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    unlink(path);

    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.flags = OVL_PORT_MANUAL;
    cfg.callback = on_done;
    ovl_port *port;
    int32_t rc = ovl_create_port(&cfg, &port);
    if (rc != OVL_OK) {
        fprintf(stderr, "consumer: ovl_create_port: %s\n", ovl_strerror(rc));
        return 1;
    }
    static const char msg[] = "hello from an installed ovl";
    char back[sizeof msg];
    memset(back, 0, sizeof back);
    int ok = ovl_submit_write(port, (ovl_fd)fd, msg, sizeof msg, 0, (void *)0, NULL) == OVL_OK &&
             poll_one(port) == 0 && results[0] == (int64_t)sizeof msg &&
             ovl_submit_read(port, (ovl_fd)fd, back, sizeof back, 0, (void *)1, NULL) == OVL_OK &&
             poll_one(port) == 0 && results[1] == (int64_t)sizeof msg &&
             memcmp(msg, back, sizeof msg) == 0;
    printf("consumer (%s): ovl %s, backend %s: %s\n", how, ovl_version_string(),
           ovl_backend_name(port), ok ? "write+read ok" : "FAILED");
    if (ovl_close_port(port) != OVL_OK) ok = 0;
    close(fd);
    return ok ? 0 : 1;
}
