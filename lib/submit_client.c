/* submit_client.c - handing messages to an ingress's submit socket (see
 * submit_client.h).
 *
 * Frames, both ways, as a REQ socket would send them: an empty delimiter
 * frame, then the protobuf (SubmitRequest out, SubmitReply back).  So the
 * ingress's ROUTER sees [identity][empty][request] and answers
 * [identity][empty][reply], and a REQ client (a test, a script) speaks
 * the same protocol.  ZMQ_IMMEDIATE: with no ingress connected a send
 * fails at once instead of queueing for a peer that may never come.
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "discovery.h"
#include "log.h"
#include "submit_client.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define REPLY_SKIP_MAX 1000     /* bad frames skipped in one receive call */

struct submit_client {
    void *sock;
    char *endpoint;
    discovery_t *peers;     /* every ingress of endpoint */
};

submit_client_t *submit_client_new(void *zctx, const config_t *cfg, const char *endpoint,
                                   int hwm)
{
    submit_client_t *c = xcalloc(1, sizeof(*c));

    c->sock = zmq_util_socket(zctx, ZMQ_DEALER, hwm);
    c->peers = discovery_new(c->sock, endpoint, "ingress", cfg);
    c->endpoint = xstrdup(endpoint);
    return c;
}

void submit_client_free(submit_client_t **cp)
{
    submit_client_t *c = *cp;

    if (!c)
        return;
    discovery_free(&c->peers);
    if (zmq_close(c->sock) != 0)
        log_warn("submit socket %s: close: %s", c->endpoint, zmq_strerror(zmq_errno()));
    xfree(&c->endpoint);
    xfree(cp);
}

void *submit_client_socket(submit_client_t *c)
{
    return c->sock;
}

int submit_client_send(submit_client_t *c, const char *ref, const Envelope *env)
{
    SubmitRequest req = CORREIO__SUBMIT_REQUEST__INIT;
    uint8_t *packed;
    size_t len;
    int rc;

    discovery_tick(c->peers, time_mono_ms());   /* never blocks */
    req.version = WIRE_VERSION;
    req.ref = (char *)ref;
    req.envelope = (Envelope *)env;
    packed = wire_pack_submit_request(&req, &len);
    /* a multi-part message is queued whole or not at all: once the
     * delimiter is taken, the second part is too */
    while ((rc = zmq_send(c->sock, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE)) < 0
           && zmq_errno() == EINTR)
        ;
    if (rc < 0) {
        log_debug("submit %s to %s: not now: %s", ref, c->endpoint, zmq_strerror(zmq_errno()));
        xfree(&packed);
        return -1;
    }
    while ((rc = zmq_send(c->sock, packed, len, ZMQ_DONTWAIT)) < 0 && zmq_errno() == EINTR)
        ;
    if (rc < 0)
        log_panic("submit_client_send: second part refused after the first: %s",
                  zmq_strerror(zmq_errno()));
    xfree(&packed);
    return 0;
}

/* recv_part - one frame into m; false when none waits (or on an error). */
static bool recv_part(submit_client_t *c, zmq_msg_t *m)
{
    for (;;) {
        if (zmq_msg_recv(m, c->sock, ZMQ_DONTWAIT) >= 0)
            return true;
        if (zmq_errno() == EINTR)
            continue;
        if (zmq_errno() != EAGAIN)
            log_warn("submit socket %s: receive: %s", c->endpoint, zmq_strerror(zmq_errno()));
        return false;
    }
}

SubmitReply *submit_client_receive(submit_client_t *c)
{
    discovery_tick(c->peers, time_mono_ms());
    for (int skipped = 0; skipped < REPLY_SKIP_MAX; skipped++) {
        zmq_msg_t parts[2], extra;
        size_t n = 0;
        bool more = true;
        SubmitReply *r = NULL;

        zmq_msg_init(&parts[0]);
        zmq_msg_init(&parts[1]);
        zmq_msg_init(&extra);
        /* one whole message (its parts come together or not at all);
         * the first two parts are kept */
        while (more) {
            zmq_msg_t *m = n < 2 ? &parts[n] : &extra;
            if (!recv_part(c, m))
                break;
            more = zmq_msg_more(m);
            n++;
        }
        if (n == 2 && !more && zmq_msg_size(&parts[0]) == 0)
            r = wire_unpack_submit_reply(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]),
                                         c->endpoint);
        else if (n > 0)
            log_warn("dropped bad frame from %s: a reply of %zu part%s, expected "
                     "[empty][SubmitReply]", c->endpoint, n, n == 1 ? "" : "s");
        zmq_msg_close(&parts[0]);
        zmq_msg_close(&parts[1]);
        zmq_msg_close(&extra);
        if (r || n == 0)
            return r;
    }
    return NULL;
}
