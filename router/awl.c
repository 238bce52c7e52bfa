/* awl.c - the auto-whitelist as the router's routing path uses it (see
 * awl.h): notes go to the policy service fire and forget; a check asks
 * the router that owns the user and waits for its answer, at most
 * policy_timeout, on the client's own sockets.  Checks are rare (only
 * mail that would get a spam action), so a short blocking wait in the
 * routing path costs little; a router that does not answer costs the
 * sender the whitelisting, never the mail.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#include "awl.h"
#include "log.h"
#include "policy_client.h"
#include "xalloc.h"

#define AWL_KEY_MAX   300               /* "awl:" and an address (254 bytes at most) */
#define AWL_POLL_MAX  100               /* ms: wake up at least this often while waiting */

struct awl {
    policy_client_t *client;
    int64_t          timeout_ms;        /* policy_timeout, for the log line */
};

/* The answer to one check, filled by on_answer. */
typedef struct awl_answer {
    bool done, ok, failed;
    char reason[64];
} awl_answer;

awl_t *awl_new(void *zctx, const config_t *cfg)
{
    awl_t *a;
    policy_client_t *client;
    int64_t timeout = config_time_ms(cfg, "policy_timeout");
    char *err = NULL;

    if (!config_bool(cfg, "spam_auto_whitelist"))
        return NULL;
    client = policy_client_new(zctx, cfg, config_list(cfg, "policy_endpoints"), timeout, &err);
    if (!client) {
        log_warn("policy_endpoints: %s; the auto-whitelist (spam_auto_whitelist) is off", err);
        xfree(&err);
        return NULL;
    }
    a = xcalloc(1, sizeof(*a));
    a->client = client;
    a->timeout_ms = timeout;
    return a;
}

void awl_free(awl_t **a)
{
    if (!*a)
        return;
    policy_client_free(&(*a)->client);
    xfree(a);
}

/* awl_key - "awl:ADDRESS" in lower case into dst; false when it does not
 * fit (such an address is not kept). */
static bool awl_key(char *dst, size_t size, const char *user)
{
    size_t len = strlen(user);

    if (len == 0 || len + 5 > size)
        return false;
    memcpy(dst, "awl:", 4);
    for (size_t i = 0; i <= len; i++) {
        char c = user[i];

        dst[4 + i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    return true;
}

void awl_note_outbound(awl_t *a, const Envelope *env)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    const char *sender = env ? env->reverse_path : NULL;
    char key[AWL_KEY_MAX];
    bool ours;

    if (!a || !env || !sender || !sender[0])
        return;
    ours = (env->client && env->client->auth_user && env->client->auth_user[0])
           || (env->verdict && env->verdict->outbound);
    if (!ours || !awl_key(key, sizeof(key), sender))
        return;
    req.kind = CORREIO__POLICY_KIND__POLICY_AWL_NOTE;
    req.key = key;
    req.sender = (char *)sender;
    req.session = env->queue_id;
    req.no_reply = true;
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const Recipient *r = env->rcpt[i];
        /* what the user wrote, before alias expansion */
        const char *to = r->original && r->original[0] ? r->original : r->address;

        if (!to || !to[0] || strcasecmp(to, sender) == 0)
            continue;
        req.recipient = (char *)to;
        policy_client_ask(a->client, &req, NULL, NULL);
    }
}

/* on_answer - the policy service's answer to a check (NULL: none in time). */
static void on_answer(void *arg, const PolicyReply *reply)
{
    awl_answer *ans = arg;

    ans->done = true;
    if (reply == NULL) {
        ans->failed = true;
        return;
    }
    ans->ok = reply->action == CORREIO__POLICY_ACTION__POLICY_OK;
    if (reply->action == CORREIO__POLICY_ACTION__POLICY_ERROR) {
        const char *t = reply->text && reply->text[0] ? reply->text : reply->reason;

        ans->failed = true;
        log_printable(ans->reason, sizeof(ans->reason), t ? t : "", t ? strlen(t) : 0);
    }
}

/* wait_answer - run the client until ans is done: it always is by the
 * request's deadline, when policy_client_process fails the call. */
static void wait_answer(awl_t *a, awl_answer *ans)
{
    size_t n;
    const int *fds = policy_client_fds(a->client, &n);
    zmq_pollitem_t *items = xcalloc(n + 1, sizeof(*items));

    for (size_t i = 0; i < n; i++) {
        items[i].fd = fds[i];
        items[i].events = ZMQ_POLLIN;
    }
    /* edge-triggered ZMQ_FDs: process first, then sleep until an edge */
    policy_client_process(a->client);
    while (!ans->done) {
        int64_t t = policy_client_timeout_ms(a->client);

        if (t < 0 || t > AWL_POLL_MAX)
            t = AWL_POLL_MAX;
        if (zmq_poll(items, (int)n, (long)t) < 0 && zmq_errno() != EINTR)
            log_warn("awl: zmq_poll: %s", zmq_strerror(zmq_errno()));
        policy_client_process(a->client);
    }
    xfree(&items);
}

bool awl_check(awl_t *a, const char *user, const char *sender)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    awl_answer ans = {false, false, false, ""};
    char key[AWL_KEY_MAX], ubuf[AWL_KEY_MAX + 8], sbuf[AWL_KEY_MAX + 8];

    if (!a || !user || !sender || !sender[0] || !awl_key(key, sizeof(key), user))
        return false;
    req.kind = CORREIO__POLICY_KIND__POLICY_AWL_CHECK;
    req.key = key;
    req.sender = (char *)sender;
    req.recipient = (char *)user;
    if (policy_client_ask(a->client, &req, on_answer, &ans) == NULL)
        return false;                   /* cannot happen: only no_reply has no handle */
    wait_answer(a, &ans);
    log_printable(ubuf, sizeof(ubuf), user, strlen(user));
    log_printable(sbuf, sizeof(sbuf), sender, strlen(sender));
    if (ans.failed && ans.reason[0])
        log_warn("awl: user=<%s> sender=<%s>: the policy service refused the check: %s; "
                 "not whitelisted", ubuf, sbuf, ans.reason);
    else if (ans.failed)
        log_warn("awl: user=<%s> sender=<%s>: no answer from the policy service within "
                 "policy_timeout (%lld ms); not whitelisted", ubuf, sbuf,
                 (long long)a->timeout_ms);
    return ans.ok;
}
