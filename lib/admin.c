/* admin.c - the admin socket every stage answers, and the client side.
 *
 * The server side owns every string and array it puts into a reply (via
 * the helpers below) and frees them after the reply is sent, so a stage's
 * handler never deals with protobuf-c memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "admin.h"
#include "curve.h"
#include "health.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

/* own_free - free a string the helpers allocated (not protobuf-c's ""). */
static void own_free(char *s)
{
    if (s && s != protobuf_c_empty_string)
        free(s);
}

static void reply_release(AdminReply *reply)
{
    own_free(reply->text);
    reply->text = NULL;
    for (size_t i = 0; i < reply->n_entries; i++) {
        QueueEntry *e = reply->entries[i];

        own_free(e->queue_id);
        own_free(e->state);
        own_free(e->sender);
        own_free(e->reason);
        own_free(e->header_from);
        own_free(e->subject);
        for (size_t j = 0; j < e->n_hits; j++)
            own_free(e->hits[j]);
        free(e->hits);
        for (size_t j = 0; j < e->n_rcpt; j++) {
            own_free(e->rcpt[j]->address);
            own_free(e->rcpt[j]->status_text);
            own_free(e->rcpt[j]->original);
            free(e->rcpt[j]);
        }
        free(e->rcpt);
        free(e);
    }
    free(reply->entries);
    reply->entries = NULL;
    reply->n_entries = 0;
}

void admin_reply_text(AdminReply *reply, int status, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        log_panic("admin_reply_text: out of memory");
    va_end(ap);
    own_free(reply->text);
    reply->text = s;
    reply->status = status;
}

QueueEntry *admin_reply_add_entry(AdminReply *reply, const char *queue_id,
                                  const char *state, const char *sender)
{
    QueueEntry *e = xmalloc(sizeof(*e));

    correio__queue_entry__init(e);
    e->queue_id = xstrdup(queue_id ? queue_id : "");
    e->state = xstrdup(state ? state : "");
    e->sender = xstrdup(sender ? sender : "");
    reply->entries = xrealloc(reply->entries, (reply->n_entries + 1) * sizeof(*reply->entries));
    reply->entries[reply->n_entries++] = e;
    return e;
}

void admin_entry_add_rcpt(QueueEntry *entry, const char *address,
                          Correio__RcptState state, const char *status_text)
{
    Recipient *r = xmalloc(sizeof(*r));

    correio__recipient__init(r);
    r->address = xstrdup(address ? address : "");
    r->state = state;
    r->status_text = xstrdup(status_text ? status_text : "");
    entry->rcpt = xrealloc(entry->rcpt, (entry->n_rcpt + 1) * sizeof(*entry->rcpt));
    entry->rcpt[entry->n_rcpt++] = r;
}

void admin_entry_set_reason(QueueEntry *entry, const char *reason)
{
    own_free(entry->reason);
    entry->reason = xstrdup(reason ? reason : "");
}

/* admin_serve - one request in, exactly one reply out (REP must answer). */
void admin_serve(void *rep, const char *stage, admin_handler handler, void *ctx)
{
    AdminReply reply = CORREIO__ADMIN_REPLY__INIT;
    AdminRequest *req;
    zmq_msg_t msg;
    uint8_t *out;
    size_t len;
    int more;
    size_t more_len = sizeof(more);

    if (zmq_msg_init(&msg) != 0)
        log_panic("admin_serve: zmq_msg_init: %s", zmq_strerror(zmq_errno()));
    if (zmq_msg_recv(&msg, rep, ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
            log_warn("admin socket receive: %s", zmq_strerror(zmq_errno()));
        zmq_msg_close(&msg);
        return;
    }
    /* a REQ peer sends one frame; swallow any extra parts */
    while (zmq_getsockopt(rep, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        if (zmq_msg_recv(&extra, rep, 0) < 0) {
            zmq_msg_close(&extra);
            break;
        }
        zmq_msg_close(&extra);
    }
    reply.version = WIRE_VERSION;
    req = wire_unpack_admin_request(zmq_msg_data(&msg), zmq_msg_size(&msg), "admin socket");
    zmq_msg_close(&msg);

    if (req == NULL) {
        admin_reply_text(&reply, 1, "bad request frame");
    } else if (req->command && strcmp(req->command, "ping") == 0) {
        char host[256] = "";

        gethostname(host, sizeof(host) - 1);
        admin_reply_text(&reply, 0, "%s %s pid=%ld", stage, host, (long)getpid());
    } else if (req->command && strcmp(req->command, "ready") == 0) {
        char why[256];          /* the stage's check (health.h); HTTP /ready asks this too */

        if (health_ready(why, sizeof(why)))
            admin_reply_text(&reply, 0, "%s ready", stage);
        else
            admin_reply_text(&reply, 1, "%s not ready: %s", stage, why);
    } else {
        reply.status = 2;
        if (handler)
            handler(ctx, req, &reply);
        if (reply.status == 2 && (reply.text == NULL || reply.text == protobuf_c_empty_string)
            && reply.n_entries == 0)
            admin_reply_text(&reply, 2, "unknown command");
    }
    if (reply.text == NULL)
        reply.text = (char *)protobuf_c_empty_string;

    out = wire_pack_admin_reply(&reply, &len);
    while (zmq_send(rep, out, len, 0) < 0) {
        if (zmq_errno() == EINTR)
            continue;
        log_warn("admin socket send: %s", zmq_strerror(zmq_errno()));
        break;
    }
    free(out);
    reply_release(&reply);
    wire_free_admin_request(&req);
}

AdminReply *admin_call(void *zctx, const char *endpoint, const char *command,
                       const char *const *args, int timeout_ms, char **err)
{
    AdminRequest req = CORREIO__ADMIN_REQUEST__INIT;
    AdminReply *reply = NULL;
    void *sock;
    uint8_t *out;
    size_t len, nargs = 0;
    int64_t deadline = time_mono_ms() + timeout_ms;
    zmq_msg_t msg;

    *err = NULL;
    while (args && args[nargs])
        nargs++;
    req.version = WIRE_VERSION;
    req.command = (char *)command;
    req.n_args = nargs;
    req.args = (char **)args;
    out = wire_pack_admin_request(&req, &len);

    sock = zmq_util_socket(zctx, ZMQ_REQ, 1);
    if (curve_client_setup(sock, endpoint, NULL, err) != 0)   /* CurveZMQ off loopback */
        goto done;
    if (zmq_connect(sock, endpoint) != 0) {
        *err = xasprintf("cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_util_set_timeout(sock, timeout_ms);
    if (zmq_send(sock, out, len, 0) < 0) {
        *err = xasprintf("cannot send to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    for (;;) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int64_t left = deadline - time_mono_ms();
        int rc;

        if (left < 0)
            left = 0;
        rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0) {
            *err = xasprintf("poll on %s: %s", endpoint, zmq_strerror(zmq_errno()));
            goto done;
        }
        if (rc == 0) {
            *err = xasprintf("no answer from %s within %d ms", endpoint, timeout_ms);
            goto done;
        }
        break;
    }
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
        *err = xasprintf("receive from %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_msg_close(&msg);
        goto done;
    }
    reply = wire_unpack_admin_reply(zmq_msg_data(&msg), zmq_msg_size(&msg), endpoint);
    if (reply == NULL)
        *err = xasprintf("bad reply from %s (%zu bytes)", endpoint, zmq_msg_size(&msg));
    zmq_msg_close(&msg);
done:
    zmq_close(sock);
    free(out);
    return reply;
}
