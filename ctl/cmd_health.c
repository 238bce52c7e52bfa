/* cmd_health.c - `correio health [--ready] [STAGE...]`: does each stage's
 * loop answer on its admin socket (liveness, "ping"), or, with --ready,
 * is it ready for work ("ready", the same check as its HTTP /ready)?
 *
 *   ingress: ok (ingress mail.example.test pid=4246)
 *   classifier: fail (nothing listens on /run/correio/classifier-admin)
 *
 * Exit status 0 when every stage asked is ok, 1 otherwise, 2 on bad
 * usage: a container healthcheck (`correio health ingress`).  Without
 * STAGE, all five stages.  Waits at most metrics_health_timeout each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "xalloc.h"

static const char *const health_stages[] = {"ingress", "classifier", "router", "delivery",
                                            "fetcher"};

#define HEALTH_NSTAGES (sizeof(health_stages) / sizeof(health_stages[0]))

/* health_known - is name one of the stages? */
static bool health_known(const char *name)
{
    for (size_t i = 0; i < HEALTH_NSTAGES; i++)
        if (strcmp(health_stages[i], name) == 0)
            return true;
    return false;
}

/* health_ask - one stage's line; true when it answered status 0. */
static bool health_ask(void *zctx, const config_t *cfg, const char *stage, const char *command,
                       int timeout_ms)
{
    char param[64], *err = NULL;
    AdminReply *reply;
    bool ok;

    snprintf(param, sizeof(param), "%s_admin_endpoint", stage);
    reply = ctl_admin_call(zctx, config_str(cfg, param), command, timeout_ms, &err);
    ok = reply != NULL && reply->status == 0;
    printf("%s: %s (%s)\n", stage, ok ? "ok" : "fail",
           reply ? reply->text : err ? err : "no answer");
    free(err);
    wire_free_admin_reply(&reply);
    return ok;
}

int cmd_health(const ctl_opts *o, int argc, char **argv)
{
    const char *command = "ping";
    config_t *cfg;
    void *zctx;
    int first = 1, failed = 0, timeout_ms;

    if (argc > 1 && strcmp(argv[1], "--ready") == 0) {
        command = "ready";
        first = 2;
    }
    for (int i = first; i < argc; i++)
        if (!health_known(argv[i]))
            return ctl_usage_error("health", "unknown stage '%s'", argv[i]);
    cfg = ctl_load_config(o);
    timeout_ms = (int)config_time_ms(cfg, "metrics_health_timeout");
    if ((zctx = zmq_ctx_new()) == NULL) {
        ctl_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        config_free(&cfg);
        return 1;
    }
    if (first >= argc) {
        for (size_t i = 0; i < HEALTH_NSTAGES; i++)
            failed += !health_ask(zctx, cfg, health_stages[i], command, timeout_ms);
    } else {
        for (int i = first; i < argc; i++)
            failed += !health_ask(zctx, cfg, argv[i], command, timeout_ms);
    }
    zmq_ctx_term(zctx);
    config_free(&cfg);
    return failed ? 1 : 0;
}
