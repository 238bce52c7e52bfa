/* bounce.c - delivery status notifications (see bounce.h): an RFC 3464
 * delivery-status report inside an RFC 6522 multipart/report, with
 * Postfix's human wording in front and the original (or its header) at
 * the end.
 *
 * Everything that came from outside (addresses, remote replies, the
 * ENVID) is made one line of printable ASCII before it is written, and
 * every header-like line we write is folded at 78 columns where there is
 * a space and never passes 998 octets.  The original's bytes are copied
 * as they are; the boundary is chosen so that it occurs nowhere in them
 * nor in the parts we wrote.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "bounce.h"
#include "status_code.h"
#include "buf.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

#define FOLD_AT          78     /* RFC 5322 2.1.1: lines SHOULD be no longer */
#define LINE_LIMIT       998    /* RFC 5322 2.1.1: lines MUST be no longer */
#define VALUE_MAX        4000   /* text from outside quoted at most this long */
#define BOUNDARY_TRIES   32
#define US_PER_HOUR      (3600ull * 1000000ull)
#define US_PER_DAY       (24ull * US_PER_HOUR)

/* random_hex - nbytes random bytes as hex digits into out (2 * nbytes + 1;
 * nbytes at most 16).  Falls back on the clock and a counter if the
 * kernel will not give randomness: uniqueness, not secrecy, is what
 * matters here, and the boundary is checked anyway. */
static void random_hex(char *out, size_t nbytes)
{
    static uint64_t counter;
    uint8_t r[16];
    size_t got = 0;

    if (nbytes > sizeof(r))
        nbytes = sizeof(r);
    while (got < nbytes) {
        ssize_t n = getrandom(r + got, nbytes - got, GRND_NONBLOCK);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            uint64_t x = time_now_us() ^ (++counter * 0x9E3779B97F4A7C15ull);
            for (; got < nbytes; got++, x = x * 6364136223846793005ull + 1442695040888963407ull)
                r[got] = (uint8_t)(x >> 56);
        }
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    out[2 * nbytes] = '\0';
}

/* clean - text from outside as one line of printable ASCII: control
 * characters (CR, LF, NUL, TAB, ...) become spaces, other bytes '?';
 * cut at max bytes, trailing spaces dropped.  malloc'ed; "" for NULL. */
static char *clean(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max) : 0;
    char *out = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : c < 0x20 || c == 0x7f ? ' ' : '?';
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return out;
}

/* put_folded - prefix, then the words of text (single spaces between),
 * folded before a word that would pass FOLD_AT columns; continuation
 * lines start with indent.  A word too long even for a line of its own
 * is cut so that no line passes LINE_LIMIT octets.  Ends with CRLF. */
static void put_folded(buf_t *out, const char *prefix, const char *text, const char *indent)
{
    size_t col = strlen(prefix), ilen = strlen(indent);
    bool words_on_line = false;
    const char *p = text;

    buf_append_str(out, prefix);
    for (;;) {
        const char *w;
        size_t wl;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        for (w = p; *p && *p != ' '; p++)
            ;
        wl = (size_t)(p - w);
        if (words_on_line) {
            if (col + 1 + wl > FOLD_AT) {
                buf_append(out, "\r\n", 2);
                buf_append_str(out, indent);
                col = ilen;
            } else {
                buf_append_char(out, ' ');
                col++;
            }
        }
        while (col + wl > LINE_LIMIT) {
            size_t take = LINE_LIMIT - col;
            buf_append(out, w, take);
            buf_append(out, "\r\n", 2);
            buf_append_str(out, indent);
            col = ilen;
            w += take;
            wl -= take;
        }
        buf_append(out, w, wl);
        col += wl;
        words_on_line = true;
    }
    buf_append(out, "\r\n", 2);
}

/* put_field - one header-like field "Name: value", folded. */
static void put_field(buf_t *out, const char *name, const char *value)
{
    char prefix[64];

    snprintf(prefix, sizeof(prefix), "%s: ", name);
    put_folded(out, prefix, value, " ");
}

/* put_date_field - "Name: <RFC 5322 date>" for a time in microseconds. */
static void put_date_field(buf_t *out, const char *name, uint64_t us)
{
    char date[64];

    time_rfc5322(date, sizeof(date), (int64_t)(us / 1000000));
    buf_printf(out, "%s: %s\r\n", name, date);
}

/* status_ok - is s an RFC 3463 status code "c.sss.ddd" (class 2, 4, 5)? */
static bool status_ok(const char *s)
{
    size_t n = s ? status_code_len(s) : 0;

    return n > 0 && s[n] == '\0' && (s[0] == '2' || s[0] == '4' || s[0] == '5');
}

static const char *action_word(dsn_action a)
{
    switch (a) {
    case DSN_FAILED:    return "failed";
    case DSN_DELAYED:   return "delayed";
    case DSN_DELIVERED: return "delivered";
    case DSN_RELAYED:   return "relayed";
    }
    log_panic("action_word: %d", (int)a);
}

static const char *default_status(dsn_action a)
{
    return a == DSN_FAILED ? "5.0.0" : a == DSN_DELAYED ? "4.0.0" : "2.0.0";
}

static const char *subject(dsn_action kind)
{
    switch (kind) {
    case DSN_FAILED:    return "Undelivered Mail Returned to Sender";
    case DSN_DELAYED:   return "Delayed Mail (still being retried)";
    case DSN_DELIVERED:
    case DSN_RELAYED:   return "Successful Mail Delivery Report";
    }
    log_panic("subject: %d", (int)kind);
}

/* rcpt_paragraph - the human line for one recipient, Postfix-like:
 * "<a@b>: host mx.b said: 550 5.1.1 no such user". */
static void rcpt_paragraph(buf_t *out, const dsn_rcpt *rc)
{
    char *addr = clean(rc->address, VALUE_MAX);
    char *mta = clean(rc->remote_mta, VALUE_MAX);
    char *diag = clean(rc->diagnostic, VALUE_MAX);
    char *why = clean(rc->text, VALUE_MAX);
    char *line;
    const char *what = diag[0] ? diag : why;

    if (!what[0])
        what = rc->action == DSN_FAILED ? "undeliverable"
               : rc->action == DSN_DELAYED ? "delivery temporarily suspended"
               : rc->action == DSN_RELAYED ? "relayed to a server that does not report delivery"
               : "delivered to mailbox";
    if (mta[0] && diag[0])
        line = xasprintf("<%s>: %s %s%s %s", addr,
                         rc->action == DSN_DELIVERED || rc->action == DSN_RELAYED
                             ? "delivery via" : "host",
                         mta,
                         rc->action == DSN_DELIVERED || rc->action == DSN_RELAYED ? ":" : " said:",
                         diag);
    else
        line = xasprintf("<%s>: %s", addr, what);
    buf_append(out, "\r\n", 2);
    put_folded(out, "", line, "    ");
    xfree(&line);
    xfree(&addr);
    xfree(&mta);
    xfree(&diag);
    xfree(&why);
}

/* compose_text - part 1: the explanation for people. */
static void compose_text(buf_t *out, const dsn_report *r, const char *host, bool full)
{
    const Envelope *o = r->orig;

    buf_printf(out, "This is the mail system at host %s.\r\n\r\n", host);
    switch (r->kind) {
    case DSN_FAILED:
        buf_printf(out, "I'm sorry to have to inform you that your message could not\r\n"
                        "be delivered to one or more recipients. %s attached below.\r\n\r\n",
                   full ? "It's" : "Its header is");
        break;
    case DSN_DELAYED: {
        uint64_t age = r->now_us > o->received_at ? r->now_us - o->received_at : 0;
        uint64_t until = r->n && r->rcpt[0].retry_until_us > o->received_at
                         ? r->rcpt[0].retry_until_us - o->received_at : 0;
        buf_printf(out,
                   "####################################################################\r\n"
                   "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
                   "####################################################################\r\n"
                   "\r\n"
                   "Your message could not be delivered for more than %llu hour(s).\r\n",
                   (unsigned long long)(age / US_PER_HOUR));
        if (until)
            buf_printf(out, "It will be retried until it is %llu day(s) old.\r\n",
                       (unsigned long long)((until + US_PER_DAY / 2) / US_PER_DAY));
        buf_append_str(out, "\r\n");
        break;
    }
    case DSN_DELIVERED:
    case DSN_RELAYED:
        buf_append_str(out,
                       "Your message was successfully delivered to the destination(s)\r\n"
                       "listed below. If the message was delivered to mailbox you will\r\n"
                       "receive no further notifications. Otherwise you may still receive\r\n"
                       "notifications of mail delivery errors from other systems.\r\n\r\n");
        break;
    }
    if (r->kind == DSN_FAILED || r->kind == DSN_DELAYED)
        buf_append_str(out, "For further assistance, please send mail to postmaster.\r\n\r\n"
                            "If you do so, please include this problem report. You can\r\n"
                            "delete your own text from the attached returned message.\r\n\r\n");
    buf_append_str(out, "                   The mail system\r\n");
    for (size_t i = 0; i < r->n; i++)
        rcpt_paragraph(out, &r->rcpt[i]);
}

/* compose_status - part 2: the message/delivery-status fields. */
static void compose_status(buf_t *out, const dsn_report *r, const char *host, const char *qid)
{
    const Envelope *o = r->orig;
    char *v;

    buf_printf(out, "Reporting-MTA: dns; %s\r\n", host);
    if (qid[0])
        buf_printf(out, "X-Correio-Queue-ID: %s\r\n", qid);
    v = clean(o->reverse_path, VALUE_MAX);
    if (v[0]) {
        char *sender = xasprintf("rfc822; %s", v);
        put_field(out, "X-Correio-Sender", sender);
        xfree(&sender);
    }
    xfree(&v);
    v = clean(o->envid, VALUE_MAX);
    if (v[0])
        put_field(out, "Original-Envelope-Id", v);
    xfree(&v);
    if (o->received_at)
        put_date_field(out, "Arrival-Date", o->received_at);

    for (size_t i = 0; i < r->n; i++) {
        const dsn_rcpt *rc = &r->rcpt[i];
        char *field;

        buf_append(out, "\r\n", 2);
        v = clean(rc->orcpt, VALUE_MAX);
        if (v[0] && strchr(v, ';'))             /* "addr-type;address" as given */
            put_field(out, "Original-Recipient", v);
        xfree(&v);
        v = clean(rc->address, VALUE_MAX);
        field = xasprintf("rfc822; %s", v);
        put_field(out, "Final-Recipient", field);
        xfree(&field);
        xfree(&v);
        buf_printf(out, "Action: %s\r\n", action_word(rc->action));
        buf_printf(out, "Status: %s\r\n",
                   status_ok(rc->status) ? rc->status : default_status(rc->action));
        v = clean(rc->remote_mta, VALUE_MAX);
        if (v[0]) {
            field = xasprintf("dns; %s", v);
            put_field(out, "Remote-MTA", field);
            xfree(&field);
        }
        xfree(&v);
        v = clean(rc->diagnostic, VALUE_MAX);
        if (v[0]) {
            field = xasprintf("smtp; %s", v);
        } else {
            xfree(&v);
            v = clean(rc->text, VALUE_MAX);
            field = v[0] ? xasprintf("X-Correio; %s", v) : NULL;
        }
        if (field)
            put_field(out, "Diagnostic-Code", field);
        xfree(&field);
        xfree(&v);
        if (rc->last_attempt_us)
            put_date_field(out, "Last-Attempt-Date", rc->last_attempt_us);
        if (rc->action == DSN_DELAYED && rc->retry_until_us)
            put_date_field(out, "Will-Retry-Until", rc->retry_until_us);
    }
}

/* header_section_len - how much of body is its header section: up to
 * and including the CRLF of its last field (0 when it starts with the
 * empty line; all of it when there is no empty line). */
static size_t header_section_len(const uint8_t *body, size_t len)
{
    const uint8_t *end;

    if (len >= 2 && body[0] == '\r' && body[1] == '\n')
        return 0;
    end = memmem(body, len, "\r\n\r\n", 4);
    return end ? (size_t)(end - body) + 2 : len;
}

bool bounce_is_8bit(const uint8_t *msg, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (msg[i] & 0x80)
            return true;
    return false;
}

/* boundary_free - does boundary occur in none of the n pieces? */
typedef struct piece {
    const void *data;
    size_t      len;
} piece;

static bool boundary_free(const char *boundary, const piece *pieces, size_t n)
{
    size_t bl = strlen(boundary);

    for (size_t i = 0; i < n; i++)
        if (pieces[i].len && memmem(pieces[i].data, pieces[i].len, boundary, bl))
            return false;
    return true;
}

uint8_t *bounce_compose(const dsn_report *r, size_t *len)
{
    const Envelope *o = r->orig;
    buf_t text = BUF_INIT, status = BUF_INIT, out = BUF_INIT;
    char *host = clean(r->reporting_mta, 255);
    char *sender = clean(o->reverse_path, VALUE_MAX);
    char qid[24], rnd[33], boundary[72], date[64];
    size_t orig_len = o->body.len, body_part, n_pieces = 0;
    piece *pieces;
    bool full, eight_bit = false;

    if (!host[0]) {
        xfree(&host);
        host = xstrdup("localhost");
    }
    /* the queue id goes into the boundary: keep only what is safe there */
    snprintf(qid, sizeof(qid), "%s", o->queue_id ? o->queue_id : "");
    qid[strspn(qid, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")] = '\0';
    for (size_t i = 0; i < o->n_prepend_headers; i++)
        orig_len += o->prepend_headers[i].len;
    full = r->kind == DSN_FAILED && o->ret != CORREIO__DSN_RET__RET_HDRS
           && orig_len <= r->size_limit;
    body_part = full ? o->body.len : header_section_len(o->body.data, o->body.len);

    compose_text(&text, r, host, full);
    compose_status(&status, r, host, qid);

    pieces = xcalloc(o->n_prepend_headers + 3, sizeof(*pieces));
    for (size_t i = 0; i < o->n_prepend_headers; i++) {
        pieces[n_pieces++] = (piece){ o->prepend_headers[i].data, o->prepend_headers[i].len };
        eight_bit |= bounce_is_8bit(o->prepend_headers[i].data, o->prepend_headers[i].len);
    }
    pieces[n_pieces++] = (piece){ o->body.data, body_part };
    pieces[n_pieces++] = (piece){ text.data, text.len };
    pieces[n_pieces++] = (piece){ status.data, status.len };
    eight_bit |= bounce_is_8bit(o->body.data, body_part);
    for (int tries = 0;; tries++) {
        random_hex(rnd, 8);
        snprintf(boundary, sizeof(boundary), "%s.%s/correio", qid[0] ? qid : "dsn", rnd);
        if (boundary_free(boundary, pieces, n_pieces))
            break;
        if (tries == BOUNDARY_TRIES)    /* 2^-64 per try: the randomness is broken */
            log_panic("bounce_compose: no free MIME boundary after %d tries", tries);
    }
    xfree(&pieces);

    /* the message header */
    buf_printf(&out, "Date: %s\r\n", time_rfc5322(date, sizeof(date),
                                                   (int64_t)(r->now_us / 1000000)));
    buf_printf(&out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
    buf_printf(&out, "Subject: %s\r\n", subject(r->kind));
    if (sender[0]) {
        char *to = xasprintf("<%s>", sender);
        put_field(&out, "To", to);
        xfree(&to);
    } else {
        buf_append_str(&out, "To: undisclosed-recipients:;\r\n");
    }
    buf_append_str(&out, "Auto-Submitted: auto-replied\r\n");
    random_hex(rnd, 12);
    buf_printf(&out, "Message-ID: <%s%s%s@%s>\r\n", rnd, qid[0] ? "." : "", qid, host);
    buf_append_str(&out, "MIME-Version: 1.0\r\n");
    buf_printf(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                     "\tboundary=\"%s\"\r\n", boundary);
    if (eight_bit)
        buf_append_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
    buf_append_str(&out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    /* 1. for people */
    buf_printf(&out, "--%s\r\n", boundary);
    buf_append_str(&out, "Content-Description: Notification\r\n"
                         "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    buf_append(&out, text.data, text.len);

    /* 2. for programs */
    buf_printf(&out, "\r\n--%s\r\n", boundary);
    buf_append_str(&out, "Content-Description: Delivery report\r\n"
                         "Content-Type: message/delivery-status\r\n\r\n");
    buf_append(&out, status.data, status.len);

    /* 3. the original, or its header */
    buf_printf(&out, "\r\n--%s\r\n", boundary);
    buf_printf(&out, "Content-Description: %s Message%s\r\n",
               r->kind == DSN_FAILED ? "Undelivered"
               : r->kind == DSN_DELAYED ? "Delayed" : "Delivered",
               full ? "" : " Headers");
    buf_printf(&out, "Content-Type: %s\r\n", full ? "message/rfc822" : "text/rfc822-headers");
    if (eight_bit)
        buf_append_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
    buf_append_str(&out, "\r\n");
    for (size_t i = 0; i < o->n_prepend_headers; i++)
        buf_append(&out, o->prepend_headers[i].data, o->prepend_headers[i].len);
    buf_append(&out, o->body.data, body_part);
    if (out.len >= 2 && memcmp(out.data + out.len - 2, "\r\n", 2) != 0)
        buf_append(&out, "\r\n", 2);
    buf_printf(&out, "\r\n--%s--\r\n", boundary);

    buf_free(&text);
    buf_free(&status);
    xfree(&host);
    xfree(&sender);
    return (uint8_t *)buf_steal(&out, len);
}
