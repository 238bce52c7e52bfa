/* session_policy.c - a session's questions to the policy service and
 * its answers (see session_policy.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "map.h"
#include "policy_bypass.h"
#include "policy_client.h"
#include "policy_keys.h"
#include "session_policy.h"
#include "smtp_session_state.h"
#include "timeutil.h"
#include "xalloc.h"

#define UNAVAILABLE "Error: policy service unavailable; try again later"

struct policy_conf {
    bool     greylisting, greylist_network, adaptive;
    int      prefix4, prefix6;
    bool     intrusion, refuse_blocked, close_blocked, dnsbl;
    int64_t  tarpit_ms;
    long long unknown_limit, relay_limit, rset_limit, auth_limit;
    unsigned long long size_limit;
    policy_bypass_t *greylist_bypass, *intrusion_bypass;
    char   **spamtraps;                 /* lower case, NULL-terminated */
    map_t  **limit_maps;
    size_t   n_limit_maps;
    long     msg_limit, domain_limit, rcpt_limit;
};

/* One question of the current command and, once there, its answer. */
typedef struct answer {
    struct session_policy *owner;
    int            kind;
    char          *key, *reason;        /* what was asked */
    policy_call_t *call;                /* while pending */
    bool           pending, failed;
    Correio__PolicyAction action;
    char          *r_reason, *text;
    uint64_t       until;
    bool           spam_history;
} answer;

typedef struct session_policy {
    smtp_session_t *s;
    answer       **a;
    size_t         n;
    policy_call_t *event;               /* an event's verdict being awaited */
    bool           connected;           /* the CONNECT answer is known */
    bool           spam_history;
    bool           blocked;             /* tarpit from now on */
    bool           greet_slept;
    bool           close_after;         /* 421 after the 250 to DATA */
    bool           warned;
    unsigned       rsets;
    /* the current transaction's sending limits */
    bool           limited;
    char           user_key[ADDR_PATH_MAX + 8], domain_key[ADDR_PATH_MAX + 8];
    long           user_limit, domain_limit, rcpt_limit;
} session_policy;

/* ---------------------------------------------------------------- settings */

static void strv_free(char ***v)
{
    if (*v == NULL)
        return;
    for (char **p = *v; *p; p++)
        free(*p);
    xfree(v);
}

void policy_conf_free(policy_conf_t **pp)
{
    policy_conf_t *p = *pp;

    if (p == NULL)
        return;
    policy_bypass_free(&p->greylist_bypass);
    policy_bypass_free(&p->intrusion_bypass);
    strv_free(&p->spamtraps);
    for (size_t i = 0; i < p->n_limit_maps; i++)
        map_close(&p->limit_maps[i]);
    xfree(&p->limit_maps);
    xfree(pp);
}

policy_conf_t *policy_conf_open(const config_t *cfg, char **err)
{
    policy_conf_t *p = xcalloc(1, sizeof(*p));
    const char *const *traps = config_list(cfg, "spamtrap_addresses");
    const char *const *maps = config_list(cfg, "sending_limit_maps");
    size_t n = 0;

    p->greylisting = config_bool(cfg, "greylisting");
    p->greylist_network = config_bool(cfg, "greylist_network");
    p->prefix4 = (int)config_int(cfg, "greylist_network_prefix");
    p->prefix6 = (int)config_int(cfg, "greylist_network_prefix6");
    p->adaptive = config_bool(cfg, "greylist_adaptive");
    p->intrusion = config_bool(cfg, "intrusion_prevention");
    p->refuse_blocked = config_bool(cfg, "intrusion_refuse_blocked");
    p->close_blocked = config_bool(cfg, "intrusion_close_blocked");
    p->tarpit_ms = config_time_ms(cfg, "intrusion_tarpit_delay");
    p->unknown_limit = config_int(cfg, "intrusion_unknown_recipient_limit");
    p->relay_limit = config_int(cfg, "intrusion_relay_failure_limit");
    p->rset_limit = config_int(cfg, "intrusion_rset_limit");
    p->auth_limit = config_int(cfg, "intrusion_auth_failure_limit");
    p->size_limit = (unsigned long long)config_size(cfg, "intrusion_message_size_limit");
    p->dnsbl = config_bool(cfg, "intrusion_dnsbl");
    p->msg_limit = (long)config_int(cfg, "sending_message_limit");
    p->domain_limit = (long)config_int(cfg, "sending_domain_message_limit");
    p->rcpt_limit = (long)config_int(cfg, "sending_recipient_limit");
    if ((p->greylist_bypass = policy_bypass_open("greylist_bypass",
                                                 config_list(cfg, "greylist_bypass"), err)) == NULL
        || (p->intrusion_bypass = policy_bypass_open("intrusion_bypass",
                                                     config_list(cfg, "intrusion_bypass"),
                                                     err)) == NULL)
        goto fail;
    while (traps[n])
        n++;
    p->spamtraps = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        p->spamtraps[i] = address_lower(traps[i]);
    for (size_t i = 0; maps[i]; i++) {
        map_t *m = map_open(maps[i], config_dir(cfg), err);

        if (m == NULL)
            goto fail;
        p->limit_maps = xrealloc(p->limit_maps, (p->n_limit_maps + 1) * sizeof(*p->limit_maps));
        p->limit_maps[p->n_limit_maps++] = m;
    }
    return p;
fail:
    policy_conf_free(&p);
    return NULL;
}

/* limits_on - are sending limits configured at all? */
static bool limits_on(const policy_conf_t *p)
{
    return p->msg_limit || p->domain_limit || p->rcpt_limit || p->n_limit_maps;
}

bool policy_conf_needs_client(const policy_conf_t *p)
{
    return p->greylisting || p->intrusion || (p->msg_limit || p->domain_limit || p->n_limit_maps);
}

/* ---------------------------------------------------------------- answers */

static session_policy *sp_of(smtp_session_t *s)
{
    if (s->policy == NULL) {
        s->policy = xcalloc(1, sizeof(*s->policy));
        s->policy->s = s;
    }
    return s->policy;
}

static void answer_free(answer **ap)
{
    answer *a = *ap;

    policy_call_abandon(&a->call);
    free(a->key);
    free(a->reason);
    free(a->r_reason);
    free(a->text);
    xfree(ap);
}

void session_policy_forget(smtp_session_t *s)
{
    session_policy *sp = s->policy;

    if (sp == NULL)
        return;
    for (size_t i = 0; i < sp->n; i++)
        answer_free(&sp->a[i]);
    sp->n = 0;
}

void session_policy_end(smtp_session_t *s)
{
    if (s->policy == NULL)
        return;
    session_policy_forget(s);
    policy_call_abandon(&s->policy->event);
    xfree(&s->policy->a);
    xfree(&s->policy);
}

static bool any_pending(const session_policy *sp)
{
    for (size_t i = 0; i < sp->n; i++)
        if (sp->a[i]->pending)
            return true;
    return false;
}

/* on_answer - a question's answer (NULL: none in time): keep it; when the
 * command has all its answers, run it again. */
static void on_answer(void *arg, const PolicyReply *r)
{
    answer *a = arg;
    session_policy *sp = a->owner;
    smtp_session_t *s = sp->s;

    a->call = NULL;
    a->pending = false;
    if (r == NULL) {
        a->failed = true;
    } else {
        a->action = r->action;
        a->r_reason = xstrdup(r->reason ? r->reason : "");
        a->text = xstrdup(r->text ? r->text : "");
        a->until = r->until;
        a->spam_history = r->spam_history;
        if (r->action == CORREIO__POLICY_ACTION__POLICY_ERROR) {
            char t[300];
            log_warn("policy: %s: router error: %s", s->client,
                     log_printable(t, sizeof(t), a->text, strlen(a->text)));
            a->failed = true;
        }
    }
    if (!any_pending(sp) && s->wait == W_POLICY)
        session_rerun(s);
}

/* fill - the fields every request carries. */
static void fill(smtp_session_t *s, PolicyRequest *req, int kind, const char *key)
{
    req->kind = kind;
    req->key = (char *)key;
    req->client_ip = s->ip;
    req->sender = s->sender;
    req->session = s->have_qid ? s->qid : "NOQUEUE";
}

/* question - the answer to (kind, key, reason) for this command: known,
 * pending, or asked now.  limit for LIMIT_CHECK/COUNT. */
static answer *question(smtp_session_t *s, int kind, const char *key, const char *reason,
                        const char *rcpt, unsigned limit)
{
    session_policy *sp = sp_of(s);
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    answer *a;

    for (size_t i = 0; i < sp->n; i++) {
        a = sp->a[i];
        if (a->kind == kind && strcmp(a->key, key) == 0
            && strcmp(a->reason, reason ? reason : "") == 0)
            return a;
    }
    a = xcalloc(1, sizeof(*a));
    a->owner = sp;
    a->kind = kind;
    a->key = xstrdup(key);
    a->reason = xstrdup(reason ? reason : "");
    sp->a = xrealloc(sp->a, (sp->n + 1) * sizeof(*sp->a));
    sp->a[sp->n++] = a;
    if (s->ig->policy_client == NULL) {     /* configured on, but no client: fail safe */
        a->failed = true;
        return a;
    }
    fill(s, &req, kind, key);
    req.reason = reason ? (char *)reason : "";
    req.recipient = rcpt ? (char *)rcpt : "";
    req.limit = limit;
    req.count = kind == CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT ? 1 : 0;
    a->pending = true;
    a->call = policy_client_ask(s->ig->policy_client, &req, on_answer, a);
    return a;
}

/* ---------------------------------------------------------------- logs and replies */

/* log_decision - Postfix's "reject:" line with the rule and reason. */
static void log_decision(smtp_session_t *s, const char *cmd, const char *text, const char *rcpt,
                         const char *rule, const char *reason)
{
    char from[300], to[300] = "", helo[300] = "", t[600];

    log_printable(from, sizeof(from), s->sender, strlen(s->sender));
    if (rcpt)
        log_printable(to, sizeof(to), rcpt, strlen(rcpt));
    if (s->helo)
        log_printable(helo, sizeof(helo), s->helo, strlen(s->helo));
    log_info("%s: reject: %s from %s: %s; from=<%s>%s%s%s proto=%s helo=<%s>; policy=%s reason=%s",
             s->have_qid ? s->qid : "NOQUEUE", cmd, s->client,
             log_printable(t, sizeof(t), text, strlen(text)), from,
             rcpt ? " to=<" : "", to, rcpt ? ">" : "", s->esmtp ? "ESMTP" : "SMTP", helo, rule,
             reason && reason[0] ? reason : "-");
}

/* unavailable - no answer: 451 (the warning once per session). */
static void unavailable(smtp_session_t *s, const char *cmd, const char *rcpt, const char *rule)
{
    session_policy *sp = sp_of(s);

    if (!sp->warned) {
        log_warn("%s: policy service unavailable (no answer from the router)", s->client);
        sp->warned = true;
    }
    log_decision(s, cmd, "451 4.3.0 " UNAVAILABLE, rcpt, rule, "UNAVAILABLE");
    session_reply(s, "451 4.3.0 %s", UNAVAILABLE);
}

/* reply_text - the router's reply text if it is a reply, else fallback. */
static const char *reply_text(const answer *a, const char *fallback)
{
    const char *t = a->text ? a->text : "";

    if (strlen(t) >= 4 && (t[0] == '4' || t[0] == '5') && t[3] == ' ' && !strpbrk(t, "\r\n"))
        return t;
    return fallback;
}

/* ---------------------------------------------------------------- who is exempt */

static bool in_mynetworks(smtp_session_t *s)
{
    return s->ig->mynetworks && cidr_list_match(s->ig->mynetworks, (struct sockaddr *)&s->peer);
}

/* events_apply - are intrusion events told for this session? */
static bool events_apply(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;

    return p && p->intrusion && !s->auth_user && !in_mynetworks(s)
           && !policy_bypass_client(p->intrusion_bypass, (struct sockaddr *)&s->peer,
                                    s->cs.client_name);
}

/* ---------------------------------------------------------------- connect */

sp_step session_policy_connect(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;
    session_policy *sp;
    char key[64];
    answer *a;

    if (p == NULL || !(p->intrusion || (p->greylisting && p->adaptive)))
        return SP_GO;
    sp = sp_of(s);
    if (!sp->connected) {
        policy_key_ip(s->ip, key, sizeof(key));
        a = question(s, CORREIO__POLICY_KIND__POLICY_CONNECT, key, NULL, NULL, 0);
        if (a->pending) {
            s->wait = W_POLICY;
            return SP_WAIT;
        }
        if (a->failed) {
            if (!sp->warned)
                log_warn("%s: policy service unavailable (no answer from the router)", s->client);
            sp->warned = true;
            log_info("NOQUEUE: reject: CONNECT from %s: 421 4.3.0 %s; proto=SMTP; "
                     "policy=connect reason=UNAVAILABLE", s->client, UNAVAILABLE);
            session_reply(s, "421 4.3.0 %s %s", s->ig->hostname, UNAVAILABLE);
            s->closing = true;
            return SP_REPLIED;
        }
        sp->connected = true;
        sp->spam_history = a->spam_history;
        if (a->action == CORREIO__POLICY_ACTION__POLICY_BLOCKED && p->intrusion) {
            char fallback[300];

            snprintf(fallback, sizeof(fallback),
                     "421 4.7.0 %s: Error: [%s] blocked by intrusion prevention (%s)",
                     s->ig->hostname, s->ip, a->r_reason);
            if (p->refuse_blocked) {
                const char *text = reply_text(a, fallback);

                log_info("NOQUEUE: reject: CONNECT from %s: %s; proto=SMTP; "
                         "policy=intrusion reason=%s", s->client, text, a->r_reason);
                session_reply(s, "%s", text);
                s->closing = true;
                return SP_REPLIED;
            }
            log_info("NOQUEUE: tarpit: CONNECT from %s: blocked by intrusion prevention; "
                     "policy=intrusion reason=%s", s->client, a->r_reason);
            sp->blocked = true;
        }
    }
    if (sp->blocked && p->tarpit_ms > 0 && !sp->greet_slept) {
        sp->greet_slept = true;
        s->wait = W_TARPIT;
        s->ig->sleep_until(s->ig->server, s->cookie, time_mono_ms() + p->tarpit_ms);
        return SP_WAIT;
    }
    return SP_GO;
}

bool session_policy_tarpit(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;

    if (s->policy == NULL || !s->policy->blocked || p == NULL || p->tarpit_ms <= 0)
        return false;
    s->wait = W_TARPIT;
    s->ig->sleep_until(s->ig->server, s->cookie, time_mono_ms() + p->tarpit_ms);
    return true;
}

/* ---------------------------------------------------------------- events */

static void on_event(void *arg, const PolicyReply *r)
{
    session_policy *sp = arg;
    smtp_session_t *s = sp->s;
    const policy_conf_t *p = s->ig->policy;

    sp->event = NULL;
    if (r == NULL) {
        if (!sp->warned)
            log_warn("%s: policy service unavailable (no answer from the router)", s->client);
        sp->warned = true;
    } else if (r->action == CORREIO__POLICY_ACTION__POLICY_BLOCKED) {
        log_info("%s: intrusion: %s blocked; policy=intrusion reason=%s",
                 s->have_qid ? s->qid : "NOQUEUE", s->client, r->reason ? r->reason : "");
        sp->blocked = true;
        if (p && p->close_blocked && !s->closing) {
            char fallback[300];

            snprintf(fallback, sizeof(fallback),
                     "421 4.7.0 %s: Error: blocked by intrusion prevention (%s)",
                     s->ig->hostname, r->reason ? r->reason : "");
            session_reply(s, "%s", r->text && strncmp(r->text, "421 ", 4) == 0
                                   && !strpbrk(r->text, "\r\n") ? r->text : fallback);
            s->closing = true;
        }
    }
    if (s->wait == W_POLICY) {
        s->wait = W_NONE;
        session_resume(s);
    }
}

/* event - tell the router about reason (the reply is given); the session
 * waits for its verdict. */
static void event(smtp_session_t *s, const char *reason, const char *detail)
{
    session_policy *sp;
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    char key[64];

    if (!events_apply(s) || s->ig->policy_client == NULL)
        return;
    sp = sp_of(s);
    policy_key_ip(s->ip, key, sizeof(key));
    fill(s, &req, CORREIO__POLICY_KIND__POLICY_EVENT, key);
    req.reason = (char *)reason;
    req.detail = (char *)(detail ? detail : "");
    if (s->closing || s->wait != W_NONE || sp->event) {
        req.no_reply = true;            /* nobody waits for the verdict: just count it */
        policy_client_ask(s->ig->policy_client, &req, NULL, NULL);
        return;
    }
    sp->event = policy_client_ask(s->ig->policy_client, &req, on_event, sp);
    s->wait = W_POLICY;
}

void session_policy_rejected(smtp_session_t *s, const char *cmd, const char *text)
{
    const policy_conf_t *p = s->ig->policy;

    if (p == NULL || !p->intrusion)
        return;
    if (s->cs.rbl_reply) {              /* reject_rbl_client, reject_rhsbl_sender */
        if (p->dnsbl)
            event(s, "DNSBL", s->cs.rbl_listed);
        return;
    }
    if (strcmp(cmd, "RCPT") != 0)
        return;
    if (strncmp(text, "550 5.1.1 ", 10) == 0 && p->unknown_limit > 0)
        event(s, "UNKNOWN_RCPT", NULL);
    else if (strstr(text, "Relay access denied") && p->relay_limit > 0)
        event(s, "RELAY", NULL);
}

bool session_policy_spamtrap(smtp_session_t *s, const char *rcpt)
{
    const policy_conf_t *p = s->ig->policy;
    char text[ADDR_PATH_MAX + 100];

    if (p == NULL || !p->intrusion || !p->spamtraps[0] || !events_apply(s))
        return false;
    for (char **t = p->spamtraps; *t; t++) {
        if (strcasecmp(*t, rcpt) != 0)
            continue;
        snprintf(text, sizeof(text), "550 5.7.1 <%s>: Recipient address rejected: Access denied",
                 rcpt);
        log_decision(s, "RCPT", text, rcpt, "intrusion", "SPAMTRAP");
        session_reply(s, "%s", text);
        event(s, "SPAMTRAP", rcpt);
        return true;
    }
    return false;
}

void session_policy_size(smtp_session_t *s, unsigned long long size)
{
    const policy_conf_t *p = s->ig->policy;
    char detail[40];

    if (p == NULL || !p->intrusion || p->size_limit == 0 || size <= p->size_limit)
        return;
    snprintf(detail, sizeof(detail), "size=%llu", size);
    event(s, "SIZE", detail);
}

void session_policy_rset(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;
    session_policy *sp;

    if (p == NULL || !p->intrusion || p->rset_limit <= 0)
        return;
    sp = sp_of(s);
    if (++sp->rsets == (unsigned long long)p->rset_limit + 1) {
        char detail[32];

        snprintf(detail, sizeof(detail), "rsets=%u", sp->rsets);
        event(s, "RSET", detail);
    }
}

void session_policy_auth_failed(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;

    if (p && p->intrusion && p->auth_limit > 0)
        event(s, "AUTH", s->auth_method);
}

void session_policy_after_reply(smtp_session_t *s)
{
    if (s->policy == NULL || !s->policy->close_after || s->closing)
        return;
    s->policy->close_after = false;
    session_reply(s, "421 4.7.0 %s: Error: blocked by intrusion prevention (SIZE)",
                  s->ig->hostname);
    s->closing = true;
}

/* ---------------------------------------------------------------- sending limits */

/* lookup_limits - the sending_limit_maps entry for key; false on a table
 * error.  l stays all -1 when nothing is found. */
static bool lookup_limits(const policy_conf_t *p, const char *key, policy_limits *l)
{
    l->messages = l->recipients = l->domain_messages = -1;
    for (size_t i = 0; key[0] && i < p->n_limit_maps; i++) {
        char *v = NULL;
        const char *bad = NULL;

        switch (map_lookup(p->limit_maps[i], key, &v)) {
        case MAP_FOUND:
            if (!policy_limits_parse(v, l, &bad)) {
                log_warn("%s: %s: bad value \"%s\" (use messages=N recipients=N "
                         "domain_messages=N)", map_spec(p->limit_maps[i]), key, v);
                l->messages = l->recipients = l->domain_messages = -1;
            }
            free(v);
            return true;
        case MAP_NOTFOUND:
            break;
        case MAP_ERROR:
            return false;
        }
    }
    return true;
}

/* resolve_limits - the transaction's limits (sp->limited and the keys);
 * false when a table cannot be read. */
static bool resolve_limits(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;
    session_policy *sp = sp_of(s);
    const char *addr, *domain;
    policy_limits u, d;
    char *lower;

    sp->limited = false;
    if (p == NULL || !limits_on(p) || s->sender[0] == '\0')
        return true;
    if (s->auth_user)
        addr = s->auth_user;
    else if (in_mynetworks(s))
        addr = s->sender;
    else
        return true;
    lower = address_lower(addr);
    domain = address_domain(lower);
    if (!lookup_limits(p, lower, &u) || !lookup_limits(p, domain, &d)) {
        xfree(&lower);
        return false;
    }
    sp->user_limit = u.messages >= 0 ? u.messages : d.messages >= 0 ? d.messages : p->msg_limit;
    sp->rcpt_limit = u.recipients >= 0 ? u.recipients
                     : d.recipients >= 0 ? d.recipients : p->rcpt_limit;
    sp->domain_limit = d.domain_messages >= 0 ? d.domain_messages : p->domain_limit;
    snprintf(sp->user_key, sizeof(sp->user_key), "user:%s", lower);
    snprintf(sp->domain_key, sizeof(sp->domain_key), "domain:%s", domain);
    if (!domain[0])
        sp->domain_limit = 0;
    sp->limited = sp->user_limit > 0 || sp->domain_limit > 0 || sp->rcpt_limit > 0;
    xfree(&lower);
    return true;
}

sp_step session_policy_mail(smtp_session_t *s)
{
    session_policy *sp;
    answer *a[2] = { NULL, NULL };

    if (s->ig->policy == NULL || !limits_on(s->ig->policy))
        return SP_GO;
    if (!resolve_limits(s)) {
        log_decision(s, "MAIL", "451 4.3.0 Error: sending limits unavailable; try again later",
                     NULL, "limits", "TABLE");
        session_reply(s, "451 4.3.0 Error: sending limits unavailable; try again later");
        return SP_REPLIED;
    }
    sp = s->policy;
    if (!sp->limited)
        return SP_GO;
    if (sp->user_limit > 0)
        a[0] = question(s, CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK, sp->user_key, NULL, NULL,
                        (unsigned)sp->user_limit);
    if (sp->domain_limit > 0)
        a[1] = question(s, CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK, sp->domain_key, NULL, NULL,
                        (unsigned)sp->domain_limit);
    if (any_pending(sp)) {
        s->wait = W_POLICY;
        return SP_WAIT;
    }
    for (int i = 0; i < 2; i++) {
        char fallback[ADDR_PATH_MAX + 100];
        const char *text;

        if (a[i] == NULL)
            continue;
        if (a[i]->failed) {
            unavailable(s, "MAIL", NULL, "limits");
            sp->limited = false;
            return SP_REPLIED;
        }
        if (a[i]->action == CORREIO__POLICY_ACTION__POLICY_OK)
            continue;
        snprintf(fallback, sizeof(fallback), "450 4.7.1 <%s>: Sender address rejected: "
                 "daily sending limit of %ld messages reached", s->sender,
                 i == 0 ? sp->user_limit : sp->domain_limit);
        text = reply_text(a[i], fallback);
        log_decision(s, "MAIL", text, NULL, "limits", a[i]->r_reason);
        session_reply(s, "%s", text);
        sp->limited = false;
        return SP_REPLIED;
    }
    return SP_GO;
}

bool session_policy_rcpt_cap(smtp_session_t *s)
{
    session_policy *sp = s->policy;

    if (sp == NULL || !sp->limited || sp->rcpt_limit <= 0 || s->n_rcpt < (size_t)sp->rcpt_limit)
        return false;
    session_reply(s, "452 4.5.3 Error: too many recipients for this sender (limit %ld)",
                  sp->rcpt_limit);
    return true;
}

/* ---------------------------------------------------------------- greylisting */

sp_step session_policy_rcpt(smtp_session_t *s, const char *rcpt)
{
    const policy_conf_t *p = s->ig->policy;
    char key[POLICY_KEY_MAX], net[64];
    char fallback[ADDR_PATH_MAX + 100];
    const char *text;
    answer *a;

    if (p == NULL || !p->greylisting || s->auth_user || in_mynetworks(s))
        return SP_GO;
    if (p->adaptive && !(s->policy && s->policy->spam_history))
        return SP_GO;
    if (policy_bypass_client(p->greylist_bypass, (struct sockaddr *)&s->peer, s->cs.client_name)
        || policy_bypass_address(p->greylist_bypass, s->sender)
        || policy_bypass_address(p->greylist_bypass, rcpt))
        return SP_GO;
    if (p->greylist_network)
        policy_key_network(s->ip, p->prefix4, p->prefix6, net, sizeof(net));
    policy_key_triplet(p->greylist_network ? net : NULL, s->sender, rcpt, key, sizeof(key));
    a = question(s, CORREIO__POLICY_KIND__POLICY_GREYLIST, key, NULL, rcpt, 0);
    if (a->pending) {
        s->wait = W_POLICY;
        return SP_WAIT;
    }
    if (a->failed) {
        unavailable(s, "RCPT", rcpt, "greylist");
        return SP_REPLIED;
    }
    if (a->action == CORREIO__POLICY_ACTION__POLICY_OK)
        return SP_GO;
    snprintf(fallback, sizeof(fallback),
             "450 4.7.1 <%s>: Recipient address rejected: Greylisted (see RFC 6647)", rcpt);
    text = reply_text(a, fallback);
    log_decision(s, "RCPT", text, rcpt, "greylist", a->r_reason);
    session_reply(s, "%s", text);
    return SP_REPLIED;
}

/* ---------------------------------------------------------------- end of DATA */

sp_step session_policy_data(smtp_session_t *s)
{
    const policy_conf_t *p = s->ig->policy;
    session_policy *sp = s->policy;
    answer *size = NULL, *count[2] = { NULL, NULL };
    char key[64];

    if (p == NULL)
        return SP_GO;
    if (p->intrusion && p->size_limit && s->data.size > p->size_limit && events_apply(s)) {
        policy_key_ip(s->ip, key, sizeof(key));
        size = question(s, CORREIO__POLICY_KIND__POLICY_EVENT, key, "SIZE", NULL, 0);
    }
    if (sp && sp->limited && sp->user_limit > 0)
        count[0] = question(s, CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, sp->user_key, NULL, NULL,
                            (unsigned)sp->user_limit);
    if (sp && sp->limited && sp->domain_limit > 0)
        count[1] = question(s, CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, sp->domain_key, NULL,
                            NULL, (unsigned)sp->domain_limit);
    if (s->policy == NULL)
        return SP_GO;
    if (any_pending(s->policy)) {
        s->wait = W_POLICY;
        return SP_WAIT;
    }
    for (int i = 0; i < 2; i++) {
        if (count[i] && count[i]->failed) {
            log_info("%s: reject: DATA from %s: 451 4.3.0 %s; size=%zu; policy=limits "
                     "reason=UNAVAILABLE", s->qid, s->client, UNAVAILABLE, s->data.size);
            if (!s->policy->warned)
                log_warn("%s: policy service unavailable (no answer from the router)", s->client);
            s->policy->warned = true;
            session_reply(s, "451 4.3.0 %s", UNAVAILABLE);
            return SP_REPLIED;
        }
    }
    if (size && !size->failed && size->action == CORREIO__POLICY_ACTION__POLICY_BLOCKED) {
        log_info("%s: intrusion: %s blocked; policy=intrusion reason=%s", s->qid, s->client,
                 size->r_reason);
        s->policy->blocked = true;
        s->policy->close_after = p->close_blocked;
    }
    return SP_GO;
}
