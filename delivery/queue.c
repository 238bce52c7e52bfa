/* queue.c - delivery's LMDB queue (see queue.h).
 *
 * A record in "envelopes" is
 *   "CQ1\0" | uint32 n | n x uint64 next retry (us) | packed Envelope
 * in host byte order (the environment never leaves this host).  The
 * Envelope's Recipient.state/attempts/status_text are the recipients'
 * states and its hold/hold_reason the record's hold state; they are
 * rewritten through a shallow copy, so a decoded Envelope is never
 * modified. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "lmdb_util.h"
#include "log.h"
#include "queue.h"
#include "xalloc.h"

#define QUEUE_MAGIC     "CQ1"     /* 4 bytes with its NUL */
#define QUEUE_HDR_FIXED 8         /* magic + n */

struct queue {
    MDB_env *env;
    MDB_dbi  envelopes, done;
};

struct queue_txn {
    queue_t *q;
    MDB_txn *txn;
};

queue_t *queue_open(const char *dir, size_t map_size)
{
    queue_t *q = xcalloc(1, sizeof *q);
    q->env = lmdb_env_open(dir, map_size, 4);
    q->envelopes = lmdb_dbi_open(q->env, "envelopes");
    q->done = lmdb_dbi_open(q->env, "done");
    return q;
}

void queue_close(queue_t **qp)
{
    if (!*qp)
        return;
    mdb_env_close((*qp)->env);
    xfree(qp);
}

queue_txn *queue_begin(queue_t *q, bool write)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(q->env, NULL, write ? 0 : MDB_RDONLY, &txn);
    if (rc != 0) {
        log_warn("queue: cannot begin %s transaction: %s",
                 write ? "a write" : "a read", mdb_strerror(rc));
        return NULL;
    }
    queue_txn *t = xcalloc(1, sizeof *t);
    t->q = q;
    t->txn = txn;
    return t;
}

int queue_commit(queue_txn **tp)
{
    int rc = mdb_txn_commit((*tp)->txn);
    xfree(tp);
    if (rc != 0) {
        log_warn("queue: commit failed: %s%s", mdb_strerror(rc),
                 rc == MDB_MAP_FULL ? " (raise queue_map_size)" : "");
        return -1;
    }
    return 0;
}

void queue_abort(queue_txn **tp)
{
    if (!*tp)
        return;
    mdb_txn_abort((*tp)->txn);
    xfree(tp);
}

static MDB_val queue_key(const char *qid)
{
    MDB_val k = {strlen(qid), (void *)qid};
    return k;
}

/* queue_get_raw - 0 and *v, MDB_NOTFOUND, or another error (warned). */
static int queue_get_raw(queue_txn *t, MDB_dbi dbi, const char *qid, MDB_val *v)
{
    MDB_val k = queue_key(qid);
    int rc = mdb_get(t->txn, dbi, &k, v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        log_warn("%s: queue: read failed: %s", qid, mdb_strerror(rc));
    return rc;
}

int queue_known(queue_txn *t, const char *qid)
{
    MDB_val v;
    MDB_dbi dbis[2] = {t->q->envelopes, t->q->done};
    for (size_t i = 0; i < 2; i++) {
        int rc = queue_get_raw(t, dbis[i], qid, &v);
        if (rc == 0)
            return 1;
        if (rc != MDB_NOTFOUND)
            return -1;
    }
    return 0;
}

/* queue_put_record - write header (next[] for n recipients) + packed. */
static int queue_put_record(queue_txn *t, const char *qid, size_t n,
                            const uint64_t *next, const void *packed, size_t len)
{
    size_t hdr = QUEUE_HDR_FIXED + n * sizeof(uint64_t);
    MDB_val k = queue_key(qid), v = {hdr + len, NULL};
    int rc = mdb_put(t->txn, t->q->envelopes, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        log_warn("%s: queue: cannot store: %s%s", qid, mdb_strerror(rc),
                 rc == MDB_MAP_FULL ? " (raise queue_map_size)" : "");
        return -1;
    }
    uint8_t *p = v.mv_data;
    uint32_t n32 = (uint32_t)n;
    memcpy(p, QUEUE_MAGIC, 4);
    memcpy(p + 4, &n32, 4);
    if (n)
        memcpy(p + QUEUE_HDR_FIXED, next, n * sizeof(uint64_t));
    memcpy(p + hdr, packed, len);
    return 0;
}

int queue_put_new(queue_txn *t, const void *frame, size_t len, const Envelope *env)
{
    uint64_t *next = xcalloc(env->n_rcpt + 1, sizeof *next);
    int rc = queue_put_record(t, env->queue_id, env->n_rcpt, next, frame, len);
    xfree(&next);
    return rc;
}

uint64_t queue_lifetime_us(const config_t *cfg, const Envelope *env)
{
    const char *p = env->reverse_path[0] ? "maximal_queue_lifetime" : "bounce_queue_lifetime";
    return (uint64_t)config_time_ms(cfg, p) * 1000;
}

bool queue_rcpt_final(Correio__RcptState s)
{
    return s == CORREIO__RCPT_STATE__RCPT_DELIVERED || s == CORREIO__RCPT_STATE__RCPT_FAILED;
}

bool queue_rcpt_active(Correio__RcptState s)
{
    return s == CORREIO__RCPT_STATE__RCPT_PENDING || s == CORREIO__RCPT_STATE__RCPT_DEFERRED;
}

void queue_rcpt_set_str(char **field, const char *text)
{
    xfree(field);
    *field = xstrdup(text ? text : "");
}

void queue_rcpt_set_status(queue_rcpt *r, const char *text)
{
    queue_rcpt_set_str(&r->status, text);
}

void queue_rec_set_hold(queue_rec *r, bool hold, const char *reason)
{
    xfree(&r->hold_reason);
    r->hold_reason = xstrdup(hold && reason ? reason : "");
    r->hold = hold;
    if (!hold)
        for (size_t i = 0; i < r->n; i++)
            if (queue_rcpt_active(r->rcpt[i].state))
                r->rcpt[i].next_us = 0;
}

/* queue_decode - a record from its stored bytes; NULL (warned) if bad. */
static queue_rec *queue_decode(const char *qid, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    uint32_t n;
    if (v->mv_size < QUEUE_HDR_FIXED || memcmp(p, QUEUE_MAGIC, 4) != 0) {
        log_warn("%s: queue: record has no valid header, skipped", qid);
        return NULL;
    }
    memcpy(&n, p + 4, 4);
    size_t hdr = QUEUE_HDR_FIXED + (size_t)n * sizeof(uint64_t);
    if (v->mv_size < hdr) {
        log_warn("%s: queue: record is truncated, skipped", qid);
        return NULL;
    }
    Envelope *env = wire_unpack_envelope(p + hdr, v->mv_size - hdr, "delivery queue");
    if (!env)
        return NULL;
    if (env->n_rcpt != n) {
        log_warn("%s: queue: record has %u retry times for %zu recipients, skipped",
                 qid, n, env->n_rcpt);
        wire_free_envelope(&env);
        return NULL;
    }
    queue_rec *r = xcalloc(1, sizeof *r);
    r->env = env;
    r->queue_id = xstrdup(env->queue_id);
    r->n = n;
    r->rcpt = xcalloc(n + 1, sizeof *r->rcpt);
    r->hold = env->hold;
    r->hold_reason = xstrdup(env->hold && env->hold_reason ? env->hold_reason : "");
    for (size_t i = 0; i < n; i++) {
        memcpy(&r->rcpt[i].next_us, p + QUEUE_HDR_FIXED + i * sizeof(uint64_t),
               sizeof(uint64_t));
        const Recipient *rc = env->rcpt[i];
        queue_rcpt *q = &r->rcpt[i];
        q->state = rc->state;
        q->attempts = rc->attempts;
        q->status = xstrdup(rc->status_text);
        snprintf(q->dsn_status, sizeof q->dsn_status, "%s", rc->dsn_status);
        q->remote_mta = xstrdup(rc->remote_mta);
        q->diagnostic = xstrdup(rc->diagnostic);
        q->dsn_sent = rc->dsn_sent;
        q->last_attempt_us = rc->last_attempt;
        q->relayed = rc->relayed;
        q->route = rc->route;
        q->mailbox = xstrdup(rc->mailbox);
        q->spam_action = rc->spam_action;
        q->subject_tag = xstrdup(rc->subject_tag);
        q->folder = xstrdup(rc->folder);
        q->quarantined_at = rc->quarantined_at;
    }
    return r;
}

queue_rec *queue_get(queue_txn *t, const char *qid)
{
    MDB_val v;
    if (queue_get_raw(t, t->q->envelopes, qid, &v) != 0)
        return NULL;
    return queue_decode(qid, &v);
}

uint8_t *queue_rec_pack(const queue_rec *r, size_t *len)
{
    if (!r->env)
        log_panic("queue_rec_pack: %s: record without its envelope", r->queue_id);
    /* Shallow copies carry the new states; r->env stays as decoded. */
    Recipient *copies = xcalloc(r->n + 1, sizeof *copies);
    Recipient **ptrs = xcalloc(r->n + 1, sizeof *ptrs);
    for (size_t i = 0; i < r->n; i++) {
        copies[i] = *r->env->rcpt[i];
        copies[i].state = r->rcpt[i].state;
        copies[i].attempts = r->rcpt[i].attempts;
        copies[i].status_text = r->rcpt[i].status;
        copies[i].dsn_status = (char *)r->rcpt[i].dsn_status;
        copies[i].remote_mta = r->rcpt[i].remote_mta;
        copies[i].diagnostic = r->rcpt[i].diagnostic;
        copies[i].dsn_sent = r->rcpt[i].dsn_sent;
        copies[i].last_attempt = r->rcpt[i].last_attempt_us;
        copies[i].relayed = r->rcpt[i].relayed;
        copies[i].route = r->rcpt[i].route;
        copies[i].mailbox = r->rcpt[i].mailbox;
        copies[i].spam_action = r->rcpt[i].spam_action;
        copies[i].subject_tag = r->rcpt[i].subject_tag;
        copies[i].folder = r->rcpt[i].folder;
        copies[i].quarantined_at = r->rcpt[i].quarantined_at;
        ptrs[i] = &copies[i];
    }
    Envelope copy = *r->env;
    copy.rcpt = ptrs;
    copy.hold = r->hold;
    copy.hold_reason = r->hold_reason;
    uint8_t *packed = wire_pack_envelope(&copy, len);
    xfree(&ptrs);
    xfree(&copies);
    return packed;
}

int queue_put(queue_txn *t, const queue_rec *r)
{
    size_t len;
    uint8_t *packed = queue_rec_pack(r, &len);
    uint64_t *next = xcalloc(r->n + 1, sizeof *next);
    for (size_t i = 0; i < r->n; i++)
        next[i] = r->rcpt[i].next_us;
    int rc = queue_put_record(t, r->queue_id, r->n, next, packed, len);
    xfree(&packed);
    xfree(&next);
    return rc;
}

int queue_queued(queue_txn *t, const char *qid)
{
    MDB_val v;
    int rc = queue_get_raw(t, t->q->envelopes, qid, &v);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

long queue_count(queue_t *q)
{
    queue_txn *t = queue_begin(q, false);
    MDB_stat st;
    if (!t)
        return -1;
    int rc = mdb_stat(t->txn, q->envelopes, &st);
    queue_abort(&t);
    if (rc != 0) {
        log_warn("queue: cannot count: %s", mdb_strerror(rc));
        return -1;
    }
    return (long)st.ms_entries;
}

int queue_finish(queue_txn *t, const char *qid, uint64_t now_us)
{
    MDB_val k = queue_key(qid);
    int rc = mdb_del(t->txn, t->q->envelopes, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_warn("%s: queue: cannot remove: %s", qid, mdb_strerror(rc));
        return -1;
    }
    MDB_val v = {sizeof now_us, &now_us};
    rc = mdb_put(t->txn, t->q->done, &k, &v, 0);
    if (rc != 0) {
        log_warn("%s: queue: cannot record as done: %s", qid, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

long queue_scan(queue_t *q, queue_visit_fn fn, void *ctx, size_t max)
{
    return queue_scan_after(q, NULL, fn, ctx, max);
}

long queue_scan_after(queue_t *q, const char *after, queue_visit_fn fn, void *ctx, size_t max)
{
    queue_txn *t = queue_begin(q, false);
    if (!t)
        return -1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, q->envelopes, &cur);
    if (rc != 0) {
        log_warn("queue: cannot open a cursor: %s", mdb_strerror(rc));
        queue_abort(&t);
        return -1;
    }
    MDB_val k, v;
    long visited = 0;
    if (after && after[0]) {            /* the first key past after */
        k = queue_key(after);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == strlen(after) && memcmp(k.mv_data, after, k.mv_size) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0 && (size_t)visited < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char *qid = xmemdup(k.mv_data, k.mv_size);
        queue_rec *r = queue_decode(qid, &v);
        if (r) {
            fn(ctx, r);
            queue_rec_free(&r);
            visited++;
        }
        xfree(&qid);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_warn("queue: scan failed: %s", mdb_strerror(rc));
        visited = -1;
    }
    mdb_cursor_close(cur);
    queue_abort(&t);
    return visited;
}

size_t queue_prune_done(queue_t *q, uint64_t before_us, size_t max)
{
    queue_txn *t = queue_begin(q, true);
    if (!t)
        return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, q->done, &cur);
    if (rc != 0) {
        log_warn("queue: cannot open a cursor on done: %s", mdb_strerror(rc));
        queue_abort(&t);
        return 0;
    }
    /* Ids sort by time, so the old entries are at the front. */
    size_t deleted = 0, looked = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == 0 && deleted < max && looked < 10 * max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), looked++) {
        uint64_t when = 0;
        if (v.mv_size == sizeof when)
            memcpy(&when, v.mv_data, sizeof when);
        if (when >= before_us)
            continue;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            log_warn("queue: cannot prune done: %s", mdb_strerror(rc));
            break;
        }
        deleted++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        queue_abort(&t);
        return 0;
    }
    mdb_cursor_close(cur);
    if (deleted == 0) {
        queue_abort(&t);
        return 0;
    }
    return queue_commit(&t) == 0 ? deleted : 0;
}

void queue_rec_free(queue_rec **rp)
{
    queue_rec *r = *rp;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        xfree(&r->rcpt[i].status);
        xfree(&r->rcpt[i].remote_mta);
        xfree(&r->rcpt[i].diagnostic);
        xfree(&r->rcpt[i].mailbox);
        xfree(&r->rcpt[i].subject_tag);
        xfree(&r->rcpt[i].folder);
    }
    xfree(&r->rcpt);
    xfree(&r->hold_reason);
    xfree(&r->queue_id);
    if (r->env)
        wire_free_envelope(&r->env);
    xfree(rp);
}
