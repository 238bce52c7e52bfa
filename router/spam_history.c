/* spam_history.c - report spam senders' IPs to the policy service (see
 * spam_history.h). */
#include <string.h>

#include "log.h"
#include "policy_client.h"
#include "spam_history.h"
#include "xalloc.h"

struct spam_history {
    policy_client_t *client;
};

spam_history_t *spam_history_new(void *zctx, const config_t *cfg)
{
    spam_history_t *h;
    policy_client_t *client;
    char *err = NULL;

    if (!config_bool(cfg, "greylist_adaptive"))
        return NULL;
    client = policy_client_new(zctx, cfg, config_list(cfg, "policy_endpoints"),
                               config_time_ms(cfg, "policy_timeout"), &err);
    if (!client) {
        log_warn("policy_endpoints: %s; spam senders are not reported for adaptive greylisting",
                 err);
        xfree(&err);
        return NULL;
    }
    h = xcalloc(1, sizeof(*h));
    h->client = client;
    return h;
}

void spam_history_free(spam_history_t **h)
{
    if (!*h)
        return;
    policy_client_free(&(*h)->client);
    xfree(h);
}

void spam_history_note(spam_history_t *h, const Envelope *env)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    const Client *cl = env->client;

    if (!h || !env->verdict || !env->verdict->is_spam || !cl || !cl->ip || !cl->ip[0]
        || (cl->auth_user && cl->auth_user[0]))
        return;
    req.kind = CORREIO__POLICY_KIND__POLICY_SPAM_SEEN;
    req.key = cl->ip;
    req.client_ip = cl->ip;
    req.session = env->queue_id;
    req.no_reply = true;
    policy_client_ask(h->client, &req, NULL, NULL);
}
