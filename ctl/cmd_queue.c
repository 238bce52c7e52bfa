/* cmd_queue.c - `correio queue list`: what the ingress spool and the
 * delivery queue hold, like Postfix's mailq; `correio queue hold|release
 * ID...|ALL`: the delivery queue's hold queue, like postsuper -h/-H.
 *
 * list asks each stage "queue-list" on its admin socket.  A message sits
 * in the ingress spool until delivery owns it, so for a moment it can
 * show in both.  A stage that does not answer is said so clearly, and
 * the exit status is then 1.  A held message shows a "!" after its queue
 * id, as in mailq.
 *
 * hold and release ask delivery "queue-hold"/"queue-release"; it has
 * committed the change when it answers.  They print what changed, and
 * exit 1 when an id is not in the delivery queue (the others are still
 * done) or delivery does not answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "admin.h"
#include "ctl.h"
#include "log.h"
#include "xalloc.h"

#define QUEUE_LIST_TIMEOUT_MS 5000
#define QUEUE_HOLD_TIMEOUT_MS 30000   /* ALL rewrites every record: one commit */

typedef struct queue_source {
    const char *stage;      /* "ingress" */
    const char *param;      /* its admin endpoint parameter */
    const char *what;       /* "ingress spool" */
} queue_source;

static const queue_source queue_sources[] = {
    {"ingress", "ingress_admin_endpoint", "ingress spool"},
    {"delivery", "delivery_admin_endpoint", "delivery queue"},
};
#define NSOURCES (sizeof(queue_sources) / sizeof(queue_sources[0]))

/* when - "Sun Nov 23 08:11:00" for microseconds since the epoch. */
static const char *when(char *dst, size_t size, uint64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    if (us == 0 || localtime_r(&t, &tm) == NULL || strftime(dst, size, "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(dst, size, "-");
    return dst;
}

static const char *rcpt_state(Correio__RcptState s)
{
    switch (s) {
    case CORREIO__RCPT_STATE__RCPT_PENDING:
        return "pending";
    case CORREIO__RCPT_STATE__RCPT_DELIVERED:
        return "delivered";
    case CORREIO__RCPT_STATE__RCPT_DEFERRED:
        return "deferred";
    case CORREIO__RCPT_STATE__RCPT_FAILED:
        return "failed";
    default:
        return "?";
    }
}

/* clean - stage text made printable and bounded for the terminal. */
static const char *clean(char *dst, size_t size, const char *s)
{
    return log_printable(dst, size, s ? s : "", s ? strlen(s) : 0);
}

static void print_entry(const QueueEntry *e)
{
    char t[64], id[64], idmark[70], state[32], sender[300], text[600];

    /* mailq's "!" after the id of a held message, in the column gap */
    snprintf(idmark, sizeof(idmark), "%s%s", clean(id, sizeof(id), e->queue_id),
             strcmp(e->state, "hold") == 0 ? "!" : "");
    printf("%-18s %-8s  %9llu  %-19s  %s\n", idmark,
           clean(state, sizeof(state), e->state), (unsigned long long)e->size,
           when(t, sizeof(t), e->arrival),
           e->sender[0] ? clean(sender, sizeof(sender), e->sender) : "<>");
    if (e->reason[0] || e->next_attempt) {
        printf("    (%s", e->reason[0] ? clean(text, sizeof(text), e->reason) : "");
        if (e->next_attempt)
            printf("%snext attempt %s", e->reason[0] ? "; " : "",
                   when(t, sizeof(t), e->next_attempt));
        printf(")\n");
    }
    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *r = e->rcpt[i];

        printf("    %s  %s", clean(sender, sizeof(sender), r->address), rcpt_state(r->state));
        if (r->attempts)
            printf("  attempts=%u", r->attempts);
        if (r->status_text[0])
            printf("  (%s)", clean(text, sizeof(text), r->status_text));
        printf("\n");
    }
}

static int queue_list(const ctl_opts *o)
{
    AdminReply *replies[NSOURCES] = {NULL};
    char *errors[NSOURCES] = {NULL};
    config_t *cfg = ctl_load_config(o);
    bool header = false;
    void *zctx;
    int rc = 0;

    if ((zctx = zmq_ctx_new()) == NULL) {
        ctl_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        config_free(&cfg);
        return 1;
    }
    for (size_t i = 0; i < NSOURCES; i++) {
        const char *endpoint = config_str(cfg, queue_sources[i].param);

        replies[i] = ctl_admin_call(zctx, endpoint, "queue-list",
                                    QUEUE_LIST_TIMEOUT_MS, &errors[i]);
        if (replies[i] && replies[i]->status != 0) {
            errors[i] = xasprintf("it answered status %d: %s", replies[i]->status,
                                  replies[i]->text);
            wire_free_admin_reply(&replies[i]);
        }
    }
    zmq_ctx_term(zctx);

    for (size_t i = 0; i < NSOURCES; i++) {
        if (replies[i] == NULL)
            continue;
        for (size_t j = 0; j < replies[i]->n_entries; j++) {
            if (!header)
                printf("%-17s  %-8s  %9s  %-19s  %s\n",
                       "QUEUE-ID", "STATE", "SIZE", "ARRIVAL", "SENDER");
            header = true;
            print_entry(replies[i]->entries[j]);
        }
    }
    for (size_t i = 0; i < NSOURCES; i++) {
        if (replies[i])
            continue;
        ctl_error("%s does not answer, so the %s is not listed: %s (is correio running?)",
                  queue_sources[i].stage, queue_sources[i].what, errors[i]);
        rc = 1;
    }
    /* "-- 2 messages in the ingress spool, 0 in the delivery queue" */
    printf("--");
    for (size_t i = 0; i < NSOURCES; i++) {
        printf("%s", i == 0 ? " " : ", ");
        if (replies[i])
            printf("%zu", replies[i]->n_entries);
        else
            printf("?");
        if (i == 0)
            printf(" message%s", replies[i] && replies[i]->n_entries == 1 ? "" : "s");
        printf(" in the %s%s", queue_sources[i].what, replies[i] ? "" : " (no answer)");
        wire_free_admin_reply(&replies[i]);
        free(errors[i]);
    }
    printf("\n");
    config_free(&cfg);
    return rc;
}

/* queue_hold - `queue hold ID...|ALL` (hold true) and `queue release`. */
static int queue_hold(const ctl_opts *o, bool hold, int argc, char **argv)
{
    const char *command = hold ? "queue-hold" : "queue-release";
    config_t *cfg = ctl_load_config(o);
    const char *endpoint = config_str(cfg, "delivery_admin_endpoint");
    const char **args = xcalloc((size_t)argc + 1, sizeof(*args));
    AdminReply *reply = NULL;
    char *err = NULL, text[600];
    void *zctx;
    int rc = 0;

    for (int i = 0; i < argc; i++)
        args[i] = argv[i];
    if ((zctx = zmq_ctx_new()) == NULL) {
        ctl_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        xfree(&args);
        config_free(&cfg);
        return 1;
    }
    /* as ctl_admin_call, with arguments: fail at once if nobody listens */
    if (ctl_ipc_listening(endpoint) == 0)
        err = xasprintf("nothing listens on %s", endpoint + 6);
    else
        reply = admin_call(zctx, endpoint, command, args, QUEUE_HOLD_TIMEOUT_MS, &err);
    zmq_ctx_term(zctx);
    xfree(&args);

    if (reply == NULL) {
        ctl_error("delivery does not answer, so %s is not confirmed: %s (is correio running?)",
                  hold ? "hold" : "release", err ? err : "no answer");
        rc = 1;
    } else {
        /* postsuper: "Placed on hold: 1 message"; then why not all were */
        printf("correio: %s: %zu message%s\n", hold ? "placed on hold" : "released from hold",
               reply->n_entries, reply->n_entries == 1 ? "" : "s");
        if (reply->status != 0) {
            ctl_error("%s", clean(text, sizeof(text), reply->text));
            rc = 1;
        }
    }
    free(err);
    wire_free_admin_reply(&reply);
    config_free(&cfg);
    return rc;
}

int cmd_queue(const ctl_opts *o, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return queue_list(o);
    if (argc >= 2 && (strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "release") == 0)) {
        if (argc == 2)
            return ctl_usage_error("queue", "queue %s needs queue ids or ALL", argv[1]);
        return queue_hold(o, strcmp(argv[1], "hold") == 0, argc - 2, argv + 2);
    }
    return ctl_usage_error("queue", "queue needs list, hold or release");
}
