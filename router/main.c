/* main.c - correio-router: takes scored envelopes from the classifier
 * (PULL), routes every recipient (routing.c) and pushes the envelope on
 * to delivery.  It owns nothing yet: an envelope lost here is sent again
 * by the ingress. */
#include <errno.h>
#include <string.h>
#include <zmq.h>
#include "admin.h"
#include "log.h"
#include "routing.h"
#include "stage.h"
#include "wire.h"
#include "xalloc.h"
#include "zmq_util.h"

#define ROUTER_ADMIN_HWM  16
#define ROUTER_BATCH      256   /* frames handled per wake-up */

typedef struct router {
    stage_t  *st;
    void     *in, *out, *admin;
    uint8_t  *pending;          /* a frame delivery's socket would not take yet */
    size_t    pending_len;
    unsigned long long n_routed, n_dropped;
} router;

/* router_admin - "stats"; ping is answered by admin_serve. */
static void router_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    router *r = ctx;
    if (strcmp(req->command, "stats") == 0)
        admin_reply_text(reply, 0, "routed=%llu dropped=%llu", r->n_routed, r->n_dropped);
    else
        admin_reply_text(reply, 2, "unknown command");
}

/* router_flush - try to hand the pending frame to delivery.  Returns true
 * when nothing is pending any more. */
static bool router_flush(router *r)
{
    if (!r->pending)
        return true;
    if (zmq_util_send(r->out, r->pending, r->pending_len) < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return false;              /* backpressure: wait for POLLOUT */
        log_warn("cannot send to delivery: %s (envelope left to the ingress to resend)",
                 zmq_strerror(errno));
        r->n_dropped++;
    }
    xfree(&r->pending);
    r->pending_len = 0;
    return true;
}

/* router_handle - route one frame and queue it for delivery. */
static void router_handle(router *r, const void *data, size_t len)
{
    Envelope *env = wire_unpack_envelope(data, len, "router input");
    if (!env) {
        r->n_dropped++;
        return;
    }
    r->pending = routing_route_envelope(env, r->st->cfg, &r->pending_len);
    r->n_routed++;
    wire_free_envelope(&env);
}

/* router_drain - read input until it is empty, the batch is done or
 * delivery pushes back. */
static void router_drain(router *r)
{
    for (int i = 0; i < ROUTER_BATCH && router_flush(r); i++) {
        zmq_msg_t msg;
        if (zmq_msg_init(&msg) != 0)
            log_panic("router_drain: zmq_msg_init: %s", zmq_strerror(errno));
        if (zmq_msg_recv(&msg, r->in, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e != EAGAIN && e != EINTR)
                log_warn("receive from classifier: %s", zmq_strerror(e));
            return;
        }
        if (zmq_msg_more(&msg)) {
            /* Envelopes are one frame: drop a multi-part message whole. */
            log_warn("dropping a multi-part frame on router input");
            while (zmq_msg_more(&msg) && zmq_msg_recv(&msg, r->in, ZMQ_DONTWAIT) >= 0)
                ;
            zmq_msg_close(&msg);
            r->n_dropped++;
            continue;
        }
        router_handle(r, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    router_flush(r);
}

int main(int argc, char **argv)
{
    stage_t st;
    stage_start(&st, "router", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);

    router r = {.st = &st};
    int hwm = (int)config_int(st.cfg, "pipeline_hwm");
    r.in = zmq_util_socket(st.zctx, ZMQ_PULL, hwm);
    zmq_util_bind(r.in, config_str(st.cfg, "router_endpoint"));
    r.out = zmq_util_socket(st.zctx, ZMQ_PUSH, hwm);
    zmq_util_connect(r.out, config_str(st.cfg, "delivery_endpoint"));
    r.admin = zmq_util_socket(st.zctx, ZMQ_REP, ROUTER_ADMIN_HWM);
    zmq_util_bind(r.admin, config_str(st.cfg, "router_admin_endpoint"));
    log_info("started: input=%s delivery=%s",
             config_str(st.cfg, "router_endpoint"), config_str(st.cfg, "delivery_endpoint"));

    while (!stage_stopping()) {
        zmq_pollitem_t items[3] = {
            {NULL, st.signal_fd, ZMQ_POLLIN, 0},
            {r.admin, 0, ZMQ_POLLIN, 0},
            /* Backpressure: while a frame waits for delivery, stop
             * reading input and wait for room downstream instead. */
            r.pending ? (zmq_pollitem_t){r.out, 0, ZMQ_POLLOUT, 0}
                      : (zmq_pollitem_t){r.in, 0, ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("zmq_poll: %s", zmq_strerror(errno));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int sig = stage_take_signals(&st);
            if (sig & STAGE_SIG_STOP)
                break;
            if (sig & STAGE_SIG_RELOAD)
                stage_reload(&st);      /* routing reads st.cfg per envelope */
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(r.admin, "router", router_admin, &r);
        if (items[2].revents)
            router_drain(&r);
    }

    log_info("stopping: routed=%llu", r.n_routed);
    xfree(&r.pending);
    void *socks[] = {r.in, r.out, r.admin};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (zmq_close(socks[i]) != 0)
            log_warn("zmq_close: %s", zmq_strerror(errno));
    stage_finish(&st);
    return 0;
}
