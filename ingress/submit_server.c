/* submit_server.c - the ingress's submit socket (see submit_server.h).
 *
 * Requests are handled in the event loop as they come: check, make the
 * envelope (queue id, origin, arrival time, our Received: line), pack it
 * and queue it for the spool's next group commit with this server as the
 * cookie.  The spool hands puts back in the order they were queued, so
 * the requests waiting for their commit are a FIFO; each remembers the
 * caller's routing identity and ref for the reply.
 *
 * A ref is the request's idempotency key: the spool remembers each ref
 * with the queue id it got (spool_put_ref, in the message's own commit),
 * and a request whose ref is known answers status 0 with that queue id
 * and stores nothing new.  So a caller whose reply got lost (or that
 * crashed before writing down the answer) may send the same request
 * again without making a second copy.
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "address.h"
#include "log.h"
#include "pipeline.h"
#include "qid.h"
#include "received.h"
#include "smtp_command.h"
#include "submit_server.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"
#include "zmq_util.h"

#define FROM_NAME     "submit socket"   /* in "dropped bad frame from ..." */
#define IDENTITY_MAX  255               /* ZeroMQ routing ids are at most this */
#define LISTENER_MAX  16
#define REF_LOG_MAX   100

/* One request written to the spool, waiting for its commit. */
typedef struct submit_job {
    struct submit_job *next;
    uint8_t  identity[IDENTITY_MAX];
    size_t   identity_len;
    char    *ref;
    char     qid[QID_LEN + 1];
    char     sender[300];       /* printable, for the log */
    size_t   size, nrcpt;
} submit_job;

struct submit_server {
    ingress_t  *ig;
    void       *sock;
    submit_job *head, *tail;    /* in spool order */
    size_t      pending;
};

submit_server_t *submit_server_new(ingress_t *ig, void *zctx, const char *endpoint, int hwm)
{
    submit_server_t *ss = xcalloc(1, sizeof(*ss));

    ss->ig = ig;
    ss->sock = zmq_util_socket(zctx, ZMQ_ROUTER, hwm);
    zmq_util_bind(ss->sock, endpoint);
    return ss;
}

void submit_server_free(submit_server_t **ssp)
{
    submit_server_t *ss = *ssp;

    if (!ss)
        return;
    while (ss->head) {
        submit_job *j = ss->head;
        ss->head = j->next;
        xfree(&j->ref);
        xfree(&j);
    }
    if (zmq_close(ss->sock) != 0)
        log_warn("submit socket: close: %s", zmq_strerror(zmq_errno()));
    xfree(ssp);
}

void *submit_server_socket(submit_server_t *ss)
{
    return ss->sock;
}

bool submit_server_owns(const submit_server_t *ss, const void *cookie)
{
    return ss && cookie == ss;
}

size_t submit_server_pending(const submit_server_t *ss)
{
    return ss ? ss->pending : 0;
}

/* reply - [identity][empty][SubmitReply] without blocking.  A ROUTER
 * drops what it cannot deliver (the caller went away, or its queue is
 * full): the caller then asks again. */
static void reply(submit_server_t *ss, const void *identity, size_t identity_len,
                  const char *ref, int status, const char *qid, const char *text)
{
    SubmitReply r = CORREIO__SUBMIT_REPLY__INIT;
    uint8_t *packed;
    size_t len;

    r.version = WIRE_VERSION;
    r.ref = (char *)ref;
    r.status = status;
    r.queue_id = (char *)qid;
    r.text = (char *)text;
    packed = wire_pack_submit_reply(&r, &len);
    if (zmq_send(ss->sock, identity, identity_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0
        || zmq_send(ss->sock, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0
        || zmq_send(ss->sock, packed, len, ZMQ_DONTWAIT) < 0)
        log_warn("submit socket: reply for ref %s not sent: %s", ref, zmq_strerror(zmq_errno()));
    xfree(&packed);
}

/* path_ok - is address a valid path (without the brackets)?  The null
 * path "" only when allow_null. */
static bool path_ok(const char *address, bool allow_null)
{
    char bracketed[ADDR_PATH_MAX + 3];
    size_t n = strlen(address), used = 0;
    smtp_path path;

    if (n > ADDR_PATH_MAX)
        return false;
    bracketed[0] = '<';
    memcpy(bracketed + 1, address, n);
    bracketed[n + 1] = '>';
    bracketed[n + 2] = '\0';
    return smtp_path_parse(bracketed, n + 2, allow_null, &path, &used) == PATH_OK
           && used == n + 2;
}

/* crlf_ok - does every line of data end in CRLF, with no bare CR or LF? */
static bool crlf_ok(const uint8_t *data, size_t len)
{
    if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
        return false;
    for (const uint8_t *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p)));
         p++)
        if (p == data || p[-1] != '\r')
            return false;
    for (const uint8_t *p = data, *end = data + len; (p = memchr(p, '\r', (size_t)(end - p)));
         p++)
        if (p + 1 == end || p[1] != '\n')
            return false;
    return true;
}

/* header_field_ok - one prepended header field: "Name: ...", CRLF line
 * ends, continuation lines start with white space, no NUL. */
static bool header_field_ok(const ProtobufCBinaryData *h)
{
    size_t name = 0;

    while (name < h->len && h->data[name] > ' ' && h->data[name] < 0x7f && h->data[name] != ':')
        name++;
    if (name == 0 || name == h->len || h->data[name] != ':' || memchr(h->data, 0, h->len)
        || !crlf_ok(h->data, h->len))
        return false;
    for (size_t i = 0; i + 2 < h->len; i++)
        if (h->data[i] == '\n' && h->data[i + 1] != ' ' && h->data[i + 1] != '\t')
            return false;
    return true;
}

/* listener_name - the request's client.listener if it is a short word,
 * else "submit". */
static const char *listener_name(const Envelope *e)
{
    const char *l = e->client && e->client->listener ? e->client->listener : "";
    size_t n = strlen(l);

    if (n == 0 || n > LISTENER_MAX || strspn(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return "submit";
    return l;
}

/* check_request - can e be taken?  0, or the status (4, 5) with the
 * reply text in why. */
static int check_request(submit_server_t *ss, const Envelope *e, char *why, size_t size)
{
    ingress_t *ig = ss->ig;
    char a[300];

    if (ig->unacked >= ig->spool_message_limit) {
        snprintf(why, size, "451 4.3.1 Insufficient system storage");
        return 4;
    }
    if (e->n_rcpt > ig->rcpt_limit) {
        snprintf(why, size, "552 5.5.3 Error: too many recipients (%zu, limit %u)", e->n_rcpt,
                 ig->rcpt_limit);
        return 5;
    }
    if (!path_ok(e->reverse_path, true)) {
        log_printable(a, sizeof(a), e->reverse_path, strlen(e->reverse_path));
        snprintf(why, size, "553 5.1.7 Bad sender address syntax: <%s>", a);
        return 5;
    }
    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *r = e->rcpt[i];
        log_printable(a, sizeof(a), r->address, strlen(r->address));
        if (!r->address[0] || !path_ok(r->address, false)) {
            snprintf(why, size, "553 5.1.3 Bad recipient address syntax: <%s>", a);
            return 5;
        }
        if (!smtp_notify_valid(r->notify)) {
            snprintf(why, size, "501 5.5.4 Bad NOTIFY value %u for <%s>", r->notify, a);
            return 5;
        }
        if (r->orcpt[0] && !smtp_orcpt_valid(r->orcpt)) {
            snprintf(why, size, "501 5.5.4 Bad ORCPT for <%s>", a);
            return 5;
        }
    }
    if (!smtp_envid_valid(e->envid)) {
        snprintf(why, size, "501 5.5.4 Bad ENVID");
        return 5;
    }
    if (e->ret != CORREIO__DSN_RET__RET_UNSPECIFIED && e->ret != CORREIO__DSN_RET__RET_FULL
        && e->ret != CORREIO__DSN_RET__RET_HDRS) {
        snprintf(why, size, "501 5.5.4 Bad RET value %d", (int)e->ret);
        return 5;
    }
    if (e->body_type != CORREIO__BODY_TYPE__BODY_UNSPECIFIED
        && e->body_type != CORREIO__BODY_TYPE__BODY_7BIT
        && e->body_type != CORREIO__BODY_TYPE__BODY_8BITMIME) {
        snprintf(why, size, "501 5.5.4 Bad body type %d", (int)e->body_type);
        return 5;
    }
    if (e->body.len == 0) {
        snprintf(why, size, "554 5.6.0 Error: message has no content");
        return 5;
    }
    if (ig->message_size_limit && e->body.len > ig->message_size_limit) {
        snprintf(why, size, "552 5.3.4 Message size exceeds fixed limit");
        return 5;
    }
    if (!crlf_ok(e->body.data, e->body.len)) {
        snprintf(why, size, "554 5.6.0 Error: message content must end its lines with CRLF");
        return 5;
    }
    for (size_t i = 0; i < e->n_prepend_headers; i++) {
        if (!header_field_ok(&e->prepend_headers[i])) {
            snprintf(why, size, "554 5.6.0 Error: malformed prepended header field");
            return 5;
        }
    }
    return 0;
}

/* refuse_undecodable - the request did not pass wire_unpack (which
 * logged it).  If it still decodes far enough to show a ref, say why for
 * good, so the caller does not send it again and again. */
static void refuse_undecodable(submit_server_t *ss, const void *identity, size_t identity_len,
                               const void *data, size_t len)
{
    SubmitRequest *r = correio__submit_request__unpack(NULL, len, data);
    char text[120];

    if (!r)
        return;
    if (r->ref[0]) {
        if (r->version != WIRE_VERSION)
            snprintf(text, sizeof(text), "554 5.5.0 Error: request version %u, expected %u",
                     r->version, WIRE_VERSION);
        else
            snprintf(text, sizeof(text), "554 5.5.1 Error: request without recipients");
        reply(ss, identity, identity_len, r->ref, 5, "", text);
    }
    correio__submit_request__free_unpacked(r, NULL);
}

/* take - check one request; refuse it, or queue it for the spool. */
static void take(submit_server_t *ss, const void *identity, size_t identity_len,
                 const void *data, size_t len)
{
    ingress_t *ig = ss->ig;
    SubmitRequest *req = wire_unpack_submit_request(data, len, FROM_NAME);
    const Envelope *in;
    Envelope env = CORREIO__ENVELOPE__INIT;
    Client cl = CORREIO__CLIENT__INIT;
    Recipient *rv, **rp;
    ProtobufCBinaryData *ph;
    buf_t received = BUF_INIT;
    uint64_t now = time_now_us();
    char why[400], ref[REF_LOG_MAX + 4], orig[QID_LEN + 1] = "";
    submit_job *job;
    uint8_t *packed;
    size_t plen;
    int status;

    if (!req) {
        refuse_undecodable(ss, identity, identity_len, data, len);
        return;
    }
    in = req->envelope;
    log_printable(ref, sizeof(ref), req->ref, strlen(req->ref));
    if (strlen(req->ref) > SPOOL_REF_MAX) {
        log_info("NOQUEUE: reject: submit from local (%s): ref of %zu bytes (limit %d)",
                 listener_name(in), strlen(req->ref), SPOOL_REF_MAX);
        snprintf(why, sizeof(why), "554 5.5.4 Error: ref longer than %d bytes", SPOOL_REF_MAX);
        reply(ss, identity, identity_len, req->ref, 5, "", why);
        wire_free_submit_request(&req);
        return;
    }
    if (req->ref[0] && spool_ref_lookup(ig->spool, req->ref, orig) == 0) {
        log_info("%s: ref=%s submitted again: already queued, nothing stored", orig, ref);
        snprintf(why, sizeof(why), "250 2.0.0 Ok: queued as %s", orig);
        reply(ss, identity, identity_len, req->ref, 0, orig, why);
        wire_free_submit_request(&req);
        return;
    }
    orig[0] = '\0';
    status = check_request(ss, in, why, sizeof(why));
    if (status != 0) {
        char from[300];
        log_printable(from, sizeof(from), in->reverse_path, strlen(in->reverse_path));
        log_info("NOQUEUE: reject: submit from local (%s): %s; ref=%s from=<%s> nrcpt=%zu",
                 listener_name(in), why, ref, from, in->n_rcpt);
        reply(ss, identity, identity_len, req->ref, status, "", why);
        wire_free_submit_request(&req);
        return;
    }

    job = xcalloc(1, sizeof(*job));
    memcpy(job->identity, identity, identity_len);
    job->identity_len = identity_len;
    job->ref = xstrdup(req->ref);
    qid_next(job->qid);
    log_printable(job->sender, sizeof(job->sender), in->reverse_path, strlen(in->reverse_path));
    job->nrcpt = in->n_rcpt;
    if (in->queue_id && qid_valid(in->queue_id, strlen(in->queue_id)))
        snprintf(orig, sizeof(orig), "%s", in->queue_id);
    log_info("%s: client=local, listener=%s, ref=%s%s%s", job->qid, listener_name(in), ref,
             orig[0] ? ", orig_queue_id=" : "", orig);

    received_local_header(&received, ig->hostname, job->qid,
                          in->n_rcpt == 1 ? in->rcpt[0]->address : NULL,
                          (int64_t)(now / 1000000));
    ph = xcalloc(in->n_prepend_headers + 1, sizeof(*ph));
    ph[0].data = (uint8_t *)received.data;
    ph[0].len = received.len;
    for (size_t i = 0; i < in->n_prepend_headers; i++)
        ph[i + 1] = in->prepend_headers[i];
    rv = xcalloc(in->n_rcpt, sizeof(*rv));
    rp = xcalloc(in->n_rcpt, sizeof(*rp));
    for (size_t i = 0; i < in->n_rcpt; i++) {
        correio__recipient__init(&rv[i]);
        rv[i].address = in->rcpt[i]->address;
        rv[i].orcpt = in->rcpt[i]->orcpt;
        rv[i].notify = in->rcpt[i]->notify;
        rp[i] = &rv[i];
    }
    cl.listener = (char *)listener_name(in);

    env.version = WIRE_VERSION;
    env.queue_id = job->qid;
    env.origin = (char *)ig->events_endpoint;
    env.received_at = now;
    env.client = &cl;
    env.reverse_path = in->reverse_path;
    env.n_rcpt = in->n_rcpt;
    env.rcpt = rp;
    env.body_type = in->body_type;
    env.envid = in->envid;
    env.ret = in->ret;
    env.smtputf8 = in->smtputf8;
    env.n_prepend_headers = in->n_prepend_headers + 1;
    env.prepend_headers = ph;
    env.body = in->body;
    env.send_count = 1;
    packed = wire_pack_envelope(&env, &plen);
    job->size = in->body.len + received.len;

    xfree(&rv);
    xfree(&rp);
    xfree(&ph);
    buf_free(&received);
    wire_free_submit_request(&req);

    if (ss->tail)
        ss->tail->next = job;
    else
        ss->head = job;
    ss->tail = job;
    ss->pending++;
    ig->unacked++;
    if (job->ref[0])
        spool_put_ref(ig->spool, job->qid, packed, plen, job->ref, ss);
    else
        spool_put(ig->spool, job->qid, packed, plen, ss);
}

void submit_server_committed(submit_server_t *ss, spool_done *d)
{
    submit_job *job = ss->head, *prev = NULL;
    char text[100];

    /* the spool keeps the order: the head, unless something is very wrong */
    while (job && strcmp(job->qid, d->qid) != 0) {
        prev = job;
        job = job->next;
    }
    if (!job)
        log_panic("submit_server_committed: %s is not a submission in progress", d->qid);
    if (prev)
        prev->next = job->next;
    else
        ss->head = job->next;
    if (ss->tail == job)
        ss->tail = prev;
    ss->pending--;

    if (d->rc == 0 && d->orig_qid[0]) {
        char ref[REF_LOG_MAX + 4];

        ss->ig->unacked--;
        log_printable(ref, sizeof(ref), job->ref, strlen(job->ref));
        log_info("%s: ref=%s already queued as %s: discarded", job->qid, ref, d->orig_qid);
        snprintf(text, sizeof(text), "250 2.0.0 Ok: queued as %s", d->orig_qid);
        reply(ss, job->identity, job->identity_len, job->ref, 0, d->orig_qid, text);
    } else if (d->rc == 0) {
        log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", job->qid, job->sender,
                 job->size, job->nrcpt);
        snprintf(text, sizeof(text), "250 2.0.0 Ok: queued as %s", job->qid);
        reply(ss, job->identity, job->identity_len, job->ref, 0, job->qid, text);
        pipeline_add(ss->ig->pipeline, d->qid, d->data, d->len);
        d->data = NULL;
    } else {
        ss->ig->unacked--;
        log_warn("%s: submission not written to the spool (error %d); the caller will retry",
                 job->qid, d->rc);
        reply(ss, job->identity, job->identity_len, job->ref, 4, "",
              "451 4.3.0 Error: queue file write error");
    }
    xfree(&job->ref);
    xfree(&job);
}

/* recv_message - one whole message from the socket: its first three
 * parts in parts[] (initialised by the caller), *n the number of parts.
 * False when nothing waits. */
static bool recv_message(submit_server_t *ss, zmq_msg_t parts[3], size_t *n)
{
    zmq_msg_t extra;
    bool more = true;

    *n = 0;
    zmq_msg_init(&extra);
    while (more) {
        zmq_msg_t *m = *n < 3 ? &parts[*n] : &extra;
        if (zmq_msg_recv(m, ss->sock, ZMQ_DONTWAIT) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            if (zmq_errno() != EAGAIN)
                log_warn("submit socket: receive: %s", zmq_strerror(zmq_errno()));
            break;
        }
        more = zmq_msg_more(m);
        (*n)++;
    }
    zmq_msg_close(&extra);
    return *n > 0;
}

int submit_server_drain(submit_server_t *ss, int max)
{
    int taken = 0;

    while (taken < max && zmq_util_readable(ss->sock)) {
        zmq_msg_t parts[3];
        size_t n = 0;

        for (int i = 0; i < 3; i++)
            zmq_msg_init(&parts[i]);
        if (!recv_message(ss, parts, &n)) {
            for (int i = 0; i < 3; i++)
                zmq_msg_close(&parts[i]);
            break;
        }
        taken++;
        if (n == 3 && zmq_msg_size(&parts[1]) == 0 && zmq_msg_size(&parts[0]) <= IDENTITY_MAX) {
            take(ss, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                 zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]));
        } else {
            size_t bytes = 0;
            for (size_t i = 1; i < n && i < 3; i++)
                bytes += zmq_msg_size(&parts[i]);
            log_warn("dropped bad frame from " FROM_NAME ": %zu bytes: submit request: "
                     "%zu part%s, expected [empty][SubmitRequest]",
                     bytes, n - 1, n - 1 == 1 ? "" : "s");
        }
        for (int i = 0; i < 3; i++)
            zmq_msg_close(&parts[i]);
    }
    return taken;
}
