/* notices.c - delivery status notifications to senders (see notices.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "bounce.h"
#include "log.h"
#include "notices.h"
#include "qid.h"
#include "submit_client.h"
#include "timeutil.h"
#include "xalloc.h"

#define NOTICE_ANSWER_MS (60 * 1000)   /* no answer this long: send again */
#define NOTICE_RETRY_MS  (5 * 1000)    /* after a send that could not go */
#define NOTICE_HWM       1000
#define NOTICE_KINDS     4             /* dsn_action values */

/* One notice handed to an ingress, waiting for its answer. */
typedef struct notice {
    char       ref[64];
    char       queue_id[QID_LEN + 1];
    dsn_action kind;
    unsigned  *rcpt;
    size_t     n;
    int64_t    deadline_ms;
} notice;

struct notices {
    stage_t         *st;
    queue_t         *queue;
    submit_client_t *submit;
    char           **wanted;           /* queue ids with notices to send */
    size_t           n_wanted, cap_wanted;
    notice          *flight;
    size_t           n_flight, cap_flight;
    int64_t          retry_at_ms;
    unsigned         seq;
    uint64_t         started_us;       /* makes refs unique across restarts */
};

static const char *const notice_subject[NOTICE_KINDS] = {
    [DSN_FAILED] = "non-delivery", [DSN_DELAYED] = "delay",
    [DSN_DELIVERED] = "delivery status", [DSN_RELAYED] = "delivery status",
};

static uint32_t notice_bit(dsn_action kind)
{
    switch (kind) {
    case DSN_FAILED:
        return CORREIO__NOTIFY__NOTIFY_FAILURE;
    case DSN_DELAYED:
        return CORREIO__NOTIFY__NOTIFY_DELAY;
    default:
        return CORREIO__NOTIFY__NOTIFY_SUCCESS;
    }
}

/* ------------------------------------------------------------ rules */

/* sender_is_local - the sender's domain is one of mydestination, or the
 * client authenticated (bounce_only_local_senders). */
static bool sender_is_local(const config_t *cfg, const Envelope *env)
{
    if (env->client && env->client->auth_user && env->client->auth_user[0])
        return true;
    const char *at = strrchr(env->reverse_path, '@');
    if (!at)
        return false;
    for (const char *const *d = config_list(cfg, "mydestination"); *d; d++)
        if (strcasecmp(at + 1, *d) == 0)
            return true;
    return false;
}

static bool sender_gets_notices(const config_t *cfg, const Envelope *env)
{
    if (!env->reverse_path[0])
        return false;
    return !config_bool(cfg, "bounce_only_local_senders") || sender_is_local(cfg, env);
}

bool notices_withheld(const notices_t *n, const Envelope *env)
{
    return env->reverse_path[0] && !sender_gets_notices(n->st->cfg, env);
}

/* notice_due - the notice recipient i of r needs now, or -1. */
static int notice_due(const config_t *cfg, const queue_rec *r, size_t i, uint64_t now_us)
{
    const queue_rcpt *q = &r->rcpt[i];
    uint32_t notify = r->env->rcpt[i]->notify;

    if ((notify & CORREIO__NOTIFY__NOTIFY_NEVER) || !sender_gets_notices(cfg, r->env))
        return -1;
    switch (q->state) {
    case CORREIO__RCPT_STATE__RCPT_FAILED:
        if ((q->dsn_sent & CORREIO__NOTIFY__NOTIFY_FAILURE)
            || (notify && !(notify & CORREIO__NOTIFY__NOTIFY_FAILURE)))
            return -1;
        return DSN_FAILED;
    case CORREIO__RCPT_STATE__RCPT_DELIVERED:
        if (!(notify & CORREIO__NOTIFY__NOTIFY_SUCCESS)
            || (q->dsn_sent & CORREIO__NOTIFY__NOTIFY_SUCCESS))
            return -1;
        return q->relayed ? DSN_RELAYED : DSN_DELIVERED;
    case CORREIO__RCPT_STATE__RCPT_DEFERRED: {
        uint64_t warn_us = (uint64_t)config_time_ms(cfg, "delay_warning_time") * 1000;
        if (!warn_us || (q->dsn_sent & CORREIO__NOTIFY__NOTIFY_DELAY)
            || (notify && !(notify & CORREIO__NOTIFY__NOTIFY_DELAY))
            || now_us < r->env->received_at + warn_us)
            return -1;
        return DSN_DELAYED;
    }
    default:
        return -1;
    }
}

bool notices_due_any(const notices_t *n, const queue_rec *r, uint64_t now_us)
{
    for (size_t i = 0; i < r->n; i++)
        if (notice_due(n->st->cfg, r, i, now_us) >= 0)
            return true;
    return false;
}

int notices_store(const notices_t *n, queue_txn *t, const queue_rec *r, uint64_t now_us,
                  bool *finished, bool *pending)
{
    bool all_final = true;
    for (size_t i = 0; i < r->n; i++)
        all_final = all_final && queue_rcpt_final(r->rcpt[i].state);
    *pending = notices_due_any(n, r, now_us);
    *finished = all_final && !*pending;
    return *finished ? queue_finish(t, r->queue_id, now_us) : queue_put(t, r);
}

/* ------------------------------------------------------------ lists */

void notices_want(notices_t *n, const char *qid)
{
    for (size_t i = 0; i < n->n_wanted; i++)
        if (strcmp(n->wanted[i], qid) == 0)
            return;
    if (n->n_wanted == n->cap_wanted) {
        n->cap_wanted = n->cap_wanted ? 2 * n->cap_wanted : 16;
        n->wanted = xrealloc(n->wanted, n->cap_wanted * sizeof *n->wanted);
    }
    n->wanted[n->n_wanted++] = xstrdup(qid);
}

static notice *flight_find(notices_t *n, const char *ref)
{
    for (size_t i = 0; i < n->n_flight; i++)
        if (strcmp(n->flight[i].ref, ref) == 0)
            return &n->flight[i];
    return NULL;
}

static bool flight_has(const notices_t *n, const char *qid, dsn_action kind)
{
    for (size_t i = 0; i < n->n_flight; i++)
        if (n->flight[i].kind == kind && strcmp(n->flight[i].queue_id, qid) == 0)
            return true;
    return false;
}

static void flight_remove(notices_t *n, notice *f)
{
    xfree(&f->rcpt);
    *f = n->flight[--n->n_flight];
}

/* ------------------------------------------------------------ sending */

/* notice_send - compose the notice of kind for the k recipients idx[] of
 * r and hand it to an ingress.  0, or -1 when it could not go now. */
static int notice_send(notices_t *n, const queue_rec *r, dsn_action kind,
                       const unsigned *idx, size_t k)
{
    const config_t *cfg = n->st->cfg;
    dsn_rcpt *dr = xcalloc(k, sizeof *dr);
    char **orcpt = xcalloc(k, sizeof *orcpt);
    for (size_t j = 0; j < k; j++) {
        const queue_rcpt *q = &r->rcpt[idx[j]];
        const Recipient *rc = r->env->rcpt[idx[j]];
        /* no ORCPT from the client: the address before alias expansion,
         * as Postfix reports it */
        orcpt[j] = rc->orcpt[0] ? xstrdup(rc->orcpt)
                   : rc->original[0] && strcasecmp(rc->original, rc->address) != 0
                   ? xasprintf("rfc822;%s", rc->original) : xstrdup("");
        dr[j] = (dsn_rcpt){
            .address = rc->address, .orcpt = orcpt[j], .action = kind,
            .status = q->dsn_status,
            .remote_mta = q->remote_mta, .diagnostic = q->diagnostic, .text = q->status,
            .last_attempt_us = q->last_attempt_us,
            .retry_until_us = r->env->received_at + queue_lifetime_us(cfg, r->env),
        };
    }
    dsn_report rep = {
        .kind = kind, .reporting_mta = n->st->hostname, .orig = r->env,
        .size_limit = (size_t)config_size(cfg, "bounce_size_limit"),
        .n = k, .rcpt = dr, .now_us = time_now_us(),
    };
    size_t len;
    uint8_t *body = bounce_compose(&rep, &len);
    for (size_t j = 0; j < k; j++)
        xfree(&orcpt[j]);
    xfree(&orcpt);
    xfree(&dr);

    Recipient to = CORREIO__RECIPIENT__INIT;
    to.address = r->env->reverse_path;
    Recipient *top = &to;
    Client client = CORREIO__CLIENT__INIT;
    client.listener = "bounce";
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    env.queue_id = r->queue_id;              /* the ingress logs it as orig_queue_id */
    env.reverse_path = "";
    env.n_rcpt = 1;
    env.rcpt = &top;
    env.client = &client;
    env.body.data = body;
    env.body.len = len;
    env.body_type = bounce_is_8bit(body, len) ? CORREIO__BODY_TYPE__BODY_8BITMIME
                                        : CORREIO__BODY_TYPE__BODY_7BIT;

    notice f = {.kind = kind, .n = k, .deadline_ms = time_mono_ms() + NOTICE_ANSWER_MS};
    snprintf(f.queue_id, sizeof f.queue_id, "%s", r->queue_id);
    /* the ingress takes a ref once (its idempotency key): unique across restarts */
    snprintf(f.ref, sizeof f.ref, "%s.%d.%llx.%u", r->queue_id, (int)kind,
             (unsigned long long)n->started_us, n->seq++);
    int rc = submit_client_send(n->submit, f.ref, &env);
    xfree(&body);
    if (rc != 0)
        return -1;
    f.rcpt = (unsigned *)(void *)xmemdup(idx, k * sizeof *idx);
    if (n->n_flight == n->cap_flight) {
        n->cap_flight = n->cap_flight ? 2 * n->cap_flight : 16;
        n->flight = xrealloc(n->flight, n->cap_flight * sizeof *n->flight);
    }
    n->flight[n->n_flight++] = f;
    return 0;
}

/* notices_send_rec - send every notice r needs that is not already on
 * its way.  -1 when one could not go (try again later). */
static int notices_send_rec(notices_t *n, const queue_rec *r, uint64_t now_us)
{
    unsigned *idx = xcalloc(r->n + 1, sizeof *idx);
    int rc = 0;
    for (int kind = 0; kind < NOTICE_KINDS && rc == 0; kind++) {
        size_t k = 0;
        for (size_t i = 0; i < r->n; i++)
            if (notice_due(n->st->cfg, r, i, now_us) == kind)
                idx[k++] = (unsigned)i;
        if (k && !flight_has(n, r->queue_id, (dsn_action)kind))
            rc = notice_send(n, r, (dsn_action)kind, idx, k);
    }
    xfree(&idx);
    return rc;
}

void notices_run(notices_t *n)
{
    int64_t now = time_mono_ms();
    for (size_t i = 0; i < n->n_flight;) {
        notice *f = &n->flight[i];
        if (f->deadline_ms > now) {
            i++;
            continue;
        }
        log_warn("%s: no answer from an ingress about the %s notice; sending it again",
                 f->queue_id, notice_subject[f->kind]);
        notices_want(n, f->queue_id);
        flight_remove(n, f);
    }
    if (!n->n_wanted || now < n->retry_at_ms)
        return;
    queue_txn *t = queue_begin(n->queue, false);
    if (!t) {
        n->retry_at_ms = now + NOTICE_RETRY_MS;
        return;
    }
    uint64_t now_us = time_now_us();
    size_t kept = 0;
    for (size_t i = 0; i < n->n_wanted; i++) {
        queue_rec *r = kept ? NULL : queue_get(t, n->wanted[i]);
        if (kept || (r && notices_send_rec(n, r, now_us) != 0))
            n->wanted[kept++] = n->wanted[i];       /* could not go: later */
        else
            xfree(&n->wanted[i]);
        queue_rec_free(&r);
    }
    queue_abort(&t);
    n->n_wanted = kept;
    if (kept) {
        log_debug("%zu notices wait for an ingress to take them", kept);
        n->retry_at_ms = now + NOTICE_RETRY_MS;
    }
}

/* ------------------------------------------------------------ answers */

/* notice_done - the ingress holds f's notice (new_qid): mark it sent. */
static void notice_done(notices_t *n, const notice *f, const char *new_qid)
{
    static const char *const what[NOTICE_KINDS] = {
        [DSN_FAILED] = "sender non-delivery notification",
        [DSN_DELAYED] = "sender delay notification",
        [DSN_DELIVERED] = "sender delivery status notification",
        [DSN_RELAYED] = "sender delivery status notification",
    };
    queue_txn *t = queue_begin(n->queue, true);
    if (!t)
        return;                 /* not marked: it goes again (a duplicate) */
    queue_rec *r = queue_get(t, f->queue_id);
    if (!r) {                   /* deleted meanwhile */
        queue_abort(&t);
        return;
    }
    for (size_t j = 0; j < f->n; j++)
        if (f->rcpt[j] < r->n)
            r->rcpt[f->rcpt[j]].dsn_sent |= notice_bit(f->kind);
    bool finished, pending;
    uint64_t now_us = time_now_us();
    if (notices_store(n, t, r, now_us, &finished, &pending) != 0 || queue_commit(&t) != 0) {
        queue_abort(&t);
        queue_rec_free(&r);
        notices_want(n, f->queue_id);
        return;
    }
    char id[64];
    log_info("%s: %s: %s", f->queue_id, what[f->kind],
             log_printable(id, sizeof id, new_qid, strlen(new_qid)));
    if (finished)
        log_info("%s: removed", f->queue_id);
    if (pending)
        notices_want(n, f->queue_id);
    queue_rec_free(&r);
}

void notices_receive(notices_t *n)
{
    SubmitReply *rep;
    while ((rep = submit_client_receive(n->submit)) != NULL) {
        notice *f = flight_find(n, rep->ref);
        if (!f) {
            log_debug("answer for a notice no longer waited for: %s", rep->ref);
            wire_free_submit_reply(&rep);
            continue;
        }
        notice done = *f;
        f->rcpt = NULL;
        flight_remove(n, f);
        char text[300];
        log_printable(text, sizeof text, rep->text, strlen(rep->text));
        if (rep->status == 0) {
            notice_done(n, &done, rep->queue_id);
        } else if (rep->status == 5) {
            log_warn("%s: the ingress refused the %s notice: %s; it is not sent",
                     done.queue_id, notice_subject[done.kind], text);
            notice_done(n, &done, "(refused)");
        } else {
            log_warn("%s: the ingress cannot take the %s notice now: %s",
                     done.queue_id, notice_subject[done.kind], text);
            notices_want(n, done.queue_id);
            n->retry_at_ms = time_mono_ms() + NOTICE_RETRY_MS;
        }
        xfree(&done.rcpt);
        wire_free_submit_reply(&rep);
    }
}

/* ------------------------------------------------------------ life */

notices_t *notices_new(stage_t *st, queue_t *q)
{
    notices_t *n = xcalloc(1, sizeof *n);
    n->started_us = time_now_us();
    n->st = st;
    n->queue = q;
    n->submit = submit_client_new(st->zctx, st->cfg,
                                  config_str(st->cfg, "ingress_submit_endpoint"), NOTICE_HWM);
    return n;
}

void notices_free(notices_t **np)
{
    notices_t *n = *np;
    if (!n)
        return;
    for (size_t i = 0; i < n->n_wanted; i++)
        xfree(&n->wanted[i]);
    xfree(&n->wanted);
    for (size_t i = 0; i < n->n_flight; i++)
        xfree(&n->flight[i].rcpt);
    xfree(&n->flight);
    submit_client_free(&n->submit);
    xfree(np);
}

void *notices_socket(notices_t *n)
{
    return submit_client_socket(n->submit);
}

long notices_timeout_ms(const notices_t *n)
{
    int64_t now = time_mono_ms(), t = INT64_MAX;
    if (n->n_wanted)
        t = n->retry_at_ms > now ? n->retry_at_ms - now : 0;
    for (size_t i = 0; i < n->n_flight; i++)
        if (n->flight[i].deadline_ms - now < t)
            t = n->flight[i].deadline_ms - now;
    if (t == INT64_MAX)
        return -1;
    return t < 0 ? 0 : (long)t;
}

size_t notices_outstanding(const notices_t *n)
{
    return n->n_wanted + n->n_flight;
}
