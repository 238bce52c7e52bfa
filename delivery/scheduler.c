/* scheduler.c - delivery's queue manager (see scheduler.h).
 *
 * Life of an envelope here: received in a batch -> stored in one write
 * transaction with the rest of the batch -> commit (fsync) -> OWNED event
 * to its origin -> each recipient scheduled at once -> Maildir job to a
 * worker, or settled here (relay: deferred until the SMTP client exists;
 * error route: failed) -> results recorded in one write transaction per
 * batch -> deferred recipients come back after backoff -> when every
 * recipient is final the envelope moves from "envelopes" to "done".
 *
 * Hold (Postfix's hold queue): an envelope that arrives with hold set, or
 * that `correio queue hold` puts on hold, stays in "envelopes" with its
 * hold flag and is never scheduled: it has no item on the schedule, and
 * an attempt already handed to a worker when it was held finishes and is
 * recorded, but a deferred result is not scheduled again.  Release clears
 * the flag (committed first) and schedules every recipient that is not
 * final and has no attempt under way at once.  So each recipient that is
 * not final and not held is either on the schedule once or under way
 * (sched_job slot or unrecorded result), never both. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "admin.h"
#include "events.h"
#include "log.h"
#include "queue.h"
#include "scheduler.h"
#include "timeutil.h"
#include "workers.h"
#include "xalloc.h"

#define SCHED_BATCH           512          /* envelopes per group commit */
#define SCHED_JOBS_PER_WORKER 8            /* jobs queued ahead per worker */
#define SCHED_PRUNE_EVERY_MS  (60 * 1000)  /* de-duplication pruning period */
#define SCHED_PRUNE_BATCH     1000         /* done entries deleted per prune */
#define SCHED_RETRY_MS        1000         /* after a failed commit */
#define SCHED_LIST_MAX        10000        /* queue-list entries per reply */
#define SCHED_RELAY_TEXT      "SMTP delivery not available in this build"
#define SCHED_NOROUTE_TEXT    "4.3.0 recipient was not routed"
#define SCHED_HOLD_TEXT       "put on hold by the operator"

/* One recipient waiting for its time (or, in the busy list that
 * release builds, one with an attempt under way: due_us unused). */
typedef struct sched_item {
    uint64_t due_us;                 /* wall time */
    char     queue_id[QID_LEN + 1];
    unsigned rcpt;
} sched_item;

/* One attempt a worker has; its slot number is the job's tag. */
typedef struct sched_job {
    char     queue_id[QID_LEN + 1];  /* "" when the slot is free */
    unsigned rcpt;
} sched_job;

struct scheduler {
    stage_t     *st;
    queue_t     *queue;
    events_t    *events;
    results_t   *box;
    workers_t   *workers;
    size_t       max_inflight, inflight;
    sched_job   *jobs;               /* max_inflight slots */
    unsigned    *free_jobs;          /* free slot numbers (a stack) */
    size_t       n_free_jobs;
    sched_item  *heap;               /* min-heap on due_us */
    size_t       n_heap, cap_heap;
    work_result *results;            /* finished attempts not yet recorded */
    size_t       n_results, cap_results;
    int64_t      record_retry_ms;    /* after a failed commit: not before */
    int64_t      accept_after_ms;    /* after a failed store: not before */
    int64_t      next_prune_ms;
    zmq_msg_t    frames[SCHED_BATCH];
    unsigned long long n_received, n_duplicates, n_delivered, n_deferred, n_failed;
};

/* ------------------------------------------------------------ schedule */

static int sched_item_cmp(const sched_item *a, const sched_item *b)
{
    if (a->due_us != b->due_us)
        return a->due_us < b->due_us ? -1 : 1;
    int c = strcmp(a->queue_id, b->queue_id);
    return c ? c : (int)a->rcpt - (int)b->rcpt;
}

/* sched_push - schedule recipient rcpt of queue_id at due_us. */
static void sched_push(scheduler_t *s, const char *queue_id, unsigned rcpt, uint64_t due_us)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? 2 * s->cap_heap : 256;
        s->heap = xrealloc(s->heap, s->cap_heap * sizeof *s->heap);
    }
    sched_item it = {.due_us = due_us, .rcpt = rcpt};
    snprintf(it.queue_id, sizeof it.queue_id, "%s", queue_id);
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (sched_item_cmp(&s->heap[parent], &it) <= 0)
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = it;
}

/* sched_sift_down - move heap[i] down to its place. */
static void sched_sift_down(scheduler_t *s, size_t i)
{
    sched_item it = s->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->n_heap)
            break;
        if (child + 1 < s->n_heap && sched_item_cmp(&s->heap[child + 1], &s->heap[child]) < 0)
            child++;
        if (sched_item_cmp(&it, &s->heap[child]) <= 0)
            break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    s->heap[i] = it;
}

/* sched_pop - remove the earliest item into *out. */
static void sched_pop(scheduler_t *s, sched_item *out)
{
    *out = s->heap[0];
    s->heap[0] = s->heap[--s->n_heap];
    if (s->n_heap)
        sched_sift_down(s, 0);
}

static int sched_qid_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* sched_unschedule - drop every item of the n queue ids in ids (sorted
 * with sched_qid_cmp) from the schedule. */
static void sched_unschedule(scheduler_t *s, const char *const *ids, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n_heap; i++) {
        const char *key = s->heap[i].queue_id;
        if (!bsearch(&key, ids, n, sizeof *ids, sched_qid_cmp))
            s->heap[kept++] = s->heap[i];
    }
    s->n_heap = kept;
    for (size_t i = kept / 2; i-- > 0;)
        sched_sift_down(s, i);
}

/* sched_backoff_us - the wait before attempt number attempts + 1:
 * minimal_backoff_time doubling up to maximal_backoff_time. */
static uint64_t sched_backoff_us(const scheduler_t *s, uint32_t attempts)
{
    long long lo = config_time_ms(s->st->cfg, "minimal_backoff_time");
    long long hi = config_time_ms(s->st->cfg, "maximal_backoff_time");
    long long d = lo;
    for (uint32_t i = 1; i < attempts && d < hi; i++)
        d *= 2;
    if (d > hi)
        d = hi;
    return (uint64_t)d * 1000;
}

/* sched_schedule_rec - put every recipient of r that is not final on the
 * schedule: pending ones at once, deferred ones at their retry time;
 * nothing when r is on hold. */
static void sched_schedule_rec(scheduler_t *s, const queue_rec *r, uint64_t now_us)
{
    if (r->hold)
        return;
    for (size_t i = 0; i < r->n; i++) {
        const queue_rcpt *q = &r->rcpt[i];
        if (queue_rcpt_final(q->state))
            continue;
        uint64_t due = q->state == CORREIO__RCPT_STATE__RCPT_DEFERRED && q->next_us
                       ? q->next_us : now_us;
        sched_push(s, r->queue_id, (unsigned)i, due);
    }
}

typedef struct sched_startup {
    scheduler_t *s;
    size_t       held;
} sched_startup;

static void sched_startup_visit(void *ctx, const queue_rec *r)
{
    sched_startup *st = ctx;
    st->held += r->hold;
    sched_schedule_rec(st->s, r, time_now_us());
}

/* ------------------------------------------------------------ results */

static void sched_add_result(scheduler_t *s, const work_result *r)
{
    if (s->n_results == s->cap_results) {
        s->cap_results = s->cap_results ? 2 * s->cap_results : 64;
        s->results = xrealloc(s->results, s->cap_results * sizeof *s->results);
    }
    s->results[s->n_results++] = *r;
}

/* sched_local_result - a result settled on the main thread. */
static void sched_local_result(scheduler_t *s, const char *queue_id, unsigned rcpt,
                               Correio__RcptState state, const char *relay, const char *text)
{
    work_result r = {.rcpt = rcpt, .state = state, .relay = xstrdup(relay), .text = xstrdup(text)};
    snprintf(r.queue_id, sizeof r.queue_id, "%s", queue_id);
    sched_add_result(s, &r);
}

static int sched_result_cmp(const void *a, const void *b)
{
    const work_result *x = a, *y = b;
    int c = strcmp(x->queue_id, y->queue_id);
    return c ? c : (int)x->rcpt - (int)y->rcpt;
}

/* What to do once the commit has succeeded. */
typedef struct sched_after {
    char      **lines;         /* log lines */
    size_t      n_lines, cap_lines;
    sched_item *retry;         /* deferred recipients to schedule */
    size_t      n_retry, cap_retry;
} sched_after;

static void sched_after_log(sched_after *a, char *line)
{
    if (a->n_lines == a->cap_lines) {
        a->cap_lines = a->cap_lines ? 2 * a->cap_lines : 32;
        a->lines = xrealloc(a->lines, a->cap_lines * sizeof *a->lines);
    }
    a->lines[a->n_lines++] = line;
}

static void sched_after_retry(sched_after *a, const char *queue_id, unsigned rcpt, uint64_t due)
{
    if (a->n_retry == a->cap_retry) {
        a->cap_retry = a->cap_retry ? 2 * a->cap_retry : 32;
        a->retry = xrealloc(a->retry, a->cap_retry * sizeof *a->retry);
    }
    sched_item *it = &a->retry[a->n_retry++];
    it->due_us = due;
    it->rcpt = rcpt;
    snprintf(it->queue_id, sizeof it->queue_id, "%s", queue_id);
}

static void sched_after_free(sched_after *a)
{
    for (size_t i = 0; i < a->n_lines; i++)
        xfree(&a->lines[i]);
    xfree(&a->lines);
    xfree(&a->retry);
}

/* sched_apply - one result onto its record; the log line is made now and
 * written only after the commit. */
static void sched_apply(scheduler_t *s, queue_rec *rec, const work_result *res,
                        uint64_t now_us, sched_after *after)
{
    if (res->rcpt >= rec->n)
        log_panic("sched_apply: %s: recipient %u of %zu", rec->queue_id, res->rcpt, rec->n);
    queue_rcpt *q = &rec->rcpt[res->rcpt];
    const char *status = "sent";
    q->attempts++;
    q->state = res->state;
    q->next_us = 0;
    queue_rcpt_set_status(q, res->text);
    switch (res->state) {
    case CORREIO__RCPT_STATE__RCPT_DELIVERED:
        status = strcmp(res->relay, "discard") == 0 ? "discarded" : "sent";
        break;
    case CORREIO__RCPT_STATE__RCPT_FAILED:
        status = "failed";
        break;
    default:
        q->state = CORREIO__RCPT_STATE__RCPT_DEFERRED;
        q->next_us = now_us + sched_backoff_us(s, q->attempts);
        if (!rec->hold)             /* held meanwhile: release schedules it */
            sched_after_retry(after, rec->queue_id, res->rcpt, q->next_us);
        status = "deferred";
        break;
    }
    const Envelope *env = rec->env;
    double delay = env->received_at && env->received_at < now_us
                   ? (double)(now_us - env->received_at) / 1e6 : 0.0;
    char to[300], text[300];
    const char *addr = env->rcpt[res->rcpt]->address;
    log_printable(to, sizeof to, addr, strlen(addr));
    log_printable(text, sizeof text, res->text, strlen(res->text));
    sched_after_log(after, xasprintf("%s: to=<%s>, relay=%s, delay=%.2f, status=%s (%s)",
                                     rec->queue_id, to, res->relay, delay, status, text));
}

/* sched_record - write every waiting result in one transaction. */
static void sched_record(scheduler_t *s)
{
    if (s->n_results == 0 || time_mono_ms() < s->record_retry_ms)
        return;
    qsort(s->results, s->n_results, sizeof *s->results, sched_result_cmp);
    queue_txn *t = queue_begin(s->queue, true);
    if (!t) {
        s->record_retry_ms = time_mono_ms() + SCHED_RETRY_MS;
        return;
    }
    uint64_t now_us = time_now_us();
    sched_after after = {0};
    bool ok = true;
    unsigned long long delivered = 0, deferred = 0, failed = 0;
    for (size_t i = 0; ok && i < s->n_results;) {
        const char *qid = s->results[i].queue_id;
        size_t j = i;
        queue_rec *rec = queue_get(t, qid);
        if (!rec) {
            log_warn("%s: results for an envelope not in the queue, ignored", qid);
            while (j < s->n_results && strcmp(s->results[j].queue_id, qid) == 0)
                j++;
            i = j;
            continue;
        }
        for (; j < s->n_results && strcmp(s->results[j].queue_id, qid) == 0; j++) {
            sched_apply(s, rec, &s->results[j], now_us, &after);
            delivered += s->results[j].state == CORREIO__RCPT_STATE__RCPT_DELIVERED;
            failed += s->results[j].state == CORREIO__RCPT_STATE__RCPT_FAILED;
            deferred += s->results[j].state == CORREIO__RCPT_STATE__RCPT_DEFERRED;
        }
        bool all_final = true;
        for (size_t k = 0; k < rec->n; k++)
            all_final = all_final && queue_rcpt_final(rec->rcpt[k].state);
        if (all_final) {
            ok = queue_finish(t, qid, now_us) == 0;
            sched_after_log(&after, xasprintf("%s: removed", qid));
        } else {
            ok = queue_put(t, rec) == 0;
        }
        queue_rec_free(&rec);
        i = j;
    }
    if (!ok || queue_commit(&t) != 0) {
        /* Nothing recorded: keep the results and try again shortly. */
        queue_abort(&t);
        sched_after_free(&after);
        s->record_retry_ms = time_mono_ms() + SCHED_RETRY_MS;
        return;
    }
    for (size_t i = 0; i < after.n_lines; i++)
        log_info("%s", after.lines[i]);
    for (size_t i = 0; i < after.n_retry; i++)
        sched_push(s, after.retry[i].queue_id, after.retry[i].rcpt, after.retry[i].due_us);
    for (size_t i = 0; i < s->n_results; i++)
        work_result_clear(&s->results[i]);
    s->n_results = 0;
    s->n_delivered += delivered;
    s->n_deferred += deferred;
    s->n_failed += failed;
    sched_after_free(&after);
}

/* sched_collect - take the workers' results and free their job slots. */
static void sched_collect(scheduler_t *s)
{
    work_result *res;
    size_t n = results_collect(s->box, &res);
    for (size_t i = 0; i < n; i++) {
        sched_job *job = res[i].tag < s->max_inflight ? &s->jobs[res[i].tag] : NULL;
        if (!job || strcmp(job->queue_id, res[i].queue_id) != 0 || job->rcpt != res[i].rcpt)
            log_panic("sched_collect: result for %s recipient %u has tag %u of another job",
                      res[i].queue_id, res[i].rcpt, res[i].tag);
        job->queue_id[0] = '\0';
        s->free_jobs[s->n_free_jobs++] = res[i].tag;
        sched_add_result(s, &res[i]);
    }
    if (n > s->inflight)
        log_panic("sched_collect: %zu results for %zu jobs", n, s->inflight);
    s->inflight -= n;
    xfree(&res);
}

/* ------------------------------------------------------------ dispatch */

/* sched_start_rcpt - start one recipient's attempt: a worker job for a
 * Maildir, or a result settled here for the other routes.  *msg is the
 * envelope shared by the jobs of this record (made on first need). */
static void sched_start_rcpt(scheduler_t *s, queue_rec *rec, work_msg **msg, unsigned i)
{
    const Envelope *env = *msg ? work_msg_envelope(*msg) : rec->env;
    const Recipient *r = env->rcpt[i];
    switch (r->route) {
    case CORREIO__ROUTE_KIND__ROUTE_MAILDIR:
        if (!*msg) {
            *msg = work_msg_new(rec->env);   /* the record's envelope moves in */
            rec->env = NULL;
        }
        if (s->n_free_jobs == 0)
            log_panic("sched_start_rcpt: no free job slot with %zu of %zu in flight",
                      s->inflight, s->max_inflight);
        unsigned tag = s->free_jobs[--s->n_free_jobs];
        snprintf(s->jobs[tag].queue_id, sizeof s->jobs[tag].queue_id, "%s", rec->queue_id);
        s->jobs[tag].rcpt = i;
        maildir_job_opts opts = {.mail_root = config_str(s->st->cfg, "mail_root"),
                                 .folder = r->folder};
        workers_submit(s->workers, *msg, i, &opts, tag);
        s->inflight++;
        break;
    case CORREIO__ROUTE_KIND__ROUTE_RELAY:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_DEFERRED,
                           "none", SCHED_RELAY_TEXT);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_ERROR:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_FAILED, "none",
                           r->status_text[0] ? r->status_text : "5.1.1 undeliverable");
        break;
    case CORREIO__ROUTE_KIND__ROUTE_DISCARD:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_DELIVERED,
                           "discard", "discarded by policy");
        break;
    default:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_DEFERRED,
                           "none", SCHED_NOROUTE_TEXT);
        break;
    }
}

/* sched_dispatch - start everything that is due, as far as the workers
 * have room, reading the records in one read transaction. */
static void sched_dispatch(scheduler_t *s)
{
    uint64_t now_us = time_now_us();
    queue_txn *t = NULL;
    queue_rec *rec = NULL;
    work_msg *msg = NULL;

    while (s->n_heap && s->heap[0].due_us <= now_us && s->inflight < s->max_inflight) {
        sched_item it;
        sched_pop(s, &it);
        if (!t && !(t = queue_begin(s->queue, false))) {
            sched_push(s, it.queue_id, it.rcpt, now_us + SCHED_RETRY_MS * 1000ULL);
            break;
        }
        if (!rec || strcmp(rec->queue_id, it.queue_id) != 0) {
            work_msg_unref(&msg);
            queue_rec_free(&rec);
            rec = queue_get(t, it.queue_id);
        }
        if (!rec || rec->hold || it.rcpt >= rec->n
            || queue_rcpt_final(rec->rcpt[it.rcpt].state))
            continue;               /* gone, held or settled meanwhile */
        sched_start_rcpt(s, rec, &msg, it.rcpt);
    }
    work_msg_unref(&msg);
    queue_rec_free(&rec);
    queue_abort(&t);
}

/* ------------------------------------------------------------ input */

bool scheduler_accepting(const scheduler_t *s)
{
    return time_mono_ms() >= s->accept_after_ms;
}

/* sched_log_queued - Postfix qmgr's line for a new envelope. */
static void sched_log_queued(const Envelope *env)
{
    char from[300];
    log_printable(from, sizeof from, env->reverse_path, strlen(env->reverse_path));
    log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue %s)", env->queue_id, from,
             env->body.data ? env->body.len : 0, env->n_rcpt, env->hold ? "hold" : "active");
}

void scheduler_receive(scheduler_t *s, void *pull)
{
    Envelope *envs[SCHED_BATCH];
    bool dup[SCHED_BATCH];
    size_t n = 0;

    /* Drain what is there, up to one batch. */
    while (n < SCHED_BATCH) {
        zmq_msg_t *m = &s->frames[n];
        if (zmq_msg_init(m) != 0)
            log_panic("scheduler_receive: zmq_msg_init: %s", zmq_strerror(errno));
        if (zmq_msg_recv(m, pull, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(m);
            if (e != EAGAIN && e != EINTR)
                log_warn("receive from router: %s", zmq_strerror(e));
            break;
        }
        if (zmq_msg_more(m)) {
            log_warn("dropping a multi-part frame on delivery input");
            while (zmq_msg_more(m) && zmq_msg_recv(m, pull, ZMQ_DONTWAIT) >= 0)
                ;
            zmq_msg_close(m);
            continue;
        }
        envs[n] = wire_unpack_envelope(zmq_msg_data(m), zmq_msg_size(m), "delivery input");
        if (!envs[n]) {
            zmq_msg_close(m);
            continue;
        }
        n++;
    }
    if (n == 0)
        return;

    /* One transaction, one fsync for the whole batch. */
    bool ok = false;
    queue_txn *t = queue_begin(s->queue, true);
    if (t) {
        ok = true;
        for (size_t i = 0; ok && i < n; i++) {
            int known = queue_known(t, envs[i]->queue_id);
            dup[i] = known == 1;
            if (known < 0)
                ok = false;
            else if (!known)
                ok = queue_put_new(t, zmq_msg_data(&s->frames[i]), zmq_msg_size(&s->frames[i]),
                                   envs[i]) == 0;
        }
        if (ok)
            ok = queue_commit(&t) == 0;
        else
            queue_abort(&t);
    }
    if (ok)
        log_debug("batch: %zu envelopes in one commit", n);
    if (!ok) {
        /* Nothing is ours: no ack, the ingress sends them again. */
        log_warn("could not queue %zu envelopes; the ingress will send them again", n);
        s->accept_after_ms = time_mono_ms() + SCHED_RETRY_MS;
    }

    uint64_t now_us = time_now_us();
    for (size_t i = 0; i < n; i++) {
        Envelope *env = envs[i];
        if (ok) {
            events_send(s->events, env->origin, env->queue_id,
                        CORREIO__EVENT_KIND__EVENT_OWNED, "");
            if (dup[i]) {
                s->n_duplicates++;
                log_info("%s: duplicate, acked again", env->queue_id);
            } else {
                s->n_received++;
                sched_log_queued(env);
                for (size_t r = 0; r < env->n_rcpt && !env->hold; r++)
                    if (!queue_rcpt_final(env->rcpt[r]->state))
                        sched_push(s, env->queue_id, (unsigned)r, now_us);
            }
        }
        wire_free_envelope(&envs[i]);
        if (zmq_msg_close(&s->frames[i]) != 0)
            log_warn("zmq_msg_close: %s", zmq_strerror(errno));
    }
}

/* ------------------------------------------------------------ loop */

int scheduler_results_fd(const scheduler_t *s)
{
    return results_fd(s->box);
}

void scheduler_run(scheduler_t *s)
{
    sched_collect(s);
    sched_dispatch(s);
    sched_record(s);

    int64_t now = time_mono_ms();
    if (now >= s->next_prune_ms) {
        s->next_prune_ms = now + SCHED_PRUNE_EVERY_MS;
        uint64_t keep_us = (uint64_t)config_time_ms(s->st->cfg, "duplicate_retention_time") * 1000;
        uint64_t now_us = time_now_us();
        if (now_us > keep_us) {
            size_t n = queue_prune_done(s->queue, now_us - keep_us, SCHED_PRUNE_BATCH);
            if (n)
                log_debug("pruned %zu de-duplication entries", n);
        }
    }
}

long scheduler_timeout_ms(const scheduler_t *s)
{
    int64_t now = time_mono_ms();
    long t = (long)(s->next_prune_ms - now);
    if (s->n_results && s->record_retry_ms - now < t)
        t = (long)(s->record_retry_ms - now);
    if (s->accept_after_ms > now && s->accept_after_ms - now < t)
        t = (long)(s->accept_after_ms - now);
    if (s->n_heap && s->inflight < s->max_inflight) {
        uint64_t now_us = time_now_us();
        long due = s->heap[0].due_us <= now_us ? 0
                   : (long)((s->heap[0].due_us - now_us + 999) / 1000);
        if (due < t)
            t = due;
    }
    return t < 0 ? 0 : t;
}

/* ------------------------------------------------------------ admin */

/* sched_rec_state - the state a listing shows: "hold", "active" (some
 * recipient not tried yet) or "deferred". */
static const char *sched_rec_state(const queue_rec *r)
{
    if (r->hold)
        return "hold";
    for (size_t i = 0; i < r->n; i++)
        if (r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_PENDING)
            return "active";
    return "deferred";
}

typedef struct sched_list {
    AdminReply *reply;
    size_t      n;
} sched_list;

/* sched_list_visit - one QueueEntry for one record. */
static void sched_list_visit(void *ctx, const queue_rec *r)
{
    sched_list *l = ctx;
    const Envelope *env = r->env;
    const char *state = sched_rec_state(r);
    uint64_t next = 0;
    const char *reason = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const queue_rcpt *q = &r->rcpt[i];
        if (q->state == CORREIO__RCPT_STATE__RCPT_DEFERRED) {
            if (!next || (q->next_us && q->next_us < next))
                next = q->next_us;
            if (!reason)
                reason = q->status;
        }
    }
    QueueEntry *e = admin_reply_add_entry(l->reply, r->queue_id, state, env->reverse_path);
    e->arrival = env->received_at;
    e->size = env->body.data ? env->body.len : 0;
    for (size_t i = 0; i < r->n; i++)
        admin_entry_add_rcpt(e, env->rcpt[i]->address, r->rcpt[i].state, r->rcpt[i].status);
    if (r->hold) {                   /* no attempt until released */
        admin_entry_set_reason(e, r->hold_reason[0] ? r->hold_reason : "on hold");
    } else {
        e->next_attempt = next;
        if (reason && strcmp(state, "deferred") == 0)
            admin_entry_set_reason(e, reason);
    }
    l->n++;
}

/* A list of queue ids (owned copies). */
typedef struct sched_ids {
    char  **id;
    size_t  n, cap;
} sched_ids;

static void sched_ids_add(sched_ids *l, const char *id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->id = xrealloc(l->id, l->cap * sizeof *l->id);
    }
    l->id[l->n++] = xstrdup(id);
}

static void sched_ids_free(sched_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        xfree(&l->id[i]);
    xfree(&l->id);
    l->n = l->cap = 0;
}

typedef struct sched_hold_scan {
    sched_ids *ids;
    bool       hold;             /* collect the records whose hold differs */
} sched_hold_scan;

static void sched_hold_visit(void *ctx, const queue_rec *r)
{
    sched_hold_scan *h = ctx;
    if (r->hold != h->hold)
        sched_ids_add(h->ids, r->queue_id);
}

static int sched_busy_cmp(const void *a, const void *b)
{
    const sched_item *x = a, *y = b;
    int c = strcmp(x->queue_id, y->queue_id);
    return c ? c : (x->rcpt > y->rcpt) - (x->rcpt < y->rcpt);
}

/* sched_busy - the recipients with an attempt under way (a worker has
 * it, or its result is not recorded yet), sorted for sched_busy_cmp;
 * *n is how many.  The caller frees the array. */
static sched_item *sched_busy(const scheduler_t *s, size_t *n)
{
    sched_item *b = xcalloc(s->max_inflight + s->n_results + 1, sizeof *b);
    *n = 0;
    for (size_t i = 0; i < s->max_inflight; i++) {
        if (!s->jobs[i].queue_id[0])
            continue;
        memcpy(b[*n].queue_id, s->jobs[i].queue_id, sizeof b[*n].queue_id);
        b[(*n)++].rcpt = s->jobs[i].rcpt;
    }
    for (size_t i = 0; i < s->n_results; i++) {
        memcpy(b[*n].queue_id, s->results[i].queue_id, sizeof b[*n].queue_id);
        b[(*n)++].rcpt = s->results[i].rcpt;
    }
    qsort(b, *n, sizeof *b, sched_busy_cmp);
    return b;
}

/* sched_released - schedule at once what release made deliverable: every
 * recipient of r that is not final and has no attempt under way (one
 * that has is scheduled, if need be, when its result is recorded). */
static void sched_released(scheduler_t *s, const queue_rec *r, const sched_item *busy,
                           size_t n_busy, uint64_t now_us)
{
    for (size_t i = 0; i < r->n; i++) {
        sched_item key = {.rcpt = (unsigned)i};
        snprintf(key.queue_id, sizeof key.queue_id, "%s", r->queue_id);
        if (!queue_rcpt_final(r->rcpt[i].state)
            && !bsearch(&key, busy, n_busy, sizeof *busy, sched_busy_cmp))
            sched_push(s, r->queue_id, (unsigned)i, now_us);
    }
}

/* sched_admin_hold - "queue-hold" (hold true) and "queue-release" with
 * args: queue ids, or "ALL".  Every change is one write transaction,
 * committed before the schedule changes and before the reply: the reply
 * lists each message whose state changed (a message already in the
 * wanted state is left alone and not listed); ids not in the queue make
 * status 1 and are named in the text, the others are still done. */
static void sched_admin_hold(scheduler_t *s, const AdminRequest *req, AdminReply *reply,
                             bool hold)
{
    const char *verb = hold ? "queue-hold" : "queue-release";
    sched_ids want = {0}, missing = {0};
    bool all = false;

    if (req->n_args == 0) {
        admin_reply_text(reply, 1, "%s needs queue ids or ALL", verb);
        return;
    }
    for (size_t i = 0; i < req->n_args; i++)
        all = all || strcmp(req->args[i], "ALL") == 0;
    if (all) {
        sched_hold_scan h = {.ids = &want, .hold = hold};
        if (queue_scan(s->queue, sched_hold_visit, &h, (size_t)-1) < 0) {
            sched_ids_free(&want);
            admin_reply_text(reply, 1, "cannot read the queue");
            return;
        }
    } else {
        for (size_t i = 0; i < req->n_args; i++)
            sched_ids_add(&want, req->args[i]);
    }

    queue_txn *t = queue_begin(s->queue, true);
    if (!t) {
        sched_ids_free(&want);
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        return;
    }
    queue_rec **changed = xcalloc(want.n + 1, sizeof *changed);
    size_t n_changed = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < want.n; i++) {
        const char *id = want.id[i];
        queue_rec *rec = qid_valid(id, strlen(id)) ? queue_get(t, id) : NULL;
        if (!rec) {
            sched_ids_add(&missing, id);
            continue;
        }
        if (rec->hold == hold) {
            queue_rec_free(&rec);
            continue;
        }
        queue_rec_set_hold(rec, hold, SCHED_HOLD_TEXT);
        ok = queue_put(t, rec) == 0;
        changed[n_changed++] = rec;
    }
    if (!ok || queue_commit(&t) != 0) {
        queue_abort(&t);
        for (size_t i = 0; i < n_changed; i++)
            queue_rec_free(&changed[i]);
        xfree(&changed);
        sched_ids_free(&want);
        sched_ids_free(&missing);
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        return;
    }

    /* Committed: now the schedule follows. */
    if (hold) {
        const char **ids = xcalloc(n_changed + 1, sizeof *ids);
        for (size_t i = 0; i < n_changed; i++)
            ids[i] = changed[i]->queue_id;
        qsort(ids, n_changed, sizeof *ids, sched_qid_cmp);
        sched_unschedule(s, ids, n_changed);
        xfree(&ids);
    } else {
        size_t n_busy;
        sched_item *busy = sched_busy(s, &n_busy);
        uint64_t now_us = time_now_us();
        for (size_t i = 0; i < n_changed; i++)
            sched_released(s, changed[i], busy, n_busy, now_us);
        xfree(&busy);
    }
    for (size_t i = 0; i < n_changed; i++) {
        const queue_rec *r = changed[i];
        log_info("%s: %s", r->queue_id, hold ? "placed on hold" : "released from hold");
        admin_reply_add_entry(reply, r->queue_id, sched_rec_state(r), r->env->reverse_path);
        queue_rec_free(&changed[i]);
    }
    xfree(&changed);

    if (missing.n) {
        char *text = xstrdup("not in the delivery queue:");
        for (size_t i = 0; i < missing.n; i++) {
            char id[64];
            char *more = xasprintf("%s %s", text,
                                   log_printable(id, sizeof id, missing.id[i],
                                                 strlen(missing.id[i])));
            xfree(&text);
            text = more;
        }
        admin_reply_text(reply, 1, "%s", text);
        xfree(&text);
    } else {
        admin_reply_text(reply, 0, "%s: %zu message%s", hold ? "placed on hold"
                         : "released from hold", n_changed, n_changed == 1 ? "" : "s");
    }
    sched_ids_free(&want);
    sched_ids_free(&missing);
}

void scheduler_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    scheduler_t *s = ctx;
    if (strcmp(req->command, "queue-list") == 0) {
        sched_list l = {.reply = reply};
        long n = queue_scan(s->queue, sched_list_visit, &l, SCHED_LIST_MAX);
        if (n < 0)
            admin_reply_text(reply, 1, "cannot read the queue");
        else
            admin_reply_text(reply, 0, "%ld envelope%s%s", n, n == 1 ? "" : "s",
                             n == SCHED_LIST_MAX ? " (list truncated)" : "");
    } else if (strcmp(req->command, "queue-hold") == 0) {
        sched_admin_hold(s, req, reply, true);
    } else if (strcmp(req->command, "queue-release") == 0) {
        sched_admin_hold(s, req, reply, false);
    } else if (strcmp(req->command, "stats") == 0) {
        admin_reply_text(reply, 0,
                         "received=%llu duplicates=%llu delivered=%llu deferred=%llu "
                         "failed=%llu scheduled=%zu inflight=%zu",
                         s->n_received, s->n_duplicates, s->n_delivered, s->n_deferred,
                         s->n_failed, s->n_heap, s->inflight);
    } else {
        admin_reply_text(reply, 2, "unknown command");
    }
}

/* ------------------------------------------------------------ life */

scheduler_t *scheduler_new(stage_t *st)
{
    scheduler_t *s = xcalloc(1, sizeof *s);
    s->st = st;
    char *dir = xasprintf("%s/queue", config_str(st->cfg, "data_directory"));
    s->queue = queue_open(dir, (size_t)config_size(st->cfg, "queue_map_size"));
    xfree(&dir);
    unsigned nworkers = (unsigned)config_int(st->cfg, "delivery_workers");
    s->box = results_new();
    s->workers = workers_start(nworkers, s->box);
    s->max_inflight = (size_t)nworkers * SCHED_JOBS_PER_WORKER;
    s->jobs = xcalloc(s->max_inflight, sizeof *s->jobs);
    s->free_jobs = xcalloc(s->max_inflight, sizeof *s->free_jobs);
    for (size_t i = s->max_inflight; i-- > 0;)
        s->free_jobs[s->n_free_jobs++] = (unsigned)i;
    s->events = events_new(st->zctx, (int)config_int(st->cfg, "pipeline_hwm"),
                           "delivery", st->hostname);
    s->next_prune_ms = time_mono_ms();
    sched_startup start = {.s = s};
    long n = queue_scan(s->queue, sched_startup_visit, &start, (size_t)-1);
    if (n < 0)
        log_fatal("cannot read the delivery queue in %s/queue", config_str(st->cfg, "data_directory"));
    log_info("queue: %ld envelopes (%zu on hold), %zu recipients scheduled", n, start.held,
             s->n_heap);
    return s;
}

void scheduler_free(scheduler_t **sp)
{
    scheduler_t *s = *sp;
    if (!s)
        return;
    workers_stop(s->workers);
    sched_collect(s);
    s->record_retry_ms = 0;
    sched_record(s);                 /* what finished is recorded, not redone */
    for (size_t i = 0; i < s->n_results; i++)
        work_result_clear(&s->results[i]);
    xfree(&s->results);
    workers_free(&s->workers);
    results_free(&s->box);
    events_free(&s->events);
    queue_close(&s->queue);
    xfree(&s->heap);
    xfree(&s->jobs);
    xfree(&s->free_jobs);
    xfree(sp);
}
