/* pass_stage.c - the PULL -> transform -> PUSH loop of the stages that
 * own nothing (see pass_stage.h). */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "discovery.h"
#include "log.h"
#include "pass_stage.h"
#include "tap.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define PASS_ADMIN_HWM 16
#define PASS_BATCH     256    /* frames handled per wake-up, so admin and signals are not starved */

typedef struct pass {
    stage_t              *st;
    const pass_stage_ops *ops;
    void                 *ctx;
    void                 *in, *out, *admin;
    discovery_t          *out_peers;     /* every replica of the output endpoint */
    uint8_t              *pending;       /* a frame downstream would not take yet */
    size_t                pending_len;
    unsigned long long    n_passed, n_dropped;
} pass;

/* pass_admin - "stats"; "ping" is answered by admin_serve. */
static void pass_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    pass *p = ctx;
    buf_t extra = BUF_INIT;

    if (strcmp(req->command, "stats") != 0) {
        admin_reply_text(reply, 2, "unknown command");
        return;
    }
    if (p->ops->stats)
        p->ops->stats(p->ctx, &extra);
    admin_reply_text(reply, 0, "passed=%llu dropped=%llu%s", p->n_passed, p->n_dropped,
                     extra.len ? extra.data : "");
    buf_free(&extra);
}

/* pass_flush - try to hand the pending frame downstream.  Returns true
 * when nothing is pending any more. */
static bool pass_flush(pass *p)
{
    if (!p->pending)
        return true;
    if (zmq_util_send(p->out, p->pending, p->pending_len) < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return false;              /* backpressure: wait for POLLOUT */
        log_warn("cannot send to %s: %s (envelope left to the ingress to resend)",
                 config_str(p->st->cfg, p->ops->output_param), zmq_strerror(errno));
        p->n_dropped++;
    } else
        tap_publish(TAP_ENVELOPE, p->pending, p->pending_len);
    xfree(&p->pending);
    p->pending_len = 0;
    return true;
}

/* pass_handle - decode one frame and queue its transformation. */
static void pass_handle(pass *p, const void *data, size_t len)
{
    Envelope *env = wire_unpack_envelope(data, len, p->st->name);

    if (!env) {
        p->n_dropped++;
        return;
    }
    tap_trace_in(env);
    p->pending = p->ops->transform(p->ctx, env, &p->pending_len);
    if (p->pending)
        p->n_passed++;
    else
        p->n_dropped++;
    wire_free_envelope(&env);
}

/* pass_drain - read input until it is empty, the batch is done or
 * downstream pushes back. */
static void pass_drain(pass *p)
{
    char input[64];

    snprintf(input, sizeof(input), "%s input", p->st->name);
    for (int i = 0; i < PASS_BATCH && pass_flush(p); i++) {
        zmq_msg_t msg;
        zmq_util_recv_status got = zmq_util_recv_frame(p->in, &msg, input);

        if (got == ZMQ_UTIL_NONE)
            return;
        if (got == ZMQ_UTIL_DROPPED) {
            p->n_dropped++;
            continue;
        }
        pass_handle(p, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    pass_flush(p);
}

void pass_stage_run(stage_t *st, const pass_stage_ops *ops, void *ctx)
{
    pass p = {.st = st, .ops = ops, .ctx = ctx};
    int hwm = (int)config_int(st->cfg, "pipeline_hwm");

    p.in = zmq_util_socket(st->zctx, ZMQ_PULL, hwm);
    zmq_util_bind(p.in, config_str(st->cfg, ops->input_param));
    p.out = zmq_util_socket(st->zctx, ZMQ_PUSH, hwm);
    /* the peer kind, for CurveZMQ: "delivery_endpoint" -> "delivery" */
    char *peer = xasprintf("%.*s", (int)strcspn(ops->output_param, "_"), ops->output_param);
    p.out_peers = discovery_new(p.out, config_str(st->cfg, ops->output_param), peer, st->cfg);
    xfree(&peer);
    p.admin = zmq_util_socket(st->zctx, ZMQ_REP, PASS_ADMIN_HWM);
    zmq_util_bind(p.admin, config_str(st->cfg, ops->admin_param));
    log_info("started: input=%s output=%s", config_str(st->cfg, ops->input_param),
             config_str(st->cfg, ops->output_param));

    while (!stage_stopping()) {
        int dfd = discovery_fd(p.out_peers);
        zmq_pollitem_t items[4] = {
            {NULL, st->signal_fd, ZMQ_POLLIN, 0},
            {p.admin, 0, ZMQ_POLLIN, 0},
            /* Backpressure: while a frame waits for downstream, stop
             * reading input and wait for room there instead. */
            p.pending ? (zmq_pollitem_t){p.out, 0, ZMQ_POLLOUT, 0}
                      : (zmq_pollitem_t){p.in, 0, ZMQ_POLLIN, 0},
            {NULL, dfd, ZMQ_POLLIN, 0},
        };
        int64_t wait = discovery_timeout_ms(p.out_peers, time_mono_ms());

        if (zmq_poll(items, dfd >= 0 ? 4 : 3, wait > 60000 ? 60000 : (long)wait) < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("zmq_poll: %s", zmq_strerror(errno));
        }
        discovery_tick(p.out_peers, time_mono_ms());
        if (items[0].revents & ZMQ_POLLIN) {
            int sig = stage_take_signals(st);

            if (sig & STAGE_SIG_STOP)
                break;
            if ((sig & STAGE_SIG_RELOAD) && stage_reload(st, NULL, NULL) && ops->reload)
                ops->reload(ctx, st->cfg);
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(p.admin, st->name, pass_admin, &p);
        if (items[2].revents)
            pass_drain(&p);
    }

    log_info("stopping: passed=%llu dropped=%llu", p.n_passed, p.n_dropped);
    xfree(&p.pending);
    discovery_free(&p.out_peers);
    void *socks[] = {p.in, p.out, p.admin};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (zmq_close(socks[i]) != 0)
            log_warn("zmq_close: %s", zmq_strerror(errno));
}
