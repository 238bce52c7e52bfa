/* spool.c - the ingress spool with group commit (see spool.h).  The event
 * loop only ever takes a mutex for a moment to queue an operation; the
 * writer thread does every write transaction and fsync.
 *
 * Deletes (delivery owns the message) need no fsync of their own: a
 * delete lost in a crash only means the message is sent again, and
 * delivery drops the copy by its queue id.  So a batch of deletes alone
 * waits up to SPOOL_DELETE_DELAY_MS for a put to share its commit, and
 * the fsyncs go to the messages whose 250 waits for them.
 *
 * Refs (spool_put_ref) are checked and written by the writer inside the
 * commit of their message, so two puts of one ref, even in one batch,
 * store one message.  Every SPOOL_REF_PRUNE_MS the writer drops refs
 * older than SPOOL_REF_LIFETIME_S, at most SPOOL_REF_PRUNE_MAX a time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lmdb_util.h"
#include "log.h"
#include "spool.h"
#include "timeutil.h"
#include "xalloc.h"

enum { OP_PUT, OP_DEL };

#define SPOOL_DELETE_DELAY_MS 200   /* longest a delete waits for a put's commit */
#define SPOOL_REF_PRUNE_MS    (10 * 60 * 1000)  /* how often old refs are dropped */
#define SPOOL_REF_PRUNE_MAX   10000             /* refs dropped per pass at most */
#define SPOOL_REF_VAL_LEN     (8 + QID_LEN)     /* time, queue id */

typedef struct spool_op {
    spool_done done;    /* first: a put turns into its own completion */
    int kind;
    char *ref;          /* spool_put_ref; NULL otherwise */
} spool_op;

struct spool {
    MDB_env        *env;
    MDB_dbi         dbi;
    MDB_dbi         refs;
    int64_t         pruned_ms;              /* last prune of old refs (monotonic) */
    int             efd;
    pthread_t       writer;
    pthread_mutex_t mu;
    pthread_cond_t  cond;
    spool_op       *q_head, *q_tail;        /* queued for the writer */
    unsigned        q_puts;                 /* puts among them */
    struct timespec q_since;                /* when the oldest of them was queued */
    spool_done     *d_head, *d_tail;        /* finished puts for the loop */
    bool            stop;
};

/* apply - one operation inside txn; returns the LMDB code. */
static int apply(spool_t *sp, MDB_txn *txn, spool_op *op)
{
    MDB_val key = { QID_LEN, op->done.qid };
    int rc;

    if (op->kind == OP_PUT) {
        MDB_val val = { op->done.len, op->done.data };
        op->done.orig_qid[0] = '\0';
        if (op->ref) {
            MDB_val rkey = { strlen(op->ref), op->ref }, rval;
            uint8_t v[SPOOL_REF_VAL_LEN];
            uint64_t now = time_now_us();

            rc = mdb_get(txn, sp->refs, &rkey, &rval);
            if (rc == 0 && rval.mv_size == SPOOL_REF_VAL_LEN) {
                memcpy(op->done.orig_qid, (uint8_t *)rval.mv_data + 8, QID_LEN);
                op->done.orig_qid[QID_LEN] = '\0';
                return 0;                   /* taken before: store nothing */
            }
            if (rc != 0 && rc != MDB_NOTFOUND)
                return rc;
            memcpy(v, &now, 8);
            memcpy(v + 8, op->done.qid, QID_LEN);
            rval.mv_size = sizeof(v);
            rval.mv_data = v;
            if ((rc = mdb_put(txn, sp->refs, &rkey, &rval, 0)) != 0)
                return rc;
        }
        rc = mdb_put(txn, sp->dbi, &key, &val, 0);
    } else {
        rc = mdb_del(txn, sp->dbi, &key, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return rc;
}

/* commit_batch - apply ops in one transaction; on failure redo them one
 * transaction each, so only the operation at fault fails.  Sets rc. */
static void commit_batch(spool_t *sp, spool_op *ops)
{
    MDB_txn *txn;
    int rc;
    spool_op *op;

    rc = mdb_txn_begin(sp->env, NULL, 0, &txn);
    if (rc == 0) {
        for (op = ops; op && rc == 0; op = (spool_op *)op->done.next)
            rc = apply(sp, txn, op);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    if (rc == 0) {
        for (op = ops; op; op = (spool_op *)op->done.next)
            op->done.rc = 0;
        return;
    }
    log_warn("spool: group commit failed: %s; retrying one by one", mdb_strerror(rc));
    for (op = ops; op; op = (spool_op *)op->done.next) {
        rc = mdb_txn_begin(sp->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = apply(sp, txn, op);
            if (rc == 0)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
        op->done.rc = rc;
        if (rc != 0)
            log_warn("%s: spool write failed: %s", op->done.qid, mdb_strerror(rc));
    }
}

/* prune_refs - drop refs older than SPOOL_REF_LIFETIME_S (a commit of
 * its own; a prune lost in a crash is simply done again). */
static void prune_refs(spool_t *sp)
{
    uint64_t cutoff = time_now_us() - (uint64_t)SPOOL_REF_LIFETIME_S * 1000000u;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key, val;
    size_t n = 0;
    int rc;

    sp->pruned_ms = time_mono_ms();
    if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0) {
        log_warn("spool: pruning refs: %s", mdb_strerror(rc));
        return;
    }
    lmdb_check(mdb_cursor_open(txn, sp->refs, &cur), "prune_refs: cursor_open");
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && n < SPOOL_REF_PRUNE_MAX;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        uint64_t when = 0;

        if (val.mv_size == SPOOL_REF_VAL_LEN)
            memcpy(&when, val.mv_data, 8);
        if (when < cutoff) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            n++;
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_warn("spool: pruning refs: %s", mdb_strerror(rc));
        mdb_txn_abort(txn);
        return;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        log_warn("spool: pruning refs: commit: %s", mdb_strerror(rc));
    else if (n)
        log_info("spool: forgot %zu submission ref%s older than %d days", n, n == 1 ? "" : "s",
                 SPOOL_REF_LIFETIME_S / 86400);
}

/* writer_wait - with sp->mu held: until a put is queued, or deletes
 * have waited SPOOL_DELETE_DELAY_MS, or the spool is closing. */
static void writer_wait(spool_t *sp)
{
    while (!sp->stop && sp->q_puts == 0) {
        struct timespec until = sp->q_since;

        if (!sp->q_head) {
            pthread_cond_wait(&sp->cond, &sp->mu);
            continue;
        }
        until.tv_nsec += SPOOL_DELETE_DELAY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        if (pthread_cond_timedwait(&sp->cond, &sp->mu, &until) == ETIMEDOUT)
            break;
    }
}

/* writer_main - take all queued ops, commit them at once, post results. */
static void *writer_main(void *arg)
{
    spool_t *sp = arg;

    for (;;) {
        spool_op *ops, *op, *next;
        spool_done *head = NULL, *tail = NULL;
        uint64_t one = 1;

        pthread_mutex_lock(&sp->mu);
        writer_wait(sp);
        ops = sp->q_head;
        sp->q_head = sp->q_tail = NULL;
        sp->q_puts = 0;
        pthread_mutex_unlock(&sp->mu);
        if (!ops)
            break;                          /* stop, and nothing left */

        commit_batch(sp, ops);

        for (op = ops; op; op = next) {
            next = (spool_op *)op->done.next;
            xfree(&op->ref);
            if (op->kind == OP_DEL) {
                xfree(&op);
                continue;
            }
            op->done.next = NULL;
            if (tail)
                tail->next = &op->done;
            else
                head = &op->done;
            tail = &op->done;
        }
        if (head) {
            pthread_mutex_lock(&sp->mu);
            if (sp->d_tail)
                sp->d_tail->next = head;
            else
                sp->d_head = head;
            sp->d_tail = tail;
            pthread_mutex_unlock(&sp->mu);
            if (write(sp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_panic("spool: eventfd write: %s", strerror(errno));
        }
        if (time_mono_ms() - sp->pruned_ms >= SPOOL_REF_PRUNE_MS)
            prune_refs(sp);
    }
    return NULL;
}

spool_t *spool_open(const char *dir, size_t map_size)
{
    spool_t *sp = xcalloc(1, sizeof(*sp));
    int rc;

    sp->env = lmdb_env_open(dir, map_size, 4);
    sp->dbi = lmdb_dbi_open(sp->env, "messages");
    sp->refs = lmdb_dbi_open(sp->env, "refs");
    sp->pruned_ms = time_mono_ms() - SPOOL_REF_PRUNE_MS;     /* first pass soon */
    sp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sp->efd < 0)
        log_fatal("spool: eventfd: %s", strerror(errno));
    pthread_mutex_init(&sp->mu, NULL);
    {
        pthread_condattr_t ca;      /* timed waits on the monotonic clock */

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&sp->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    rc = pthread_create(&sp->writer, NULL, writer_main, sp);
    if (rc != 0)
        log_fatal("spool: cannot start the writer thread: %s", strerror(rc));
    return sp;
}

void spool_close(spool_t **spp)
{
    spool_t *sp = *spp;
    spool_done *d;

    if (!sp)
        return;
    pthread_mutex_lock(&sp->mu);
    sp->stop = true;
    pthread_cond_signal(&sp->cond);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->writer, NULL);
    while ((d = spool_take_done(sp)) != NULL) {
        while (d) {
            spool_done *next = d->next;
            spool_done_free(&d);
            d = next;
        }
    }
    mdb_env_close(sp->env);
    close(sp->efd);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cond);
    xfree(spp);
}

int spool_fd(spool_t *sp)
{
    return sp->efd;
}

/* enqueue - hand one op to the writer. */
static void enqueue(spool_t *sp, spool_op *op)
{
    op->done.next = NULL;
    pthread_mutex_lock(&sp->mu);
    if (sp->q_tail) {
        sp->q_tail->done.next = &op->done;
    } else {
        sp->q_head = op;
        clock_gettime(CLOCK_MONOTONIC, &sp->q_since);
    }
    sp->q_tail = op;
    if (op->kind == OP_PUT)
        sp->q_puts++;
    pthread_cond_signal(&sp->cond);
    pthread_mutex_unlock(&sp->mu);
}

void spool_put(spool_t *sp, const char *qid, uint8_t *data, size_t len, void *cookie)
{
    spool_op *op = xcalloc(1, sizeof(*op));

    op->kind = OP_PUT;
    memcpy(op->done.qid, qid, QID_LEN);
    op->done.data = data;
    op->done.len = len;
    op->done.cookie = cookie;
    enqueue(sp, op);
}

void spool_put_ref(spool_t *sp, const char *qid, uint8_t *data, size_t len, const char *ref,
                   void *cookie)
{
    spool_op *op = xcalloc(1, sizeof(*op));
    size_t n = strlen(ref);

    if (n == 0 || n > SPOOL_REF_MAX)
        log_panic("spool_put_ref: ref of %zu bytes", n);
    op->kind = OP_PUT;
    op->ref = xstrdup(ref);
    memcpy(op->done.qid, qid, QID_LEN);
    op->done.data = data;
    op->done.len = len;
    op->done.cookie = cookie;
    enqueue(sp, op);
}

int spool_ref_lookup(spool_t *sp, const char *ref, char qid[QID_LEN + 1])
{
    MDB_txn *txn;
    MDB_val key = { strlen(ref), (void *)ref }, val;
    int rc;

    if (key.mv_size == 0 || key.mv_size > SPOOL_REF_MAX)
        return -1;
    lmdb_check(mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn), "spool_ref_lookup: txn_begin");
    rc = mdb_get(txn, sp->refs, &key, &val);
    if (rc == 0 && val.mv_size == SPOOL_REF_VAL_LEN) {
        memcpy(qid, (uint8_t *)val.mv_data + 8, QID_LEN);
        qid[QID_LEN] = '\0';
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        log_warn("spool: ref lookup failed: %s", mdb_strerror(rc));
    }
    mdb_txn_abort(txn);
    return rc == 0 && val.mv_size == SPOOL_REF_VAL_LEN ? 0 : -1;
}

void spool_delete(spool_t *sp, const char *qid)
{
    spool_op *op = xcalloc(1, sizeof(*op));

    op->kind = OP_DEL;
    memcpy(op->done.qid, qid, QID_LEN);
    enqueue(sp, op);
}

spool_done *spool_take_done(spool_t *sp)
{
    uint64_t v;
    spool_done *d;

    if (read(sp->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_panic("spool: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&sp->mu);
    d = sp->d_head;
    sp->d_head = sp->d_tail = NULL;
    pthread_mutex_unlock(&sp->mu);
    return d;
}

void spool_done_free(spool_done **dp)
{
    spool_op *op = (spool_op *)*dp;

    if (!op)
        return;
    xfree(&op->done.data);
    xfree(&op);
    *dp = NULL;
}

int spool_get(spool_t *sp, const char *qid, buf_t *out)
{
    MDB_txn *txn;
    MDB_val key = { QID_LEN, (void *)qid }, val;
    int rc;

    buf_reset(out);
    lmdb_check(mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn), "spool_get: txn_begin");
    rc = mdb_get(txn, sp->dbi, &key, &val);
    if (rc == 0)
        buf_append(out, val.mv_data, val.mv_size);
    else if (rc != MDB_NOTFOUND)
        log_warn("%s: spool read failed: %s", qid, mdb_strerror(rc));
    mdb_txn_abort(txn);
    return rc == 0 ? 0 : -1;
}

size_t spool_foreach(spool_t *sp, spool_visit fn, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key, val;
    size_t n = 0;
    int rc;

    lmdb_check(mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn), "spool_foreach: txn_begin");
    lmdb_check(mdb_cursor_open(txn, sp->dbi, &cur), "spool_foreach: cursor_open");
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        char qid[QID_LEN + 1];

        if (key.mv_size != QID_LEN) {
            log_warn("spool: skipping an entry with a bad key (%zu bytes)", key.mv_size);
            continue;
        }
        memcpy(qid, key.mv_data, QID_LEN);
        qid[QID_LEN] = '\0';
        fn(ctx, qid, val.mv_data, val.mv_size);
        n++;
    }
    if (rc != MDB_NOTFOUND)
        log_warn("spool: iteration stopped: %s", mdb_strerror(rc));
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}
