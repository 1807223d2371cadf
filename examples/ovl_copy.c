/* ovl_copy - copy a file through an ovl port with many reads and writes in
 * flight, checksum it on the way, then read the copy back through the port
 * and verify it. Shows the event-loop pattern: every slot's completion is
 * handled in the port's callback, which submits that slot's next step.
 *
 *   ovl_copy [-q DEPTH] [-b BLOCK] [-s SIZE] [SRC DST]
 *
 * With no files it creates a SIZE-byte temp file of pseudo-random data,
 * copies it to a second temp file, verifies, and removes both. */
#include "ovl.h"
#include "ex_util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "ovl_copy";

enum { PHASE_READ, PHASE_WRITE };
enum { MODE_COPY, MODE_VERIFY };

struct job;

/* One pipeline slot: a buffer and the block it is working on. At most one of
 * its ops is in flight, so `queue_depth` slots keep the port full. */
typedef struct slot {
    struct job *job;
    unsigned char *buf;
    uint64_t block; /* index of the block */
    uint64_t off;   /* its file offset */
    uint32_t len;   /* its length (the last block may be short) */
    uint32_t done;  /* bytes read or written so far (short I/O) */
    int phase;
} slot;

typedef struct job {
    ovl_port *port;
    ovl_fd in, out; /* MODE_VERIFY reads `in` only */
    int mode;
    uint64_t size, nblocks;
    uint32_t block_size;
    uint64_t *hash; /* per-block checksums, filled in any order */
    /* Callback state. Written by the main thread only before the first
     * submit (a submit happens-before its completion), afterwards only by
     * callbacks, which ovl never runs two at a time for one port. */
    uint64_t next_block;
    size_t active; /* slots still working */
    uint64_t reads, writes;
    _Atomic int32_t error; /* first failure, OVL_E code; main reads it
                              while late callbacks drain */
    const char *error_what;
    ex_latch finished;
} job;

static void fail(job *j, int32_t code, const char *what)
{
    int32_t ok = OVL_OK;
    if (atomic_compare_exchange_strong(&j->error, &ok, code)) {
        j->error_what = what; /* main reads it after the latch */
        /* Wake main at once; it closes the port, which cancels the rest. */
        ex_latch_open(&j->finished);
    }
}

static void submit_step(slot *s)
{
    job *j = s->job;
    int32_t rc;
    if (s->phase == PHASE_READ) {
        rc = ovl_submit_read(j->port, j->in, s->buf + s->done, s->len - s->done,
                             (int64_t)(s->off + s->done), s, NULL);
        j->reads++;
    } else {
        rc = ovl_submit_write(j->port, j->out, s->buf + s->done, s->len - s->done,
                              (int64_t)(s->off + s->done), s, NULL);
        j->writes++;
    }
    if (rc != OVL_OK) fail(j, rc, "submit");
}

/* Give the slot its next block, or retire it. */
static void next_block(slot *s)
{
    job *j = s->job;
    if (atomic_load(&j->error) != OVL_OK || j->next_block >= j->nblocks) {
        if (--j->active == 0) ex_latch_open(&j->finished);
        return;
    }
    s->block = j->next_block++;
    s->off = s->block * j->block_size;
    uint64_t left = j->size - s->off;
    s->len = (uint32_t)(left < j->block_size ? left : j->block_size);
    s->done = 0;
    s->phase = PHASE_READ;
    submit_step(s);
}

/* The port's callback: runs on the port's completion thread with a batch. */
static void on_complete(const ovl_completion *items, size_t n, void *userdata)
{
    job *j = userdata;
    for (size_t i = 0; i < n; i++) {
        const ovl_completion *c = &items[i];
        if (atomic_load(&j->error) != OVL_OK) continue; /* draining */
        if (c->op == OVL_OP_FSYNC) {
            if (c->result < 0) fail(j, (int32_t)c->result, "fsync");
            else if (--j->active == 0) ex_latch_open(&j->finished);
            continue;
        }
        slot *s = c->ctx;
        if (c->result < 0) {
            fail(j, (int32_t)c->result, s->phase == PHASE_READ ? "read" : "write");
            continue;
        }
        if (c->result == 0 && s->len > 0) {
            /* A read at EOF before the expected size: the file shrank. */
            fail(j, OVL_EIO,
                 s->phase == PHASE_READ ? "unexpected end of file" : "write made no progress");
            continue;
        }
        s->done += (uint32_t)c->result;
        if (s->done < s->len) { /* short read or write: continue it */
            submit_step(s);
            continue;
        }
        if (s->phase == PHASE_READ) {
            j->hash[s->block] = ex_hash(EX_HASH_INIT, s->buf, s->len);
            if (j->mode == MODE_COPY) {
                s->phase = PHASE_WRITE;
                s->done = 0;
                submit_step(s);
                continue;
            }
        }
        next_block(s);
    }
}

/* Run one pass over the file with `depth` slots. Returns OVL_OK or a code. */
static int32_t run_pass(job *j, slot *slots, uint32_t depth)
{
    j->next_block = 0;
    j->active = 0;
    atomic_store(&j->error, OVL_OK);
    j->error_what = NULL;
    ex_latch_init(&j->finished);

    /* Prime the pipeline with one batch submit: one lock, one system call. */
    ovl_request *reqs = calloc(depth, sizeof *reqs);
    if (!reqs) return OVL_ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < depth && j->next_block < j->nblocks; i++) {
        slot *s = &slots[i];
        s->job = j;
        s->block = j->next_block++;
        s->off = s->block * j->block_size;
        uint64_t left = j->size - s->off;
        s->len = (uint32_t)(left < j->block_size ? left : j->block_size);
        s->done = 0;
        s->phase = PHASE_READ;
        reqs[n].op = OVL_OP_READ;
        reqs[n].fd = j->in;
        reqs[n].buf = s->buf;
        reqs[n].len = s->len;
        reqs[n].offset = (int64_t)s->off;
        reqs[n].ctx = s;
        n++;
    }
    j->active = n;
    j->reads += n;
    if (n == 0) {
        free(reqs);
        ex_latch_destroy(&j->finished);
        return OVL_OK; /* empty file */
    }
    size_t submitted = 0;
    int32_t rc = ovl_submit(j->port, reqs, n, &submitted);
    free(reqs);
    if (rc != OVL_OK) {
        /* Only the first `submitted` requests get a completion. Stop the
         * slots; the caller closes the port, which drains them. */
        fprintf(stderr, "%s: ovl_submit: %s (%zu of %zu submitted)\n", prog, ovl_strerror(rc),
                submitted, n);
        fail(j, rc, "ovl_submit");
        return rc;
    }
    ex_latch_wait(&j->finished);
    ex_latch_destroy(&j->finished);
    return atomic_load(&j->error);
}

static uint64_t digest(const uint64_t *hash, uint64_t n)
{
    return ex_hash(EX_HASH_INIT, hash, (size_t)n * sizeof *hash);
}

static int make_temp_file(const char *path, uint64_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char *buf = malloc(1 << 20);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ size;
    int rc = buf ? 0 : -1;
    for (uint64_t left = size; rc == 0 && left > 0;) {
        size_t k = left < (1u << 20) ? (size_t)left : (1u << 20);
        ex_fill(&seed, buf, k);
        if (fwrite(buf, 1, k, f) != k) rc = -1;
        left -= k;
    }
    free(buf);
    if (fclose(f) != 0) rc = -1;
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [-q DEPTH] [-b BLOCK] [-s SIZE] [SRC DST]\n"
            "  copies SRC to DST with DEPTH ops in flight (default 32) in\n"
            "  BLOCK-byte pieces (default 256k), then verifies DST by reading\n"
            "  it back. Without SRC DST: copies a SIZE-byte temp file\n"
            "  (default 32M+12345). OVL_BACKEND=uring|threads picks the backend.\n",
            prog);
}

int main(int argc, char **argv)
{
    uint32_t depth = 32;
    uint64_t block = 256 * 1024;
    uint64_t gen_size = (32u << 20) + 12345u; /* a short last block too */
    int argi = 1;
    for (; argi < argc && argv[argi][0] == '-' && argv[argi][1]; argi++) {
        const char *a = argv[argi];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (argi + 1 >= argc) {
            usage();
            return 2;
        }
        uint64_t v = ex_parse_size(argv[++argi]);
        if (!strcmp(a, "-q") && v >= 1 && v <= OVL_MAX_QUEUE_DEPTH) depth = (uint32_t)v;
        else if (!strcmp(a, "-b") && v >= 512 && v <= (64u << 20)) block = v;
        else if (!strcmp(a, "-s") && v > 0) gen_size = v;
        else {
            usage();
            return 2;
        }
    }
    int nfiles = argc - argi;
    if (nfiles != 0 && nfiles != 2) {
        usage();
        return 2;
    }

    char src_path[1024], dst_path[1024];
    int temp = nfiles == 0;
    if (temp) {
        snprintf(src_path, sizeof src_path, "%s/ovl_copy.%lu.src", ex_tmpdir(), ex_pid());
        snprintf(dst_path, sizeof dst_path, "%s/ovl_copy.%lu.dst", ex_tmpdir(), ex_pid());
        if (make_temp_file(src_path, gen_size) != 0) {
            fprintf(stderr, "%s: cannot create %s\n", prog, src_path);
            return 1;
        }
    } else {
        snprintf(src_path, sizeof src_path, "%s", argv[argi]);
        snprintf(dst_path, sizeof dst_path, "%s", argv[argi + 1]);
    }

    int status = 1;
    ovl_port *port = NULL;
    slot *slots = NULL;
    job j;
    memset(&j, 0, sizeof j);
    j.in = j.out = (ovl_fd)-1;

    j.in = ex_open_read(src_path);
    if (!ex_fd_ok(j.in)) {
        fprintf(stderr, "%s: cannot open %s\n", prog, src_path);
        goto out;
    }
    j.out = ex_open_write(dst_path);
    if (!ex_fd_ok(j.out)) {
        fprintf(stderr, "%s: cannot create %s\n", prog, dst_path);
        goto out;
    }
    int64_t sz = ex_file_size(j.in);
    if (sz < 0) {
        fprintf(stderr, "%s: cannot stat %s\n", prog, src_path);
        goto out;
    }
    j.size = (uint64_t)sz;
    j.block_size = (uint32_t)block;
    j.nblocks = (j.size + block - 1) / block;
    j.hash = calloc(j.nblocks ? j.nblocks : 1, sizeof *j.hash);
    uint64_t *src_hash = calloc(j.nblocks ? j.nblocks : 1, sizeof *src_hash);
    slots = calloc(depth, sizeof *slots);
    if (!j.hash || !src_hash || !slots) {
        fprintf(stderr, "%s: out of memory\n", prog);
        free(src_hash);
        goto out;
    }
    for (uint32_t i = 0; i < depth; i++) {
        slots[i].buf = malloc(block);
        if (!slots[i].buf) {
            fprintf(stderr, "%s: out of memory\n", prog);
            free(src_hash);
            goto out;
        }
    }

    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = depth; /* one op in flight per slot */
    cfg.callback = on_complete;
    cfg.userdata = &j;
    int32_t rc = ovl_create_port(&cfg, &port);
    if (rc != OVL_OK) {
        fprintf(stderr, "%s: ovl_create_port: %s (%s)\n", prog, ovl_strerror(rc),
                ovl_error_name(rc));
        free(src_hash);
        if (rc == OVL_EUNAVAIL) status = EX_EXIT_SKIP;
        goto out;
    }
    j.port = port;
    /* Required on Windows, harmless elsewhere. */
    if ((rc = ovl_associate(port, j.in)) != OVL_OK || (rc = ovl_associate(port, j.out)) != OVL_OK) {
        fprintf(stderr, "%s: ovl_associate: %s\n", prog, ovl_strerror(rc));
        free(src_hash);
        goto out;
    }
    ex_print_backend(prog, port);
    printf("%s: %s -> %s, %llu bytes, %llu blocks of %u bytes, %u in flight\n", prog, src_path,
           dst_path, (unsigned long long)j.size, (unsigned long long)j.nblocks, j.block_size,
           depth);

    /* Pass 1: copy, checksumming what was read. */
    double t0 = ex_now();
    j.mode = MODE_COPY;
    rc = run_pass(&j, slots, depth);
    double t_sync = ex_now();
    if (rc == OVL_OK) {
        /* Flush the copy to storage: one more op through the same port. */
        ex_latch_init(&j.finished);
        j.active = 1;
        rc = ovl_submit_fsync(port, j.out, OVL_FSYNC_DATA, NULL, NULL);
        if (rc == OVL_OK) {
            ex_latch_wait(&j.finished);
            rc = atomic_load(&j.error);
        } else {
            j.error_what = "submit fsync";
        }
        ex_latch_destroy(&j.finished);
    }
    double t1 = ex_now();
    if (rc != OVL_OK) {
        fprintf(stderr, "%s: copy failed: %s: %s (%s)\n", prog,
                j.error_what ? j.error_what : "submit", ovl_strerror(rc), ovl_error_name(rc));
        free(src_hash);
        goto out;
    }
    memcpy(src_hash, j.hash, j.nblocks * sizeof *src_hash);
    uint64_t src_digest = digest(src_hash, j.nblocks);
    double copy_s = t_sync - t0;
    printf("%s: copied %llu bytes in %.3f s: %.1f MiB/s (%llu reads, %llu "
           "writes), then fdatasync %.3f s\n",
           prog, (unsigned long long)j.size, copy_s, copy_s > 0 ? ex_mib(j.size) / copy_s : 0.0,
           (unsigned long long)j.reads, (unsigned long long)j.writes, t1 - t_sync);

    /* Pass 2: read the copy back through the port and compare checksums. */
    int64_t dsz = ex_file_size(j.out);
    ovl_fd src_fd = j.in;
    j.in = j.out;
    j.mode = MODE_VERIFY;
    j.reads = j.writes = 0;
    memset(j.hash, 0, j.nblocks * sizeof *j.hash);
    t0 = ex_now();
    rc = run_pass(&j, slots, depth);
    t1 = ex_now();
    j.in = src_fd;
    if (rc != OVL_OK) {
        fprintf(stderr, "%s: verify failed: %s: %s (%s)\n", prog,
                j.error_what ? j.error_what : "submit", ovl_strerror(rc), ovl_error_name(rc));
        free(src_hash);
        goto out;
    }
    uint64_t dst_digest = digest(j.hash, j.nblocks);
    uint64_t bad = 0;
    for (uint64_t b = 0; b < j.nblocks; b++)
        if (j.hash[b] != src_hash[b]) bad++;
    free(src_hash);
    double verify_s = t1 - t0;
    printf("%s: verified in %.3f s: %.1f MiB/s (%llu reads); checksum "
           "src %016llx dst %016llx\n",
           prog, verify_s, verify_s > 0 ? ex_mib(j.size) / verify_s : 0.0,
           (unsigned long long)j.reads, (unsigned long long)src_digest,
           (unsigned long long)dst_digest);
    ex_print_stats(prog, port);
    if (dsz != (int64_t)j.size || bad != 0 || dst_digest != src_digest) {
        fprintf(stderr, "%s: MISMATCH: size %lld vs %llu, %llu bad blocks\n", prog, (long long)dsz,
                (unsigned long long)j.size, (unsigned long long)bad);
        goto out;
    }
    printf("%s: OK\n", prog);
    status = 0;

out:
    if (port) {
        /* Cancels anything still in flight (after a failure) and delivers
         * every remaining completion before returning. */
        int32_t crc = ovl_close_port(port);
        if (crc != OVL_OK) {
            fprintf(stderr, "%s: ovl_close_port: %s\n", prog, ovl_strerror(crc));
            status = 1;
        }
    }
    if (slots)
        for (uint32_t i = 0; i < depth; i++) free(slots[i].buf);
    free(slots);
    free(j.hash);
    if (ex_fd_ok(j.in)) ex_close(j.in);
    if (ex_fd_ok(j.out)) ex_close(j.out);
    if (temp) {
        remove(src_path);
        remove(dst_path);
    }
    return status;
}
