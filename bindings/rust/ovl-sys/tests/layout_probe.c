/* layout_probe.c - prints every struct's size, alignment and field offsets
 * and every constant of ovl.h, one "key value" per line. tests/layout.rs
 * compiles it (or, in a cross build, runs a probe built from it by the test
 * script: OVL_LAYOUT_PROBE) and compares each line with ovl-sys. */
#include <ovl.h>
#include <stdio.h>
#include <stddef.h>
#include <stdalign.h>

#define ST(t) printf("sizeof %s %lld\nalignof %s %lld\n", #t, (long long)sizeof(t), #t, (long long)alignof(t))
#define OFF(t, f) printf("offsetof %s.%s %lld\n", #t, #f, (long long)offsetof(t, f))
#define K(n) printf("const %s %lld\n", #n, (long long)(n))
/* Every error code of the X-macro list, so a code added to the header
 * without a Rust constant fails the comparison. */
#define ERR(name, value, msg) K(OVL_##name);

int main(void) {
    ST(ovl_completion);
    OFF(ovl_completion, ctx); OFF(ovl_completion, id); OFF(ovl_completion, result);
    OFF(ovl_completion, op); OFF(ovl_completion, os_error);
    ST(ovl_port_config);
    OFF(ovl_port_config, size); OFF(ovl_port_config, queue_depth);
    OFF(ovl_port_config, backend); OFF(ovl_port_config, flags);
    OFF(ovl_port_config, threads); OFF(ovl_port_config, spin_usec);
    OFF(ovl_port_config, callback); OFF(ovl_port_config, userdata);
    ST(ovl_request);
    OFF(ovl_request, op); OFF(ovl_request, flags); OFF(ovl_request, fd);
    OFF(ovl_request, buf); OFF(ovl_request, len); OFF(ovl_request, offset);
    OFF(ovl_request, ctx); OFF(ovl_request, id); OFF(ovl_request, timeout_ns);
    ST(ovl_local_config);
    OFF(ovl_local_config, size); OFF(ovl_local_config, flags); OFF(ovl_local_config, mode);
    OFF(ovl_local_config, backlog); OFF(ovl_local_config, in_buffer);
    OFF(ovl_local_config, out_buffer); OFF(ovl_local_config, sddl);
    ST(ovl_addr);
    OFF(ovl_addr, data); OFF(ovl_addr, len); OFF(ovl_addr, reserved);
    ST(ovl_stats);
    OFF(ovl_stats, size); OFF(ovl_stats, inflight); OFF(ovl_stats, submitted);
    OFF(ovl_stats, completed); OFF(ovl_stats, cancels); OFF(ovl_stats, batches);
    OFF(ovl_stats, stale); OFF(ovl_stats, syscalls);
    printf("sizeof ovl_fd %lld\n", (long long)sizeof(ovl_fd));
    printf("sizeof ovl_callback %lld\n", (long long)sizeof(ovl_callback));
    OVL_ERRORS(ERR)
    K(OVL__ERR_LAST);
    K(OVL_VERSION_MAJOR); K(OVL_VERSION_MINOR); K(OVL_VERSION_PATCH); K(OVL_VERSION_HEX);
    K(OVL_OFFSET_CURRENT); K(OVL_MAX_IO_SIZE);
    K(OVL_DEFAULT_QUEUE_DEPTH); K(OVL_MAX_QUEUE_DEPTH); K(OVL_MAX_REGISTERED_FDS);
    K(OVL_OP_READ); K(OVL_OP_WRITE); K(OVL_OP_FSYNC); K(OVL_OP_POST); K(OVL_FSYNC_DATA);
    K(OVL_OP_ACCEPT); K(OVL_OP_CONNECT); K(OVL_OP_SHUTDOWN); K(OVL_OP_TIMER);
    K(OVL_OP_LOCAL_ACCEPT); K(OVL_OP_LOCAL_DIAL); K(OVL_LOCAL_MESSAGE); K(OVL_LOCAL_ALLOW_REMOTE);
    K(OVL_SHUT_RD); K(OVL_SHUT_WR); K(OVL_SHUT_RDWR); K(OVL_ADDR_MAX);
    K(OVL_BACKEND_AUTO); K(OVL_BACKEND_URING); K(OVL_BACKEND_THREADS); K(OVL_BACKEND_IOCP);
    K(OVL_PORT_MANUAL); K(OVL_SPIN_NONE);
    return 0;
}
