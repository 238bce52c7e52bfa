/* smtp_session.c - the SMTP state machine (see smtp_session.h): verb
 * table, ESMTP parameters (SIZE, BODY, AUTH, and DSN's RET, ENVID,
 * NOTIFY, ORCPT), STARTTLS, the restriction checks at each
 * command, DATA with header/body checks, and handing the packed envelope
 * to the spool.  AUTH is in smtp_auth.c.  Replies carry enhanced status
 * codes (RFC 2034) with Postfix's texts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "received.h"
#include "session_policy.h"
#include "smtp_command.h"
#include "smtp_session_state.h"
#include "smtpd_rbl.h"
#include "spool.h"
#include "submission_bypass.h"
#include "timeutil.h"
#include "xalloc.h"

#define BODY_KEEP_MAX (1u << 20)   /* body storage kept between messages */
#define AUTH_LINE_MAX 12288         /* an AUTH exchange line (RFC 4954 section 4) */

static void do_ehlo(smtp_session_t *, const char *, size_t);
static void do_helo(smtp_session_t *, const char *, size_t);
static void do_mail(smtp_session_t *, const char *, size_t);
static void do_rcpt(smtp_session_t *, const char *, size_t);
static void do_data(smtp_session_t *, const char *, size_t);
static void do_rset(smtp_session_t *, const char *, size_t);
static void do_noop(smtp_session_t *, const char *, size_t);
static void do_quit(smtp_session_t *, const char *, size_t);
static void do_vrfy(smtp_session_t *, const char *, size_t);
static void do_help(smtp_session_t *, const char *, size_t);
static void do_starttls(smtp_session_t *, const char *, size_t);

static const verb verbs[] = {
    { "EHLO", V_EHLO, S_ANY, do_ehlo, NULL },
    { "HELO", V_HELO, S_ANY, do_helo, NULL },
    { "MAIL", V_MAIL, S_IDLE, do_mail, "503 5.5.1 Error: nested MAIL command" },
    { "RCPT", V_RCPT, S_MAIL | S_RCPT, do_rcpt, "503 5.5.1 Error: need MAIL command" },
    { "DATA", V_DATA, S_RCPT, do_data, "503 5.5.1 Error: need RCPT command" },
    { "RSET", V_RSET, S_ANY, do_rset, NULL },
    { "NOOP", V_NOOP, S_ANY, do_noop, NULL },
    { "QUIT", V_QUIT, S_ANY, do_quit, NULL },
    { "VRFY", V_VRFY, S_ANY, do_vrfy, NULL },
    { "HELP", V_HELP, S_ANY, do_help, NULL },
    { "STARTTLS", V_STARTTLS, S_IDLE, do_starttls, "503 5.5.1 Error: MAIL transaction in progress" },
    { "AUTH", V_AUTH, S_ANY, smtp_auth_command, NULL },
};

static const char *const verb_log_names[V_COUNT] = {
    "ehlo", "helo", "mail", "rcpt", "data", "rset", "noop", "quit",
    "vrfy", "help", "starttls", "auth", "unknown",
};

const char *const listener_role_names[] = { "smtp", "submission", "submissions" };

void session_reply(smtp_session_t *s, const char *fmt, ...)
{
    va_list ap;
    size_t start = s->out->len;

    va_start(ap, fmt);
    buf_vprintf(s->out, fmt, ap);
    va_end(ap);
    buf_append(s->out, "\r\n", 2);
    s->last_code = atoi(s->out->data + start);
    if (s->last_code >= 400)
        metrics_inc("correio_ingress_rejects_total", s->last_code >= 500 ? "class=\"5xx\"" : "class=\"4xx\"");
    if (s->last_code >= 400 && s->last_code != 421) {
        if (++s->errors >= s->ig->hard_error_limit && !s->closing) {
            log_info("too many errors after %s from %s",
                     s->state == S_DATA ? "DATA" : "command", s->client);
            buf_printf(s->out, "421 4.7.0 %s Error: too many errors\r\n", s->ig->hostname);
            s->closing = true;
        }
    }
}



void session_resume(smtp_session_t *s)
{
    s->ig->resume(s->ig->server, s->cookie);
}

/* --- the session's facts for the restriction checks */

static dns_fact domain_fact(void *sess, const char *domain)
{
    smtp_session_t *s = sess;
    return smtpd_dns_domain(s->dns, domain);
}

static void check_warn(void *sess, const char *what, const char *text)
{
    smtp_session_t *s = sess;
    log_info("%s: %s: %s: %s", s->have_qid ? s->qid : "NOQUEUE", what, s->client, text);
}

/* set_client_name - "name[ip]" once the name is known. */
static void set_client_name(smtp_session_t *s)
{
    snprintf(s->client, sizeof(s->client), "%s[%s]", s->cs.client_name, s->ip);
}

/* dns_done - a lookup finished: greet, or run the waiting command again. */
static void dns_done(void *arg);

smtp_session_t *smtp_session_new(ingress_t *ig, listener_role role,
                                  const struct sockaddr *peer, socklen_t peerlen,
                                  buf_t *out, void *cookie)
{
    smtp_session_t *s = xcalloc(1, sizeof(*s));

    metrics_inc("correio_ingress_sessions_total", NULL);
    s->ig = ig;
    s->role = role;
    s->out = out;
    s->cookie = cookie;
    if (peerlen > sizeof(s->peer))
        peerlen = sizeof(s->peer);
    memcpy(&s->peer, peer, peerlen);
    if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], s->ip, sizeof(s->ip));
        } else {
            inet_ntop(AF_INET6, &a6->sin6_addr, s->ip, sizeof(s->ip));
            s->ipv6 = true;
        }
        s->port = ntohs(a6->sin6_port);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &a4->sin_addr, s->ip, sizeof(s->ip));
        s->port = ntohs(a4->sin_port);
    }
    s->state = S_IDLE;
    s->body_type = CORREIO__BODY_TYPE__BODY_UNSPECIFIED;
    buf_init(&s->body);
    s->cs.ig = ig;
    s->cs.addr = (const struct sockaddr *)&s->peer;
    s->cs.ip = s->ip;
    s->cs.client_name = s->cs.reverse_name = "unknown";
    s->cs.client_fact = s->cs.reverse_fact = FACT_NOTFOUND;
    s->cs.domain_fact = domain_fact;
    s->cs.warn = check_warn;
    s->cs.sess = s;
    s->dns = smtpd_dns_new(ig->dns, dns_done, s);
    s->cs.rbl = smtpd_rbl_new(ig->rbl_dns, dns_done, s);
    set_client_name(s);
    return s;
}

/* reset_transaction - forget sender, recipients and body (RSET). */
static void reset_transaction(smtp_session_t *s)
{
    for (size_t i = 0; i < s->n_rcpt; i++) {
        xfree(&s->rcpt[i].address);
        xfree(&s->rcpt[i].orcpt);
    }
    s->n_rcpt = 0;
    s->envid[0] = '\0';
    s->ret = CORREIO__DSN_RET__RET_UNSPECIFIED;
    s->have_qid = false;
    s->sender[0] = '\0';
    s->cs.sender = NULL;
    smtpd_check_new_mail(&s->cs);
    s->body_type = CORREIO__BODY_TYPE__BODY_UNSPECIFIED;
    s->size_declared = 0;
    if (s->body.cap > BODY_KEEP_MAX)
        buf_free(&s->body);
    else
        buf_reset(&s->body);
    s->state = S_IDLE;
}

void smtp_session_free(smtp_session_t **sp)
{
    smtp_session_t *s = *sp;
    buf_t line = BUF_INIT;
    unsigned ok = 0, total = 0;

    if (!s)
        return;
    buf_printf(&line, "disconnect from %s", s->client);
    for (int v = 0; v < V_COUNT; v++) {
        if (s->count[v].total == 0)
            continue;
        ok += s->count[v].ok;
        total += s->count[v].total;
        if (s->count[v].ok == s->count[v].total)
            buf_printf(&line, " %s=%u", verb_log_names[v], s->count[v].ok);
        else
            buf_printf(&line, " %s=%u/%u", verb_log_names[v], s->count[v].ok,
                       s->count[v].total);
    }
    if (ok == total)
        buf_printf(&line, " commands=%u", total);
    else
        buf_printf(&line, " commands=%u/%u", ok, total);
    log_info("%s", line.data);
    buf_free(&line);
    reset_transaction(s);
    smtp_auth_reset(s);
    session_policy_end(s);
    smtpd_dns_free(&s->dns);
    smtpd_rbl_free(&s->cs.rbl);
    xfree(&s->rerun_arg);
    xfree(&s->rcpt);
    buf_free(&s->body);
    xfree(&s->helo);
    xfree(sp);
}

static void log_reject(smtp_session_t *s, const char *cmd, const char *text, const char *rcpt);

/* connect_check - with smtpd_delay_reject = no, the client restrictions
 * before the greeting: false while they wait for DNS, or when they
 * refused (the refusal is the greeting; every command but QUIT gets 503
 * after it, RFC 5321 3.1; rbl_close hangs up at once). */
static bool connect_check(smtp_session_t *s)
{
    char text[CHECK_REPLY_MAX];

    switch (smtpd_check_connect(&s->cs, text)) {
    case CHECK_WAIT:
        s->wait = W_DNS;
        return false;
    case CHECK_REJECT:
        s->greeted = true;
        log_info("connect from %s", s->client);
        log_reject(s, "CONNECT", text, NULL);
        session_reply(s, "%s", text);
        if (s->cs.rbl_reply && s->cs.close_after_reply)
            s->closing = true;
        session_policy_rejected(s, "CONNECT", text);
        return false;
    case CHECK_OK:
        break;
    }
    return true;
}

/* greet - the banner, once the client's name is known. */
static void greet(smtp_session_t *s)
{
    if (session_policy_connect(s) != SP_GO)
        return;                         /* waits, or refused (421) */
    if (!connect_check(s))
        return;                         /* waits for DNS, or refused (the greeting) */
    s->greeted = true;
    log_info("connect from %s", s->client);
    session_reply(s, "220 %s", s->ig->banner);
}

void smtp_session_start(smtp_session_t *s)
{
    if (s->ig->peername_lookup && s->ig->dns) {
        smtpd_dns_client(s->dns, s->ip);
        s->wait = W_DNS;
        return;
    }
    greet(s);
}

bool smtp_session_waiting(const smtp_session_t *s)
{
    return s->wait != W_NONE;
}

bool smtp_session_committing(const smtp_session_t *s)
{
    return s->wait == W_SPOOL;
}

bool smtp_session_closing(const smtp_session_t *s)
{
    return s->closing;
}

void smtp_session_timeout(smtp_session_t *s)
{
    log_info("timeout after %s from %s",
             s->state == S_DATA ? "DATA" : s->wait == W_TLS ? "STARTTLS" : "command", s->client);
    session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->ig->hostname);
    s->closing = true;
}

bool smtp_session_in_data(const smtp_session_t *s)
{
    return s->state == S_DATA;
}

void smtp_session_shutdown(smtp_session_t *s)
{
    session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
          s->ig->hostname);
    s->closing = true;
}

void smtp_session_lost(smtp_session_t *s, const char *why)
{
    if (s->state == S_DATA || s->state == S_MAIL || s->state == S_RCPT)
        log_info("%s after %s from %s", why,
                 s->state == S_DATA ? "DATA" : s->state == S_MAIL ? "MAIL" : "RCPT", s->client);
    s->closing = true;
}

/* --- TLS */

bool smtp_session_wants_tls(const smtp_session_t *s)
{
    return s->starttls_pending;
}

void smtp_session_tls_started(smtp_session_t *s, const char *protocol, const char *cipher,
                              int bits)
{
    s->starttls_pending = false;
    s->tls = true;
    s->cs.tls = true;
    snprintf(s->tls_protocol, sizeof(s->tls_protocol), "%s", protocol);
    snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher);
    s->tls_bits = bits;
    log_info("Anonymous TLS connection established from %s: %s with cipher %s (%d/%d bits)",
             s->client, protocol, cipher, bits, bits);
    /* RFC 3207 4.2: forget what the client told us before */
    reset_transaction(s);
    smtp_auth_reset(s);
    xfree(&s->helo);
    s->cs.helo = NULL;
    smtpd_check_new_helo(&s->cs);
    s->esmtp = false;
    if (s->wait == W_TLS)
        s->wait = W_NONE;
}

void smtp_session_tls_failed(smtp_session_t *s, const char *why)
{
    log_warn("TLS handshake failed from %s: %s", s->client, why);
    s->starttls_pending = false;
    s->closing = true;
}

static void do_starttls(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len) {
        session_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (s->tls) {
        session_reply(s, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (!s->ig->tls || s->ig->tls_level == TLS_LEVEL_NONE) {
        session_reply(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    session_reply(s, "220 2.0.0 Ready to start TLS");
    s->starttls_pending = true;
    s->wait = W_TLS;
}

/* --- verbs */

/* wait_dns - the command needs a DNS answer: run it again when it comes. */
static void wait_dns(smtp_session_t *s, const verb *v, const char *arg, size_t len)
{
    s->rerun_verb = v;
    xfree(&s->rerun_arg);
    s->rerun_arg = xmemdup(arg, len);
    s->rerun_len = len;
    s->wait = W_DNS;
}

/* rerun_later - the command waits for the policy service or a tarpit
 * delay (s->wait is set): run it again after. */
static void rerun_later(smtp_session_t *s, const verb *v, const char *arg, size_t len)
{
    wait_kind w = s->wait;

    wait_dns(s, v, arg, len);
    s->wait = w;
}

static const verb *verb_by_id(int id)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (verbs[i].id == id)
            return &verbs[i];
    log_panic("verb_by_id: %d", id);
}

/* log_reject - Postfix's "reject:" line. */
static void log_reject(smtp_session_t *s, const char *cmd, const char *text, const char *rcpt)
{
    char from[300], to[300], helo[300];

    log_printable(from, sizeof(from), s->sender, strlen(s->sender));
    if (rcpt)
        log_printable(to, sizeof(to), rcpt, strlen(rcpt));
    if (s->helo)
        log_printable(helo, sizeof(helo), s->helo, strlen(s->helo));
    log_info("%s: reject: %s from %s: %s; from=<%s>%s%s%s proto=%s helo=<%s>",
             s->have_qid ? s->qid : "NOQUEUE", cmd, s->client, text, from,
             rcpt ? " to=<" : "", rcpt ? to : "", rcpt ? ">" : "",
             s->esmtp ? "ESMTP" : "SMTP", s->helo ? helo : "");
}

/* start_helo - EHLO and HELO: remember the name, end any transaction. */
static bool start_helo(smtp_session_t *s, const char *verb_name, const char *arg, size_t len)
{
    char text[CHECK_REPLY_MAX];

    if (len == 0) {
        session_reply(s, "501 5.5.4 Syntax: %s hostname", verb_name);
        return false;
    }
    reset_transaction(s);
    xfree(&s->helo);
    s->helo = xmemdup(arg, len);
    s->cs.helo = s->helo;
    smtpd_check_new_helo(&s->cs);
    switch (smtpd_check_helo(&s->cs, text)) {
    case CHECK_WAIT:
        wait_dns(s, verb_by_id(verb_name[0] == 'E' ? V_EHLO : V_HELO), arg, len);
        return false;
    case CHECK_REJECT:
        log_reject(s, verb_name, text, NULL);
        session_reply(s, "%s", text);
        session_policy_rejected(s, verb_name, text);
        return false;
    case CHECK_OK:
        break;
    }
    return true;
}

static void do_ehlo(smtp_session_t *s, const char *arg, size_t len)
{
    if (!start_helo(s, "EHLO", arg, len))
        return;
    s->esmtp = true;
    buf_printf(s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n",
               s->ig->hostname, s->ig->message_size_limit);
    if (s->ig->tls && !s->tls && s->ig->tls_level != TLS_LEVEL_NONE)
        buf_printf(s->out, "250-STARTTLS\r\n");
    if (smtp_auth_offered(s))
        buf_printf(s->out, "250-AUTH PLAIN LOGIN\r\n");
    buf_printf(s->out, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n");
    session_reply(s, "250 DSN");
}

static void do_helo(smtp_session_t *s, const char *arg, size_t len)
{
    if (!start_helo(s, "HELO", arg, len))
        return;
    s->esmtp = false;
    session_reply(s, "250 %s", s->ig->hostname);
}

/* submission_allowed - on 587/465 every transaction is authenticated,
 * unless the bypass list names the client or sender. */
static bool submission_allowed(smtp_session_t *s, const char *sender)
{
    return s->role == ROLE_SMTP || s->auth_user
           || bypass_match(s->ig->bypass, s->ig, (const struct sockaddr *)&s->peer, sender);
}

static void do_mail(smtp_session_t *s, const char *arg, size_t len)
{
    smtp_path path;
    smtp_param params[SMTP_PARAM_MAX];
    size_t n = 0, limit;
    Correio__BodyType body = CORREIO__BODY_TYPE__BODY_UNSPECIFIED;
    Correio__DsnRet ret = CORREIO__DSN_RET__RET_UNSPECIFIED;
    unsigned long long size = 0;
    char text[CHECK_REPLY_MAX], envid[DSN_ENVID_MAX + 1] = "";
    bool have_envid = false;

    if (s->ig->unacked >= s->ig->spool_message_limit) {
        session_reply(s, "451 4.3.1 Insufficient system storage");
        return;
    }
    if (!s->tls && s->ig->tls_level == TLS_LEVEL_ENCRYPT) {
        session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    switch (smtp_path_args(arg, len, "FROM:", true, &path, params, &n)) {
    case SMTP_ARGS_OK:
        break;
    case SMTP_ARGS_BAD_PATH:
        session_reply(s, "501 5.1.7 Bad sender address syntax");
        return;
    case SMTP_ARGS_SYNTAX:
    case SMTP_ARGS_BAD_PARAM:
        session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    if (!submission_allowed(s, path.address)) {
        log_reject(s, "MAIL", "530 5.7.0 Authentication required", NULL);
        session_reply(s, "530 5.7.0 Authentication required");
        return;
    }
    limit = smtpd_check_size_limit(s->ig, s->auth_user, path.address);
    if (limit == 0 || limit > s->ig->message_size_limit)
        limit = s->ig->message_size_limit;
    for (size_t i = 0; i < n; i++) {
        const smtp_param *p = &params[i];
        if (smtp_param_is(p, "SIZE") && p->value) {
            if (!smtp_parse_size(p->value, p->value_len, &size)) {
                session_reply(s, "501 5.5.4 Bad message size syntax");
                return;
            }
            if (size > limit) {
                session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
                session_policy_size(s, size);
                return;
            }
        } else if (smtp_param_is(p, "BODY") && p->value) {
            if (p->value_len == 4 && strncasecmp(p->value, "7BIT", 4) == 0) {
                body = CORREIO__BODY_TYPE__BODY_7BIT;
            } else if (p->value_len == 8 && strncasecmp(p->value, "8BITMIME", 8) == 0) {
                body = CORREIO__BODY_TYPE__BODY_8BITMIME;
            } else {
                session_reply(s, "501 5.5.4 Bad BODY keyword syntax");
                return;
            }
        } else if (smtp_param_is(p, "AUTH") && p->value) {
            /* RFC 4954 5: the identity a relay vouches for; we keep our own */
        } else if (smtp_param_is(p, "RET")) {
            if (ret != CORREIO__DSN_RET__RET_UNSPECIFIED) {
                session_reply(s, "501 5.5.4 Error: Duplicate RET parameter");
                return;
            }
            if (p->value && p->value_len == 4 && strncasecmp(p->value, "FULL", 4) == 0) {
                ret = CORREIO__DSN_RET__RET_FULL;
            } else if (p->value && p->value_len == 4 && strncasecmp(p->value, "HDRS", 4) == 0) {
                ret = CORREIO__DSN_RET__RET_HDRS;
            } else {
                session_reply(s, "501 5.5.4 Bad RET parameter syntax (FULL or HDRS)");
                return;
            }
        } else if (smtp_param_is(p, "ENVID")) {
            if (have_envid) {
                session_reply(s, "501 5.5.4 Error: Duplicate ENVID parameter");
                return;
            }
            if (!p->value || p->value_len == 0
                || !smtp_xtext_decode(p->value, p->value_len, envid, sizeof(envid))) {
                session_reply(s, "501 5.5.4 Bad ENVID parameter syntax "
                                 "(xtext, at most %d characters)", DSN_ENVID_MAX);
                return;
            }
            have_envid = true;
        } else {
            char k[64];
            log_printable(k, sizeof(k), p->key, p->key_len);
            session_reply(s, "555 5.5.4 Unsupported option: %s", k);
            return;
        }
    }
    memcpy(s->sender, path.address, sizeof(s->sender));
    s->cs.sender = s->sender;
    smtpd_check_new_mail(&s->cs);
    switch (smtpd_check_mail(&s->cs, text)) {
    case CHECK_WAIT:
        s->sender[0] = '\0';
        s->cs.sender = NULL;
        wait_dns(s, verb_by_id(V_MAIL), arg, len);
        return;
    case CHECK_REJECT:
        log_reject(s, "MAIL", text, NULL);
        s->sender[0] = '\0';
        s->cs.sender = NULL;
        session_reply(s, "%s", text);
        session_policy_rejected(s, "MAIL", text);
        return;
    case CHECK_OK:
        break;
    }
    switch (session_policy_mail(s)) {   /* sending limits */
    case SP_WAIT:
        rerun_later(s, verb_by_id(V_MAIL), arg, len);
        /* fall through */
    case SP_REPLIED:
        s->sender[0] = '\0';
        s->cs.sender = NULL;
        return;
    case SP_GO:
        break;
    }
    s->body_type = body;
    s->ret = ret;
    memcpy(s->envid, envid, sizeof(s->envid));
    s->size_declared = size;
    s->size_limit = limit;
    s->state = S_MAIL;
    session_reply(s, "250 2.1.0 Ok");
    session_policy_size(s, size);
}

/* rcpt_params - RCPT TO's parameters: NOTIFY and ORCPT (RFC 3461 4.1,
 * 4.2), each at most once; false after a 501/555 reply. */
static bool rcpt_params(smtp_session_t *s, const smtp_param *params, size_t n,
                        unsigned *notify, char orcpt[DSN_ORCPT_MAX + 1])
{
    bool have_notify = false, have_orcpt = false;

    orcpt[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const smtp_param *p = &params[i];
        if (smtp_param_is(p, "NOTIFY")) {
            if (have_notify) {
                session_reply(s, "501 5.5.4 Error: Duplicate NOTIFY parameter");
                return false;
            }
            *notify = p->value ? smtp_parse_notify(p->value, p->value_len) : 0;
            if (*notify == 0) {
                session_reply(s, "501 5.5.4 Error: Bad NOTIFY parameter syntax "
                                 "(NEVER, or a list of SUCCESS,FAILURE,DELAY)");
                return false;
            }
            have_notify = true;
        } else if (smtp_param_is(p, "ORCPT")) {
            if (have_orcpt) {
                session_reply(s, "501 5.5.4 Error: Duplicate ORCPT parameter");
                return false;
            }
            if (!p->value
                || !smtp_parse_orcpt(p->value, p->value_len, orcpt, DSN_ORCPT_MAX + 1)) {
                session_reply(s, "501 5.5.4 Error: Bad ORCPT parameter syntax "
                                 "(addr-type;xtext, e.g. rfc822;user@example.com)");
                return false;
            }
            have_orcpt = true;
        } else {
            char k[64];
            log_printable(k, sizeof(k), p->key, p->key_len);
            session_reply(s, "555 5.5.4 Unsupported option: %s", k);
            return false;
        }
    }
    return true;
}

static void do_rcpt(smtp_session_t *s, const char *arg, size_t len)
{
    smtp_path path;
    smtp_param params[SMTP_PARAM_MAX];
    size_t n = 0;
    char text[CHECK_REPLY_MAX], orcpt[DSN_ORCPT_MAX + 1];
    unsigned notify = 0;
    smtp_args_status parsed = SMTP_ARGS_OK;

    if (smtp_rcpt_is_postmaster(arg, len))   /* RFC 5321 4.5.1, as Postfix: at this host */
        snprintf(path.address, sizeof(path.address), "postmaster@%s", s->ig->hostname);
    else
        parsed = smtp_path_args(arg, len, "TO:", false, &path, params, &n);
    switch (parsed) {
    case SMTP_ARGS_OK:
        break;
    case SMTP_ARGS_BAD_PATH:
        session_reply(s, "501 5.1.3 Bad recipient address syntax");
        return;
    case SMTP_ARGS_SYNTAX:
    case SMTP_ARGS_BAD_PARAM:
        session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    if (!rcpt_params(s, params, n, &notify, orcpt))
        return;
    if (s->n_rcpt >= s->ig->rcpt_limit) {
        session_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (session_policy_rcpt_cap(s) || session_policy_spamtrap(s, path.address))
        return;
    switch (smtpd_check_rcpt(&s->cs, path.address, text)) {
    case CHECK_WAIT:
        wait_dns(s, verb_by_id(V_RCPT), arg, len);
        return;
    case CHECK_REJECT:
        log_reject(s, "RCPT", text, path.address);
        session_reply(s, "%s", text);
        session_policy_rejected(s, "RCPT", text);
        return;
    case CHECK_OK:
        break;
    }
    switch (session_policy_rcpt(s, path.address)) {     /* greylisting */
    case SP_WAIT:
        rerun_later(s, verb_by_id(V_RCPT), arg, len);
        return;
    case SP_REPLIED:
        return;
    case SP_GO:
        break;
    }
    if (!s->have_qid) {
        qid_next(s->qid);
        s->have_qid = true;
        if (s->auth_user) {
            char u[300];
            log_printable(u, sizeof(u), s->auth_user, strlen(s->auth_user));
            log_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->qid, s->client,
                     s->auth_method, u);
        } else {
            log_info("%s: client=%s", s->qid, s->client);
        }
    }
    if (s->n_rcpt == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        s->rcpt = xrealloc(s->rcpt, s->rcpt_cap * sizeof(*s->rcpt));
    }
    s->rcpt[s->n_rcpt].address = xstrdup(path.address);
    s->rcpt[s->n_rcpt].orcpt = orcpt[0] ? xstrdup(orcpt) : NULL;
    s->rcpt[s->n_rcpt].notify = notify;
    s->n_rcpt++;
    s->state = S_RCPT;
    session_reply(s, "250 2.1.5 Ok");
}

static void do_data(smtp_session_t *s, const char *arg, size_t len)
{
    char text[CHECK_REPLY_MAX];

    if (len) {
        session_reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    s->cs.pipelined = s->input_ahead;
    switch (smtpd_check_data(&s->cs, text)) {
    case CHECK_WAIT:
        wait_dns(s, verb_by_id(V_DATA), arg, len);
        return;
    case CHECK_REJECT:
        log_reject(s, "DATA", text, NULL);
        session_reply(s, "%s", text);
        return;
    case CHECK_OK:
        break;
    }
    smtp_data_init(&s->data, s->size_limit ? s->size_limit : s->ig->message_size_limit);
    content_scan_start(&s->scan);
    buf_reset(&s->body);
    s->state = S_DATA;
    session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void do_rset(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len) {
        session_reply(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    reset_transaction(s);
    session_reply(s, "250 2.0.0 Ok");
    session_policy_rset(s);
}

static void do_noop(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    session_reply(s, "250 2.0.0 Ok");
}

static void do_quit(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    session_reply(s, "221 2.0.0 Bye");
    s->closing = true;
}

static void do_vrfy(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len == 0) {
        session_reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    session_reply(s, "252 2.0.0 Send some mail, I'll try my best");
}

static void do_help(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    session_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP "
             "STARTTLS AUTH");
}

/* --- end of DATA */

/* content_log - Postfix's cleanup line for a header/body check action:
 * "QID: ACTION: header Subject: x from CLIENT; from=<> to=<> proto=ESMTP
 * helo=<h>: TEXT". */
static void content_log(smtp_session_t *s, const char *action, const char *what,
                        const char *text)
{
    char from[300], to[300] = "", helo[300] = "";

    log_printable(from, sizeof(from), s->sender, strlen(s->sender));
    if (s->n_rcpt)
        log_printable(to, sizeof(to), s->rcpt[0].address, strlen(s->rcpt[0].address));
    if (s->helo)
        log_printable(helo, sizeof(helo), s->helo, strlen(s->helo));
    log_info("%s: %s: %s from %s; from=<%s> to=<%s> proto=%s helo=<%s>%s%s", s->qid, action,
             what, s->client, from, to, s->esmtp ? "ESMTP" : "SMTP", helo,
             text[0] ? ": " : "", text);
}

static void content_warn(void *arg, const char *what)
{
    smtp_session_t *s = arg;

    content_log(s, s->scan.hold ? "hold" : "warning", what, s->scan.text);
}

/* protocol - the RFC 3848 word for Received: and the envelope. */
static const char *protocol(const smtp_session_t *s)
{
    if (!s->esmtp)
        return "SMTP";
    if (s->tls)
        return s->auth_user ? "ESMTPSA" : "ESMTPS";
    return s->auth_user ? "ESMTPA" : "ESMTP";
}

/* data_done - the client sent CRLF.CRLF: refuse, or build the envelope,
 * pack it once and queue it for the spool's next group commit. */
static void data_queue(smtp_session_t *s);

static void data_done(smtp_session_t *s)
{
    const char *refuse = smtp_data_reply(&s->data);

    s->count[V_DATA].total++;
    if (!refuse && s->ig->content)
        content_scan_run(s->ig->content, &s->scan, &s->body, true, content_warn, s);
    if (refuse) {
        log_info("%s: reject: DATA from %s: %s; size=%zu", s->qid, s->client, refuse,
                 s->data.size);
        reset_transaction(s);
        session_reply(s, "%s", refuse);
        session_policy_size(s, s->data.size);
        return;
    }
    if (s->scan.verdict == CONTENT_REJECT) {
        char text[700];
        snprintf(text, sizeof(text), "%s", s->scan.reply);
        content_log(s, "reject", s->scan.what, text);
        reset_transaction(s);
        session_reply(s, "%s", text);
        return;
    }
    if (s->scan.verdict == CONTENT_DISCARD) {
        content_log(s, "discard", s->scan.what, s->scan.text);
        s->count[V_DATA].ok++;
        session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
        reset_transaction(s);
        return;
    }
    if (s->cs.discard) {
        log_info("%s: discard: %s from %s", s->qid, s->cs.action_text, s->client);
        s->count[V_DATA].ok++;
        session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
        reset_transaction(s);
        return;
    }
    session_policy_forget(s);
    data_queue(s);
}

/* data_queue - the message passed every check: ask the policy service
 * (the SIZE event, the sending limits' count; run again when the answers
 * are in), then build the envelope, pack it once and queue it for the
 * spool's next group commit. */
static void data_queue(smtp_session_t *s)
{
    buf_t hdr = BUF_INIT;
    Envelope env = CORREIO__ENVELOPE__INIT;
    Client cl = CORREIO__CLIENT__INIT;
    Recipient *rv;
    Recipient **rp;
    ProtobufCBinaryData ph;
    received_info ri;
    uint64_t now = time_now_us();
    uint8_t *packed;
    size_t plen;
    char hold_reason[1200];

    switch (session_policy_data(s)) {
    case SP_WAIT:
        return;                         /* session_rerun comes back here */
    case SP_REPLIED:
        reset_transaction(s);
        return;
    case SP_GO:
        break;
    }
    memset(&ri, 0, sizeof(ri));
    ri.helo = s->helo ? s->helo : "";
    ri.client_name = s->cs.client_name;
    ri.ip = s->ip;
    ri.ipv6 = s->ipv6;
    ri.host = s->ig->hostname;
    ri.protocol = protocol(s);
    ri.tls_protocol = s->tls ? s->tls_protocol : NULL;
    ri.tls_cipher = s->tls_cipher;
    ri.tls_bits = s->tls_bits;
    ri.auth_user = s->auth_user;
    ri.qid = s->qid;
    ri.rcpt = s->n_rcpt == 1 ? s->rcpt[0].address : NULL;
    ri.when = (int64_t)(now / 1000000);
    received_header(&hdr, &ri);

    cl.ip = s->ip;
    cl.port = s->port;
    cl.helo = s->helo ? s->helo : "";
    cl.ptr = s->cs.client_fact == FACT_OK ? (char *)s->cs.client_name : "";
    cl.listener = (char *)listener_role_names[s->role];
    cl.protocol = (char *)protocol(s);
    cl.tls_protocol = s->tls ? s->tls_protocol : "";
    cl.tls_cipher = s->tls ? s->tls_cipher : "";
    cl.auth_user = s->auth_user ? s->auth_user : "";

    rv = xcalloc(s->n_rcpt, sizeof(*rv));
    rp = xcalloc(s->n_rcpt, sizeof(*rp));
    for (size_t i = 0; i < s->n_rcpt; i++) {
        correio__recipient__init(&rv[i]);
        rv[i].address = s->rcpt[i].address;
        rv[i].orcpt = s->rcpt[i].orcpt ? s->rcpt[i].orcpt : "";
        rv[i].notify = s->rcpt[i].notify;
        rp[i] = &rv[i];
    }
    ph.data = (uint8_t *)hdr.data;
    ph.len = hdr.len;

    env.version = WIRE_VERSION;
    env.queue_id = s->qid;
    env.origin = (char *)s->ig->events_endpoint;
    env.received_at = now;
    env.client = &cl;
    env.reverse_path = s->sender;
    env.n_rcpt = s->n_rcpt;
    env.rcpt = rp;
    env.body_type = s->body_type;
    env.size_declared = s->size_declared;
    env.envid = s->envid;
    env.ret = s->ret;
    env.n_prepend_headers = 1;
    env.prepend_headers = &ph;
    env.body.data = (uint8_t *)s->body.data;
    env.body.len = s->body.len;
    env.send_count = 1;
    if (s->scan.hold || s->cs.hold) {
        snprintf(hold_reason, sizeof(hold_reason), "%s%s%s", s->scan.what,
                 s->scan.text[0] ? ": " : "", s->scan.text);
        env.hold = true;
        env.hold_reason = s->scan.hold ? hold_reason : s->cs.action_text;
    }

    packed = wire_pack_envelope(&env, &plen);
    s->msg_size = s->body.len + hdr.len;
    xfree(&rv);
    xfree(&rp);
    buf_free(&hdr);

    s->ig->unacked++;
    spool_put(s->ig->spool, s->qid, packed, plen, s->cookie);
    s->wait = W_SPOOL;
}

void smtp_session_committed(smtp_session_t *s, int rc)
{
    char from[300];

    s->wait = W_NONE;
    if (rc == 0) {
        log_printable(from, sizeof(from), s->sender, strlen(s->sender));
        log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue %s)",
                 s->qid, from, s->msg_size, s->n_rcpt,
                 s->scan.hold || s->cs.hold ? "hold" : "active");
        s->count[V_DATA].ok++;
        metrics_inc("correio_ingress_messages_total", "result=\"accepted\"");
        metrics_add("correio_ingress_received_bytes_total", NULL, (double)s->msg_size);
        metrics_set("correio_ingress_spool_messages", NULL, s->ig->unacked);
        session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
        session_policy_after_reply(s);
    } else {
        s->ig->unacked--;
        session_reply(s, "451 4.3.0 Error: queue file write error");
    }
    reset_transaction(s);
}

/* --- command lines */

/* run_verb - call the handler and count the outcome (unless it waits). */
static void run_verb(smtp_session_t *s, const verb *v, const char *arg, size_t alen)
{
    v->handler(s, arg, alen);
    if (s->cs.rbl_reply && s->cs.close_after_reply)
        s->closing = true;              /* rbl_close: the DNS list refusal was the last word */
    if ((s->wait == W_DNS || s->wait == W_POLICY || s->wait == W_TARPIT) && s->rerun_verb == v)
        return;                         /* counted when it runs again */
    if (v->id == V_DATA) {
        if (s->state != S_DATA)         /* refused before 354 */
            s->count[V_DATA].total++;
    } else if (s->last_code < 400 && v->id != V_AUTH) {
        s->count[v->id].ok++;           /* AUTH counts when it succeeds */
    }
}

static void dns_done(void *arg)
{
    smtp_session_t *s = arg;
    const verb *v = s->rerun_verb;
    char *a;

    if (s->wait != W_DNS)
        return;
    if (!s->greeted) {
        const char *name, *reverse;
        dns_fact nf, rf;
        if (smtpd_dns_client_fact(s->dns, &name, &nf, &reverse, &rf) == FACT_OK) {
            s->cs.client_name = name;
            s->cs.client_fact = nf;
            s->cs.reverse_name = reverse;
            s->cs.reverse_fact = rf;
            set_client_name(s);
        } else if (s->ig->peername_lookup && s->ig->dns) {
            return;                     /* the name first (a DNS list answered) */
        }
        s->wait = W_NONE;
        greet(s);
        session_resume(s);
        return;
    }
    if (!v)
        return;
    s->wait = W_NONE;
    s->rerun_verb = NULL;
    a = s->rerun_arg;
    s->rerun_arg = NULL;
    run_verb(s, v, a, s->rerun_len);
    xfree(&a);
    if (s->wait != W_DNS)
        session_resume(s);
}

void session_rerun(smtp_session_t *s)
{
    const verb *v = s->rerun_verb;
    char *a;

    s->wait = W_NONE;
    if (!s->greeted) {
        greet(s);
    } else if (s->state == S_DATA) {
        data_queue(s);
    } else if (v) {
        s->rerun_verb = NULL;
        a = s->rerun_arg;
        s->rerun_arg = NULL;
        run_verb(s, v, a, s->rerun_len);
        xfree(&a);
    }
    session_resume(s);
}

/* command - one complete command line (CRLF removed). */
static void command(smtp_session_t *s, const char *line, size_t len)
{
    const char *verb_text, *arg;
    size_t vlen, alen;
    const verb *v = NULL;

    if (memchr(line, '\n', len) || memchr(line, '\r', len)) {
        s->count[V_UNKNOWN].total++;
        session_reply(s, "500 5.5.2 Error: bare <LF> received");
        return;
    }
    if (!smtp_cmd_split(line, len, &verb_text, &vlen, &arg, &alen)) {
        s->count[V_UNKNOWN].total++;
        session_reply(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (vlen == strlen(verbs[i].name) && strncasecmp(verb_text, verbs[i].name, vlen) == 0) {
            v = &verbs[i];
            break;
        }
    }
    if (!v) {
        s->count[V_UNKNOWN].total++;
        session_reply(s, "502 5.5.2 Error: command not recognized");
        return;
    }
    if (v->id != V_DATA)
        s->count[v->id].total++;
    if (s->cs.access_denied && v->id != V_QUIT) {  /* refused at connect */
        if (v->id == V_DATA)
            s->count[V_DATA].total++;
        session_reply(s, "503 5.7.0 Error: access denied for %s", s->client);
        return;
    }
    if (!(v->states & s->state)) {
        if (v->id == V_DATA)
            s->count[V_DATA].total++;
        session_reply(s, "%s", v->bad_state);
        return;
    }
    session_policy_forget(s);
    if (session_policy_tarpit(s)) {     /* a blocked client waits before every reply */
        rerun_later(s, v, arg, alen);
        return;
    }
    run_verb(s, v, arg, alen);
}

/* line_max - the longest line accepted now: AUTH exchanges may be longer. */
static size_t line_max(const smtp_session_t *s, const char *p, size_t n)
{
    if (s->auth_step != AUTH_NONE || (n >= 5 && strncasecmp(p, "AUTH ", 5) == 0))
        return AUTH_LINE_MAX;
    return SMTP_CMD_LINE_MAX;
}

size_t smtp_session_input(smtp_session_t *s, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n && s->wait == W_NONE && !s->closing) {
        const char *start = p + off, *crlf;
        size_t avail = n - off, max;

        if (s->state == S_DATA) {
            off += smtp_data_feed(&s->data, start, avail, &s->body);
            if (s->ig->content && !s->data.refused)
                content_scan_run(s->ig->content, &s->scan, &s->body, false, content_warn, s);
            if (s->data.done)
                data_done(s);
            continue;
        }
        crlf = memmem(start, avail, "\r\n", 2);
        if (s->discarding) {            /* the rest of a too long line */
            if (!crlf) {
                off += start[avail - 1] == '\r' ? avail - 1 : avail;
                break;
            }
            off += (size_t)(crlf - start) + 2;
            s->discarding = false;
            continue;
        }
        max = line_max(s, start, avail);
        if (!crlf) {
            if (avail <= max)
                break;                  /* wait for the rest of the line */
            s->count[V_UNKNOWN].total++;
            s->auth_step = AUTH_NONE;
            session_reply(s, "500 5.5.2 Error: line too long");
            s->discarding = true;
            off += start[avail - 1] == '\r' ? avail - 1 : avail;
            break;
        }
        off += (size_t)(crlf - start) + 2;
        if ((size_t)(crlf - start) + 2 > max) {
            s->count[V_UNKNOWN].total++;
            s->auth_step = AUTH_NONE;
            session_reply(s, "500 5.5.2 Error: line too long");
            continue;
        }
        s->input_ahead = off < n;
        if (s->auth_step != AUTH_NONE)
            smtp_auth_response(s, start, (size_t)(crlf - start));
        else
            command(s, start, (size_t)(crlf - start));
    }
    return off;
}
