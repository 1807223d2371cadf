/* seccomp_run - run a command with io_uring_setup failing EPERM, as under
 * Docker's default seccomp profile, so that a test suite can be run with
 * OVL_BACKEND=auto where auto must fall back to threads:
 *
 *   seccomp_run ovl_tests --filter connect/STAR (a glob)
 *
 * The filter is inherited by every child and kept across exec. */
#define _GNU_SOURCE
#include "seccomp_block.h"

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seccomp_run COMMAND [ARGS...]\n");
        return 2;
    }
    if (block_io_uring() != 0) {
        perror("seccomp_run: prctl");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror("seccomp_run: exec");
    return 127;
}
