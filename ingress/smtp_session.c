/* smtp_session.c - the SMTP state machine (see smtp_session.h): verb
 * table, ESMTP parameters, recipient checks, DATA, and handing the packed
 * envelope to the spool.  Replies carry enhanced status codes (RFC 2034)
 * with Postfix's texts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "qid.h"
#include "received.h"
#include "recipient_check.h"
#include "smtp_command.h"
#include "smtp_data.h"
#include "smtp_session.h"
#include "spool.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"

#define BODY_KEEP_MAX (1u << 20)   /* body storage kept between messages */

/* Session states, as bits for the verb table. */
enum {
    S_IDLE = 1,     /* no transaction */
    S_MAIL = 2,     /* after MAIL */
    S_RCPT = 4,     /* after the first accepted RCPT */
    S_DATA = 8,     /* receiving message content */
};
#define S_ANY (S_IDLE | S_MAIL | S_RCPT)

enum { V_EHLO, V_HELO, V_MAIL, V_RCPT, V_DATA, V_RSET, V_NOOP, V_QUIT,
       V_VRFY, V_HELP, V_UNKNOWN, V_COUNT };

struct smtp_session {
    ingress_t  *ig;
    buf_t      *out;
    void       *cookie;
    struct sockaddr_storage peer;
    char        ip[INET6_ADDRSTRLEN];
    unsigned    port;
    bool        ipv6;
    int         state;
    bool        waiting, closing, discarding;
    bool        esmtp;
    char       *helo;               /* as given, or NULL */
    unsigned    errors;
    int         last_code;
    struct { unsigned ok, total; } count[V_COUNT];
    /* the transaction */
    bool        have_qid;
    char        qid[QID_LEN + 1];
    char        sender[ADDR_PATH_MAX + 1];
    Correio__BodyType body_type;
    unsigned long long size_declared;
    char      **rcpt;
    size_t      n_rcpt, rcpt_cap;
    smtp_data_t data;
    buf_t       body;
    size_t      msg_size;           /* of the message being committed */
};

typedef void (*verb_handler)(smtp_session_t *s, const char *arg, size_t len);

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

static const struct verb {
    const char  *name;
    int          id;
    int          states;        /* where the verb is allowed */
    verb_handler handler;
    const char  *bad_state;     /* the reply elsewhere */
} verbs[] = {
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
};

static const char *const verb_log_names[V_COUNT] = {
    "ehlo", "helo", "mail", "rcpt", "data", "rset", "noop", "quit",
    "vrfy", "help", "unknown",
};

/* reply - one reply line; a 4xx/5xx counts as an error, and too many of
 * them end the session. */
static void reply(smtp_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply(smtp_session_t *s, const char *fmt, ...)
{
    va_list ap;
    size_t start = s->out->len;

    va_start(ap, fmt);
    buf_vprintf(s->out, fmt, ap);
    va_end(ap);
    buf_append(s->out, "\r\n", 2);
    s->last_code = atoi(s->out->data + start);
    if (s->last_code >= 400 && s->last_code != 421) {
        if (++s->errors >= s->ig->hard_error_limit && !s->closing) {
            log_info("too many errors after %s from unknown[%s]",
                     s->state == S_DATA ? "DATA" : "command", s->ip);
            buf_printf(s->out, "421 4.7.0 %s Error: too many errors\r\n", s->ig->hostname);
            s->closing = true;
        }
    }
}

/* client_name - "unknown[IP]" for logs. */
static const char *client_name(const smtp_session_t *s, char *dst, size_t size)
{
    snprintf(dst, size, "unknown[%s]", s->ip);
    return dst;
}

smtp_session_t *smtp_session_new(ingress_t *ig, const struct sockaddr *peer,
                                  socklen_t peerlen, buf_t *out, void *cookie)
{
    smtp_session_t *s = xcalloc(1, sizeof(*s));

    s->ig = ig;
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
    log_info("connect from unknown[%s]", s->ip);
    return s;
}

/* reset_transaction - forget sender, recipients and body (RSET). */
static void reset_transaction(smtp_session_t *s)
{
    for (size_t i = 0; i < s->n_rcpt; i++)
        xfree(&s->rcpt[i]);
    s->n_rcpt = 0;
    s->have_qid = false;
    s->sender[0] = '\0';
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
    buf_printf(&line, "disconnect from unknown[%s]", s->ip);
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
    xfree(&s->rcpt);
    buf_free(&s->body);
    xfree(&s->helo);
    xfree(sp);
}

void smtp_session_greet(smtp_session_t *s)
{
    reply(s, "220 %s", s->ig->banner);
}

bool smtp_session_waiting(const smtp_session_t *s)
{
    return s->waiting;
}

bool smtp_session_closing(const smtp_session_t *s)
{
    return s->closing;
}

void smtp_session_timeout(smtp_session_t *s)
{
    log_info("timeout after %s from unknown[%s]",
             s->state == S_DATA ? "DATA" : "command", s->ip);
    reply(s, "421 4.4.2 %s Error: timeout exceeded", s->ig->hostname);
    s->closing = true;
}

void smtp_session_shutdown(smtp_session_t *s)
{
    reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
          s->ig->hostname);
    s->closing = true;
}

void smtp_session_lost(smtp_session_t *s, const char *why)
{
    if (s->state == S_DATA || s->state == S_MAIL || s->state == S_RCPT)
        log_info("%s after %s from unknown[%s]", why,
                 s->state == S_DATA ? "DATA" : s->state == S_MAIL ? "MAIL" : "RCPT", s->ip);
    s->closing = true;
}

/* --- verbs */

/* greet - EHLO and HELO: remember the name, end any transaction. */
static bool greet(smtp_session_t *s, const char *verb, const char *arg, size_t len)
{
    if (len == 0) {
        reply(s, "501 5.5.4 Syntax: %s hostname", verb);
        return false;
    }
    reset_transaction(s);
    xfree(&s->helo);
    s->helo = xmemdup(arg, len);
    return true;
}

static void do_ehlo(smtp_session_t *s, const char *arg, size_t len)
{
    if (!greet(s, "EHLO", arg, len))
        return;
    s->esmtp = true;
    buf_printf(s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n"
                       "250-8BITMIME\r\n", s->ig->hostname, s->ig->message_size_limit);
    reply(s, "250 ENHANCEDSTATUSCODES");
}

static void do_helo(smtp_session_t *s, const char *arg, size_t len)
{
    if (!greet(s, "HELO", arg, len))
        return;
    s->esmtp = false;
    reply(s, "250 %s", s->ig->hostname);
}

/* log_reject - Postfix's "reject:" line for a refused RCPT. */
static void log_reject(smtp_session_t *s, const char *code_text, const char *rcpt)
{
    char c[64], from[300], to[300], helo[300];

    log_printable(from, sizeof(from), s->sender, strlen(s->sender));
    log_printable(to, sizeof(to), rcpt, strlen(rcpt));
    if (s->helo)
        log_printable(helo, sizeof(helo), s->helo, strlen(s->helo));
    log_info("%s: reject: RCPT from %s: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
             s->have_qid ? s->qid : "NOQUEUE", client_name(s, c, sizeof(c)),
             code_text, from, to, s->esmtp ? "ESMTP" : "SMTP", s->helo ? helo : "");
}

static void do_mail(smtp_session_t *s, const char *arg, size_t len)
{
    smtp_path path;
    smtp_param params[SMTP_PARAM_MAX];
    size_t n = 0;
    Correio__BodyType body = CORREIO__BODY_TYPE__BODY_UNSPECIFIED;
    unsigned long long size = 0;

    if (s->ig->unacked >= s->ig->spool_message_limit) {
        reply(s, "451 4.3.1 Insufficient system storage");
        return;
    }
    switch (smtp_path_args(arg, len, "FROM:", true, &path, params, &n)) {
    case SMTP_ARGS_OK:
        break;
    case SMTP_ARGS_BAD_PATH:
        reply(s, "501 5.1.7 Bad sender address syntax");
        return;
    case SMTP_ARGS_SYNTAX:
    case SMTP_ARGS_BAD_PARAM:
        reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const smtp_param *p = &params[i];
        if (smtp_param_is(p, "SIZE") && p->value) {
            if (!smtp_parse_size(p->value, p->value_len, &size)) {
                reply(s, "501 5.5.4 Bad message size syntax");
                return;
            }
            if (size > s->ig->message_size_limit) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return;
            }
        } else if (smtp_param_is(p, "BODY") && p->value) {
            if (p->value_len == 4 && strncasecmp(p->value, "7BIT", 4) == 0) {
                body = CORREIO__BODY_TYPE__BODY_7BIT;
            } else if (p->value_len == 8 && strncasecmp(p->value, "8BITMIME", 8) == 0) {
                body = CORREIO__BODY_TYPE__BODY_8BITMIME;
            } else {
                reply(s, "501 5.5.4 Bad BODY keyword syntax");
                return;
            }
        } else {
            char k[64];
            log_printable(k, sizeof(k), p->key, p->key_len);
            reply(s, "555 5.5.4 Unsupported option: %s", k);
            return;
        }
    }
    memcpy(s->sender, path.address, sizeof(s->sender));
    s->body_type = body;
    s->size_declared = size;
    s->state = S_MAIL;
    reply(s, "250 2.1.0 Ok");
}

static void do_rcpt(smtp_session_t *s, const char *arg, size_t len)
{
    smtp_path path;
    smtp_param params[SMTP_PARAM_MAX];
    size_t n = 0;
    char a[ADDR_PATH_MAX + 1], text[400], c[64];

    smtp_args_status parsed = SMTP_ARGS_OK;

    if (smtp_rcpt_is_postmaster(arg, len))   /* RFC 5321 4.5.1, as Postfix: at this host */
        snprintf(path.address, sizeof(path.address), "postmaster@%s", s->ig->hostname);
    else
        parsed = smtp_path_args(arg, len, "TO:", false, &path, params, &n);
    switch (parsed) {
    case SMTP_ARGS_OK:
        break;
    case SMTP_ARGS_BAD_PATH:
        reply(s, "501 5.1.3 Bad recipient address syntax");
        return;
    case SMTP_ARGS_SYNTAX:
    case SMTP_ARGS_BAD_PARAM:
        reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    if (n > 0) {
        char k[64];
        log_printable(k, sizeof(k), params[0].key, params[0].key_len);
        reply(s, "555 5.5.4 Unsupported option: %s", k);
        return;
    }
    if (s->n_rcpt >= s->ig->rcpt_limit) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    log_printable(a, sizeof(a), path.address, strlen(path.address));
    switch (recipient_check(s->ig, path.address, (struct sockaddr *)&s->peer)) {
    case RCPT_CHECK_OK:
        break;
    case RCPT_CHECK_UNKNOWN_USER:
        snprintf(text, sizeof(text), "550 5.1.1 <%s>: Recipient address rejected: "
                 "User unknown in local recipient table", a);
        log_reject(s, text, path.address);
        reply(s, "%s", text);
        return;
    case RCPT_CHECK_RELAY_DENIED:
        snprintf(text, sizeof(text), "554 5.7.1 <%s>: Relay access denied", a);
        log_reject(s, text, path.address);
        reply(s, "%s", text);
        return;
    }
    if (!s->have_qid) {
        qid_next(s->qid);
        s->have_qid = true;
        log_info("%s: client=%s", s->qid, client_name(s, c, sizeof(c)));
    }
    if (s->n_rcpt == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        s->rcpt = xrealloc(s->rcpt, s->rcpt_cap * sizeof(*s->rcpt));
    }
    s->rcpt[s->n_rcpt++] = xstrdup(path.address);
    s->state = S_RCPT;
    reply(s, "250 2.1.5 Ok");
}

static void do_data(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len) {
        reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    smtp_data_init(&s->data, s->ig->message_size_limit);
    buf_reset(&s->body);
    s->state = S_DATA;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void do_rset(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len) {
        reply(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    reset_transaction(s);
    reply(s, "250 2.0.0 Ok");
}

static void do_noop(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    reply(s, "250 2.0.0 Ok");
}

static void do_quit(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    reply(s, "221 2.0.0 Bye");
    s->closing = true;
}

static void do_vrfy(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    if (len == 0) {
        reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    reply(s, "252 2.0.0 Send some mail, I'll try my best");
}

static void do_help(smtp_session_t *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

/* --- end of DATA */

/* data_done - the client sent CRLF.CRLF: refuse, or build the envelope,
 * pack it once and queue it for the spool's next group commit. */
static void data_done(smtp_session_t *s)
{
    const char *refuse = smtp_data_reply(&s->data);
    buf_t hdr = BUF_INIT;
    Envelope env = CORREIO__ENVELOPE__INIT;
    Client cl = CORREIO__CLIENT__INIT;
    Recipient *rv;
    Recipient **rp;
    ProtobufCBinaryData ph;
    uint64_t now = time_now_us();
    uint8_t *packed;
    size_t plen;

    s->count[V_DATA].total++;
    if (refuse) {
        log_info("%s: reject: DATA from unknown[%s]: %s; size=%zu",
                 s->qid, s->ip, refuse, s->data.size);
        reset_transaction(s);
        reply(s, "%s", refuse);
        return;
    }
    received_header(&hdr, s->helo ? s->helo : "", s->ip, s->ipv6, s->ig->hostname,
                    s->esmtp, s->qid, s->n_rcpt == 1 ? s->rcpt[0] : NULL,
                    (int64_t)(now / 1000000));

    cl.ip = s->ip;
    cl.port = s->port;
    cl.helo = s->helo ? s->helo : "";
    cl.listener = "smtp";
    cl.protocol = s->esmtp ? "ESMTP" : "SMTP";

    rv = xcalloc(s->n_rcpt, sizeof(*rv));
    rp = xcalloc(s->n_rcpt, sizeof(*rp));
    for (size_t i = 0; i < s->n_rcpt; i++) {
        correio__recipient__init(&rv[i]);
        rv[i].address = s->rcpt[i];
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
    env.n_prepend_headers = 1;
    env.prepend_headers = &ph;
    env.body.data = (uint8_t *)s->body.data;
    env.body.len = s->body.len;
    env.send_count = 1;

    packed = wire_pack_envelope(&env, &plen);
    s->msg_size = s->body.len + hdr.len;
    xfree(&rv);
    xfree(&rp);
    buf_free(&hdr);

    s->ig->unacked++;
    spool_put(s->ig->spool, s->qid, packed, plen, s->cookie);
    s->waiting = true;
}

void smtp_session_committed(smtp_session_t *s, int rc)
{
    char from[300];

    s->waiting = false;
    if (rc == 0) {
        log_printable(from, sizeof(from), s->sender, strlen(s->sender));
        log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)",
                 s->qid, from, s->msg_size, s->n_rcpt);
        s->count[V_DATA].ok++;
        reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
    } else {
        s->ig->unacked--;
        reply(s, "451 4.3.0 Error: queue file write error");
    }
    reset_transaction(s);
}

/* --- command lines */

/* command - one complete command line (CRLF removed). */
static void command(smtp_session_t *s, const char *line, size_t len)
{
    const char *verb, *arg;
    size_t vlen, alen;
    const struct verb *v = NULL;

    if (memchr(line, '\n', len) || memchr(line, '\r', len)) {
        s->count[V_UNKNOWN].total++;
        reply(s, "500 5.5.2 Error: bare <LF> received");
        return;
    }
    if (!smtp_cmd_split(line, len, &verb, &vlen, &arg, &alen)) {
        s->count[V_UNKNOWN].total++;
        reply(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (vlen == 4 && strncasecmp(verb, verbs[i].name, 4) == 0) {
            v = &verbs[i];
            break;
        }
    }
    if (!v) {
        s->count[V_UNKNOWN].total++;
        reply(s, "502 5.5.2 Error: command not recognized");
        return;
    }
    if (v->id != V_DATA)
        s->count[v->id].total++;
    if (!(v->states & s->state)) {
        if (v->id == V_DATA)
            s->count[V_DATA].total++;
        reply(s, "%s", v->bad_state);
        return;
    }
    v->handler(s, arg, alen);
    if (v->id == V_DATA) {
        if (s->state != S_DATA)         /* refused before 354 */
            s->count[V_DATA].total++;
    } else if (s->last_code < 400) {
        s->count[v->id].ok++;
    }
}

size_t smtp_session_input(smtp_session_t *s, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n && !s->waiting && !s->closing) {
        const char *start = p + off, *crlf;
        size_t avail = n - off;

        if (s->state == S_DATA) {
            off += smtp_data_feed(&s->data, start, avail, &s->body);
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
        if (!crlf) {
            if (avail <= SMTP_CMD_LINE_MAX)
                break;                  /* wait for the rest of the line */
            s->count[V_UNKNOWN].total++;
            reply(s, "500 5.5.2 Error: line too long");
            s->discarding = true;
            off += start[avail - 1] == '\r' ? avail - 1 : avail;
            break;
        }
        off += (size_t)(crlf - start) + 2;
        if ((size_t)(crlf - start) + 2 > SMTP_CMD_LINE_MAX) {
            s->count[V_UNKNOWN].total++;
            reply(s, "500 5.5.2 Error: line too long");
            continue;
        }
        command(s, start, (size_t)(crlf - start));
    }
    return off;
}
