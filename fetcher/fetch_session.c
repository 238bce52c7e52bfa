/* fetch_session.c - one session with one remote account (see
 * fetch_session.h).  Runs in a worker thread; everything it touches is
 * its own except the LMDB state (its own transactions) and the users
 * map (under its mutex). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "address.h"
#include "domain_pop.h"
#include "fetch_session.h"
#include "log.h"
#include "mailbox.h"
#include "metrics.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"

#define WINDOW_MAX         16                   /* submissions in flight */
#define WINDOW_BYTES       (32u * 1024 * 1024)  /* ... and their bytes */
#define ANSWER_MS          (10 * 1000)          /* no answer: send again, same ref */
#define BUSY_RETRY_MS      (2 * 1000)           /* after "4xx try again" */
#define INGRESS_GIVEUP_MS  (120 * 1000)         /* no answer at all this long: end */
#define STOP_DRAIN_MS      (5 * 1000)           /* at shutdown, wait this long for answers */
#define TAKEN_BATCH        64                   /* acks recorded per LMDB commit */
#define LEASE_MIN_MS       (120 * 1000)
#define BACKOFF_FIRST_MS   (60 * 1000)
#define BACKOFF_MAX_MS     (3600 * 1000LL)
#define AUTH_BACKOFF_MAX_MS (24 * 3600 * 1000LL)
#define UID_MAX            200
#define REF_MAX            (ACCOUNT_NAME_MAX + 32 + UID_MAX + 40)

typedef struct inflight {
    const mailbox_msg *msg;
    char     ref[REF_MAX];
    buf_t    body;
    buf_t    received;
    char   **rcpt;
    size_t   nrcpt;
    char     sender[ADDR_PATH_MAX + 1];
    bool     eightbit;
    int64_t  send_at_ms;        /* when to send (again); 0 now */
    bool     sent;
} inflight;

typedef struct session {
    const fetch_env     *env;
    const fetch_account *ac;
    submit_client_t     *submit;
    bool               (*stop)(void);
    mailbox_t           *m;
    char                 uidvalidity[32];
    char                 ip[INET6_ADDRSTRLEN];
    inflight            *win[WINDOW_MAX];
    size_t               nwin, win_bytes;
    const mailbox_msg   *acked[TAKEN_BATCH];
    size_t               nacked;
    size_t               taken, too_big, refused, seen;
    char                 error[FETCH_ERROR_MAX];
    bool                 failed, auth_failed, mailbox_broken, stopped;
    int64_t              progress_ms, lease_ms, lease_ttl_ms;
    uint64_t             generation;    /* fetch_status.generation at the start */
} session;

void fetch_session_ref(char *dst, size_t size, const char *account, uint64_t generation,
                       const char *uidvalidity, const char *uid)
{
    if (generation)
        snprintf(dst, size, "fetch:%s~%llu:%s:%s", account, (unsigned long long)generation,
                 uidvalidity, uid);
    else
        snprintf(dst, size, "fetch:%s:%s:%s", account, uidvalidity, uid);
}

/* set_error - the session failed: remember the first reason. */
static void set_error(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(session *s, const char *fmt, ...)
{
    char text[FETCH_ERROR_MAX];
    va_list ap;

    if (!s->failed)
        metrics_inc("correio_fetcher_errors_total", NULL);   /* one per failed session */
    s->failed = true;
    if (s->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_printable(s->error, sizeof(s->error), text, strlen(text));
}

static void inflight_free(inflight **fp)
{
    inflight *f = *fp;

    if (!f)
        return;
    buf_free(&f->body);
    buf_free(&f->received);
    domain_pop_free(&f->rcpt, f->nrcpt);
    xfree(fp);
}

/* uid_ok - a UID we can key on: printable ASCII without spaces. */
static bool uid_ok(const char *uid)
{
    size_t n = strlen(uid);

    if (n == 0 || n > UID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (uid[i] <= ' ' || uid[i] > '~')
            return false;
    return true;
}

/* resolve_ip - the server's address for our Received: line ("" if it
 * does not resolve; the session itself connects by name anyway). */
static void resolve_ip(session *s)
{
    struct addrinfo hints, *res = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    s->ip[0] = '\0';
    if (getaddrinfo(s->ac->srv.host, NULL, &hints, &res) != 0 || !res)
        return;
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, s->ip,
                  sizeof(s->ip));
    else if (res->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, s->ip,
                  sizeof(s->ip));
    freeaddrinfo(res);
}

/* normalize - the message with CRLF line ends only (a bare LF or CR
 * becomes CRLF) and a final CRLF, as the ingress wants it. */
static void normalize(const buf_t *in, buf_t *out, bool *eightbit)
{
    *eightbit = false;
    buf_reserve(out, in->len + in->len / 50 + 2);
    for (size_t i = 0; i < in->len; i++) {
        unsigned char c = (unsigned char)in->data[i];

        if (c >= 0x80)
            *eightbit = true;
        if (c == '\r') {
            buf_append(out, "\r\n", 2);
            if (i + 1 < in->len && in->data[i + 1] == '\n')
                i++;
        } else if (c == '\n') {
            buf_append(out, "\r\n", 2);
        } else {
            buf_append_char(out, (char)c);
        }
    }
    if (out->len < 2 || out->data[out->len - 1] != '\n')
        buf_append(out, "\r\n", 2);
}

/* rename_delivered_to - the remote side's Delivered-To: fields become
 * X-Original-Delivered-To: (header section only), as fetchmail's
 * dropdelivered does: local delivery takes a Delivered-To naming the
 * recipient for a mail loop.  Domain POP reads them before this. */
static void rename_delivered_to(buf_t *msg)
{
    static const char from[] = "Delivered-To:", to[] = "X-Original-Delivered-To:";
    size_t i = 0;
    buf_t out = BUF_INIT;
    bool changed = false;

    while (i < msg->len) {
        const char *line = msg->data + i;
        const char *nl = memchr(line, '\n', msg->len - i);
        size_t n = nl ? (size_t)(nl - line) + 1 : msg->len - i;

        if (n <= 2 && (line[0] == '\r' || line[0] == '\n'))
            break;                                  /* end of the header section */
        if (n > sizeof(from) - 1 && strncasecmp(line, from, sizeof(from) - 1) == 0) {
            if (!changed)
                buf_append(&out, msg->data, i);
            changed = true;
            buf_append(&out, to, sizeof(to) - 1);
            buf_append(&out, line + sizeof(from) - 1, n - (sizeof(from) - 1));
        } else if (changed) {
            buf_append(&out, line, n);
        }
        i += n;
    }
    if (!changed)
        return;
    buf_append(&out, msg->data + i, msg->len - i);
    buf_free(msg);
    *msg = out;
}

/* return_path - the address of the message's Return-Path: field, when it
 * is a valid path, into dst; else "" (the null sender). */
static void return_path(const buf_t *msg, char *dst, size_t size)
{
    size_t i = 0, hdr_end = msg->len < 256 * 1024 ? msg->len : 256 * 1024;

    dst[0] = '\0';
    while (i < hdr_end) {
        const char *line = msg->data + i;
        const char *nl = memchr(line, '\n', hdr_end - i);
        size_t n = nl ? (size_t)(nl - line) : hdr_end - i;

        if (n == 0 || (n == 1 && line[0] == '\r'))
            return;
        if (n > 12 && strncasecmp(line, "Return-Path:", 12) == 0) {
            const char *v = line + 12;
            size_t vl = n - 12, used = 0;
            smtp_path path;

            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (smtp_path_parse(v, vl, true, &path, &used) == PATH_OK && used == vl)
                snprintf(dst, size, "%s", path.address);
            return;
        }
        i += n + 1;
    }
}

static bool user_exists(void *ctx, const char *address)
{
    const fetch_env *env = ctx;
    bool found;

    if (!env->users)
        return false;
    pthread_mutex_lock(env->users_mu);
    users_refresh(env->users);
    found = users_lookup(env->users, address) != NULL;
    pthread_mutex_unlock(env->users_mu);
    return found;
}

/* received_line - our trace field:
 *   Received: from SERVER (SERVER [IP])
 *   \tby HOST (correio-fetcher) with IMAP id ACCOUNT
 *   \tfor <RCPT>; DATE                                  ("for" with one recipient) */
static void received_line(session *s, inflight *f)
{
    char date[64], host[300];
    const fetch_account *ac = s->ac;

    log_printable(host, sizeof(host), ac->srv.host, strlen(ac->srv.host));
    time_rfc5322(date, sizeof(date), (int64_t)(time_now_us() / 1000000));
    buf_printf(&f->received, "Received: from %s (%s", host, host);
    if (s->ip[0])
        buf_printf(&f->received, " [%s%s]", strchr(s->ip, ':') ? "IPv6:" : "", s->ip);
    buf_printf(&f->received, ")\r\n\tby %s (correio-fetcher) with %s id %s", s->env->node,
               ac->srv.protocol == MAILBOX_IMAP ? "IMAP" : "POP3", ac->name);
    if (f->nrcpt == 1)
        buf_printf(&f->received, "\r\n\tfor <%s>; %s\r\n", f->rcpt[0], date);
    else
        buf_printf(&f->received, ";\r\n\t%s\r\n", date);
}

/* send_one - hand f to the ingress (again); false when it cannot go now. */
static bool send_one(session *s, inflight *f)
{
    Envelope env = CORREIO__ENVELOPE__INIT;
    Client cl = CORREIO__CLIENT__INIT;
    Recipient *rv = xcalloc(f->nrcpt, sizeof(*rv));
    Recipient **rp = xcalloc(f->nrcpt, sizeof(*rp));
    ProtobufCBinaryData ph = {f->received.len, (uint8_t *)f->received.data};
    int rc;

    for (size_t i = 0; i < f->nrcpt; i++) {
        correio__recipient__init(&rv[i]);
        rv[i].address = f->rcpt[i];
        rp[i] = &rv[i];
    }
    cl.listener = "fetch";
    cl.ip = s->ip;
    cl.helo = (char *)s->ac->srv.host;
    cl.protocol = s->ac->srv.protocol == MAILBOX_IMAP ? "IMAP" : "POP3";
    env.version = WIRE_VERSION;
    env.client = &cl;
    env.reverse_path = f->sender;
    env.n_rcpt = f->nrcpt;
    env.rcpt = rp;
    env.body_type = f->eightbit ? CORREIO__BODY_TYPE__BODY_8BITMIME
                                : CORREIO__BODY_TYPE__BODY_7BIT;
    env.n_prepend_headers = 1;
    env.prepend_headers = &ph;
    env.body.data = (uint8_t *)f->body.data;
    env.body.len = f->body.len;
    rc = submit_client_send(s->submit, f->ref, &env);
    xfree(&rv);
    xfree(&rp);
    if (rc != 0) {
        f->send_at_ms = time_mono_ms() + BUSY_RETRY_MS / 4;
        return false;
    }
    f->sent = true;
    f->send_at_ms = time_mono_ms() + ANSWER_MS;
    return true;
}

/* flush_acked - record the acknowledged messages taken (one commit),
 * then mark them deleted remotely unless keep. */
static void flush_acked(session *s)
{
    const char *uids[TAKEN_BATCH];
    char *err = NULL;

    if (s->nacked == 0)
        return;
    for (size_t i = 0; i < s->nacked; i++)
        uids[i] = s->acked[i]->uid;
    if (fetch_state_mark_taken(s->env->state, s->ac->name, s->uidvalidity, uids, s->nacked) != 0) {
        /* not recorded: they stay remote and come again; the ingress drops the copies */
        set_error(s, "%s", "cannot record taken messages in the fetcher's state");
        s->nacked = 0;
        return;
    }
    for (size_t i = 0; i < s->nacked && !s->ac->keep && !s->mailbox_broken; i++) {
        mailbox_status st = mailbox_delete(s->m, s->acked[i], &err);
        if (st != MAILBOX_OK && st != MAILBOX_GONE) {
            set_error(s, "delete: %s", err ? err : "failed");
            s->mailbox_broken = true;
        }
        xfree(&err);
    }
    s->nacked = 0;
}

/* window_remove - drop f (index i) from the window. */
static void window_remove(session *s, size_t i)
{
    inflight *f = s->win[i];

    s->win_bytes -= f->body.len;
    inflight_free(&f);
    memmove(&s->win[i], &s->win[i + 1], (s->nwin - i - 1) * sizeof(s->win[0]));
    s->nwin--;
}

/* on_reply - one answer from the ingress. */
static void on_reply(session *s, const SubmitReply *r)
{
    char text[200];
    size_t i;

    for (i = 0; i < s->nwin && strcmp(s->win[i]->ref, r->ref) != 0; i++)
        ;
    if (i == s->nwin)
        return;                         /* an answer to a copy sent before: done already */
    s->progress_ms = time_mono_ms();
    log_printable(text, sizeof(text), r->text, strlen(r->text));
    if (r->status == 0) {
        inflight *f = s->win[i];
        log_info("%s: uid=%s size=%zu nrcpt=%zu: queued as %s", s->ac->name, f->msg->uid,
                 f->body.len, f->nrcpt, r->queue_id);
        s->acked[s->nacked++] = f->msg;
        metrics_inc("correio_fetcher_messages_total", NULL);
        s->taken++;
        window_remove(s, i);
        if (s->nacked == TAKEN_BATCH)
            flush_acked(s);
    } else if (r->status == 5) {
        log_warn("%s: uid=%s: the ingress refused it for good: %s; it stays on the server",
                 s->ac->name, s->win[i]->msg->uid, text);
        s->refused++;
        window_remove(s, i);
    } else {
        log_info("%s: uid=%s: the ingress says try later: %s", s->ac->name, s->win[i]->msg->uid,
                 text);
        s->win[i]->send_at_ms = time_mono_ms() + BUSY_RETRY_MS;
    }
}

/* pump - send what is due, read the answers; wait up to wait_ms for one. */
static void pump(session *s, int wait_ms)
{
    int64_t now = time_mono_ms();
    zmq_pollitem_t item = {submit_client_socket(s->submit), 0, ZMQ_POLLIN, 0};
    SubmitReply *r;

    for (size_t i = 0; i < s->nwin; i++) {
        inflight *f = s->win[i];
        if (f->send_at_ms <= now) {
            if (f->sent)
                log_info("%s: uid=%s: no answer from the ingress; sending again", s->ac->name,
                         f->msg->uid);
            send_one(s, f);
        }
    }
    if (zmq_poll(&item, 1, wait_ms) > 0 || wait_ms == 0) {
        while ((r = submit_client_receive(s->submit)) != NULL) {
            on_reply(s, r);
            wire_free_submit_reply(&r);
        }
    }
    if (s->nwin && time_mono_ms() - s->progress_ms > INGRESS_GIVEUP_MS) {
        set_error(s, "%s", "the ingress took no message for 120 s");
        for (size_t i = s->nwin; i-- > 0;)
            window_remove(s, i);
    }
}

/* renew_lease - keep the account ours while the session runs. */
static bool renew_lease(session *s)
{
    char holder[256];

    if (time_mono_ms() - s->lease_ms < s->lease_ttl_ms / 2)
        return true;
    if (!fetch_state_lease_take(s->env->state, s->ac->name, s->env->node, (long)getpid(),
                                s->lease_ttl_ms, holder, sizeof(holder))) {
        set_error(s, "lost the session lease to %s", holder);
        return false;
    }
    s->lease_ms = time_mono_ms();
    return true;
}

/* take_one - fetch msg and put it in the window. */
static void take_one(session *s, const mailbox_msg *msg)
{
    inflight *f;
    buf_t raw = BUF_INIT;
    char *err = NULL;
    mailbox_status st;

    while (!s->failed && (s->nwin == WINDOW_MAX || s->win_bytes >= WINDOW_BYTES))
        pump(s, 200);
    if (s->failed)
        return;
    st = mailbox_fetch(s->m, msg, s->env->size_limit, &raw, &err);
    if (st == MAILBOX_TOO_BIG) {
        log_warn("%s: uid=%s size=%zu: over fetch_message_size_limit (%zu); left on the server",
                 s->ac->name, msg->uid, msg->size, s->env->size_limit);
        s->too_big++;
    } else if (st == MAILBOX_GONE) {
        log_info("%s: uid=%s: gone from the server meanwhile", s->ac->name, msg->uid);
    } else if (st != MAILBOX_OK) {
        set_error(s, "fetch: %s", err ? err : "failed");
        s->mailbox_broken = true;
    } else if (raw.len == 0) {
        log_warn("%s: uid=%s: empty message; left on the server", s->ac->name, msg->uid);
        s->refused++;
    } else {
        f = xcalloc(1, sizeof(*f));
        f->msg = msg;
        fetch_session_ref(f->ref, sizeof(f->ref), s->ac->name, s->generation, s->uidvalidity,
                          msg->uid);
        normalize(&raw, &f->body, &f->eightbit);
        return_path(&f->body, f->sender, sizeof(f->sender));
        if (s->ac->domain_pop) {
            domain_pop_opts o = {
                .domain = s->ac->domain_pop, .forward_to = s->ac->forward_to,
                .ignore_received_for = s->ac->ignore_received_for,
                .exists = user_exists, .ctx = (void *)s->env, .max = s->env->rcpt_limit,
            };
            const char *source = "";
            f->nrcpt = domain_pop_recipients(f->body.data, f->body.len, &o, &f->rcpt, &source);
            log_info("%s: uid=%s: domain_pop %s: %zu recipient%s (from %s)", s->ac->name,
                     msg->uid, s->ac->domain_pop, f->nrcpt, f->nrcpt == 1 ? "" : "s", source);
        } else {
            f->rcpt = xcalloc(1, sizeof(*f->rcpt));
            f->rcpt[0] = xstrdup(s->ac->forward_to);
            f->nrcpt = 1;
        }
        rename_delivered_to(&f->body);
        received_line(s, f);
        s->win[s->nwin++] = f;
        s->win_bytes += f->body.len;
        if (s->nwin == 1)
            s->progress_ms = time_mono_ms();
        send_one(s, f);
        pump(s, 0);
    }
    buf_free(&raw);
    xfree(&err);
}

/* finish_status - store the session's outcome and when to run next. */
static void finish_status(session *s, uint64_t started, fetch_outcome *out)
{
    fetch_state_t *state = s->env->state;
    fetch_status st;
    uint64_t now = time_now_us();
    int64_t next_ms;

    fetch_state_status(state, s->ac->name, &st);
    st.last_run = started;
    st.runs++;
    st.taken_total += s->taken;
    st.taken_last = s->taken;
    st.too_big = s->too_big;
    snprintf(st.uidvalidity, sizeof(st.uidvalidity), "%s", s->uidvalidity);
    if (!s->failed) {
        st.last_success = now;
        st.failures = 0;
        st.auth_failed = 0;
        st.last_error[0] = '\0';
        if (s->too_big || s->refused)
            snprintf(st.last_error, sizeof(st.last_error),
                     "%zu message%s left on the server (%zu over fetch_message_size_limit, "
                     "%zu refused by the ingress)", s->too_big + s->refused,
                     s->too_big + s->refused == 1 ? "" : "s", s->too_big, s->refused);
        next_ms = s->stopped ? 0 : s->ac->interval_ms;   /* cut short: go on at the next start */
    } else {
        st.failures++;
        st.auth_failed = s->auth_failed;
        snprintf(st.last_error, sizeof(st.last_error), "%s", s->error);
        if (s->auth_failed) {
            /* a refused password: back off hard, account lockouts are near */
            next_ms = s->ac->interval_ms;
            for (uint32_t i = 1; i < st.failures && next_ms < AUTH_BACKOFF_MAX_MS; i++)
                next_ms *= 2;
            if (next_ms > AUTH_BACKOFF_MAX_MS)
                next_ms = AUTH_BACKOFF_MAX_MS;
        } else {
            int64_t cap = s->ac->interval_ms > BACKOFF_MAX_MS ? s->ac->interval_ms
                                                              : BACKOFF_MAX_MS;
            next_ms = BACKOFF_FIRST_MS;
            for (uint32_t i = 1; i < st.failures && next_ms < cap; i++)
                next_ms *= 2;
            if (next_ms > cap)
                next_ms = cap;
        }
    }
    st.next_try = now + (uint64_t)next_ms * 1000u;
    fetch_state_set_status(state, s->ac->name, &st);
    out->ok = !s->failed;
    out->taken = s->taken;
    out->next_try = st.next_try;
    if (s->failed)
        log_warn("%s: session failed (%u in a row): %s; next try in %llds", s->ac->name,
                 st.failures, s->error, (long long)(next_ms / 1000));
    else
        log_info("%s: session done: messages=%zu taken=%zu too_big=%zu refused=%zu",
                 s->ac->name, s->seen, s->taken, s->too_big, s->refused);
}

void fetch_session(const fetch_env *env, const fetch_account *ac, submit_client_t *submit,
                   bool (*stop)(void), fetch_outcome *out)
{
    session s = {.env = env, .ac = ac, .submit = submit, .stop = stop};
    uint64_t started = time_now_us();
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char holder[256], *err = NULL;
    mailbox_status st;

    memset(out, 0, sizeof(*out));
    s.lease_ttl_ms = 4 * ac->srv.timeout_ms > LEASE_MIN_MS ? 4 * ac->srv.timeout_ms : LEASE_MIN_MS;
    if (!fetch_state_lease_take(env->state, ac->name, env->node, (long)getpid(), s.lease_ttl_ms,
                                holder, sizeof(holder))) {
        log_info("%s: another session runs (%s); not starting one", ac->name, holder);
        return;
    }
    out->ran = true;
    s.lease_ms = time_mono_ms();
    {
        fetch_status before;
        fetch_state_status(env->state, ac->name, &before);
        s.generation = before.generation;
    }
    log_info("%s: session start: %s://%s:%u user=%s%s", ac->name,
             ac->srv.protocol == MAILBOX_IMAP ? "imap" : "pop3", ac->srv.host, ac->srv.port,
             ac->srv.user, ac->keep ? " keep" : "");
    resolve_ip(&s);

    s.m = mailbox_open(&ac->srv, &st, &err);
    if (!s.m) {
        s.auth_failed = st == MAILBOX_AUTH_FAILED;
        set_error(&s, "%s%s", s.auth_failed ? "login refused: " : "", err ? err : "cannot connect");
        xfree(&err);
        goto done;
    }
    if (mailbox_list(s.m, &msgs, &n, s.uidvalidity, &err) != MAILBOX_OK) {
        set_error(&s, "list: %s", err ? err : "failed");
        xfree(&err);
        s.mailbox_broken = true;
        goto close;
    }
    s.uidvalidity[sizeof(s.uidvalidity) - 1] = '\0';
    if (s.uidvalidity[0]) {
        size_t forgot = fetch_state_forget_other_uidvalidity(env->state, ac->name, s.uidvalidity);
        if (forgot)
            log_warn("%s: folder %s has a new UIDVALIDITY %s: forgot %zu message%s taken under"
                     " the old one (they are fetched again if still there)", ac->name,
                     ac->srv.folder ? ac->srv.folder : "INBOX", s.uidvalidity, forgot,
                     forgot == 1 ? "" : "s");
    }
    s.seen = n;
    for (size_t i = 0; i < n && !s.failed; i++) {
        const mailbox_msg *msg = &msgs[i];

        if (stop() || !renew_lease(&s))
            break;
        if (!uid_ok(msg->uid)) {
            char u[64];
            log_warn("%s: message with an unusable UID '%s' skipped", ac->name,
                     log_printable(u, sizeof(u), msg->uid, strlen(msg->uid)));
            continue;
        }
        if (fetch_state_is_taken(env->state, ac->name, s.uidvalidity, msg->uid)) {
            if (!ac->keep) {
                /* taken before, but its deletion never got committed */
                mailbox_status ds = mailbox_delete(s.m, msg, &err);
                if (ds != MAILBOX_OK && ds != MAILBOX_GONE) {
                    set_error(&s, "delete: %s", err ? err : "failed");
                    s.mailbox_broken = true;
                }
                xfree(&err);
            }
            continue;
        }
        if (msg->size > env->size_limit) {
            log_warn("%s: uid=%s size=%zu: over fetch_message_size_limit (%zu); left on the"
                     " server", ac->name, msg->uid, msg->size, env->size_limit);
            s.too_big++;
            continue;
        }
        take_one(&s, msg);
    }
    /* the answers still due */
    {
        int64_t stop_deadline = 0;
        while (s.nwin) {
            if (stop() && !stop_deadline)
                stop_deadline = time_mono_ms() + STOP_DRAIN_MS;
            if (stop_deadline && time_mono_ms() > stop_deadline) {
                set_error(&s, "%s", "stopped while the ingress had messages in hand");
                while (s.nwin)
                    window_remove(&s, s.nwin - 1);
                break;
            }
            pump(&s, 200);
        }
    }
    flush_acked(&s);
    s.stopped = stop();
close:
    /* commit the deletions unless the connection is in doubt */
    if (mailbox_close(&s.m, !s.mailbox_broken, &err) != MAILBOX_OK && !s.mailbox_broken)
        set_error(&s, "closing: %s", err ? err : "failed");
    xfree(&err);
done:
    mailbox_msgs_free(&msgs, n);
    finish_status(&s, started, out);
    fetch_state_lease_release(env->state, ac->name, env->node, (long)getpid());
}
