/* ingress_admin.c - "queue-list": one QueueEntry per spool entry, with
 * the time of its next send from the pipeline. */
#include <string.h>
#include "ingress.h"
#include "ingress_admin.h"
#include "log.h"
#include "pipeline.h"
#include "spool.h"

typedef struct {
    ingress_t  *ig;
    AdminReply *reply;
} list_ctx;

/* list_one - one spool entry into the reply. */
static void list_one(void *arg, const char *qid, const void *data, size_t len)
{
    list_ctx *c = arg;
    Envelope *e = wire_unpack_envelope(data, len, "spool");
    QueueEntry *q;
    uint64_t next = 0;

    if (!e) {
        q = admin_reply_add_entry(c->reply, qid, "spool", "");
        admin_entry_set_reason(q, "spool entry does not decode");
        return;
    }
    q = admin_reply_add_entry(c->reply, qid, "spool", e->reverse_path);
    q->arrival = e->received_at;
    q->size = e->body.len;      /* the client's message, as delivery reports it */
    for (size_t i = 0; i < e->n_rcpt; i++)
        admin_entry_add_rcpt(q, e->rcpt[i]->address, CORREIO__RCPT_STATE__RCPT_PENDING, "");
    if (pipeline_next_attempt(c->ig->pipeline, qid, &next))
        q->next_attempt = next;
    wire_free_envelope(&e);
}

void ingress_admin_handle(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    ingress_t *ig = ctx;

    if (strcmp(req->command, "queue-list") == 0) {
        list_ctx c = { ig, reply };
        size_t n = spool_foreach(ig->spool, list_one, &c);
        admin_reply_text(reply, 0, "%zu message%s in the spool", n, n == 1 ? "" : "s");
        return;
    }
    admin_reply_text(reply, 2, "unknown command");
}
