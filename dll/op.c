/* op.c - the op pool: the wrapper trick's storage. Ops are allocated once
 * per port (queue_depth of them) and recycled through a free list, so the
 * hot path never allocates. Alloc, release and the token lookup run with
 * port->lock held (asserted in OVL_DEBUG_LOCKS builds); init and free run
 * while the port is not open, with nobody else to see it. */
#include "ovl_internal.h"

#include <stdlib.h>

/* Each pool starts its generations somewhere else, so that an id of a
 * closed port is not also an id of the next port that takes its handle
 * slot (the slot bits of the token being equal then). */
static _Atomic uint32_t gen_seed;

int32_t ovl__pool_init(ovl_port *p)
{
    p->ops = calloc(p->depth, sizeof *p->ops);
    if (!p->ops) return OVL_ENOMEM;
    uint32_t base = atomic_fetch_add(&gen_seed, 0x9e3779b9u) & 0x3fffffffu;
    p->free_list = NULL;
    /* Push in reverse so the first allocation gets index 0 (cache-friendly
     * and easier to read in a debugger). */
    for (uint32_t i = p->depth; i-- > 0;) {
        ovl__op *op = &p->ops[i];
        op->index = i;
        op->pslot = p->slot;
        op->gen = base;
        op->state = OVL__OP_FREE;
        op->next = p->free_list;
        p->free_list = op;
    }
    p->inflight = 0;
    return OVL_OK;
}

void ovl__pool_free(ovl_port *p)
{
    free(p->ops);
    p->ops = NULL;
    p->free_list = NULL;
}

/* FREE -> INFLIGHT. NULL when the pool is empty (back-pressure). */
ovl__op *ovl__op_alloc(ovl_port *p)
{
    OVL__ASSERT_HELD(&p->lock);
    ovl__op *op = p->free_list;
    if (!op) return NULL;
    p->free_list = op->next;
    /* A new generation makes every older token for this slot stale. Skip 0
     * so that a token (and an op id) is never 0, and stay below 2^30 so
     * that a token never has bit 63 (OVL__TOKEN_INTERNAL) or bit 62 set:
     * io_uring marks an op's linked-timeout CQE with bit 62. */
    if (++op->gen > 0x3fffffffu) op->gen = 1;
    op->state = OVL__OP_INFLIGHT;
    op->bstate = 0;
    op->next = op->prev = NULL;
    op->result = 0;
    op->os_error = 0;
    op->cancel_req = 0;
    /* op->os is the backend's (IOCP zeroes its OVERLAPPED per I/O). */
    p->inflight++;
    return op;
}

/* INFLIGHT -> FREE, once its completion has been harvested. */
void ovl__op_release(ovl_port *p, ovl__op *op)
{
    OVL__ASSERT_HELD(&p->lock);
    op->state = OVL__OP_FREE;
    op->ctx = NULL;
    op->buf = NULL;
    op->next = p->free_list;
    p->free_list = op;
    p->inflight--;
}

/* The way back from what the OS returned to the op. Returns NULL for a
 * token that does not name an op currently in flight: another port's,
 * index out of range,
 * an old generation (the slot was reused), or an op already harvested (a
 * duplicated completion). */
ovl__op *ovl__op_from_token(ovl_port *p, uint64_t token)
{
    OVL__ASSERT_HELD(&p->lock);
    uint32_t idx1 = (uint32_t)token & OVL__TOKEN_INDEX_MASK;
    uint32_t pslot = (uint32_t)token >> OVL__TOKEN_SLOT_SHIFT;
    uint32_t gen = (uint32_t)(token >> 32);
    if (idx1 == 0 || idx1 > p->depth || pslot != p->slot) return NULL;
    ovl__op *op = &p->ops[idx1 - 1];
    if (op->gen != gen || op->state != OVL__OP_INFLIGHT) return NULL;
    return op;
}
