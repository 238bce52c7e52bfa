/* main.c - correio-ingress: the SMTP server (and the submit socket for
 * bounces and fetched mail) that spools each message durably before its
 * 250 and sends it down the pipeline.  Wires the
 * pieces together; the work is in smtp_server.c and the modules it uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "auth_pool.h"
#include "health.h"
#include "discovery.h"
#include "ingress.h"
#include "log.h"
#include "pipeline.h"
#include "smtp_server.h"
#include "spool.h"
#include "submit_server.h"
#include "xalloc.h"
#include "zmq_util.h"

#define AUTH_THREADS 2   /* password checks in parallel (crypt(3) is slow on purpose) */

/* resend_one - at start, every spool entry goes down the pipeline again. */
static void resend_one(void *ctx, const char *qid, const void *data, size_t len)
{
    ingress_t *ig = ctx;
    (void)data;
    (void)len;
    pipeline_add(ig->pipeline, qid, NULL, 0);
    ig->unacked++;
}

/* ingress_ready - not ready (HTTP /ready 503, `correio health --ready`)
 * while the spool is at spool_message_limit: MAIL FROM gets 451 then. */
static bool ingress_ready(void *ctx, char *why, size_t size)
{
    const ingress_t *ig = ctx;

    if (ig->unacked < ig->spool_message_limit)
        return true;
    snprintf(why, size, "spool full: %u messages not yet acknowledged (spool_message_limit %u)",
             ig->unacked, ig->spool_message_limit);
    return false;
}

int main(int argc, char **argv)
{
    stage_t st;
    ingress_t ig = { 0 };
    smtp_server_t *srv;
    const config_t *cfg;
    char *spool_dir;
    int hwm;
    size_t n;

    stage_start(&st, "ingress", argc, argv);
    cfg = st.cfg;
    ig.st = &st;
    if (!ingress_configure(&ig))        /* the certificate and tables, read as root */
        log_fatal("cannot start with this configuration (see above)");

    /* Only the SMTP listeners need root (port 25): bind them, then become
     * mail_owner before the spool and the ipc sockets are made, so that
     * they belong to the user that uses them. */
    srv = smtp_server_new(&ig);
    smtp_server_listen(srv, ROLE_SMTP, "smtpd_listen", config_list(cfg, "smtpd_listen"));
    smtp_server_listen(srv, ROLE_SUBMISSION, "submission_listen",
                       config_list(cfg, "submission_listen"));
    smtp_server_listen(srv, ROLE_SUBMISSIONS, "submissions_listen",
                       config_list(cfg, "submissions_listen"));
    stage_drop_privileges(&st);
    ig.auth = auth_pool_new(AUTH_THREADS);

    spool_dir = xasprintf("%s/spool", config_str(cfg, "data_directory"));
    ig.spool = spool_open(spool_dir, (size_t)config_size(cfg, "spool_map_size"));
    xfree(&spool_dir);

    hwm = (int)config_int(cfg, "pipeline_hwm");
    ig.events = zmq_util_socket(st.zctx, ZMQ_PULL, hwm);
    zmq_util_bind(ig.events, config_str(cfg, "ingress_events_endpoint"));
    ig.push = zmq_util_socket(st.zctx, ZMQ_PUSH, hwm);
    ig.push_peers = discovery_new(ig.push, config_str(cfg, "classifier_endpoint"), "classifier",
                                  cfg);
    ig.admin = zmq_util_socket(st.zctx, ZMQ_REP, ZMQ_UTIL_HWM_DEFAULT);
    zmq_util_bind(ig.admin, config_str(cfg, "ingress_admin_endpoint"));
    ig.pipeline = pipeline_new(&ig, config_time_ms(cfg, "pipeline_ack_timeout"),
                               config_time_ms(cfg, "pipeline_ack_timeout_max"));
    ig.submit = submit_server_new(&ig, st.zctx, config_str(cfg, "ingress_submit_endpoint"), hwm);
    smtp_server_watch_pipeline(srv);
    health_set_ready_check(ingress_ready, &ig);

    n = spool_foreach(ig.spool, resend_one, &ig);
    if (n)
        log_info("%zu message%s in the spool from before; sending again", n, n == 1 ? "" : "s");

    smtp_server_run(srv);

    smtp_server_free(&srv);
    submit_server_free(&ig.submit);
    auth_pool_free(&ig.auth);
    spool_close(&ig.spool);             /* the writer finishes its commit first */
    pipeline_free(&ig.pipeline);
    discovery_free(&ig.push_peers);
    zmq_close(ig.events);
    zmq_close(ig.push);
    zmq_close(ig.admin);
    ingress_unconfigure(&ig);
    log_info("stopped");
    stage_finish(&st);
    return 0;
}
