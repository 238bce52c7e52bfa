/* main.c - correio-classifier: takes envelopes from the ingress (PULL),
 * scores them (scoring.c), adds X-Spam-* header fields and the verdict
 * (spam_headers.c) and pushes them on to the router.  It owns nothing:
 * an envelope lost here is sent again by the ingress. */
#include <errno.h>
#include <string.h>
#include <zmq.h>
#include "admin.h"
#include "log.h"
#include "scoring.h"
#include "spam_headers.h"
#include "stage.h"
#include "wire.h"
#include "xalloc.h"
#include "zmq_util.h"

#define CLASSIFIER_ADMIN_HWM  16
#define CLASSIFIER_BATCH      256   /* frames handled per wake-up */

typedef struct classifier {
    stage_t   *st;
    scoring_t *scoring;
    void      *in, *out, *admin;
    uint8_t   *pending;        /* a frame the router's socket would not take yet */
    size_t     pending_len;
    unsigned long long n_classified, n_spam, n_dropped;
} classifier;

/* classifier_admin - "stats"; ping is answered by admin_serve. */
static void classifier_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    classifier *c = ctx;
    if (strcmp(req->command, "stats") == 0)
        admin_reply_text(reply, 0, "classified=%llu spam=%llu dropped=%llu",
                         c->n_classified, c->n_spam, c->n_dropped);
    else
        admin_reply_text(reply, 2, "unknown command");
}

/* classifier_flush - try to hand the pending frame to the router.
 * Returns true when nothing is pending any more. */
static bool classifier_flush(classifier *c)
{
    if (!c->pending)
        return true;
    if (zmq_util_send(c->out, c->pending, c->pending_len) < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return false;              /* backpressure: wait for POLLOUT */
        log_warn("cannot send to router: %s (envelope left to the ingress to resend)",
                 zmq_strerror(errno));
        c->n_dropped++;
    }
    xfree(&c->pending);
    c->pending_len = 0;
    return true;
}

/* classifier_handle - score one frame and queue it for the router. */
static void classifier_handle(classifier *c, const void *data, size_t len)
{
    Envelope *env = wire_unpack_envelope(data, len, "classifier input");
    if (!env) {
        c->n_dropped++;
        return;
    }
    scoring_result r;
    scoring_run(c->scoring, env, &r);
    char *tests = scoring_tests_text(&r);
    log_info("%s: classified score=%.1f spam=%s tests=%s", env->queue_id,
             r.score, r.is_spam ? "yes" : "no", tests);
    xfree(&tests);
    c->pending = spam_headers_pack(env, &r, c->st->hostname, &c->pending_len);
    c->n_classified++;
    if (r.is_spam)
        c->n_spam++;
    scoring_result_free(&r);
    wire_free_envelope(&env);
}

/* classifier_drain - read input until it is empty, the batch is done or
 * the router pushes back. */
static void classifier_drain(classifier *c)
{
    for (int i = 0; i < CLASSIFIER_BATCH && classifier_flush(c); i++) {
        zmq_msg_t msg;
        if (zmq_msg_init(&msg) != 0)
            log_panic("classifier_drain: zmq_msg_init: %s", zmq_strerror(errno));
        if (zmq_msg_recv(&msg, c->in, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e != EAGAIN && e != EINTR)
                log_warn("receive from ingress: %s", zmq_strerror(e));
            return;
        }
        if (zmq_msg_more(&msg)) {
            /* Envelopes are one frame: drop a multi-part message whole. */
            log_warn("dropping a multi-part frame on classifier input");
            while (zmq_msg_more(&msg) && zmq_msg_recv(&msg, c->in, ZMQ_DONTWAIT) >= 0)
                ;
            zmq_msg_close(&msg);
            c->n_dropped++;
            continue;
        }
        classifier_handle(c, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    classifier_flush(c);
}

int main(int argc, char **argv)
{
    stage_t st;
    stage_start(&st, "classifier", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);

    classifier c = {.st = &st};
    int hwm = (int)config_int(st.cfg, "pipeline_hwm");
    c.in = zmq_util_socket(st.zctx, ZMQ_PULL, hwm);
    zmq_util_bind(c.in, config_str(st.cfg, "classifier_endpoint"));
    c.out = zmq_util_socket(st.zctx, ZMQ_PUSH, hwm);
    zmq_util_connect(c.out, config_str(st.cfg, "router_endpoint"));
    c.admin = zmq_util_socket(st.zctx, ZMQ_REP, CLASSIFIER_ADMIN_HWM);
    zmq_util_bind(c.admin, config_str(st.cfg, "classifier_admin_endpoint"));
    c.scoring = scoring_new(st.cfg);
    log_info("started: input=%s router=%s required=%.1f",
             config_str(st.cfg, "classifier_endpoint"),
             config_str(st.cfg, "router_endpoint"),
             config_number(st.cfg, "spam_required_score"));

    while (!stage_stopping()) {
        zmq_pollitem_t items[3] = {
            {NULL, st.signal_fd, ZMQ_POLLIN, 0},
            {c.admin, 0, ZMQ_POLLIN, 0},
            /* Backpressure: while a frame waits for the router, stop
             * reading input and wait for room downstream instead. */
            c.pending ? (zmq_pollitem_t){c.out, 0, ZMQ_POLLOUT, 0}
                      : (zmq_pollitem_t){c.in, 0, ZMQ_POLLIN, 0},
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
            if ((sig & STAGE_SIG_RELOAD) && stage_reload(&st))
                scoring_configure(c.scoring, st.cfg);
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(c.admin, "classifier", classifier_admin, &c);
        if (items[2].revents)
            classifier_drain(&c);
    }

    log_info("stopping: classified=%llu spam=%llu", c.n_classified, c.n_spam);
    xfree(&c.pending);
    scoring_free(&c.scoring);
    void *socks[] = {c.in, c.out, c.admin};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (zmq_close(socks[i]) != 0)
            log_warn("zmq_close: %s", zmq_strerror(errno));
    stage_finish(&st);
    return 0;
}
