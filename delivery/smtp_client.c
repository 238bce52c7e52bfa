/* smtp_client.c - the client side of one SMTP or LMTP connection (see
 * smtp_client.h): a state machine over a non-blocking socket that the
 * outbound engine drives.
 *
 * The machine is the enum client_state: each state that waits for a reply
 * has one handler (the table `steps` names it, with the stage name the
 * texts use, what the client is doing for "lost connection ... while X",
 * and which timeout guards it).  smtp_client_io writes what is queued,
 * reads and dispatches complete replies, and repeats until the socket
 * would block: it does not depend on the readable/writable hints, so
 * level- and edge-triggered loops both work.
 *
 * With PIPELINING, MAIL, every RCPT and DATA are queued together and the
 * replies come back through the same handlers in the same order; without
 * it, each handler queues the next command.  The content is produced in
 * chunks straight from the envelope's buffers, dot-stuffed on the way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "header_skip.h"
#include "log.h"
#include "smtp_client.h"
#include "status_code.h"
#include "subject_tag.h"
#include "timeutil.h"
#include "xalloc.h"

#define READ_CHUNK        4096          /* one read from the socket */
#define CONTENT_CHUNK     (64 * 1024)   /* content produced per fill */
#define REPLY_LINES_MAX   128           /* lines in one multi-line reply */
#define LOCAL_FAIL_CODE   550           /* code of a failure decided here */
#define NO_TIMEOUT        SIZE_MAX      /* steps without a deadline */
#define LOG_TEXT_MAX      200           /* peer text shown in debug lines */
#define SMTP_CODE_CLOSING 421           /* the peer is closing the connection */

/* Where the conversation is: what was sent last and what comes next. */
typedef enum {
    ST_GREETING,        /* waiting for the 220 */
    ST_EHLO,            /* EHLO (or LHLO) sent */
    ST_HELO,            /* HELO sent after EHLO got a 5xx */
    ST_STARTTLS,        /* STARTTLS sent */
    ST_HANDSHAKE,       /* TLS handshake under way */
    ST_AUTH,            /* AUTH PLAIN with the response, or AUTH LOGIN, sent */
    ST_AUTH_USER,       /* AUTH LOGIN: the user name sent */
    ST_AUTH_PASS,       /* AUTH LOGIN: the password sent */
    ST_READY,           /* idle between transactions */
    ST_RSET,            /* RSET sent before a new MAIL */
    ST_MAIL,            /* waiting for MAIL's reply */
    ST_RCPT,            /* waiting for RCPT replies */
    ST_DATA,            /* waiting for DATA's reply */
    ST_CONTENT,         /* writing the content and the final dot */
    ST_DOT,             /* waiting for the final reply (LMTP: replies) */
    ST_EMPTY_DOT,       /* pipelined DATA got 354 with no recipient: "." sent */
    ST_QUIT,            /* QUIT sent */
    ST_FAILED,
    ST_CLOSED,
    ST_COUNT
} client_state;

/* What became of one recipient so far. */
typedef enum {
    RCPT_UNDECIDED,     /* no reply yet */
    RCPT_ACCEPTED,      /* RCPT got 2xx; the final reply is still to come */
    RCPT_DECIDED,       /* its reply is final */
} rcpt_state;

/* One reply being read, line by line. */
typedef struct reply_reader {
    smtp_reply reply;   /* code, text so far */
    size_t     lines;
    size_t     text_len;
} reply_reader;

/* The content stream: pieces in order (extra header, each prepended
 * header, the kept ranges of the body: header_skip.h), a position in
 * them, and the last byte produced.  Each range starts at a line start,
 * so a '.' there is stuffed as at any line start. */
typedef struct content_cursor {
    size_t piece;
    size_t off;
    char   prev;        /* '\n' at a line start */
    bool   finished;    /* the final dot is queued */
} content_cursor;

/* What the peer said it can do in its EHLO reply. */
typedef struct peer_features {
    bool     pipelining, eightbitmime, smtputf8, dsn, starttls, enhanced;
    bool     auth_plain, auth_login, auth;
    bool     size;                      /* SIZE offered (a limit or not) */
    uint64_t size_limit;                /* 0: no limit given */
} peer_features;

struct smtp_client {
    int              fd;
    smtp_client_opts opts;              /* strings are our copies */
    client_state     state;
    int64_t          deadline;
    peer_features    peer;
    tls_conn_t      *tls;
    tls_status       tls_handshake_wait; /* what a blocked TLS call waits for */
    tls_status       tls_read_wait;
    tls_status       tls_write_wait;
    bool             tls_failed;
    buf_t            in, out;
    size_t           in_pos;            /* first byte of in not yet parsed */
    size_t           out_pos;           /* first byte of out not yet written */
    reply_reader     rd;
    smtp_reply       failure;
    bool             done_unreported;   /* io owes the caller a DONE */
    bool             need_rset;
    unsigned         transactions;
    /* the transaction under way */
    bool             in_txn;
    smtp_txn         txn;
    rcpt_state      *rstate;
    smtp_reply      *rreply;
    size_t           rcpt_cap;
    size_t           rcpt_next;         /* next recipient whose reply is due */
    size_t           accepted;
    bool             mail_ok;
    content_cursor   content;
    struct iovec    *pieces;            /* the parts of txn.body to send, with */
    size_t           n_pieces;          /* the spam tag spliced in (subject_tag.h) */
    subject_tag_plan tag;
};

typedef void (*reply_handler)(smtp_client_t *c, const smtp_reply *r);

static void on_greeting(smtp_client_t *c, const smtp_reply *r);
static void on_ehlo(smtp_client_t *c, const smtp_reply *r);
static void on_helo(smtp_client_t *c, const smtp_reply *r);
static void on_starttls(smtp_client_t *c, const smtp_reply *r);
static void on_auth(smtp_client_t *c, const smtp_reply *r);
static void on_ready(smtp_client_t *c, const smtp_reply *r);
static void on_rset(smtp_client_t *c, const smtp_reply *r);
static void on_mail(smtp_client_t *c, const smtp_reply *r);
static void on_rcpt(smtp_client_t *c, const smtp_reply *r);
static void on_data(smtp_client_t *c, const smtp_reply *r);
static void on_dot(smtp_client_t *c, const smtp_reply *r);
static void on_empty_dot(smtp_client_t *c, const smtp_reply *r);
static void on_quit(smtp_client_t *c, const smtp_reply *r);

#define TIMEOUT(field) offsetof(smtp_timeouts, field)

/* Each state: the stage a reply in it answers, what the client is doing
 * (for "timed out while ..."), the timeout that guards it (an offset into
 * smtp_timeouts), and the handler of its reply (NULL: no reply read). */
static const struct step {
    const char   *stage;
    const char   *doing;
    size_t        timeout;
    reply_handler handler;
} steps[ST_COUNT] = {
    [ST_GREETING]  = {"greeting", "receiving the initial greeting", TIMEOUT(helo), on_greeting},
    [ST_EHLO]      = {"EHLO", "sending EHLO", TIMEOUT(helo), on_ehlo},
    [ST_HELO]      = {"HELO", "sending HELO", TIMEOUT(helo), on_helo},
    [ST_STARTTLS]  = {"STARTTLS", "sending STARTTLS", TIMEOUT(starttls), on_starttls},
    [ST_HANDSHAKE] = {"STARTTLS", "performing the TLS handshake", TIMEOUT(starttls), NULL},
    [ST_AUTH]      = {"AUTH", "sending AUTH", TIMEOUT(mail), on_auth},
    [ST_AUTH_USER] = {"AUTH", "sending the AUTH user name", TIMEOUT(mail), on_auth},
    [ST_AUTH_PASS] = {"AUTH", "sending the AUTH password", TIMEOUT(mail), on_auth},
    [ST_READY]     = {"idle", "waiting for the next transaction", NO_TIMEOUT, on_ready},
    [ST_RSET]      = {"RSET", "sending RSET", TIMEOUT(mail), on_rset},
    [ST_MAIL]      = {"MAIL FROM", "sending MAIL FROM", TIMEOUT(mail), on_mail},
    [ST_RCPT]      = {"RCPT TO", "sending RCPT TO", TIMEOUT(rcpt), on_rcpt},
    [ST_DATA]      = {"DATA", "sending DATA command", TIMEOUT(data_init), on_data},
    [ST_CONTENT]   = {"DATA", "sending message body", TIMEOUT(data_xfer), NULL},
    [ST_DOT]       = {"end of DATA", "sending end of data -- message may be sent more than once",
                      TIMEOUT(data_done), on_dot},
    [ST_EMPTY_DOT] = {"end of DATA", "sending end of data", TIMEOUT(data_done), on_empty_dot},
    [ST_QUIT]      = {"QUIT", "sending QUIT", TIMEOUT(quit), on_quit},
    [ST_FAILED]    = {"connection", "failed", NO_TIMEOUT, NULL},
    [ST_CLOSED]    = {"connection", "closed", NO_TIMEOUT, NULL},
};

/* ------------------------------------------------------------ small helpers */

static bool terminal(const smtp_client_t *c)
{
    return c->state == ST_FAILED || c->state == ST_CLOSED;
}

static bool reads_replies(client_state st)
{
    return steps[st].handler != NULL;
}

static int64_t step_timeout(const smtp_client_t *c, client_state st)
{
    size_t off = steps[st].timeout;

    if (off == NO_TIMEOUT)
        return INT64_MAX;
    return *(const int64_t *)((const char *)&c->opts.timeouts + off);
}

/* enter - go to st, with a fresh deadline for that step. */
static void enter(smtp_client_t *c, client_state st)
{
    int64_t timeout = step_timeout(c, st);

    c->state = st;
    c->deadline = timeout == INT64_MAX ? INT64_MAX : time_mono_ms() + timeout;
}

/* printable_copy - src[0..len) into dst (size > 0) as printable ASCII,
 * cut to fit. */
static size_t printable_copy(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];

        dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    dst[n] = '\0';
    return n;
}

static void reply_set(smtp_reply *r, int code, const char *status, const char *stage,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* reply_set - a reply made by the client itself. */
static void reply_set(smtp_reply *r, int code, const char *status, const char *stage,
                      const char *fmt, ...)
{
    va_list ap;

    r->code = code;
    snprintf(r->status, sizeof(r->status), "%s", status);
    r->stage = stage;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}

/* --------------------------------------------------------------- the socket */

typedef enum { IO_DONE, IO_AGAIN, IO_EOF, IO_ERROR } io_result;

/* io_tls - a TLS call's status in io_result terms; *wait remembers which
 * way the call waits (a TLS read may need the socket writable, a write
 * readable).  Progress either way may have unblocked the other call, so
 * both go back to their natural direction then. */
static io_result io_tls(smtp_client_t *c, tls_status st, tls_status *wait)
{
    switch (st) {
    case TLS_OK:
        c->tls_read_wait = TLS_WANT_READ;
        c->tls_write_wait = TLS_WANT_WRITE;
        return IO_DONE;
    case TLS_WANT_READ:
    case TLS_WANT_WRITE:
        *wait = st;
        return IO_AGAIN;
    case TLS_CLOSED:
        return IO_EOF;
    case TLS_FAILED:
        break;
    }
    log_debug("smtp_client: %s: %s", c->opts.peer, tls_error(c->tls));
    return IO_ERROR;
}

static io_result io_read(smtp_client_t *c, void *p, size_t cap, size_t *got, tls_status *wait)
{
    ssize_t n;

    if (c->tls != NULL)
        return io_tls(c, tls_read(c->tls, p, cap, got), wait);
    *got = 0;
    if ((n = read(c->fd, p, cap)) > 0) {
        *got = (size_t)n;
        return IO_DONE;
    }
    if (n == 0)
        return IO_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return IO_AGAIN;
    log_debug("smtp_client: %s: read: %s", c->opts.peer, strerror(errno));
    return IO_ERROR;
}

static io_result io_write(smtp_client_t *c, const void *p, size_t len, size_t *put,
                          tls_status *wait)
{
    ssize_t n;

    if (c->tls != NULL)
        return io_tls(c, tls_write(c->tls, p, len, put), wait);
    *put = 0;
    if ((n = send(c->fd, p, len, MSG_NOSIGNAL)) >= 0) {
        *put = (size_t)n;
        return IO_DONE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return IO_AGAIN;
    log_debug("smtp_client: %s: send: %s", c->opts.peer, strerror(errno));
    return IO_ERROR;
}

/* ----------------------------------------------------------------- failures */

/* fail_with - the connection is unusable because of r: every recipient of
 * the transaction under way without a final reply gets r. */
static void fail_with(smtp_client_t *c, const smtp_reply *r)
{
    c->failure = *r;
    if (c->in_txn) {
        for (size_t i = 0; i < c->txn.n_rcpt; i++) {
            if (c->rstate[i] != RCPT_DECIDED) {
                c->rreply[i] = *r;
                c->rstate[i] = RCPT_DECIDED;
            }
        }
        c->in_txn = false;
    }
    c->state = ST_FAILED;
    c->deadline = INT64_MAX;
    log_debug("smtp_client: %s: failed: %s", c->opts.peer, r->text);
}

static void vfail(smtp_client_t *c, int code, const char *status, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void fail(smtp_client_t *c, int code, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_tls(smtp_client_t *c, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* vfail - the connection is unusable, for a reason of the client's own. */
static void vfail(smtp_client_t *c, int code, const char *status, const char *fmt, va_list ap)
{
    smtp_reply r;

    r.code = code;
    snprintf(r.status, sizeof(r.status), "%s", status);
    r.stage = steps[c->state].stage;
    vsnprintf(r.text, sizeof(r.text), fmt, ap);
    fail_with(c, &r);
}

static void fail(smtp_client_t *c, int code, const char *status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(c, code, status, fmt, ap);
    va_end(ap);
}

/* fail_tls - a failure of STARTTLS or the handshake (the engine may then
 * retry without TLS when the policy allows). */
static void fail_tls(smtp_client_t *c, const char *status, const char *fmt, ...)
{
    va_list ap;

    c->tls_failed = true;
    va_start(ap, fmt);
    vfail(c, 0, status, fmt, ap);
    va_end(ap);
}

static void fail_lost(smtp_client_t *c)
{
    fail(c, 0, "4.4.2", "lost connection with %s while %s", c->opts.peer, steps[c->state].doing);
}

static void fail_unexpected(smtp_client_t *c, const smtp_reply *r)
{
    fail(c, 0, "4.5.0", "conversation with %s failed: unexpected reply while %s: %s",
         c->opts.peer, steps[c->state].doing, r->text);
}

/* closed - the end of a QUIT: the peer's reply, or its close. */
static void closed(smtp_client_t *c)
{
    c->state = ST_CLOSED;
    c->deadline = INT64_MAX;
}

/* ----------------------------------------------------------------- commands */

/* cmd_begin, cmd_end - around the writing of one command into the
 * output: cmd_end logs it (debug) and ends the line. */
static size_t cmd_begin(const smtp_client_t *c)
{
    return c->out.len;
}

static void cmd_end(smtp_client_t *c, size_t start)
{
    if (log_verbose()) {
        char shown[LOG_TEXT_MAX];

        log_debug("smtp_client: %s: > %s", c->opts.peer,
                  log_printable(shown, sizeof(shown), c->out.data + start, c->out.len - start));
    }
    buf_append_str(&c->out, "\r\n");
}

static void queue_vline(smtp_client_t *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void queue_line(smtp_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void send_line(smtp_client_t *c, client_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void queue_vline(smtp_client_t *c, const char *fmt, va_list ap)
{
    size_t start = cmd_begin(c);

    buf_vprintf(&c->out, fmt, ap);
    cmd_end(c, start);
}

/* queue_line - one command line into the output (PIPELINING: one of a
 * group whose replies come later). */
static void queue_line(smtp_client_t *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    queue_vline(c, fmt, ap);
    va_end(ap);
}

/* send_line - one command line into the output, then wait for its reply
 * in st. */
static void send_line(smtp_client_t *c, client_state st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    queue_vline(c, fmt, ap);
    va_end(ap);
    enter(c, st);
}

/* send_base64 - queue base64(p[0..n)) as one line (an AUTH response: not
 * logged) and wait in st. */
static void send_base64(smtp_client_t *c, client_state st, const char *prefix,
                        const void *p, size_t n)
{
    buf_append_str(&c->out, prefix);
    base64_encode(&c->out, p, n);
    buf_append_str(&c->out, "\r\n");
    enter(c, st);
}

/* append_xtext - s as RFC 3461 xtext: printable ASCII but '+' and '='
 * as is, every other byte as "+XX". */
static void append_xtext(buf_t *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= '!' && *p <= '~' && *p != '+' && *p != '=')
            buf_append_char(out, (char)*p);
        else
            buf_printf(out, "+%02X", *p);
    }
}

static void send_ehlo(smtp_client_t *c)
{
    memset(&c->peer, 0, sizeof(c->peer));
    send_line(c, ST_EHLO, "%s %s", c->opts.lmtp ? "LHLO" : "EHLO", c->opts.helo_name);
}

/* ------------------------------------------------------------ EHLO features */

/* word_is - does the word w[0..n) equal name, ignoring case? */
static bool word_is(const char *w, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(w, name, n) == 0;
}

/* ehlo_auth - the mechanisms after "AUTH" or "AUTH=". */
static void ehlo_auth(smtp_client_t *c, const char *p, const char *end)
{
    c->peer.auth = true;
    while (p < end) {
        size_t n;

        while (p < end && (*p == ' ' || *p == '='))
            p++;
        for (n = 0; p + n < end && p[n] != ' '; n++)
            ;
        if (word_is(p, n, "PLAIN"))
            c->peer.auth_plain = true;
        else if (word_is(p, n, "LOGIN"))
            c->peer.auth_login = true;
        p += n;
    }
}

/* ehlo_size - "SIZE" with an optional limit; a limit that is not a
 * number or does not fit counts as none. */
static void ehlo_size(smtp_client_t *c, const char *p, const char *end)
{
    uint64_t limit = 0;

    c->peer.size = true;
    while (p < end && *p == ' ')
        p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (limit > (UINT64_MAX - 9) / 10) {
            limit = 0;
            break;
        }
        limit = limit * 10 + (uint64_t)(*p - '0');
    }
    c->peer.size_limit = p == end ? limit : 0;
}

/* ehlo_keyword - one line of an EHLO reply after the first: "KEYWORD
 * params" (or AUTH's old "AUTH=params"). */
static void ehlo_keyword(smtp_client_t *c, const char *line, size_t len)
{
    const char *end = line + len;
    size_t n;

    for (n = 0; n < len && line[n] != ' ' && line[n] != '='; n++)
        ;
    if (word_is(line, n, "PIPELINING"))
        c->peer.pipelining = true;
    else if (word_is(line, n, "8BITMIME"))
        c->peer.eightbitmime = true;
    else if (word_is(line, n, "SMTPUTF8"))
        c->peer.smtputf8 = true;
    else if (word_is(line, n, "DSN"))
        c->peer.dsn = true;
    else if (word_is(line, n, "STARTTLS"))
        c->peer.starttls = true;
    else if (word_is(line, n, "ENHANCEDSTATUSCODES"))
        c->peer.enhanced = true;
    else if (word_is(line, n, "AUTH"))
        ehlo_auth(c, line + n, end);
    else if (word_is(line, n, "SIZE"))
        ehlo_size(c, line + n, end);
}

/* -------------------------------------------------------- session handlers */

static bool positive(const smtp_reply *r)
{
    return r->code / 100 == 2;
}

static void start_auth(smtp_client_t *c);

/* after_hello - EHLO or HELO done: STARTTLS, AUTH, or ready. */
static void after_hello(smtp_client_t *c)
{
    bool required = c->opts.tls_level == SMTP_TLS_ENCRYPT || c->opts.tls_level == SMTP_TLS_VERIFY;
    bool possible = c->opts.tls_ctx != NULL && c->peer.starttls;

    if (c->tls == NULL && required && !possible) {
        fail(c, 0, "4.7.4", c->opts.tls_ctx == NULL
             ? "TLS is required, but this client has no TLS context for host %s"
             : "TLS is required, but was not offered by host %s", c->opts.peer);
        return;
    }
    if (c->tls == NULL && c->opts.tls_level != SMTP_TLS_NONE && possible) {
        send_line(c, ST_STARTTLS, "STARTTLS");
        return;
    }
    start_auth(c);
}

static void on_greeting(smtp_client_t *c, const smtp_reply *r)
{
    if (!positive(r)) {
        fail_with(c, r);
        return;
    }
    send_ehlo(c);
}

static void on_ehlo(smtp_client_t *c, const smtp_reply *r)
{
    if (positive(r)) {
        after_hello(c);
        return;
    }
    memset(&c->peer, 0, sizeof(c->peer));
    if (r->code / 100 == 5 && !c->opts.lmtp) {
        send_line(c, ST_HELO, "HELO %s", c->opts.helo_name);
        return;
    }
    fail_with(c, r);
}

static void on_helo(smtp_client_t *c, const smtp_reply *r)
{
    if (!positive(r)) {
        fail_with(c, r);
        return;
    }
    after_hello(c);
}

static void on_starttls(smtp_client_t *c, const smtp_reply *r)
{
    if (!positive(r)) {
        c->tls_failed = true;
        fail_with(c, r);
        return;
    }
    /* anything after the 220 came in clear and could be an injection */
    if (c->in_pos < c->in.len) {
        fail_tls(c, "4.7.5", "conversation with %s failed: unexpected data after the "
                 "reply to STARTTLS", c->opts.peer);
        return;
    }
    c->tls = tls_conn_new(c->opts.tls_ctx, c->fd, c->opts.tls_server_name);
    c->tls_handshake_wait = TLS_WANT_WRITE;
    enter(c, ST_HANDSHAKE);
}

/* drive_handshake - one step of the TLS handshake; true when it moved. */
static bool drive_handshake(smtp_client_t *c)
{
    tls_status st = tls_handshake(c->tls);

    if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) {
        c->tls_handshake_wait = st;
        return false;
    }
    if (st != TLS_OK) {
        fail_tls(c, "4.7.5", "TLS handshake with %s failed: %s", c->opts.peer,
                 tls_error(c->tls));
        return true;
    }
    if (c->opts.tls_level == SMTP_TLS_VERIFY && !tls_verified(c->tls)) {
        fail_tls(c, "4.7.5", "Server certificate not verified: host %s", c->opts.peer);
        return true;
    }
    log_debug("smtp_client: %s: TLS %s %s", c->opts.peer, tls_protocol(c->tls),
              tls_cipher(c->tls));
    send_ehlo(c);
    return true;
}

/* start_auth - AUTH when credentials are given, else ready. */
static void start_auth(smtp_client_t *c)
{
    const char *user = c->opts.auth_user, *pass = c->opts.auth_pass;

    if (user == NULL) {
        enter(c, ST_READY);
        return;
    }
    if (c->opts.auth_needs_tls && c->tls == NULL) {
        fail(c, 0, "4.7.0", "refusing to send credentials to %s over a connection "
             "without TLS", c->opts.peer);
        return;
    }
    if (c->peer.auth_plain) {
        size_t ulen = strlen(user), plen = strlen(pass);
        buf_t creds = BUF_INIT;

        /* authzid (empty) NUL authcid NUL passwd */
        buf_append_char(&creds, '\0');
        buf_append(&creds, user, ulen);
        buf_append_char(&creds, '\0');
        buf_append(&creds, pass, plen);
        send_base64(c, ST_AUTH, "AUTH PLAIN ", creds.data, creds.len);
        explicit_bzero(creds.data, creds.len);
        buf_free(&creds);
    } else if (c->peer.auth_login) {
        send_line(c, ST_AUTH, "AUTH LOGIN");
    } else {
        fail(c, 0, "4.7.0", c->peer.auth
             ? "SASL authentication to %s is not possible: it offers neither PLAIN nor LOGIN"
             : "SASL authentication to %s is not possible: it does not offer AUTH",
             c->opts.peer);
    }
}

/* on_auth - every reply of the AUTH exchange: 235 ends it, 334 asks for
 * the next LOGIN step. */
static void on_auth(smtp_client_t *c, const smtp_reply *r)
{
    const char *user = c->opts.auth_user, *pass = c->opts.auth_pass;

    if (positive(r)) {
        enter(c, ST_READY);
        return;
    }
    /* PLAIN went with its response; a 334 to AUTH is LOGIN asking */
    if (r->code == 334 && c->state == ST_AUTH && !c->peer.auth_plain) {
        send_base64(c, ST_AUTH_USER, "", user, strlen(user));
        return;
    }
    if (r->code == 334 && c->state == ST_AUTH_USER) {
        send_base64(c, ST_AUTH_PASS, "", pass, strlen(pass));
        return;
    }
    fail_with(c, r);
}

/* on_ready - a reply nobody asked for (often "421 idle too long"). */
static void on_ready(smtp_client_t *c, const smtp_reply *r)
{
    fail_with(c, r);
}

static void on_quit(smtp_client_t *c, const smtp_reply *r)
{
    (void)r;
    closed(c);
}

/* ------------------------------------------------------------- transactions */

static size_t txn_pieces(const smtp_client_t *c)
{
    /* extra header, the headers, the kept ranges of the body */
    return c->txn.n_headers + 1 + c->n_pieces;
}

/* txn_piece - piece i of the content: false past the last. */
static bool txn_piece(const smtp_client_t *c, size_t i, const char **p, size_t *len)
{
    const smtp_txn *t = &c->txn;

    if (i >= txn_pieces(c))
        return false;
    if (i == 0) {
        *p = t->extra_header != NULL ? t->extra_header : "";
        *len = strlen(*p);
    } else if (i <= t->n_headers) {
        *p = (const char *)t->headers[i - 1].data;
        *len = t->headers[i - 1].len;
    } else {
        const struct iovec *k = &c->pieces[i - 1 - t->n_headers];
        *p = k->iov_base;
        *len = k->iov_len;
    }
    return true;
}

/* txn_size - the bytes the content has before dot-stuffing (SIZE=). */
static size_t txn_size(const smtp_client_t *c)
{
    size_t total = 0, len;
    const char *p;

    for (size_t i = 0; txn_piece(c, i, &p, &len); i++)
        total += len;
    return total;
}

static bool txn_has_8bit(const smtp_client_t *c)
{
    size_t len;
    const char *p;

    for (size_t i = 0; txn_piece(c, i, &p, &len); i++)
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)p[j] & 0x80)
                return true;
    return false;
}

/* has_ctl - does an address carry a byte that would break the command? */
static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool txn_bad_address(const smtp_txn *t)
{
    if (has_ctl(t->sender))
        return true;
    for (size_t i = 0; i < t->n_rcpt; i++)
        if (has_ctl(t->rcpt[i]))
            return true;
    return false;
}

/* txn_end - the transaction is over; io reports DONE once.  Only those
 * that went over the wire count in smtp_client_transactions. */
static void txn_end(smtp_client_t *c, bool over_wire)
{
    if (over_wire)
        c->transactions++;
    c->in_txn = false;
    c->done_unreported = true;
    enter(c, ST_READY);
}

/* decide - recipient i's reply is r (final). */
static void decide(smtp_client_t *c, size_t i, const smtp_reply *r)
{
    c->rreply[i] = *r;
    c->rstate[i] = RCPT_DECIDED;
}

/* decide_all - every recipient in state from gets r. */
static void decide_all(smtp_client_t *c, rcpt_state from, const smtp_reply *r)
{
    for (size_t i = 0; i < c->txn.n_rcpt; i++)
        if (c->rstate[i] == from)
            decide(c, i, r);
}

/* precheck - a reason the peer cannot take this message, found without
 * asking it; false when there is none. */
static bool precheck(smtp_client_t *c, smtp_reply *r)
{
    const smtp_txn *t = &c->txn;
    size_t size;

    if (txn_bad_address(t)) {
        reply_set(r, LOCAL_FAIL_CODE, "5.1.3", "MAIL FROM",
                  "envelope address with control characters, not sent to %s", c->opts.peer);
        return true;
    }
    if (t->smtputf8 && !c->peer.smtputf8) {
        reply_set(r, LOCAL_FAIL_CODE, "5.6.7", "MAIL FROM",
                  "SMTPUTF8 is required, but was not offered by host %s", c->opts.peer);
        return true;
    }
    if (c->peer.size_limit > 0 && (size = txn_size(c)) > c->peer.size_limit) {
        reply_set(r, LOCAL_FAIL_CODE, "5.3.4",
                  "MAIL FROM", "message size %zu exceeds size limit %" PRIu64 " of server %s",
                  size, c->peer.size_limit, c->opts.peer);
        return true;
    }
    if (!c->peer.eightbitmime && txn_has_8bit(c)) {
        reply_set(r, LOCAL_FAIL_CODE, "5.6.3", "MAIL FROM",
                  "message has 8-bit content but the server %s does not support 8BITMIME",
                  c->opts.peer);
        return true;
    }
    return false;
}

/* queue_mail - MAIL FROM with the parameters the peer takes. */
static void queue_mail(smtp_client_t *c)
{
    const smtp_txn *t = &c->txn;
    size_t start = cmd_begin(c);

    buf_printf(&c->out, "MAIL FROM:<%s>", t->sender);
    if (c->peer.size)
        buf_printf(&c->out, " SIZE=%zu", txn_size(c));
    if (t->body_type == CORREIO__BODY_TYPE__BODY_8BITMIME && c->peer.eightbitmime)
        buf_append_str(&c->out, " BODY=8BITMIME");
    if (t->smtputf8 && c->peer.smtputf8)
        buf_append_str(&c->out, " SMTPUTF8");
    if (c->peer.dsn && t->ret == CORREIO__DSN_RET__RET_FULL)
        buf_append_str(&c->out, " RET=FULL");
    else if (c->peer.dsn && t->ret == CORREIO__DSN_RET__RET_HDRS)
        buf_append_str(&c->out, " RET=HDRS");
    if (c->peer.dsn && t->envid != NULL && *t->envid != '\0') {
        buf_append_str(&c->out, " ENVID=");
        append_xtext(&c->out, t->envid);
    }
    cmd_end(c, start);
}

/* append_notify - " NOTIFY=..." for Notify bits (0: nothing). */
static void append_notify(buf_t *out, uint32_t bits)
{
    static const struct {
        uint32_t    bit;
        const char *name;
    } words[] = {
        {CORREIO__NOTIFY__NOTIFY_SUCCESS, "SUCCESS"},
        {CORREIO__NOTIFY__NOTIFY_FAILURE, "FAILURE"},
        {CORREIO__NOTIFY__NOTIFY_DELAY, "DELAY"},
    };
    const char *sep = " NOTIFY=";

    if (bits & CORREIO__NOTIFY__NOTIFY_NEVER) {
        buf_append_str(out, " NOTIFY=NEVER");
        return;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (bits & words[i].bit) {
            buf_printf(out, "%s%s", sep, words[i].name);
            sep = ",";
        }
    }
}

/* append_orcpt - " ORCPT=type;xtext" from "type;address" (a value
 * without a type is taken as an rfc822 address). */
static void append_orcpt(buf_t *out, const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');

    if (*orcpt == '\0')
        return;
    buf_append_str(out, " ORCPT=");
    if (semi == NULL) {
        buf_append_str(out, "rfc822;");
        append_xtext(out, orcpt);
        return;
    }
    buf_append(out, orcpt, (size_t)(semi - orcpt) + 1);
    append_xtext(out, semi + 1);
}

/* queue_rcpt - RCPT TO for recipient i, with NOTIFY and ORCPT for a DSN peer. */
static void queue_rcpt(smtp_client_t *c, size_t i)
{
    const smtp_txn *t = &c->txn;
    size_t start = cmd_begin(c);

    buf_printf(&c->out, "RCPT TO:<%s>", t->rcpt[i]);
    if (c->peer.dsn && t->notify != NULL)
        append_notify(&c->out, t->notify[i]);
    if (c->peer.dsn && t->orcpt != NULL && t->orcpt[i] != NULL)
        append_orcpt(&c->out, t->orcpt[i]);
    cmd_end(c, start);
}

/* send_transaction - MAIL (and, pipelined, every RCPT and DATA). */
static void send_transaction(smtp_client_t *c)
{
    queue_mail(c);
    if (c->peer.pipelining) {
        for (size_t i = 0; i < c->txn.n_rcpt; i++)
            queue_rcpt(c, i);
        queue_line(c, "DATA");
    }
    enter(c, ST_MAIL);
}

static void on_rset(smtp_client_t *c, const smtp_reply *r)
{
    if (!positive(r)) {
        fail(c, 0, "4.5.0", "conversation with %s failed: RSET refused: %s", c->opts.peer, r->text);
        return;
    }
    c->need_rset = false;
    send_transaction(c);
}

/* on_mail - a refused MAIL is every recipient's reply. */
static void on_mail(smtp_client_t *c, const smtp_reply *r)
{
    c->mail_ok = positive(r);
    if (!c->mail_ok) {
        decide_all(c, RCPT_UNDECIDED, r);
        c->need_rset = true;
    }
    if (c->peer.pipelining) {
        enter(c, ST_RCPT);      /* the RCPT replies are on their way */
        return;
    }
    if (!c->mail_ok) {
        txn_end(c, true);
        return;
    }
    queue_rcpt(c, 0);
    enter(c, ST_RCPT);
}

/* on_rcpt - the reply of the next recipient; after a refused MAIL the
 * recipients keep MAIL's reply. */
static void on_rcpt(smtp_client_t *c, const smtp_reply *r)
{
    size_t i = c->rcpt_next++;

    if (c->mail_ok && positive(r)) {
        c->rreply[i] = *r;
        c->rstate[i] = RCPT_ACCEPTED;
        c->accepted++;
    } else if (c->mail_ok) {
        decide(c, i, r);
    }
    if (c->rcpt_next < c->txn.n_rcpt) {
        if (!c->peer.pipelining)
            queue_rcpt(c, c->rcpt_next);
        enter(c, ST_RCPT);
        return;
    }
    if (c->peer.pipelining) {
        enter(c, ST_DATA);
        return;
    }
    if (c->accepted == 0) {
        c->need_rset = true;
        txn_end(c, true);
        return;
    }
    send_line(c, ST_DATA, "DATA");
}

static void start_content(smtp_client_t *c)
{
    memset(&c->content, 0, sizeof(c->content));
    c->content.prev = '\n';
    enter(c, ST_CONTENT);
}

/* on_data - 354: the content (or, pipelined with no recipient taken, just
 * the dot, RFC 2920 section 3.1); a refusal is every accepted
 * recipient's reply. */
static void on_data(smtp_client_t *c, const smtp_reply *r)
{
    if (r->code / 100 == 3 && c->accepted == 0) {
        send_line(c, ST_EMPTY_DOT, ".");
        return;
    }
    if (r->code / 100 == 3) {
        start_content(c);
        return;
    }
    if (positive(r)) {
        fail_unexpected(c, r);
        return;
    }
    decide_all(c, RCPT_ACCEPTED, r);
    c->need_rset = true;
    txn_end(c, true);
}

/* on_dot - SMTP: the one final reply for every accepted recipient; LMTP:
 * the reply of the next accepted recipient. */
static void on_dot(smtp_client_t *c, const smtp_reply *r)
{
    if (!c->opts.lmtp) {
        decide_all(c, RCPT_ACCEPTED, r);
        txn_end(c, true);
        return;
    }
    while (c->rcpt_next < c->txn.n_rcpt && c->rstate[c->rcpt_next] != RCPT_ACCEPTED)
        c->rcpt_next++;
    if (c->rcpt_next == c->txn.n_rcpt)
        log_panic("smtp_client on_dot: an LMTP reply with no recipient waiting");
    decide(c, c->rcpt_next++, r);
    while (c->rcpt_next < c->txn.n_rcpt && c->rstate[c->rcpt_next] != RCPT_ACCEPTED)
        c->rcpt_next++;
    if (c->rcpt_next < c->txn.n_rcpt) {
        enter(c, ST_DOT);
        return;
    }
    txn_end(c, true);
}

/* on_empty_dot - the reply to a content-less dot decides nothing. */
static void on_empty_dot(smtp_client_t *c, const smtp_reply *r)
{
    (void)r;
    c->need_rset = true;
    txn_end(c, true);
}

/* ------------------------------------------------------------------ content */

/* content_step - from piece p[0..len) at the cursor, produce one run of
 * the stream: a line end (bare LF made CRLF), or bytes up to the next LF
 * or to the chunk's end; a line starting with '.' gets another. */
static void content_step(smtp_client_t *c, const char *p, size_t len)
{
    content_cursor *cc = &c->content;
    const char *s = p + cc->off;
    const char *nl;
    size_t run, room;

    if (cc->prev == '\n' && *s == '.')
        buf_append_char(&c->out, '.');
    if (*s == '\n') {
        buf_append_str(&c->out, cc->prev == '\r' ? "\n" : "\r\n");
        cc->prev = '\n';
        cc->off++;
        return;
    }
    nl = memchr(s, '\n', len - cc->off);
    run = nl != NULL ? (size_t)(nl - s) : len - cc->off;
    room = c->out.len < CONTENT_CHUNK ? CONTENT_CHUNK - c->out.len : 1;
    if (run > room)
        run = room;
    buf_append(&c->out, s, run);
    cc->prev = s[run - 1];
    cc->off += run;
}

/* fill_content - the next chunk of the content into the empty output;
 * after the last piece, CRLF if the content did not end with one, and
 * the dot. */
static void fill_content(smtp_client_t *c)
{
    content_cursor *cc = &c->content;
    const char *p;
    size_t len;

    while (c->out.len < CONTENT_CHUNK && txn_piece(c, cc->piece, &p, &len)) {
        if (cc->off < len) {
            content_step(c, p, len);
        } else {
            cc->piece++;
            cc->off = 0;
        }
    }
    if (c->out.len < CONTENT_CHUNK && !cc->finished) {
        if (cc->prev != '\n')
            buf_append_str(&c->out, "\r\n");
        buf_append_str(&c->out, ".\r\n");
        cc->finished = true;
    }
}

/* ------------------------------------------------------------------ writing */

/* content_written - the dot is out: wait for the final reply (LMTP: one
 * per accepted recipient, from the first). */
static void content_written(smtp_client_t *c)
{
    c->rcpt_next = 0;
    enter(c, ST_DOT);
}

/* flush_output - write what is queued (producing content as it goes)
 * until the socket would block; true when something moved. */
static bool flush_output(smtp_client_t *c)
{
    bool moved = false;
    io_result res;
    size_t put;

    for (;;) {
        if (c->out_pos == c->out.len) {
            buf_reset(&c->out);
            c->out_pos = 0;
            if (c->state != ST_CONTENT)
                return moved;
            if (c->content.finished) {
                content_written(c);
                return true;
            }
            fill_content(c);
        }
        res = io_write(c, c->out.data + c->out_pos, c->out.len - c->out_pos, &put, &c->tls_write_wait);
        if (res == IO_AGAIN)
            return moved;
        if (res != IO_DONE) {
            if (c->state == ST_QUIT)
                closed(c);
            else
                fail_lost(c);
            return true;
        }
        c->out_pos += put;
        moved = true;
        if (c->state == ST_CONTENT)
            enter(c, ST_CONTENT);       /* progress re-arms the stall timer */
    }
}

/* ------------------------------------------------------------------ reading */

/* reply_append - bytes of a reply line into the joined text, printable
 * and cut at SMTP_CLIENT_REPLY_MAX. */
static void reply_append(reply_reader *rd, const char *s, size_t n)
{
    char *text = rd->reply.text;
    size_t room = sizeof(rd->reply.text) - rd->text_len;

    rd->text_len += printable_copy(text + rd->text_len, room, s, n);
}

/* enhanced_status - the length of an RFC 2034 status "C.SSS.DDD" of
 * class code / 100 at the start of s, or 0. */
static size_t enhanced_status(const char *s, int code)
{
    return s[0] == '0' + code / 100 ? status_code_len(s) : 0;
}

/* reply_status - the status from the reply ("250 2.1.0 ok") when it has
 * one, else derived from the code ("2.0.0"). */
static void reply_status(smtp_reply *r)
{
    size_t len = strlen(r->text) > 4 ? enhanced_status(r->text + 4, r->code) : 0;

    if (len > 0)
        snprintf(r->status, sizeof(r->status), "%.*s", (int)len, r->text + 4);
    else
        snprintf(r->status, sizeof(r->status), "%d.0.0", r->code / 100);
}

/* reply_line_ok - "DDD", "DDD text" or "DDD-text", D a digit, the first
 * 2 to 5. */
static bool reply_line_ok(const char *line, size_t n)
{
    return n >= 3 && line[0] >= '2' && line[0] <= '5'
        && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9'
        && (n == 3 || line[3] == ' ' || line[3] == '-');
}

static void fail_malformed(smtp_client_t *c, const char *why, const char *line, size_t n)
{
    char shown[LOG_TEXT_MAX / 2];

    printable_copy(shown, sizeof(shown), line, n);
    fail(c, 0, "4.4.2", "conversation with %s failed: %s while %s: \"%s\"", c->opts.peer, why,
         steps[c->state].doing, shown);
}

/* dispatch - a complete reply goes to the handler of the state.  421
 * (the peer is closing) ends the connection in any state; a 3xx only
 * answers DATA and the AUTH exchange. */
static void dispatch(smtp_client_t *c, const smtp_reply *r)
{
    bool intermediate_ok = c->state == ST_DATA || c->state == ST_AUTH || c->state == ST_AUTH_USER;

    if (log_verbose())
        log_debug("smtp_client: %s: < %s", c->opts.peer, r->text);
    if (c->state == ST_QUIT) {
        on_quit(c, r);
    } else if (r->code == SMTP_CODE_CLOSING) {
        fail_with(c, r);
    } else if (r->code / 100 == 3 && !intermediate_ok) {
        fail_unexpected(c, r);
    } else {
        steps[c->state].handler(c, r);
    }
}

/* reply_line - one line without its line end: add it to the reply; the
 * last line dispatches the reply. */
static void reply_line(smtp_client_t *c, const char *line, size_t n)
{
    reply_reader *rd = &c->rd;
    smtp_reply r;

    if (!reply_line_ok(line, n)) {
        fail_malformed(c, "malformed reply", line, n);
        return;
    }
    if (rd->lines == 0) {
        rd->reply.code = atoi(line);    /* three digits, checked */
        reply_append(rd, line, 3);
        if (n > 4) {
            reply_append(rd, " ", 1);
            reply_append(rd, line + 4, n - 4);
        }
    } else if (strncmp(line, rd->reply.text, 3) != 0) {
        fail_malformed(c, "reply code changed within a reply", line, n);
        return;
    } else if (n > 4) {
        reply_append(rd, " ", 1);
        reply_append(rd, line + 4, n - 4);
    }
    if (++rd->lines > REPLY_LINES_MAX) {
        fail_malformed(c, "reply with too many lines", line, n);
        return;
    }
    if (c->state == ST_EHLO && rd->lines > 1 && n > 4)
        ehlo_keyword(c, line + 4, n - 4);
    if (n > 3 && line[3] == '-')
        return;
    r = rd->reply;
    r.stage = steps[c->state].stage;
    reply_status(&r);
    memset(rd, 0, sizeof(*rd));
    dispatch(c, &r);
}

/* expecting - is the client waiting for a reply now? */
static bool expecting(const smtp_client_t *c)
{
    return !terminal(c) && !c->done_unreported && reads_replies(c->state);
}

/* parse_replies - the complete lines in the input, while a reply is
 * expected; a line longer than SMTP_CLIENT_LINE_MAX fails. */
static void parse_replies(smtp_client_t *c)
{
    while (expecting(c) && c->in_pos < c->in.len) {
        const char *line = c->in.data + c->in_pos;
        size_t left = c->in.len - c->in_pos;
        const char *nl = memchr(line, '\n', left);
        size_t len = nl != NULL ? (size_t)(nl - line) + 1 : left;

        if (len > SMTP_CLIENT_LINE_MAX || (nl == NULL && len == SMTP_CLIENT_LINE_MAX)) {
            fail_malformed(c, "reply line too long", line, len);
            break;
        }
        if (nl == NULL)
            break;
        c->in_pos += len;
        len--;                                  /* the LF */
        if (len > 0 && line[len - 1] == '\r')
            len--;
        reply_line(c, line, len);
    }
    if (c->in_pos > 0) {
        buf_consume(&c->in, c->in_pos);
        c->in_pos = 0;
    }
}

/* read_replies - read and handle replies while one is expected, until
 * the socket would block; true when something moved. */
static bool read_replies(smtp_client_t *c)
{
    bool moved = false;
    io_result res;
    size_t got;

    parse_replies(c);
    while (expecting(c)) {
        buf_reserve(&c->in, READ_CHUNK);
        res = io_read(c, c->in.data + c->in.len, READ_CHUNK, &got, &c->tls_read_wait);
        if (res == IO_AGAIN)
            return moved;
        moved = true;
        if (res != IO_DONE) {
            if (c->state == ST_QUIT)
                closed(c);
            else
                fail_lost(c);
            return true;
        }
        c->in.len += got;
        c->in.data[c->in.len] = '\0';
        parse_replies(c);
    }
    return moved;
}

/* ---------------------------------------------------------------- the loop */

/* run - move the conversation until the socket would block, a
 * transaction ends or the connection is over; then check the clock. */
static void run(smtp_client_t *c)
{
    bool moved;

    do {
        if (c->state == ST_HANDSHAKE) {
            moved = drive_handshake(c);
        } else {
            moved = flush_output(c);
            if (expecting(c))
                moved |= read_replies(c);
        }
    } while (moved && !terminal(c) && !c->done_unreported);
    if (!terminal(c) && !c->done_unreported && time_mono_ms() >= c->deadline)
        fail(c, 0, "4.4.2", "conversation with %s timed out while %s", c->opts.peer,
             steps[c->state].doing);
}

/* ------------------------------------------------------------ the interface */

static char *copy_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

smtp_client_t *smtp_client_new(int fd, const smtp_client_opts *opts)
{
    smtp_client_t *c = xcalloc(1, sizeof(*c));

    c->fd = fd;
    c->opts = *opts;
    c->opts.helo_name = xstrdup(opts->helo_name != NULL ? opts->helo_name : "localhost");
    c->opts.peer = xstrdup(opts->peer != NULL ? opts->peer : "peer");
    c->opts.tls_server_name = copy_or_null(opts->tls_server_name);
    c->opts.auth_user = copy_or_null(opts->auth_user);
    c->opts.auth_pass = xstrdup(opts->auth_pass != NULL ? opts->auth_pass : "");
    c->tls_read_wait = TLS_WANT_READ;
    c->tls_write_wait = TLS_WANT_WRITE;
    buf_init(&c->in);
    buf_init(&c->out);
    enter(c, ST_GREETING);
    return c;
}

/* free_secret - wipe and free a string that held a credential. */
static void free_secret(const char **s)
{
    char *p = (char *)*s;

    if (p != NULL)
        explicit_bzero(p, strlen(p));
    xfree(&p);
    *s = NULL;
}

void smtp_client_free(smtp_client_t **cp)
{
    smtp_client_t *c = cp != NULL ? *cp : NULL;

    if (c == NULL)
        return;
    tls_conn_free(&c->tls);
    if (c->out.data != NULL)
        explicit_bzero(c->out.data, c->out.cap);        /* AUTH responses */
    buf_free(&c->out);
    buf_free(&c->in);
    free_secret(&c->opts.auth_pass);
    free_secret(&c->opts.auth_user);
    xfree((char **)&c->opts.helo_name);
    xfree((char **)&c->opts.peer);
    xfree((char **)&c->opts.tls_server_name);
    xfree(&c->rstate);
    xfree(&c->rreply);
    xfree(&c->pieces);
    subject_tag_plan_free(&c->tag);
    xfree(cp);
}

smtp_client_status smtp_client_io(smtp_client_t *c, bool readable, bool writable)
{
    (void)readable;     /* hints only: every call tries both ways */
    (void)writable;
    if (!c->done_unreported && !terminal(c))
        run(c);
    if (c->done_unreported) {
        c->done_unreported = false;
        return SMTP_CLIENT_DONE;
    }
    switch (c->state) {
    case ST_FAILED:
        return SMTP_CLIENT_FAILED;
    case ST_CLOSED:
        return SMTP_CLIENT_CLOSED;
    case ST_READY:
        return SMTP_CLIENT_READY;
    default:
        return SMTP_CLIENT_RUNNING;
    }
}

/* wait_bits - the socket event a blocked TLS call (or plain I/O) needs. */
static int wait_bits(tls_status wait)
{
    return wait == TLS_WANT_WRITE ? SMTP_WANT_WRITE : SMTP_WANT_READ;
}

int smtp_client_wants(const smtp_client_t *c)
{
    int want = 0;

    if (terminal(c))
        return 0;
    if (c->done_unreported)
        return SMTP_WANT_WRITE;         /* writable at once: io reports DONE */
    if (c->state == ST_HANDSHAKE)
        return wait_bits(c->tls_handshake_wait);
    if (c->out_pos < c->out.len || c->state == ST_CONTENT)
        want |= c->tls != NULL ? wait_bits(c->tls_write_wait) : SMTP_WANT_WRITE;
    if (reads_replies(c->state))
        want |= c->tls != NULL ? wait_bits(c->tls_read_wait) : SMTP_WANT_READ;
    return want;
}

int64_t smtp_client_deadline_ms(const smtp_client_t *c)
{
    if (c->done_unreported)
        return 0;                       /* nothing to wait for */
    if (terminal(c))
        return INT64_MAX;
    return c->deadline;
}

/* txn_prepare - per-recipient room for txn, every recipient undecided. */
static void txn_prepare(smtp_client_t *c, const smtp_txn *txn)
{
    c->txn = *txn;
    header_range *keep = NULL;
    size_t len = txn->body != NULL ? txn->body_len : 0;
    size_t n_keep = header_skip_ranges(txn->body, len, txn->drop_headers,
                                       txn->n_drop_headers, &keep);
    xfree(&c->pieces);
    subject_tag_plan_free(&c->tag);
    if (txn->subject_tag != NULL && txn->subject_tag[0] != '\0')
        subject_tag_plan_make(txn->body, len, txn->subject_tag, &c->tag);
    c->n_pieces = subject_tag_pieces(txn->body, keep, n_keep, &c->tag, &c->pieces);
    xfree(&keep);
    if (txn->n_rcpt > c->rcpt_cap) {
        c->rstate = xrealloc(c->rstate, txn->n_rcpt * sizeof(*c->rstate));
        c->rreply = xrealloc(c->rreply, txn->n_rcpt * sizeof(*c->rreply));
        c->rcpt_cap = txn->n_rcpt;
    }
    for (size_t i = 0; i < txn->n_rcpt; i++)
        c->rstate[i] = RCPT_UNDECIDED;
    if (txn->n_rcpt > 0)
        memset(c->rreply, 0, txn->n_rcpt * sizeof(*c->rreply));
    c->rcpt_next = 0;
    c->accepted = 0;
    c->mail_ok = false;
    c->in_txn = true;
}

void smtp_client_start(smtp_client_t *c, const smtp_txn *txn)
{
    smtp_reply r;

    if (c->state != ST_READY || c->done_unreported)
        log_panic("smtp_client_start: %s: the connection is not ready", c->opts.peer);
    txn_prepare(c, txn);
    if (precheck(c, &r)) {
        decide_all(c, RCPT_UNDECIDED, &r);
        txn_end(c, false);
    } else if (txn->n_rcpt == 0) {
        txn_end(c, false);
    } else if (c->need_rset) {
        send_line(c, ST_RSET, "RSET");
    } else {
        send_transaction(c);
    }
}

const smtp_reply *smtp_client_rcpt_reply(const smtp_client_t *c, size_t i)
{
    if (i >= c->txn.n_rcpt)
        log_panic("smtp_client_rcpt_reply: recipient %zu of %zu", i, c->txn.n_rcpt);
    return &c->rreply[i];
}

bool smtp_client_peer_dsn(const smtp_client_t *c)
{
    return c->peer.dsn;
}

const smtp_reply *smtp_client_failure(const smtp_client_t *c, bool *tls_failed)
{
    if (tls_failed != NULL)
        *tls_failed = c->tls_failed;
    return &c->failure;
}

void smtp_client_quit(smtp_client_t *c)
{
    if (c->state != ST_READY || c->done_unreported)
        log_panic("smtp_client_quit: %s: the connection is not ready", c->opts.peer);
    send_line(c, ST_QUIT, "QUIT");
}

const char *smtp_client_tls_protocol(const smtp_client_t *c)
{
    return c->tls != NULL ? tls_protocol(c->tls) : "";
}

const char *smtp_client_tls_cipher(const smtp_client_t *c)
{
    return c->tls != NULL ? tls_cipher(c->tls) : "";
}

unsigned smtp_client_transactions(const smtp_client_t *c)
{
    return c->transactions;
}
