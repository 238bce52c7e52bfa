/* main.c - correio-router: takes scored envelopes from the classifier
 * (PULL), routes every recipient (routing.c) and pushes the envelope on
 * to delivery; an envelope lost here is sent again by the ingress.  A
 * thread answers the ingresses' policy questions (policy_server.c) out
 * of the policy state, the one thing the router owns. */
#include "awl.h"
#include "log.h"
#include "pass_stage.h"
#include "policy_server.h"
#include "routing.h"
#include "spam_history.h"
#include "stage.h"
#include "xalloc.h"

typedef struct router {
    stage_t   *st;
    routing_t *routing;     /* the tables of the configuration in use */
    policy_server_t *policy;
    spam_history_t *spam;   /* NULL unless greylist_adaptive */
    awl_t     *awl;         /* NULL unless spam_auto_whitelist */
} router_t;

/* router_whitelisted - routing's question to the auto-whitelist. */
static bool router_whitelisted(void *ctx, const char *user, const char *sender)
{
    router_t *rt = ctx;
    return awl_check(rt->awl, user, sender);
}

/* router_outbound - mail of our own users: authenticated, or what the
 * classifier called outbound (submission, mynetworks). */
static bool router_outbound(const Envelope *env)
{
    return (env->verdict && env->verdict->outbound)
           || (env->client && env->client->auth_user && env->client->auth_user[0]);
}

/* router_transform - every recipient routed; routing reads the current
 * configuration per envelope, its tables notice file changes by
 * themselves. */
static uint8_t *router_transform(void *ctx, const Envelope *env, size_t *len)
{
    router_t *rt = ctx;

    spam_history_note(rt->spam, env);
    if (router_outbound(env))
        awl_note_outbound(rt->awl, env);
    return routing_route_envelope(rt->routing, env, rt->st->cfg, len);
}

/* router_reload - SIGHUP: open the tables the new configuration names;
 * if one cannot be opened, keep the old ones and say so. */
static void router_reload(void *ctx, const config_t *cfg)
{
    router_t *rt = ctx;
    char *err = NULL;
    routing_t *fresh = routing_open(cfg, &err);

    policy_server_reload(rt->policy, cfg);
    spam_history_free(&rt->spam);
    rt->spam = spam_history_new(rt->st->zctx, cfg);
    awl_free(&rt->awl);
    rt->awl = awl_new(rt->st->zctx, cfg);
    if (!fresh) {
        log_warn("reload: %s; the routing tables in use stay", err);
        xfree(&err);
        return;
    }
    routing_close(&rt->routing);
    rt->routing = fresh;
    routing_set_whitelist(rt->routing, router_whitelisted, rt);
}

int main(int argc, char **argv)
{
    static const pass_stage_ops ops = {
        .input_param = "router_endpoint",
        .output_param = "delivery_endpoint",
        .admin_param = "router_admin_endpoint",
        .transform = router_transform,
        .reload = router_reload,
    };
    stage_t st;
    router_t rt = {.st = &st};
    char *err = NULL;

    stage_start(&st, "router", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);
    if ((rt.routing = routing_open(st.cfg, &err)) == NULL)
        log_fatal("%s", err);
    rt.policy = policy_server_start(&st);
    rt.spam = spam_history_new(st.zctx, st.cfg);
    rt.awl = awl_new(st.zctx, st.cfg);
    routing_set_whitelist(rt.routing, router_whitelisted, &rt);
    pass_stage_run(&st, &ops, &rt);
    awl_free(&rt.awl);
    spam_history_free(&rt.spam);
    policy_server_stop(&rt.policy);
    routing_close(&rt.routing);
    stage_finish(&st);
    return 0;
}
