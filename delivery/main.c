/* main.c - correio-delivery: takes routed envelopes from the router
 * (PULL), owns them durably in its LMDB queue, acks them to their ingress
 * and delivers them: Maildir, SMTP, LMTP (scheduler.c does the work). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>
#include "admin.h"
#include "health.h"
#include "log.h"
#include "scheduler.h"
#include "stage.h"
#include "zmq_util.h"

#define DELIVERY_ADMIN_HWM 16

/* delivery_ready - the queue is open once the loop answers; not ready
 * while storing new envelopes fails and the input is paused. */
static bool delivery_ready(void *ctx, char *why, size_t size)
{
    if (scheduler_accepting(ctx))
        return true;
    snprintf(why, size, "the queue refused a write: input paused for a moment");
    return false;
}

int main(int argc, char **argv)
{
    stage_t st;
    stage_start(&st, "delivery", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);

    void *in = zmq_util_socket(st.zctx, ZMQ_PULL, (int)config_int(st.cfg, "pipeline_hwm"));
    zmq_util_bind(in, config_str(st.cfg, "delivery_endpoint"));
    void *admin = zmq_util_socket(st.zctx, ZMQ_REP, DELIVERY_ADMIN_HWM);
    zmq_util_bind(admin, config_str(st.cfg, "delivery_admin_endpoint"));
    scheduler_t *sched = scheduler_new(&st);
    health_set_ready_check(delivery_ready, sched);
    log_info("started: input=%s mail_root=%s workers=%lld",
             config_str(st.cfg, "delivery_endpoint"), config_str(st.cfg, "mail_root"),
             config_int(st.cfg, "delivery_workers"));

    while (!stage_stopping()) {
        bool accepting = scheduler_accepting(sched);
        zmq_pollitem_t items[5] = {
            {NULL, st.signal_fd, ZMQ_POLLIN, 0},
            {admin, 0, ZMQ_POLLIN, 0},
            {NULL, scheduler_results_fd(sched), ZMQ_POLLIN, 0},
            {scheduler_submit_socket(sched), 0, ZMQ_POLLIN, 0},
            {in, 0, ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, accepting && in ? 5 : 4, scheduler_timeout_ms(sched)) < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("zmq_poll: %s", zmq_strerror(errno));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int sig = stage_take_signals(&st);
            if (sig & STAGE_SIG_STOP)
                break;
            if (sig & STAGE_SIG_RELOAD)
                stage_reload(&st, scheduler_reload, sched);
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(admin, "delivery", scheduler_admin, sched);
        if (items[3].revents & ZMQ_POLLIN)
            scheduler_submit_ready(sched);
        if (accepting && in && (items[4].revents & ZMQ_POLLIN))
            scheduler_receive(sched, in);
        scheduler_run(sched);
        if (in && scheduler_draining(sched)) {
            /* `correio drain`: what came already is taken (and acked),
             * then the input closes, so that the router's PUSH (with
             * ZMQ_IMMEDIATE) sends to the other replicas; a frame still
             * in flight is not acked and its ingress sends it again. */
            scheduler_receive(sched, in);
            if (zmq_close(in) != 0)
                log_warn("zmq_close: %s", zmq_strerror(errno));
            in = NULL;
            log_info("draining: input %s closed", config_str(st.cfg, "delivery_endpoint"));
        }
    }

    log_info("stopping");
    scheduler_free(&sched);
    if (in && zmq_close(in) != 0)
        log_warn("zmq_close: %s", zmq_strerror(errno));
    if (zmq_close(admin) != 0)
        log_warn("zmq_close: %s", zmq_strerror(errno));
    stage_finish(&st);
    return 0;
}
