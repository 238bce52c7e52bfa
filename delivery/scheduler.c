/* scheduler.c - delivery's queue manager (see scheduler.h).
 *
 * Life of an envelope here: received in a batch -> stored in one write
 * transaction with the rest of the batch -> commit (fsync) -> OWNED event
 * to its origin -> each recipient scheduled at once -> a Maildir job to a
 * worker, an SMTP/LMTP job to the outbound engine (the recipients of the
 * envelope that share a next hop travel together), or settled here
 * (error and discard routes) -> results recorded in one write transaction
 * per batch -> deferred recipients come back after backoff, until
 * maximal_queue_lifetime fails them -> notices (bounces, delay warnings,
 * success reports) go to the sender through an ingress (notices.c) ->
 * when every recipient is final and no notice is due, the envelope moves
 * from "envelopes" to "done".
 *
 * Hold (Postfix's hold queue): an envelope that arrives with hold set, or
 * that `correio queue hold` puts on hold, stays in "envelopes" with its
 * hold flag and is never scheduled: it has no item on the schedule, and
 * an attempt already under way when it was held finishes and is
 * recorded, but a deferred result is not scheduled again.  Release clears
 * the flag (committed first) and schedules every recipient that is not
 * final and has no attempt under way at once.  So each recipient that is
 * not final and not held is either on the schedule once or under way
 * (a job slot or an unrecorded result), never both.
 *
 * Quarantine (quarantine.c): a recipient the router marked
 * SPAM_ACTION_QUARANTINE becomes RCPT_QUARANTINED in the very commit that
 * takes the envelope, so it is never on the schedule, before or after a
 * restart, until the operator releases it (then it is pending and
 * scheduled like a released hold) or deletes it, or its
 * spam_quarantine_lifetime runs out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>
#include "admin.h"
#include "log.h"
#include "metrics.h"
#include "maildir.h"
#include "queue_metrics.h"
#include "quota.h"
#include "scheduler_int.h"
#include "status_code.h"
#include "tap.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define SCHED_JOBS_PER_WORKER 8            /* Maildir jobs queued ahead per worker */
#define SCHED_JOBS_PER_CONN   10           /* outbound jobs per allowed connection */
#define SCHED_PRUNE_EVERY_MS  (60 * 1000)  /* de-duplication pruning period */
#define SCHED_PRUNE_BATCH     1000         /* done entries deleted per prune */
#define SCHED_RETRY_MS        1000         /* after a failed commit */
#define SCHED_NOROUTE_TEXT    "4.3.0 recipient was not routed"

/* ------------------------------------------------------------ schedule */

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
        if (!queue_rcpt_active(q->state))
            continue;
        uint64_t due = q->state == CORREIO__RCPT_STATE__RCPT_DEFERRED && q->next_us
                       ? q->next_us : now_us;
        sched_heap_push(&s->heap, r->queue_id, (unsigned)i, due);
    }
}

void sched_schedule_now(scheduler_t *s, const queue_rec *r, const sched_item *busy,
                        size_t n_busy, uint64_t now_us)
{
    if (r->hold)
        return;
    for (size_t i = 0; i < r->n; i++) {
        sched_item key = {.rcpt = (unsigned)i};
        snprintf(key.queue_id, sizeof key.queue_id, "%s", r->queue_id);
        if (queue_rcpt_active(r->rcpt[i].state)
            && !bsearch(&key, busy, n_busy, sizeof *busy, sched_item_id_cmp))
            sched_heap_push(&s->heap, r->queue_id, (unsigned)i, now_us);
    }
}

sched_item *sched_busy(const scheduler_t *s, size_t *n)
{
    size_t cap = s->n_results + 1;
    for (size_t i = 0; i < s->n_jobs; i++)
        cap += s->jobs[i].queue_id[0] ? s->jobs[i].n : 0;
    sched_item *b = xcalloc(cap, sizeof *b);
    *n = 0;
    for (size_t i = 0; i < s->n_jobs; i++) {
        const sched_job *job = &s->jobs[i];
        for (size_t j = 0; job->queue_id[0] && j < job->n; j++) {
            memcpy(b[*n].queue_id, job->queue_id, sizeof b[*n].queue_id);
            b[(*n)++].rcpt = job->rcpt[j];
        }
    }
    for (size_t i = 0; i < s->n_results; i++) {
        memcpy(b[*n].queue_id, s->results[i].queue_id, sizeof b[*n].queue_id);
        b[(*n)++].rcpt = s->results[i].rcpt;
    }
    qsort(b, *n, sizeof *b, sched_item_id_cmp);
    return b;
}

const char *sched_rec_state(const queue_rec *r)
{
    bool deferred = false, held = false;
    if (r->hold)
        return "hold";
    for (size_t i = 0; i < r->n; i++) {
        if (r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_PENDING)
            return "active";
        deferred = deferred || r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_DEFERRED;
        held = held || r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_QUARANTINED;
    }
    return deferred ? "deferred"
           : held ? "quarantine"                /* only the operator moves it */
           : "active";                          /* all final: its notices are on their way */
}

typedef struct sched_startup {
    scheduler_t *s;
    size_t       held, notices;
} sched_startup;

static void sched_startup_visit(void *ctx, const queue_rec *r)
{
    sched_startup *st = ctx;
    st->held += r->hold;
    uint64_t now_us = time_now_us();
    sched_schedule_rec(st->s, r, now_us);
    quarantine_note_rec(st->s, r);
    /* A notice that was due when the process stopped is sent now. */
    if (notices_due_any(st->s->notices, r, now_us)) {
        notices_want(st->s->notices, r->queue_id);
        st->notices++;
    }
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
    work_result r = {.rcpt = rcpt, .state = state, .relay = xstrdup(relay),
                     .text = xstrdup(text)};
    snprintf(r.queue_id, sizeof r.queue_id, "%s", queue_id);
    sched_add_result(s, &r);
}

static int sched_result_cmp(const void *a, const void *b)
{
    const work_result *x = a, *y = b;
    int c = strcmp(x->queue_id, y->queue_id);
    return c ? c : (x->rcpt > y->rcpt) - (x->rcpt < y->rcpt);
}

/* What to do once the commit has succeeded. */
typedef struct sched_after {
    char      **lines;         /* log lines */
    size_t      n_lines, cap_lines;
    sched_item *retry;         /* recipients to schedule */
    size_t      n_retry, cap_retry;
    char      **notices;       /* queue ids with notices due */
    size_t      n_notices, cap_notices;
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

static void sched_after_notice(sched_after *a, const char *queue_id)
{
    if (a->n_notices == a->cap_notices) {
        a->cap_notices = a->cap_notices ? 2 * a->cap_notices : 16;
        a->notices = xrealloc(a->notices, a->cap_notices * sizeof *a->notices);
    }
    a->notices[a->n_notices++] = xstrdup(queue_id);
}

static void sched_after_free(sched_after *a)
{
    for (size_t i = 0; i < a->n_lines; i++)
        xfree(&a->lines[i]);
    xfree(&a->lines);
    xfree(&a->retry);
    for (size_t i = 0; i < a->n_notices; i++)
        xfree(&a->notices[i]);
    xfree(&a->notices);
}

/* sched_to_local - best_mx_transport = local: this host is the best MX
 * for the recipient, so it becomes a local Maildir recipient
 * ("domain/local", lower-cased).  false when the address cannot be a
 * safe mailbox name. */
static bool sched_to_local(queue_rcpt *q, const char *address)
{
    const char *at = strrchr(address, '@');
    if (!at)
        return false;
    char *box = xasprintf("%s/%.*s", at + 1, (int)(at - address), address);
    for (char *p = box; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    bool ok = maildir_mailbox_safe(box);
    if (ok) {
        q->route = CORREIO__ROUTE_KIND__ROUTE_MAILDIR;
        queue_rcpt_set_str(&q->mailbox, box);
    }
    xfree(&box);
    return ok;
}

/* sched_expired - has env waited in the queue longer than its lifetime? */
static bool sched_expired(const scheduler_t *s, const Envelope *env, uint64_t now_us)
{
    return env->received_at
           && now_us >= env->received_at + queue_lifetime_us(s->st->cfg, env);
}

/* sched_leading_status - "5.7.1 text" -> "5.7.1" into out; nothing when
 * text does not start with an enhanced status code (RFC 3463). */
static void sched_leading_status(const char *text, char *out, size_t size)
{
    size_t n = status_code_len(text);

    if (n > 0 && text[n] == ' ' && (text[0] == '2' || text[0] == '4' || text[0] == '5'))
        snprintf(out, size, "%.*s", (int)n, text);
}

/* sched_apply - one result onto its record; the log line is made now and
 * written only after the commit. */
static void sched_apply(scheduler_t *s, queue_rec *rec, const work_result *res,
                        uint64_t now_us, sched_after *after)
{
    if (res->rcpt >= rec->n)
        log_panic("sched_apply: %s: recipient %u of %zu", rec->queue_id, res->rcpt, rec->n);
    queue_rcpt *q = &rec->rcpt[res->rcpt];
    const Envelope *env = rec->env;
    const char *addr = env->rcpt[res->rcpt]->address;
    const char *status = "sent";
    const char *text = res->text ? res->text : "";

    q->attempts++;
    q->state = res->state;
    q->next_us = 0;
    q->last_attempt_us = now_us;
    queue_rcpt_set_status(q, text);
    queue_rcpt_set_str(&q->remote_mta, res->remote_mta);
    queue_rcpt_set_str(&q->diagnostic, res->diagnostic);
    snprintf(q->dsn_status, sizeof q->dsn_status, "%s", res->dsn_status);
    if (!q->dsn_status[0])
        sched_leading_status(text, q->dsn_status, sizeof q->dsn_status);
    if (res->loops_to_local) {
        if (sched_to_local(q, addr)) {
            q->state = CORREIO__RCPT_STATE__RCPT_PENDING;
            if (!rec->hold)
                sched_after_retry(after, rec->queue_id, res->rcpt, now_us);
            status = "local";
        } else {
            q->state = CORREIO__RCPT_STATE__RCPT_FAILED;
            snprintf(q->dsn_status, sizeof q->dsn_status, "5.1.3");
            queue_rcpt_set_status(q, "5.1.3 unsafe mailbox name");
            status = "bounced";
        }
    } else {
        switch (res->state) {
        case CORREIO__RCPT_STATE__RCPT_DELIVERED:
            status = strcmp(res->relay, "discard") == 0 ? "discarded" : "sent";
            q->relayed = res->relayed_no_dsn;
            if (q->route == CORREIO__ROUTE_KIND__ROUTE_RELAY && !res->relayed_no_dsn)
                q->dsn_sent |= CORREIO__NOTIFY__NOTIFY_SUCCESS;  /* the next hop reports */
            break;
        case CORREIO__RCPT_STATE__RCPT_FAILED:
            status = "bounced";
            break;
        default:
            if (sched_expired(s, env, now_us)) {
                q->state = CORREIO__RCPT_STATE__RCPT_FAILED;
                status = "expired";
                break;
            }
            q->state = CORREIO__RCPT_STATE__RCPT_DEFERRED;
            q->next_us = now_us + sched_backoff_us(s, q->attempts);
            if (!rec->hold)             /* held meanwhile: release schedules it */
                sched_after_retry(after, rec->queue_id, res->rcpt, q->next_us);
            status = "deferred";
            break;
        }
    }
    const char *dest = q->route == CORREIO__ROUTE_KIND__ROUTE_RELAY  ? "relay"
                       : q->route == CORREIO__ROUTE_KIND__ROUTE_LMTP ? "lmtp"
                                                                      : "local";
    metrics_incf("correio_delivery_results_total", "dest=\"%s\",result=\"%s\"", dest, status);
    if (q->state == CORREIO__RCPT_STATE__RCPT_DELIVERED)
        metrics_observe_since_us("correio_pipeline_latency_seconds",
                                 strcmp(dest, "relay") == 0 ? "dest=\"relay\"" : "dest=\"local\"",
                                 env->received_at);
    double delay = env->received_at && env->received_at < now_us
                   ? (double)(now_us - env->received_at) / 1e6 : 0.0;
    char to[300], ptext[600], relay[300];
    log_printable(to, sizeof to, addr, strlen(addr));
    log_printable(ptext, sizeof ptext, text, strlen(text));
    log_printable(relay, sizeof relay, res->relay, strlen(res->relay));
    const char *dsn = q->dsn_status[0] ? q->dsn_status
                      : q->state == CORREIO__RCPT_STATE__RCPT_DELIVERED ? "2.0.0"
                      : q->state == CORREIO__RCPT_STATE__RCPT_FAILED ? "5.0.0" : "4.0.0";
    sched_after_log(after, xasprintf("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
                                     rec->queue_id, to, relay, delay, dsn, status, ptext));
    if (q->state == CORREIO__RCPT_STATE__RCPT_FAILED && notices_withheld(s->notices, env)) {
        char from[300];
        log_printable(from, sizeof from, env->reverse_path, strlen(env->reverse_path));
        sched_after_log(after, xasprintf("%s: sender <%s> is not local "
                                         "(bounce_only_local_senders = yes): no non-delivery "
                                         "notice for <%s>", rec->queue_id, from, to));
    }
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
            Correio__RcptState st = rec->rcpt[s->results[j].rcpt].state;
            delivered += st == CORREIO__RCPT_STATE__RCPT_DELIVERED;
            failed += st == CORREIO__RCPT_STATE__RCPT_FAILED;
            deferred += st == CORREIO__RCPT_STATE__RCPT_DEFERRED;
        }
        bool finished, pending;
        ok = notices_store(s->notices, t, rec, now_us, &finished, &pending) == 0;
        if (finished)
            sched_after_log(&after, xasprintf("%s: removed", qid));
        if (pending)
            sched_after_notice(&after, qid);
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
    for (size_t i = 0; i < after.n_lines; i++) {
        log_info("%s", after.lines[i]);
        tap_publish(TAP_RESULT, after.lines[i], strlen(after.lines[i]));
    }
    for (size_t i = 0; i < after.n_retry; i++)
        sched_heap_push(&s->heap, after.retry[i].queue_id, after.retry[i].rcpt,
                        after.retry[i].due_us);
    for (size_t i = 0; i < after.n_notices; i++)
        notices_want(s->notices, after.notices[i]);
    for (size_t i = 0; i < s->n_results; i++)
        work_result_clear(&s->results[i]);
    s->n_results = 0;
    s->n_delivered += delivered;
    s->n_deferred += deferred;
    s->n_failed += failed;
    sched_after_free(&after);
}

/* sched_collect - take the threads' results and free finished job slots. */
static void sched_collect(scheduler_t *s)
{
    work_result *res;
    size_t n = results_collect(s->box, &res);
    for (size_t i = 0; i < n; i++) {
        sched_job *job = res[i].tag < s->n_jobs ? &s->jobs[res[i].tag] : NULL;
        bool member = false;
        for (size_t j = 0; job && j < job->n && !member; j++)
            member = job->rcpt[j] == res[i].rcpt;
        if (!job || !member || job->left == 0 || strcmp(job->queue_id, res[i].queue_id) != 0)
            log_panic("sched_collect: result for %s recipient %u has tag %u of another job",
                      res[i].queue_id, res[i].rcpt, res[i].tag);
        if (--job->left == 0) {
            if (job->outbound)
                s->n_outbound--;
            else
                s->n_local--;
            job->queue_id[0] = '\0';
            xfree(&job->rcpt);
            s->free_jobs[s->n_free_jobs++] = res[i].tag;
        }
        sched_add_result(s, &res[i]);
    }
    xfree(&res);
}

/* ------------------------------------------------------------ dispatch */

/* sched_take_slot - a job slot for queue_id's recipients rcpt[0..n). */
static unsigned sched_take_slot(scheduler_t *s, const char *queue_id, const unsigned *rcpt,
                                size_t n, bool outbound)
{
    if (s->n_free_jobs == 0)
        log_panic("sched_take_slot: no free job slot");
    unsigned tag = s->free_jobs[--s->n_free_jobs];
    sched_job *job = &s->jobs[tag];
    snprintf(job->queue_id, sizeof job->queue_id, "%s", queue_id);
    job->rcpt = (unsigned *)(void *)xmemdup(rcpt, n * sizeof *rcpt);
    job->n = job->left = n;
    job->outbound = outbound;
    if (outbound)
        s->n_outbound++;
    else
        s->n_local++;
    return tag;
}

/* sched_share - the record's envelope as a work_msg shared by its jobs
 * (made on first need: the record's envelope moves in). */
static work_msg *sched_share(queue_rec *rec, work_msg **msg)
{
    if (!*msg) {
        *msg = work_msg_new(rec->env);
        rec->env = NULL;
    }
    return *msg;
}

static const Envelope *sched_env(const queue_rec *rec, work_msg *msg)
{
    return msg ? work_msg_envelope(msg) : rec->env;
}

/* sched_start_local - a Maildir job for recipient i. */
static void sched_start_local(scheduler_t *s, queue_rec *rec, work_msg **msg, unsigned i)
{
    const config_t *cfg = s->st->cfg;
    const Envelope *env = sched_env(rec, *msg);
    maildir_job_opts opts = {
        .mail_root = config_str(cfg, "mail_root"),
        .folder = env->rcpt[i]->folder,       /* the router's per recipient */
        .quota = (unsigned long long)config_size(cfg, "mailbox_quota"),
        .quota_bounce = strcmp(config_str(cfg, "quota_exceeded_action"), "bounce") == 0,
    };
    unsigned tag = sched_take_slot(s, rec->queue_id, &i, 1, false);
    workers_submit(s->workers, sched_share(rec, msg), i, &opts, tag);
}

/* sched_same_hop - do recipients a and b of env go the same way, with
 * the same content (one spam tag per SMTP transaction)? */
static bool sched_same_hop(const Envelope *env, unsigned a, unsigned b)
{
    const Recipient *x = env->rcpt[a], *y = env->rcpt[b];
    return x->route == y->route && strcasecmp(x->nexthop, y->nexthop) == 0
           && strcmp(x->subject_tag, y->subject_tag) == 0;
}

/* sched_start_outbound - an SMTP/LMTP job for recipient first and every
 * other recipient of the same envelope that is due now, not final, and
 * goes to the same next hop (they are next on the schedule: it orders by
 * time, then queue id), up to default_destination_recipient_limit. */
static void sched_start_outbound(scheduler_t *s, queue_rec *rec, work_msg **msg,
                                 unsigned first, uint64_t now_us)
{
    const Envelope *env = sched_env(rec, *msg);
    size_t limit = (size_t)config_int(s->st->cfg, "default_destination_recipient_limit");
    unsigned *rcpt = xcalloc(rec->n + 1, sizeof *rcpt);
    size_t n = 0;
    rcpt[n++] = first;
    const sched_item *top;
    while (n < limit && (top = sched_heap_top(&s->heap)) && top->due_us <= now_us
           && strcmp(top->queue_id, rec->queue_id) == 0 && top->rcpt < rec->n
           && queue_rcpt_active(rec->rcpt[top->rcpt].state)
           && rec->rcpt[top->rcpt].route == rec->rcpt[first].route
           && sched_same_hop(env, first, top->rcpt)) {
        sched_item it;
        sched_heap_pop(&s->heap, &it);
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = rcpt[j] == it.rcpt;
        if (!dup)
            rcpt[n++] = it.rcpt;
    }
    unsigned tag = sched_take_slot(s, rec->queue_id, rcpt, n, true);
    outbound_submit(s->outbound, sched_share(rec, msg), rcpt, n, tag);
    xfree(&rcpt);
}

/* sched_start_rcpt - start recipient i's attempt, or settle it here.
 * false when its kind of job has no room now (the caller puts it back). */
static bool sched_start_rcpt(scheduler_t *s, queue_rec *rec, work_msg **msg, unsigned i,
                             uint64_t now_us)
{
    const Recipient *r = sched_env(rec, *msg)->rcpt[i];
    switch (rec->rcpt[i].route) {
    case CORREIO__ROUTE_KIND__ROUTE_MAILDIR:
        if (s->n_local >= s->max_local)
            return false;
        sched_start_local(s, rec, msg, i);
        return true;
    case CORREIO__ROUTE_KIND__ROUTE_RELAY:
    case CORREIO__ROUTE_KIND__ROUTE_LMTP:
        if (s->n_outbound >= s->max_outbound)
            return false;
        sched_start_outbound(s, rec, msg, i, now_us);
        return true;
    case CORREIO__ROUTE_KIND__ROUTE_ERROR:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_FAILED, "none",
                           r->status_text[0] ? r->status_text : "5.1.1 undeliverable");
        return true;
    case CORREIO__ROUTE_KIND__ROUTE_DISCARD:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_DELIVERED,
                           "discard", "discarded by policy");
        return true;
    default:
        sched_local_result(s, rec->queue_id, i, CORREIO__RCPT_STATE__RCPT_DEFERRED,
                           "none", SCHED_NOROUTE_TEXT);
        return true;
    }
}

/* sched_dispatch - start everything that is due, as far as the workers
 * and the outbound engine have room, reading the records in one read
 * transaction.  A recipient whose kind of job has no room waits aside
 * and goes back on the schedule, so the other kind is not held up. */
static void sched_dispatch(scheduler_t *s)
{
    uint64_t now_us = time_now_us();
    queue_txn *t = NULL;
    queue_rec *rec = NULL;
    work_msg *msg = NULL;
    sched_heap aside = {0};
    const sched_item *top;

    if (drain_active(s))
        return;                     /* draining: the peers try them (drain.c) */
    while ((top = sched_heap_top(&s->heap)) && top->due_us <= now_us
           && (s->n_local < s->max_local || s->n_outbound < s->max_outbound)) {
        sched_item it;
        sched_heap_pop(&s->heap, &it);
        if (!t && !(t = queue_begin(s->queue, false))) {
            sched_heap_push(&s->heap, it.queue_id, it.rcpt, now_us + SCHED_RETRY_MS * 1000ULL);
            break;
        }
        if (!rec || strcmp(rec->queue_id, it.queue_id) != 0) {
            work_msg_unref(&msg);
            queue_rec_free(&rec);
            rec = queue_get(t, it.queue_id);
        }
        if (!rec || rec->hold || it.rcpt >= rec->n
            || !queue_rcpt_active(rec->rcpt[it.rcpt].state))
            continue;               /* gone, held or settled meanwhile */
        if (!sched_start_rcpt(s, rec, &msg, it.rcpt, now_us))
            sched_heap_push(&aside, it.queue_id, it.rcpt, it.due_us);
    }
    for (size_t i = 0; i < aside.n; i++)
        sched_heap_push(&s->heap, aside.item[i].queue_id, aside.item[i].rcpt,
                        aside.item[i].due_us);
    sched_heap_free(&aside);
    work_msg_unref(&msg);
    queue_rec_free(&rec);
    queue_abort(&t);
}

/* ------------------------------------------------------------ input */

bool scheduler_accepting(const scheduler_t *s)
{
    return time_mono_ms() >= s->accept_after_ms;
}

bool scheduler_draining(const scheduler_t *s)
{
    return drain_active(s);
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
        zmq_util_recv_status got = zmq_util_recv_frame(pull, m, "delivery input");

        if (got == ZMQ_UTIL_NONE)
            break;
        if (got == ZMQ_UTIL_DROPPED)
            continue;
        envs[n] = wire_unpack_envelope(zmq_msg_data(m), zmq_msg_size(m), "delivery input");
        if (!envs[n]) {
            zmq_msg_close(m);
            continue;
        }
        tap_trace_in(envs[n]);
        n++;
    }
    if (n == 0)
        return;

    /* One transaction, one fsync for the whole batch. */
    bool ok = false;
    uint64_t now_us = time_now_us();
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
                                   envs[i]) == 0
                     && quarantine_take(t, envs[i], now_us) == 0;   /* in the same commit */
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
                quarantine_taken(s, env, now_us);
                for (size_t r = 0; r < env->n_rcpt && !env->hold; r++)
                    if (queue_rcpt_active(env->rcpt[r]->state)
                        && !quarantine_wanted(env->rcpt[r]))
                        sched_heap_push(&s->heap, env->queue_id, (unsigned)r, now_us);
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

void *scheduler_submit_socket(scheduler_t *s)
{
    return notices_socket(s->notices);
}

void scheduler_submit_ready(scheduler_t *s)
{
    notices_receive(s->notices);
}

void scheduler_run(scheduler_t *s)
{
    sched_collect(s);
    sched_dispatch(s);
    sched_record(s);
    quarantine_sweep(s);
    notices_run(s->notices);
    queue_metrics_update(s);
    drain_run(s);

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
    long nt = notices_timeout_ms(s->notices);
    if (nt >= 0 && nt < t)
        t = nt;
    long qt = quarantine_timeout_ms(s);
    if (qt >= 0 && qt < t)
        t = qt;
    if ((qt = queue_metrics_timeout_ms()) >= 0 && qt < t)
        t = qt;
    if ((qt = drain_timeout_ms(s)) >= 0 && qt < t)
        t = qt;
    const sched_item *top = sched_heap_top(&s->heap);
    if (top && (s->n_local < s->max_local || s->n_outbound < s->max_outbound)) {
        uint64_t now_us = time_now_us();
        long due = top->due_us <= now_us ? 0 : (long)((top->due_us - now_us + 999) / 1000);
        if (due < t)
            t = due;
    }
    return t < 0 ? 0 : t;
}

/* scheduler_reload - SIGHUP: the outbound engine takes the new settings
 * for what it starts from now on; the rest reads the configuration at
 * each use. */
bool scheduler_reload(void *ctx)
{
    scheduler_t *s = ctx;
    char *err = NULL;
    outbound_settings *set = outbound_settings_new(s->st->cfg, &err);
    if (!set) {
        log_warn("reload refused: %s", err);
        xfree(&err);
        return false;
    }
    outbound_reconfigure(s->outbound, set);
    quarantine_reconfigure(s);              /* spam_quarantine_lifetime may have changed */
    char *users = config_path(s->st->cfg, "users_file");
    quota_users_configure(users);            /* per-user limits for the workers */
    xfree(&users);
    return true;
}

/* ------------------------------------------------------------ life */

scheduler_t *scheduler_new(stage_t *st)
{
    scheduler_t *s = xcalloc(1, sizeof *s);
    s->st = st;
    char *dir = xasprintf("%s/queue", config_str(st->cfg, "data_directory"));
    s->queue = queue_open(dir, (size_t)config_size(st->cfg, "queue_map_size"));
    xfree(&dir);
    char *err = NULL;
    outbound_settings *set = outbound_settings_new(st->cfg, &err);
    if (!set)
        log_fatal("%s", err);
    unsigned nworkers = (unsigned)config_int(st->cfg, "delivery_workers");
    s->box = results_new();
    char *users = config_path(st->cfg, "users_file");
    quota_users_configure(users);            /* per-user limits for the workers */
    xfree(&users);
    s->workers = workers_start(nworkers, s->box);
    s->outbound = outbound_start(set, s->box);
    s->notices = notices_new(st, s->queue);
    s->max_local = (size_t)nworkers * SCHED_JOBS_PER_WORKER;
    s->max_outbound = (size_t)config_int(st->cfg, "smtp_connection_limit") * SCHED_JOBS_PER_CONN;
    s->n_jobs = s->max_local + s->max_outbound;
    s->jobs = xcalloc(s->n_jobs, sizeof *s->jobs);
    s->free_jobs = xcalloc(s->n_jobs, sizeof *s->free_jobs);
    for (size_t i = s->n_jobs; i-- > 0;)
        s->free_jobs[s->n_free_jobs++] = (unsigned)i;
    s->events = events_new(st->zctx, (int)config_int(st->cfg, "pipeline_hwm"),
                           "delivery", st->hostname);
    s->next_prune_ms = time_mono_ms();
    sched_startup start = {.s = s};
    long n = queue_scan(s->queue, sched_startup_visit, &start, (size_t)-1);
    if (n < 0)
        log_fatal("cannot read the delivery queue in %s/queue", config_str(st->cfg, "data_directory"));
    log_info("queue: %ld envelopes (%zu on hold), %zu recipients scheduled, %zu notices to send",
             n, start.held, s->heap.n, start.notices);
    return s;
}

void scheduler_free(scheduler_t **sp)
{
    scheduler_t *s = *sp;
    if (!s)
        return;
    workers_stop(s->workers);
    outbound_stop(s->outbound);
    sched_collect(s);
    s->record_retry_ms = 0;
    sched_record(s);                 /* what finished is recorded, not redone */
    for (size_t i = 0; i < s->n_results; i++)
        work_result_clear(&s->results[i]);
    xfree(&s->results);
    workers_free(&s->workers);
    quota_users_free();
    outbound_free(&s->outbound);
    notices_free(&s->notices);
    results_free(&s->box);
    drain_free(&s->drain);
    events_free(&s->events);
    queue_close(&s->queue);
    sched_heap_free(&s->heap);
    for (size_t i = 0; i < s->n_jobs; i++)
        xfree(&s->jobs[i].rcpt);
    xfree(&s->jobs);
    xfree(&s->free_jobs);
    xfree(sp);
}
