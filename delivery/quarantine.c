/* quarantine.c - spam held by delivery for the operator (`correio
 * quarantine`), per recipient.
 *
 * A recipient the router marked SPAM_ACTION_QUARANTINE arrives pending;
 * in the transaction that stores its envelope it becomes
 * RCPT_QUARANTINED with quarantined_at, so no crash can deliver it by
 * accident and none can lose it.  It is never scheduled while held.
 * From there:
 *   release  pending again, its spam action, tag and folder cleared (so
 *            it goes to the inbox as it came), scheduled at once;
 *   delete   dropped: final without delivery, no notice to the sender;
 *   expiry   after spam_quarantine_lifetime, dropped the same way by the
 *            sweep, which runs when the earliest expiry is due.
 * A message whose recipients are all final then leaves the queue as
 * usual (notices_store).
 *
 * Admin verbs (one write transaction each, committed before the reply,
 * which lists what changed):
 *   quarantine-list [ADDRESS|@DOMAIN]  held copies, newest facts first
 *   quarantine-show ID                 one message: verdict, header section
 *   quarantine-release ID [RCPT|ALL]   the reply names the released
 *                                      recipients (address, original)
 *   quarantine-delete ID [RCPT|ALL]
 * An id with no held recipient (that matches) answers status 1 with
 * QUARANTINE_MISSING_TEXT and the id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "admin.h"
#include "log.h"
#include "mime.h"
#include "qid.h"
#include "scheduler_int.h"
#include "timeutil.h"
#include "xalloc.h"

#define QUARANTINE_LIST_MAX     10000          /* entries per reply */
#define QUARANTINE_SWEEP_MAX    1000           /* messages changed per sweep commit */
#define QUARANTINE_SUBJECT_MAX  200            /* Subject bytes listed */
#define QUARANTINE_HEADER_MAX   (64 * 1024)    /* header bytes parsed for the Subject */
#define QUARANTINE_ARG_MAX      320            /* an ADDRESS, @DOMAIN or RCPT argument */
#define QUARANTINE_RETRY_MS     1000           /* after a failed sweep, or to go on */
#define QUARANTINE_MISSING_TEXT "not in the quarantine:"
#define QUARANTINE_NO_NOTICE    (CORREIO__NOTIFY__NOTIFY_SUCCESS | CORREIO__NOTIFY__NOTIFY_FAILURE \
                                 | CORREIO__NOTIFY__NOTIFY_DELAY)

static uint64_t quarantine_lifetime_us(const scheduler_t *s)
{
    return (uint64_t)config_time_ms(s->st->cfg, "spam_quarantine_lifetime") * 1000;
}

static double quarantine_score(const Envelope *env)
{
    return env->verdict ? env->verdict->score : 0.0;
}

/* quarantine_held_since - when recipient i of r was held. */
static uint64_t quarantine_held_since(const queue_rec *r, size_t i)
{
    return r->rcpt[i].quarantined_at ? r->rcpt[i].quarantined_at : r->env->received_at;
}

/* quarantine_due - the earliest expiry is now at most when. */
static void quarantine_due(scheduler_t *s, uint64_t when)
{
    if (when == 0)
        when = 1;
    if (!s->quarantine_due_us || when < s->quarantine_due_us)
        s->quarantine_due_us = when;
}

/* quarantine_drop - recipient q leaves the quarantine without delivery:
 * final, and nothing ever tells the sender. */
static void quarantine_drop(queue_rcpt *q, const char *text, uint64_t now_us)
{
    q->state = CORREIO__RCPT_STATE__RCPT_DELIVERED;
    q->dsn_sent |= QUARANTINE_NO_NOTICE;
    q->next_us = 0;
    q->last_attempt_us = now_us;
    snprintf(q->dsn_status, sizeof q->dsn_status, "2.0.0");
    queue_rcpt_set_status(q, text);
}

/* quarantine_release - recipient q goes to the inbox as it came. */
static void quarantine_release(queue_rcpt *q)
{
    q->state = CORREIO__RCPT_STATE__RCPT_PENDING;
    q->next_us = 0;
    q->spam_action = CORREIO__SPAM_ACTION__SPAM_ACTION_NONE;
    queue_rcpt_set_str(&q->subject_tag, "");
    queue_rcpt_set_str(&q->folder, "");
    queue_rcpt_set_status(q, "released from quarantine");
}

/* ------------------------------------------------------------ arrival */

bool quarantine_wanted(const Recipient *r)
{
    return r->spam_action == CORREIO__SPAM_ACTION__SPAM_ACTION_QUARANTINE
           && r->state == CORREIO__RCPT_STATE__RCPT_PENDING;
}

int quarantine_take(queue_txn *t, const Envelope *env, uint64_t now_us)
{
    bool any = false;
    for (size_t i = 0; i < env->n_rcpt && !any; i++)
        any = quarantine_wanted(env->rcpt[i]);
    if (!any)
        return 0;
    queue_rec *r = queue_get(t, env->queue_id);
    if (!r) {
        log_warn("%s: queue: cannot read back the envelope to quarantine it", env->queue_id);
        return -1;
    }
    char text[64];
    snprintf(text, sizeof text, "quarantined (spam score %.1f)", quarantine_score(env));
    for (size_t i = 0; i < r->n; i++) {
        if (!quarantine_wanted(env->rcpt[i]))
            continue;
        r->rcpt[i].state = CORREIO__RCPT_STATE__RCPT_QUARANTINED;
        r->rcpt[i].quarantined_at = now_us;
        queue_rcpt_set_status(&r->rcpt[i], text);
    }
    int rc = queue_put(t, r);
    queue_rec_free(&r);
    return rc;
}

void quarantine_taken(scheduler_t *s, const Envelope *env, uint64_t now_us)
{
    for (size_t i = 0; i < env->n_rcpt; i++) {
        if (!quarantine_wanted(env->rcpt[i]))
            continue;
        char to[300];
        const char *a = env->rcpt[i]->address;
        log_info("%s: to=<%s>: quarantined (spam score %.1f)", env->queue_id,
                 log_printable(to, sizeof to, a, strlen(a)), quarantine_score(env));
        s->n_quarantined++;
        quarantine_due(s, now_us + quarantine_lifetime_us(s));
    }
}

void quarantine_note_rec(scheduler_t *s, const queue_rec *r)
{
    uint64_t life = quarantine_lifetime_us(s);
    for (size_t i = 0; i < r->n; i++)
        if (r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_QUARANTINED)
            quarantine_due(s, quarantine_held_since(r, i) + life);
}

/* ------------------------------------------------------------ expiry */

typedef struct quarantine_scan {
    uint64_t    now_us, life_us;
    uint64_t    next_us;        /* earliest expiry not yet due, 0 none */
    char      **ids;            /* records with a copy due */
    size_t      n, cap;
    bool        more;           /* more due than one sweep takes */
} quarantine_scan;

static void quarantine_scan_visit(void *ctx, const queue_rec *r)
{
    quarantine_scan *q = ctx;
    bool due = false;
    for (size_t i = 0; i < r->n; i++) {
        if (r->rcpt[i].state != CORREIO__RCPT_STATE__RCPT_QUARANTINED)
            continue;
        uint64_t exp = quarantine_held_since(r, i) + q->life_us;
        if (exp <= q->now_us)
            due = true;
        else if (!q->next_us || exp < q->next_us)
            q->next_us = exp;
    }
    if (!due)
        return;
    if (q->n == QUARANTINE_SWEEP_MAX) {
        q->more = true;
        return;
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 16;
        q->ids = xrealloc(q->ids, q->cap * sizeof *q->ids);
    }
    q->ids[q->n++] = xstrdup(r->queue_id);
}

/* quarantine_expire - drop the due copies of the records in ids, one
 * commit.  false when nothing could be written (try again later). */
static bool quarantine_expire(scheduler_t *s, char **ids, size_t n, uint64_t now_us,
                              uint64_t life_us)
{
    queue_txn *t = queue_begin(s->queue, true);
    if (!t)
        return false;
    size_t cap = 16, n_lines = 0;
    char **lines = xcalloc(cap, sizeof *lines);
    char **want = xcalloc(n + 1, sizeof *want);
    size_t n_want = 0;
    bool ok = true;
    for (size_t k = 0; ok && k < n; k++) {
        queue_rec *r = queue_get(t, ids[k]);
        if (!r)
            continue;
        for (size_t i = 0; i < r->n; i++) {
            if (r->rcpt[i].state != CORREIO__RCPT_STATE__RCPT_QUARANTINED
                || quarantine_held_since(r, i) + life_us > now_us)
                continue;
            quarantine_drop(&r->rcpt[i], "quarantine expired, dropped", now_us);
            char to[300];
            const char *a = r->env->rcpt[i]->address;
            if (n_lines + 2 >= cap) {
                cap *= 2;
                lines = xrealloc(lines, cap * sizeof *lines);
            }
            lines[n_lines++] = xasprintf("%s: to=<%s>: quarantine expired, dropped", r->queue_id,
                                         log_printable(to, sizeof to, a, strlen(a)));
        }
        bool finished, pending;
        ok = notices_store(s->notices, t, r, now_us, &finished, &pending) == 0;
        if (finished) {
            if (n_lines + 2 >= cap) {
                cap *= 2;
                lines = xrealloc(lines, cap * sizeof *lines);
            }
            lines[n_lines++] = xasprintf("%s: removed", r->queue_id);
        }
        if (pending)
            want[n_want++] = xstrdup(r->queue_id);
        queue_rec_free(&r);
    }
    if (!ok || queue_commit(&t) != 0) {
        queue_abort(&t);
        ok = false;
    }
    for (size_t i = 0; i < n_lines; i++) {
        if (ok)
            log_info("%s", lines[i]);
        xfree(&lines[i]);
    }
    for (size_t i = 0; i < n_want; i++) {
        if (ok)
            notices_want(s->notices, want[i]);
        xfree(&want[i]);
    }
    xfree(&lines);
    xfree(&want);
    return ok;
}

void quarantine_sweep(scheduler_t *s)
{
    uint64_t now_us = time_now_us();
    if (!s->quarantine_due_us || now_us < s->quarantine_due_us)
        return;
    quarantine_scan q = {.now_us = now_us, .life_us = quarantine_lifetime_us(s)};
    bool ok = queue_scan(s->queue, quarantine_scan_visit, &q, (size_t)-1) >= 0;
    if (ok && q.n)
        ok = quarantine_expire(s, q.ids, q.n, now_us, q.life_us);
    for (size_t i = 0; i < q.n; i++)
        xfree(&q.ids[i]);
    xfree(&q.ids);
    if (!ok || q.more)
        s->quarantine_due_us = now_us + QUARANTINE_RETRY_MS * 1000ULL;
    else
        s->quarantine_due_us = q.next_us;
}

long quarantine_timeout_ms(const scheduler_t *s)
{
    if (!s->quarantine_due_us)
        return -1;
    uint64_t now_us = time_now_us();
    if (s->quarantine_due_us <= now_us)
        return 0;
    uint64_t ms = (s->quarantine_due_us - now_us + 999) / 1000;
    return ms > 24ULL * 3600 * 1000 ? 24L * 3600 * 1000 : (long)ms;
}

void quarantine_reconfigure(scheduler_t *s)
{
    if (s->quarantine_due_us)
        s->quarantine_due_us = 1;            /* the sweep finds the new due time */
}

/* ------------------------------------------------------------ listing */

/* quarantine_matches - does the filter (NULL: all; "@domain"; an address)
 * take recipient i of env?  Its final address and the one the client
 * gave both count. */
static bool quarantine_matches(const Recipient *r, const char *filter)
{
    if (!filter)
        return true;
    const char *addrs[2] = {r->address, r->original};
    for (size_t k = 0; k < 2; k++) {
        const char *a = addrs[k];
        if (!a || !a[0])
            continue;
        if (filter[0] == '@') {
            const char *at = strrchr(a, '@');
            if (at && strcasecmp(at + 1, filter + 1) == 0)
                return true;
        } else if (strcasecmp(a, filter) == 0) {
            return true;
        }
    }
    return false;
}

/* quarantine_subject - the Subject of env, decoded (RFC 2047), printable,
 * at most QUARANTINE_SUBJECT_MAX bytes; malloc'ed, "" when none. */
static char *quarantine_subject(const Envelope *env)
{
    const char *body = (const char *)env->body.data;
    size_t len = body ? env->body.len : 0;
    const char *blank = body ? memmem(body, len, "\r\n\r\n", 4) : NULL;
    if (blank)
        len = (size_t)(blank - body) + 2;
    if (len > QUARANTINE_HEADER_MAX)
        len = QUARANTINE_HEADER_MAX;
    mime_msg m = {0};
    mime_parse(body ? body : "", len, &m);
    const mime_header *h = mime_header_get(&m, "Subject", 0);
    const char *v = h ? (h->decoded ? h->decoded : h->value) : "";
    char out[QUARANTINE_SUBJECT_MAX + 1];
    /* log_printable keeps UTF-8 as bytes; only controls are replaced */
    size_t n = strlen(v) > QUARANTINE_SUBJECT_MAX ? QUARANTINE_SUBJECT_MAX : strlen(v);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[o] = '\0';
    mime_free(&m);
    return xstrdup(out);
}

/* quarantine_entry - the reply's entry for r: its held recipients that
 * filter takes (all held ones when NULL); NULL when there is none.  With
 * hits, the verdict's hits too. */
static QueueEntry *quarantine_entry(AdminReply *reply, const queue_rec *r, const char *filter,
                                    bool hits)
{
    const Envelope *env = r->env;
    QueueEntry *e = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const Recipient *rc = env->rcpt[i];
        if (r->rcpt[i].state != CORREIO__RCPT_STATE__RCPT_QUARANTINED
            || !quarantine_matches(rc, filter))
            continue;
        if (!e) {
            e = admin_reply_add_entry(reply, r->queue_id, "quarantine", env->reverse_path);
            e->arrival = env->received_at;
            e->size = env->body.data ? env->body.len : 0;
            e->score = quarantine_score(env);
            e->header_from = xstrdup(env->verdict && env->verdict->header_from
                                     ? env->verdict->header_from : "");
            e->subject = quarantine_subject(env);
        }
        admin_entry_add_rcpt(e, rc->address, r->rcpt[i].state, r->rcpt[i].status);
        Recipient *out = e->rcpt[e->n_rcpt - 1];
        out->original = xstrdup(rc->original ? rc->original : "");
        out->quarantined_at = quarantine_held_since(r, i);
    }
    if (e && hits && env->verdict && env->verdict->n_hits) {
        e->hits = xcalloc(env->verdict->n_hits, sizeof *e->hits);
        for (size_t i = 0; i < env->verdict->n_hits; i++)
            e->hits[e->n_hits++] = xstrdup(env->verdict->hits[i]);
    }
    return e;
}

typedef struct quarantine_list {
    AdminReply *reply;
    const char *filter;
    size_t      n;
    bool        truncated;
} quarantine_list;

static void quarantine_list_visit(void *ctx, const queue_rec *r)
{
    quarantine_list *l = ctx;
    if (l->n >= QUARANTINE_LIST_MAX) {
        for (size_t i = 0; i < r->n && !l->truncated; i++)
            l->truncated = r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_QUARANTINED
                           && quarantine_matches(r->env->rcpt[i], l->filter);
        return;
    }
    if (quarantine_entry(l->reply, r, l->filter, false))
        l->n++;
}

/* quarantine_arg_ok - an argument the verbs can take: bounded, no
 * control bytes, no white space. */
static bool quarantine_arg_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > QUARANTINE_ARG_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] <= 0x20 || a[i] == 0x7f)
            return false;
    return true;
}

static void quarantine_list_cmd(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    const char *filter = req->n_args ? req->args[0] : NULL;
    if (req->n_args > 1 || (filter && (!quarantine_arg_ok(filter) || !strchr(filter, '@')
                                       || (filter[0] == '@' && !filter[1])))) {
        admin_reply_text(reply, 2, "quarantine-list takes at most one ADDRESS or @DOMAIN");
        return;
    }
    quarantine_list l = {.reply = reply, .filter = filter};
    if (queue_scan(s->queue, quarantine_list_visit, &l, (size_t)-1) < 0) {
        admin_reply_text(reply, 1, "cannot read the queue");
        return;
    }
    admin_reply_text(reply, 0, "%zu message%s in quarantine%s", l.n, l.n == 1 ? "" : "s",
                     l.truncated ? " (list truncated)" : "");
}

static void quarantine_missing(AdminReply *reply, const char *id, const char *rcpt)
{
    char pid[64], prc[QUARANTINE_ARG_MAX + 1];
    admin_reply_text(reply, 1, "%s %s%s%s", QUARANTINE_MISSING_TEXT,
                     log_printable(pid, sizeof pid, id, strlen(id)), rcpt ? " " : "",
                     rcpt ? log_printable(prc, sizeof prc, rcpt, strlen(rcpt)) : "");
}

static void quarantine_show_cmd(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    if (req->n_args != 1) {
        admin_reply_text(reply, 2, "quarantine-show needs one queue id");
        return;
    }
    const char *id = req->args[0];
    queue_txn *t = queue_begin(s->queue, false);
    if (!t) {
        admin_reply_text(reply, 1, "cannot read the queue");
        return;
    }
    queue_rec *r = qid_valid(id, strlen(id)) ? queue_get(t, id) : NULL;
    if (!r || !quarantine_entry(reply, r, NULL, true)) {
        quarantine_missing(reply, id, NULL);
    } else {
        char *hdr = admin_header_section(r->env);
        admin_reply_text(reply, 0, "%s", hdr);
        xfree(&hdr);
    }
    queue_rec_free(&r);
    queue_abort(&t);
}

/* ------------------------------------------------------------ changes */

/* quarantine_change - release or delete the held recipients of ID that
 * RCPT names (ALL or none: every one), in one commit. */
static void quarantine_change_cmd(scheduler_t *s, const AdminRequest *req, AdminReply *reply,
                                  bool release)
{
    const char *verb = release ? "released" : "deleted";
    if (req->n_args < 1 || req->n_args > 2) {
        admin_reply_text(reply, 2, "%s needs a queue id and optionally RCPT or ALL",
                         req->command);
        return;
    }
    const char *id = req->args[0];
    const char *rcpt = req->n_args == 2 && strcmp(req->args[1], "ALL") != 0 ? req->args[1] : NULL;
    if (rcpt && !quarantine_arg_ok(rcpt)) {
        admin_reply_text(reply, 2, "%s: not a recipient address", req->command);
        return;
    }
    queue_txn *t = queue_begin(s->queue, true);
    if (!t) {
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        return;
    }
    queue_rec *r = qid_valid(id, strlen(id)) ? queue_get(t, id) : NULL;
    uint64_t now_us = time_now_us();
    bool *changed = xcalloc((r ? r->n : 0) + 1, sizeof *changed);
    size_t n_changed = 0;
    for (size_t i = 0; r && i < r->n; i++) {
        if (r->rcpt[i].state != CORREIO__RCPT_STATE__RCPT_QUARANTINED
            || !quarantine_matches(r->env->rcpt[i], rcpt))
            continue;
        if (release)
            quarantine_release(&r->rcpt[i]);
        else
            quarantine_drop(&r->rcpt[i], "deleted from quarantine by the operator", now_us);
        changed[i] = true;
        n_changed++;
    }
    if (n_changed == 0) {
        queue_abort(&t);
        quarantine_missing(reply, id, rcpt);
        xfree(&changed);
        queue_rec_free(&r);
        return;
    }
    bool finished = false, pending = false;
    int rc = release ? queue_put(t, r)
                     : notices_store(s->notices, t, r, now_us, &finished, &pending);
    if (rc != 0 || queue_commit(&t) != 0) {
        queue_abort(&t);
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        xfree(&changed);
        queue_rec_free(&r);
        return;
    }
    if (release) {                   /* the schedule follows the commit */
        size_t n_busy;
        sched_item *busy = sched_busy(s, &n_busy);
        sched_schedule_now(s, r, busy, n_busy, now_us);
        xfree(&busy);
    } else if (pending) {
        notices_want(s->notices, r->queue_id);
    }
    QueueEntry *e = admin_reply_add_entry(reply, r->queue_id, verb, r->env->reverse_path);
    for (size_t i = 0; i < r->n; i++) {
        if (!changed[i])
            continue;
        const Recipient *rc0 = r->env->rcpt[i];
        char to[300];
        log_info("%s: to=<%s>: %s from quarantine by the operator", r->queue_id,
                 log_printable(to, sizeof to, rc0->address, strlen(rc0->address)), verb);
        admin_entry_add_rcpt(e, rc0->address, r->rcpt[i].state, r->rcpt[i].status);
        e->rcpt[e->n_rcpt - 1]->original = xstrdup(rc0->original ? rc0->original : "");
    }
    if (finished)
        log_info("%s: removed", r->queue_id);
    admin_reply_text(reply, 0, "%s from quarantine: %zu recipient%s", verb, n_changed,
                     n_changed == 1 ? "" : "s");
    xfree(&changed);
    queue_rec_free(&r);
}

/* ------------------------------------------------------------ entry */

bool quarantine_admin(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    const char *cmd = req->command;
    if (strcmp(cmd, "quarantine-list") == 0)
        quarantine_list_cmd(s, req, reply);
    else if (strcmp(cmd, "quarantine-show") == 0)
        quarantine_show_cmd(s, req, reply);
    else if (strcmp(cmd, "quarantine-release") == 0)
        quarantine_change_cmd(s, req, reply, true);
    else if (strcmp(cmd, "quarantine-delete") == 0)
        quarantine_change_cmd(s, req, reply, false);
    else
        return false;
    return true;
}
