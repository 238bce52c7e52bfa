/* queue_admin.c - the operator's verbs on the delivery queue, answered
 * over the admin socket (`correio queue ...`, see scheduler.h):
 *
 *   queue-list                 every message, mailq's facts
 *   queue-show ID              one message: state and header section
 *   queue-hold IDs|ALL [Q]     postsuper -h: never tried until released
 *   queue-release IDs|ALL      postsuper -H: tried at once
 *   queue-delete IDs|ALL [Q]   postsuper -d: gone, no bounce
 *   queue-requeue IDs|ALL [Q]  retried now, backoff forgotten
 *   queue-flush                postqueue -f: every deferred message now
 *   quarantine-*               held spam: see quarantine.c
 *
 * Q limits ALL to one queue: active, deferred or hold.  Every change is
 * one write transaction, committed before the schedule changes and
 * before the reply: the reply lists each message whose state changed (a
 * message already in the wanted state is left alone and not listed); ids
 * not in the queue make status 1 and are named in the text, the others
 * are still done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin.h"
#include "log.h"
#include "scheduler_int.h"
#include "timeutil.h"
#include "xalloc.h"

#define ADMIN_LIST_MAX  10000          /* queue-list entries per reply */
#define ADMIN_HOLD_TEXT "put on hold by the operator"
#define ADMIN_SHOW_MAX  (64 * 1024)    /* header bytes queue-show returns */

/* ------------------------------------------------------------ listing */

/* admin_entry - one QueueEntry for r. */
static QueueEntry *admin_entry(AdminReply *reply, const queue_rec *r)
{
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
    QueueEntry *e = admin_reply_add_entry(reply, r->queue_id, state, env->reverse_path);
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
    return e;
}

static void admin_list_visit(void *ctx, const queue_rec *r)
{
    admin_entry(ctx, r);
}

/* admin_header_section - the fields correio prepended and the client's
 * header up to the empty line, at most ADMIN_SHOW_MAX bytes, printable. */
char *admin_header_section(const Envelope *env)
{
    size_t cap = ADMIN_SHOW_MAX + 1, len = 0;
    char *out = xmalloc(cap);
    for (size_t i = 0; i < env->n_prepend_headers && len < ADMIN_SHOW_MAX; i++) {
        size_t k = env->prepend_headers[i].len;
        if (k > ADMIN_SHOW_MAX - len)
            k = ADMIN_SHOW_MAX - len;
        memcpy(out + len, env->prepend_headers[i].data, k);
        len += k;
    }
    const char *body = (const char *)env->body.data;
    size_t blen = body ? env->body.len : 0, end = blen;
    const char *blank = body ? memmem(body, blen, "\r\n\r\n", 4) : NULL;
    if (blank)
        end = (size_t)(blank - body) + 2;
    if (end > ADMIN_SHOW_MAX - len)
        end = ADMIN_SHOW_MAX - len;
    if (end)
        memcpy(out + len, body, end);
    len += end;
    /* CR goes, the rest is kept printable for a terminal */
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '\r')
            continue;
        out[w++] = (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
    }
    out[w] = '\0';
    return out;
}

static void admin_show(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    if (req->n_args != 1) {
        admin_reply_text(reply, 2, "queue-show needs one queue id");
        return;
    }
    const char *id = req->args[0];
    queue_txn *t = queue_begin(s->queue, false);
    if (!t) {
        admin_reply_text(reply, 1, "cannot read the queue");
        return;
    }
    queue_rec *r = qid_valid(id, strlen(id)) ? queue_get(t, id) : NULL;
    if (!r) {
        char pid[64];
        admin_reply_text(reply, 1, "not in the delivery queue: %s",
                         log_printable(pid, sizeof pid, id, strlen(id)));
    } else {
        admin_entry(reply, r);
        char *hdr = admin_header_section(r->env);
        admin_reply_text(reply, 0, "%s", hdr);
        xfree(&hdr);
    }
    queue_rec_free(&r);
    queue_abort(&t);
}

/* ------------------------------------------------------------ selection */

/* A list of queue ids (owned copies). */
typedef struct admin_ids {
    char  **id;
    size_t  n, cap;
} admin_ids;

static void admin_ids_add(admin_ids *l, const char *id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->id = xrealloc(l->id, l->cap * sizeof *l->id);
    }
    l->id[l->n++] = xstrdup(id);
}

static void admin_ids_free(admin_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        xfree(&l->id[i]);
    xfree(&l->id);
    l->n = l->cap = 0;
}

typedef struct admin_scan {
    admin_ids  *ids;
    const char *queue;           /* "active", "deferred", "hold" or NULL: all */
} admin_scan;

static void admin_scan_visit(void *ctx, const queue_rec *r)
{
    admin_scan *a = ctx;
    if (!a->queue || strcmp(sched_rec_state(r), a->queue) == 0)
        admin_ids_add(a->ids, r->queue_id);
}

/* admin_select - the ids a verb names: args are ids, or "ALL" and an
 * optional queue name.  false (reply filled) on a usage error. */
static bool admin_select(scheduler_t *s, const AdminRequest *req, AdminReply *reply,
                         admin_ids *want)
{
    if (req->n_args == 0) {
        admin_reply_text(reply, 2, "%s needs queue ids or ALL", req->command);
        return false;
    }
    if (strcmp(req->args[0], "ALL") != 0) {
        for (size_t i = 0; i < req->n_args; i++)
            admin_ids_add(want, req->args[i]);
        return true;
    }
    const char *queue = req->n_args > 1 ? req->args[1] : NULL;
    if (req->n_args > 2 || (queue && strcmp(queue, "active") != 0
                            && strcmp(queue, "deferred") != 0 && strcmp(queue, "hold") != 0)) {
        admin_reply_text(reply, 2, "%s: after ALL only a queue name: active, deferred or hold",
                         req->command);
        return false;
    }
    admin_scan a = {.ids = want, .queue = queue};
    if (queue_scan(s->queue, admin_scan_visit, &a, (size_t)-1) < 0) {
        admin_reply_text(reply, 1, "cannot read the queue");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ changes */

typedef enum { ADMIN_HOLD, ADMIN_RELEASE, ADMIN_DELETE, ADMIN_REQUEUE } admin_verb;

static const char *const admin_done_text[] = {
    [ADMIN_HOLD] = "placed on hold", [ADMIN_RELEASE] = "released from hold",
    [ADMIN_DELETE] = "deleted", [ADMIN_REQUEUE] = "requeued",
};

/* admin_change - apply verb to r in memory; false when r is already as
 * the verb wants it (nothing to write). */
static bool admin_change(admin_verb verb, queue_rec *r)
{
    switch (verb) {
    case ADMIN_HOLD:
        if (r->hold)
            return false;
        queue_rec_set_hold(r, true, ADMIN_HOLD_TEXT);
        return true;
    case ADMIN_RELEASE:
        if (!r->hold)
            return false;
        queue_rec_set_hold(r, false, NULL);
        return true;
    case ADMIN_DELETE:
        return true;
    case ADMIN_REQUEUE: {
        bool any = false;
        for (size_t i = 0; i < r->n; i++) {
            if (queue_rcpt_active(r->rcpt[i].state)) {
                r->rcpt[i].next_us = 0;
                any = true;
            }
        }
        return any && !r->hold;
    }
    }
    return false;
}

/* admin_follow - the schedule follows the committed changes. */
static void admin_follow(scheduler_t *s, admin_verb verb, queue_rec **changed, size_t n)
{
    if (verb == ADMIN_HOLD || verb == ADMIN_DELETE || verb == ADMIN_REQUEUE) {
        const char **ids = xcalloc(n + 1, sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = changed[i]->queue_id;
        qsort(ids, n, sizeof *ids, sched_qid_cmp);
        sched_heap_remove_ids(&s->heap, ids, n);
        xfree(&ids);
    }
    if (verb == ADMIN_RELEASE || verb == ADMIN_REQUEUE) {
        size_t n_busy;
        sched_item *busy = sched_busy(s, &n_busy);
        uint64_t now_us = time_now_us();
        for (size_t i = 0; i < n; i++)
            sched_schedule_now(s, changed[i], busy, n_busy, now_us);
        xfree(&busy);
    }
}

static void admin_missing_text(AdminReply *reply, const admin_ids *missing)
{
    char *text = xstrdup("not in the delivery queue:");
    for (size_t i = 0; i < missing->n; i++) {
        char id[64];
        char *more = xasprintf("%s %s", text, log_printable(id, sizeof id, missing->id[i],
                                                            strlen(missing->id[i])));
        xfree(&text);
        text = more;
    }
    admin_reply_text(reply, 1, "%s", text);
    xfree(&text);
}

/* admin_apply - hold, release, delete or requeue the selected messages. */
static void admin_apply(scheduler_t *s, const AdminRequest *req, AdminReply *reply,
                        admin_verb verb)
{
    admin_ids want = {0}, missing = {0};
    if (!admin_select(s, req, reply, &want))
        return;
    queue_txn *t = queue_begin(s->queue, true);
    if (!t) {
        admin_ids_free(&want);
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        return;
    }
    queue_rec **changed = xcalloc(want.n + 1, sizeof *changed);
    size_t n_changed = 0;
    bool ok = true;
    uint64_t now_us = time_now_us();
    for (size_t i = 0; ok && i < want.n; i++) {
        const char *id = want.id[i];
        queue_rec *rec = qid_valid(id, strlen(id)) ? queue_get(t, id) : NULL;
        if (!rec) {
            admin_ids_add(&missing, id);
            continue;
        }
        if (!admin_change(verb, rec)) {
            queue_rec_free(&rec);
            continue;
        }
        ok = verb == ADMIN_DELETE ? queue_finish(t, id, now_us) == 0 : queue_put(t, rec) == 0;
        changed[n_changed++] = rec;
    }
    if (!ok || queue_commit(&t) != 0) {
        queue_abort(&t);
        for (size_t i = 0; i < n_changed; i++)
            queue_rec_free(&changed[i]);
        xfree(&changed);
        admin_ids_free(&want);
        admin_ids_free(&missing);
        admin_reply_text(reply, 1, "cannot write the queue; nothing changed");
        return;
    }
    admin_follow(s, verb, changed, n_changed);
    for (size_t i = 0; i < n_changed; i++) {
        const queue_rec *r = changed[i];
        log_info("%s: %s by the operator", r->queue_id, admin_done_text[verb]);
        admin_reply_add_entry(reply, r->queue_id,
                              verb == ADMIN_DELETE ? "deleted" : sched_rec_state(r),
                              r->env->reverse_path);
        queue_rec_free(&changed[i]);
    }
    xfree(&changed);
    if (missing.n)
        admin_missing_text(reply, &missing);
    else
        admin_reply_text(reply, 0, "%s: %zu message%s", admin_done_text[verb], n_changed,
                         n_changed == 1 ? "" : "s");
    admin_ids_free(&want);
    admin_ids_free(&missing);
}

static void admin_flush(scheduler_t *s, AdminReply *reply)
{
    static char *const args[] = {"ALL", "deferred"};
    AdminRequest req = CORREIO__ADMIN_REQUEST__INIT;
    req.command = "queue-flush";
    req.n_args = 2;
    req.args = (char **)args;
    admin_apply(s, &req, reply, ADMIN_REQUEUE);
    if (reply->status == 0)
        admin_reply_text(reply, 0, "%zu message%s scheduled", reply->n_entries,
                         reply->n_entries == 1 ? "" : "s");
}

/* ------------------------------------------------------------ entry */

void scheduler_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    scheduler_t *s = ctx;
    const char *cmd = req->command;
    if (strcmp(cmd, "queue-list") == 0) {
        long n = queue_scan(s->queue, admin_list_visit, reply, ADMIN_LIST_MAX);
        if (n < 0)
            admin_reply_text(reply, 1, "cannot read the queue");
        else
            admin_reply_text(reply, 0, "%ld envelope%s%s", n, n == 1 ? "" : "s",
                             n == ADMIN_LIST_MAX ? " (list truncated)" : "");
    } else if (strcmp(cmd, "queue-show") == 0) {
        admin_show(s, req, reply);
    } else if (strcmp(cmd, "queue-hold") == 0) {
        admin_apply(s, req, reply, ADMIN_HOLD);
    } else if (strcmp(cmd, "queue-release") == 0) {
        admin_apply(s, req, reply, ADMIN_RELEASE);
    } else if (strcmp(cmd, "queue-delete") == 0) {
        admin_apply(s, req, reply, ADMIN_DELETE);
    } else if (strcmp(cmd, "queue-requeue") == 0) {
        admin_apply(s, req, reply, ADMIN_REQUEUE);
    } else if (strcmp(cmd, "queue-flush") == 0) {
        admin_flush(s, reply);
    } else if (quarantine_admin(s, req, reply) || drain_admin(s, req, reply)) {
        /* answered */
    } else if (strcmp(cmd, "stats") == 0) {
        char out[256];
        outbound_stats(s->outbound, out, sizeof out);
        admin_reply_text(reply, 0,
                         "received=%llu duplicates=%llu delivered=%llu deferred=%llu "
                         "failed=%llu quarantined=%llu scheduled=%zu local_jobs=%zu "
                         "outbound_jobs=%zu notices=%zu %s",
                         s->n_received, s->n_duplicates, s->n_delivered, s->n_deferred,
                         s->n_failed, s->n_quarantined, s->heap.n, s->n_local, s->n_outbound,
                         notices_outstanding(s->notices), out);
    } else {
        admin_reply_text(reply, 2, "unknown command");
    }
}
