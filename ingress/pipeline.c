/* pipeline.c - in-flight envelopes between spool and delivery (see
 * pipeline.h): hash by queue id, send FIFO, resend min-heap.
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "spool.h"
#include "tap.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"
#include "zmq_util.h"

#define HOLD_BYTES_MAX  (64u << 20)  /* unsent bytes kept in memory; beyond, reread the spool */
#define BLOCKED_RETRY_MS 1000        /* retry a full PUSH at least this often */
#define NOT_IN_HEAP     ((size_t)-1)

typedef struct pl_entry {
    char             qid[QID_LEN + 1];
    struct pl_entry *hnext;          /* hash chain */
    struct pl_entry *qprev, *qnext;  /* send FIFO */
    bool             queued;
    size_t           heap_idx;
    int64_t          deadline;       /* when in the heap: resend time, mono ms */
    int64_t          interval;       /* the ack timeout for the next send */
    uint8_t         *data;           /* held packed envelope, or NULL */
    size_t           len;
    unsigned         sends;
} pl_entry;

struct pipeline {
    ingress_t  *ig;
    int64_t     ack_ms, ack_max_ms;
    pl_entry  **buckets;
    size_t      nbuckets, count;
    pl_entry   *q_head, *q_tail;
    bool        blocked;              /* the PUSH said EAGAIN */
    int64_t     blocked_since;
    pl_entry  **heap;
    size_t      heap_len, heap_cap;
    size_t      held;                 /* bytes held by queued entries */
    buf_t       scratch;              /* rereads from the spool */
};

/* hash - FNV-1a of a queue id. */
static size_t hash(const char *qid)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < QID_LEN; i++) {
        h ^= (unsigned char)qid[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static pl_entry *lookup(const pipeline_t *pl, const char *qid)
{
    pl_entry *e = pl->buckets[hash(qid) & (pl->nbuckets - 1)];
    while (e && memcmp(e->qid, qid, QID_LEN) != 0)
        e = e->hnext;
    return e;
}

/* grow - double the bucket array when the table gets full. */
static void grow(pipeline_t *pl)
{
    size_t n = pl->nbuckets * 2;
    pl_entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < pl->nbuckets; i++) {
        pl_entry *e = pl->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[hash(e->qid) & (n - 1)];
            b[hash(e->qid) & (n - 1)] = e;
        }
    }
    xfree(&pl->buckets);
    pl->buckets = b;
    pl->nbuckets = n;
}

static void unhash(pipeline_t *pl, pl_entry *e)
{
    pl_entry **pp = &pl->buckets[hash(e->qid) & (pl->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    pl->count--;
}

/* --- the resend heap, ordered by deadline */
static void heap_set(pipeline_t *pl, size_t i, pl_entry *e)
{
    pl->heap[i] = e;
    e->heap_idx = i;
}

static void heap_up(pipeline_t *pl, size_t i)
{
    pl_entry *e = pl->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (pl->heap[p]->deadline <= e->deadline)
            break;
        heap_set(pl, i, pl->heap[p]);
        i = p;
    }
    heap_set(pl, i, e);
}

static void heap_down(pipeline_t *pl, size_t i)
{
    pl_entry *e = pl->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= pl->heap_len)
            break;
        if (c + 1 < pl->heap_len && pl->heap[c + 1]->deadline < pl->heap[c]->deadline)
            c++;
        if (e->deadline <= pl->heap[c]->deadline)
            break;
        heap_set(pl, i, pl->heap[c]);
        i = c;
    }
    heap_set(pl, i, e);
}

static void heap_push(pipeline_t *pl, pl_entry *e)
{
    if (pl->heap_len == pl->heap_cap) {
        pl->heap_cap = pl->heap_cap ? pl->heap_cap * 2 : 1024;
        pl->heap = xrealloc(pl->heap, pl->heap_cap * sizeof(*pl->heap));
    }
    heap_set(pl, pl->heap_len++, e);
    heap_up(pl, e->heap_idx);
}

static void heap_remove(pipeline_t *pl, pl_entry *e)
{
    size_t i = e->heap_idx;
    pl_entry *last = pl->heap[--pl->heap_len];

    e->heap_idx = NOT_IN_HEAP;
    if (last == e)
        return;
    heap_set(pl, i, last);
    heap_up(pl, i);
    heap_down(pl, last->heap_idx);
}

/* --- the send FIFO */
static void queue_append(pipeline_t *pl, pl_entry *e)
{
    e->qnext = NULL;
    e->qprev = pl->q_tail;
    if (pl->q_tail)
        pl->q_tail->qnext = e;
    else
        pl->q_head = e;
    pl->q_tail = e;
    e->queued = true;
}

static void queue_remove(pipeline_t *pl, pl_entry *e)
{
    if (e->qprev)
        e->qprev->qnext = e->qnext;
    else
        pl->q_head = e->qnext;
    if (e->qnext)
        e->qnext->qprev = e->qprev;
    else
        pl->q_tail = e->qprev;
    e->qprev = e->qnext = NULL;
    e->queued = false;
}

static void drop_data(pipeline_t *pl, pl_entry *e)
{
    if (e->data) {
        pl->held -= e->len;
        xfree(&e->data);
    }
}

pipeline_t *pipeline_new(ingress_t *ig, int64_t ack_ms, int64_t ack_max_ms)
{
    pipeline_t *pl = xcalloc(1, sizeof(*pl));

    pl->ig = ig;
    pl->ack_ms = ack_ms;
    pl->ack_max_ms = ack_max_ms < ack_ms ? ack_ms : ack_max_ms;
    pl->nbuckets = 1024;
    pl->buckets = xcalloc(pl->nbuckets, sizeof(*pl->buckets));
    buf_init(&pl->scratch);
    return pl;
}

void pipeline_free(pipeline_t **plp)
{
    pipeline_t *pl = *plp;

    if (!pl)
        return;
    for (size_t i = 0; i < pl->nbuckets; i++) {
        pl_entry *e = pl->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            xfree(&e->data);
            xfree(&e);
        }
    }
    xfree(&pl->buckets);
    xfree(&pl->heap);
    buf_free(&pl->scratch);
    xfree(plp);
}

void pipeline_add(pipeline_t *pl, const char *qid, uint8_t *data, size_t len)
{
    pl_entry *e = lookup(pl, qid);

    if (e) {                        /* already in flight: keep the one we have */
        xfree(&data);
        return;
    }
    e = xcalloc(1, sizeof(*e));
    memcpy(e->qid, qid, QID_LEN);
    e->heap_idx = NOT_IN_HEAP;
    e->interval = pl->ack_ms;
    if (data && pl->held + len <= HOLD_BYTES_MAX) {
        e->data = data;
        e->len = len;
        pl->held += len;
    } else {
        xfree(&data);
    }
    if (pl->count >= pl->nbuckets)
        grow(pl);
    e->hnext = pl->buckets[hash(qid) & (pl->nbuckets - 1)];
    pl->buckets[hash(qid) & (pl->nbuckets - 1)] = e;
    pl->count++;
    queue_append(pl, e);
}

/* forget - remove e from every structure and free it. */
static void forget(pipeline_t *pl, pl_entry *e)
{
    if (e->queued)
        queue_remove(pl, e);
    if (e->heap_idx != NOT_IN_HEAP)
        heap_remove(pl, e);
    unhash(pl, e);
    drop_data(pl, e);
    xfree(&e);
}

/* send_one - 1 sent, 0 the PUSH is full, -1 the entry is gone. */
static int send_one(pipeline_t *pl, pl_entry *e)
{
    const void *p;
    size_t len;

    if (e->data) {
        p = e->data;
        len = e->len;
    } else {
        if (spool_get(pl->ig->spool, e->qid, &pl->scratch) < 0) {
            log_warn("%s: in flight but not in the spool; forgetting it", e->qid);
            forget(pl, e);
            pl->ig->unacked--;
            return -1;
        }
        p = pl->scratch.data;
        len = pl->scratch.len;
    }
    if (zmq_util_send(pl->ig->push, p, len) < 0) {
        if (errno != EAGAIN)
            log_warn("%s: send to classifier: %s", e->qid, zmq_strerror(errno));
        return 0;
    }
    tap_publish(TAP_ENVELOPE, p, len);
    e->sends++;
    if (e->sends == 1)
        log_info("%s: sent to classifier", e->qid);
    else
        log_info("%s: sent to classifier again (attempt %u)", e->qid, e->sends);
    queue_remove(pl, e);
    drop_data(pl, e);
    e->deadline = time_mono_ms() + e->interval;
    e->interval = e->interval * 2 > pl->ack_max_ms ? pl->ack_max_ms : e->interval * 2;
    heap_push(pl, e);
    return 1;
}

void pipeline_flush(pipeline_t *pl)
{
    while (pl->q_head) {
        int r = send_one(pl, pl->q_head);
        if (r == 0) {
            if (!pl->blocked)
                pl->blocked_since = time_mono_ms();
            pl->blocked = true;
            return;
        }
    }
    pl->blocked = false;
    if (pl->scratch.cap > (1u << 20))
        buf_free(&pl->scratch);
}

int64_t pipeline_deadline(const pipeline_t *pl)
{
    int64_t d = INT64_MAX;

    if (pl->heap_len)
        d = pl->heap[0]->deadline;
    if (pl->q_head && !pl->blocked)
        return 0;                       /* waiting for pipeline_flush: now */
    if (pl->q_head && pl->blocked_since + BLOCKED_RETRY_MS < d)
        d = pl->blocked_since + BLOCKED_RETRY_MS;
    return d;
}

void pipeline_run_timers(pipeline_t *pl, int64_t now_ms)
{
    while (pl->heap_len && pl->heap[0]->deadline <= now_ms) {
        pl_entry *e = pl->heap[0];
        heap_remove(pl, e);
        log_info("%s: no event from delivery within the ack timeout; sending again", e->qid);
        queue_append(pl, e);
    }
    if (pl->blocked && pl->blocked_since + BLOCKED_RETRY_MS <= now_ms)
        pl->blocked_since = now_ms;     /* pipeline_flush tries again */
}

void pipeline_event(pipeline_t *pl, const void *data, size_t len)
{
    Event *ev = wire_unpack_event(data, len, "ingress events");
    pl_entry *e;
    char node[64], text[200], stg[32];
    const char *what;

    if (!ev)
        return;
    if (!qid_valid(ev->queue_id, strlen(ev->queue_id))) {
        log_warn("event with a bad queue id dropped");
        goto out;
    }
    log_printable(node, sizeof(node), ev->node, strlen(ev->node));
    log_printable(stg, sizeof(stg), ev->stage, strlen(ev->stage));
    log_printable(text, sizeof(text), ev->text, strlen(ev->text));
    switch (ev->kind) {
    case CORREIO__EVENT_KIND__EVENT_OWNED:     what = "owned"; break;
    case CORREIO__EVENT_KIND__EVENT_DISCARDED: what = "discarded"; break;
    case CORREIO__EVENT_KIND__EVENT_REJECTED:  what = "rejected"; break;
    default:
        log_warn("%s: event of unknown kind %d from %s node=%s ignored",
                 ev->queue_id, (int)ev->kind, stg, node);
        goto out;
    }
    e = lookup(pl, ev->queue_id);
    if (!e) {
        log_debug("%s: %s event from %s node=%s for a message not in flight; ignored",
                  ev->queue_id, what, stg, node);
        goto out;
    }
    if (text[0])
        log_info("%s: %s by %s node=%s (%s), removed", e->qid, what,
                 stg[0] ? stg : "delivery", node, text);
    else
        log_info("%s: %s by %s node=%s, removed", e->qid, what,
                 stg[0] ? stg : "delivery", node);
    spool_delete(pl->ig->spool, e->qid);
    forget(pl, e);
    pl->ig->unacked--;
    metrics_set("correio_ingress_spool_messages", NULL, pl->ig->unacked);
out:
    wire_free_event(&ev);
}

bool pipeline_next_attempt(const pipeline_t *pl, const char *qid, uint64_t *when_us)
{
    const pl_entry *e = lookup(pl, qid);
    uint64_t now = time_now_us();

    if (!e)
        return false;
    if (e->heap_idx == NOT_IN_HEAP) {
        *when_us = now;
    } else {
        int64_t left = e->deadline - time_mono_ms();
        *when_us = now + (uint64_t)(left > 0 ? left : 0) * 1000;
    }
    return true;
}

size_t pipeline_count(const pipeline_t *pl)
{
    return pl->count;
}
