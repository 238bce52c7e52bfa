/* smtp_client_test.c - the SMTP/LMTP client state machine against a
 * server played by the test over a socketpair: the exact command lines
 * (pipelined or one at a time, with the parameters the peer offers), the
 * replies each recipient gets, the content as sent (dot-stuffing, line
 * ends, the final dot), reuse with RSET, failures found before sending,
 * broken peers (garbage, over-long lines, EOF, silence), AUTH, and
 * STARTTLS with a certificate made at run time.
 *
 * No sleeps: every wait is a poll with a deadline that fails the test, and
 * every loop is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "../../delivery/smtp_client.h"
#include "timeutil.h"
#include "tls.h"
#include "xalloc.h"

#define POLL_MS     5000        /* no progress for this long: the test fails */
#define MAX_ROUNDS  100000      /* bound on every drive loop */
#define STEP_MS     5000        /* the client's timeouts unless a test says */
#define SHORT_MS    30          /* a timeout a test waits for */
#define PEER        "mx.test[127.0.0.1]:25"
#define HELO        "client.example"

/* ------------------------------------------------------------ the harness */

/* One conversation: the client under test on fd[0], the test's server
 * end on fd[1] (TLS through srv_tls once STARTTLS is done). */
typedef struct {
    int               fd[2];
    smtp_client_opts  opts;
    smtp_client_t    *c;
    tls_conn_t       *srv_tls;
    buf_t             got;          /* what the client sent, not yet checked */
} conv_t;

static smtp_timeouts timeouts_all(int64_t ms)
{
    return (smtp_timeouts){ms, ms, ms, ms, ms, ms, ms, ms};
}

static void set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    assert_true(flags >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

static void conv_opts(conv_t *t)
{
    memset(t, 0, sizeof(*t));
    t->opts.helo_name = HELO;
    t->opts.peer = PEER;
    t->opts.tls_level = SMTP_TLS_NONE;
    t->opts.timeouts = timeouts_all(STEP_MS);
}

/* conv_start - the socketpair and the client (opts as the test set them). */
static void conv_start(conv_t *t)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t->fd), 0);
    set_nonblock(t->fd[0]);
    set_nonblock(t->fd[1]);
    t->c = smtp_client_new(t->fd[0], &t->opts);
}

static void conv_end(conv_t *t)
{
    smtp_client_free(&t->c);
    assert_null(t->c);
    tls_conn_free(&t->srv_tls);
    buf_free(&t->got);
    close(t->fd[0]);
    if (t->fd[1] >= 0)
        close(t->fd[1]);
}

static void wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};

    if (poll(&p, 1, POLL_MS) != 1)
        fail_msg("no progress on fd %d within %d ms", fd, POLL_MS);
}

/* srv_send - the server writes s (all of it). */
static void srv_send_n(conv_t *t, const char *s, size_t len)
{
    size_t done = 0, put;
    ssize_t n;

    for (int round = 0; done < len && round < MAX_ROUNDS; round++) {
        if (t->srv_tls != NULL) {
            tls_status st = tls_write(t->srv_tls, s + done, len - done, &put);

            if (st == TLS_OK)
                done += put;
            else if (st == TLS_WANT_READ || st == TLS_WANT_WRITE)
                wait_fd(t->fd[1], st == TLS_WANT_READ ? POLLIN : POLLOUT);
            else
                fail_msg("server tls_write: %s", tls_error(t->srv_tls));
        } else if ((n = send(t->fd[1], s + done, len - done, MSG_NOSIGNAL)) > 0) {
            done += (size_t)n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            wait_fd(t->fd[1], POLLOUT);
        }
    }
    assert_int_equal(done, len);
}

static void srv_send(conv_t *t, const char *s)
{
    srv_send_n(t, s, strlen(s));
}

/* srv_read_some - what is readable now into t->got; false when nothing. */
static bool srv_read_some(conv_t *t)
{
    char chunk[65536];
    size_t got = 0;
    ssize_t n;

    if (t->srv_tls != NULL) {
        tls_status st = tls_read(t->srv_tls, chunk, sizeof(chunk), &got);

        if (st != TLS_OK && st != TLS_WANT_READ)
            fail_msg("server tls_read: %d %s", st, tls_error(t->srv_tls));
    } else if ((n = read(t->fd[1], chunk, sizeof(chunk))) > 0) {
        got = (size_t)n;
    } else {
        assert_true(n < 0 && errno == EAGAIN);
    }
    buf_append(&t->got, chunk, got);
    return got > 0;
}

/* expect - the client has sent exactly want next (waiting for it). */
static void expect(conv_t *t, const char *want)
{
    size_t len = strlen(want);

    for (int round = 0; t->got.len < len && round < MAX_ROUNDS; round++)
        if (!srv_read_some(t))
            wait_fd(t->fd[1], POLLIN);
    if (t->got.len < len || memcmp(t->got.data, want, len) != 0)
        fail_msg("the client sent\n[%.*s]\nexpected\n[%s]", (int)t->got.len,
                 t->got.data != NULL ? t->got.data : "", want);
    buf_consume(&t->got, len);
}

/* expect_one_read - want arrives in a single read: one pipelined write. */
static void expect_one_read(conv_t *t, const char *want)
{
    assert_int_equal(t->got.len, 0);
    wait_fd(t->fd[1], POLLIN);
    assert_true(srv_read_some(t));
    assert_int_equal(t->got.len, strlen(want));
    expect(t, want);
}

/* expect_silence - the client sent nothing more (it waits for a reply). */
static void expect_silence(conv_t *t)
{
    struct pollfd p = {.fd = t->fd[1], .events = POLLIN};

    assert_int_equal(t->got.len, 0);
    assert_int_equal(poll(&p, 1, 0), 0);
}

static smtp_client_status io(conv_t *t)
{
    return smtp_client_io(t->c, true, true);
}

/* wait_deadline - poll the client's socket until its deadline passes. */
static void wait_deadline(conv_t *t)
{
    struct pollfd p = {.fd = t->fd[0], .events = POLLIN};
    int64_t left;

    for (int round = 0; round < MAX_ROUNDS; round++) {
        left = smtp_client_deadline_ms(t->c) - time_mono_ms();
        assert_true(left < STEP_MS);
        if (left < 0)
            return;
        assert_int_equal(poll(&p, 1, (int)left + 1), 0);
    }
    fail_msg("the deadline never came");
}

static void assert_reply(const smtp_reply *r, int code, const char *status, const char *stage,
                         const char *text)
{
    assert_int_equal(r->code, code);
    assert_string_equal(r->status, status);
    assert_string_equal(r->stage, stage);
    assert_string_equal(r->text, text);
}

/* session - greeting and EHLO with these extension lines ("" for none),
 * ready for transactions. */
static void session(conv_t *t, const char *ehlo_lines)
{
    char reply[1024];

    conv_start(t);
    assert_int_equal(io(t), SMTP_CLIENT_RUNNING);
    expect_silence(t);
    srv_send(t, "220 mx.test ESMTP\r\n");
    assert_int_equal(io(t), SMTP_CLIENT_RUNNING);
    expect(t, t->opts.lmtp ? "LHLO " HELO "\r\n" : "EHLO " HELO "\r\n");
    snprintf(reply, sizeof(reply), "250%smx.test hello\r\n%s", *ehlo_lines ? "-" : " ",
             ehlo_lines);
    srv_send(t, reply);
    assert_int_equal(io(t), SMTP_CLIENT_READY);
    assert_int_equal(smtp_client_deadline_ms(t->c), INT64_MAX);
}

/* One transaction's data, with storage the smtp_txn points into. */
typedef struct {
    smtp_txn           txn;
    const char        *rcpt[4];
    uint32_t           notify[4];
    const char        *orcpt[4];
    ProtobufCBinaryData headers[2];
} txn_t;

static void txn_init(txn_t *x, size_t n_rcpt, const char *body)
{
    static const char *const addrs[] = {"r1@b.test", "r2@b.test", "r3@b.test", "r4@b.test"};

    memset(x, 0, sizeof(*x));
    for (size_t i = 0; i < 4; i++) {
        x->rcpt[i] = addrs[i];
        x->orcpt[i] = "";
    }
    x->txn.sender = "s@a.test";
    x->txn.n_rcpt = n_rcpt;
    x->txn.rcpt = x->rcpt;
    x->txn.notify = x->notify;
    x->txn.orcpt = x->orcpt;
    x->txn.envid = "";
    x->txn.body = body;
    x->txn.body_len = strlen(body);
}

static void txn_header(txn_t *x, const char *field)
{
    x->headers[x->txn.n_headers].data = (uint8_t *)field;
    x->headers[x->txn.n_headers].len = strlen(field);
    x->txn.headers = x->headers;
    x->txn.n_headers++;
}

/* --------------------------------------------------------- transactions */

static void test_pipelining(void **state)
{
    static const char body[] = "Subject: hi\r\n\r\n.hidden\r\nline\r\n..\r\nlast\r\n";
    static const char header[] = "Received: from a\r\n";
    conv_t t;
    txn_t x;
    char want[512];

    (void)state;
    conv_opts(&t);
    session(&t, "250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-DSN\r\n"
            "250 ENHANCEDSTATUSCODES\r\n");
    txn_init(&x, 3, body);
    txn_header(&x, header);
    x.txn.body_type = CORREIO__BODY_TYPE__BODY_8BITMIME;
    x.txn.ret = CORREIO__DSN_RET__RET_HDRS;
    x.txn.envid = "a+b=c d";
    x.notify[0] = CORREIO__NOTIFY__NOTIFY_SUCCESS | CORREIO__NOTIFY__NOTIFY_FAILURE;
    x.notify[1] = CORREIO__NOTIFY__NOTIFY_NEVER;
    x.orcpt[0] = "rfc822;r1+x@b.test";
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    snprintf(want, sizeof(want),
             "MAIL FROM:<s@a.test> SIZE=%zu BODY=8BITMIME RET=HDRS ENVID=a+2Bb+3Dc+20d\r\n"
             "RCPT TO:<r1@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r1+2Bx@b.test\r\n"
             "RCPT TO:<r2@b.test> NOTIFY=NEVER\r\n"
             "RCPT TO:<r3@b.test>\r\n"
             "DATA\r\n", strlen(header) + strlen(body));
    expect_one_read(&t, want);
    srv_send(&t, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 greylisted\r\n"
             "550-5.1.1 no such\r\n550 5.1.1 user\r\n354 go ahead\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "Received: from a\r\nSubject: hi\r\n\r\n..hidden\r\nline\r\n...\r\nlast\r\n.\r\n");
    expect_silence(&t);
    srv_send(&t, "250 2.0.0 queued as X\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 250, "2.0.0", "end of DATA",
                 "250 2.0.0 queued as X");
    assert_reply(smtp_client_rcpt_reply(t.c, 1), 450, "4.2.0", "RCPT TO", "450 4.2.0 greylisted");
    assert_reply(smtp_client_rcpt_reply(t.c, 2), 550, "5.1.1", "RCPT TO",
                 "550 5.1.1 no such 5.1.1 user");
    assert_true(smtp_client_peer_dsn(t.c));
    assert_int_equal(smtp_client_transactions(t.c), 1);
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    assert_string_equal(smtp_client_tls_protocol(t.c), "");

    smtp_client_quit(t.c);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "QUIT\r\n");
    srv_send(&t, "221 2.0.0 bye\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_CLOSED);
    assert_int_equal(smtp_client_wants(t.c), 0);
    conv_end(&t);
}

/* subject_tag: the tag goes into the body's Subject, SIZE= counts it,
 * and a line the split leaves starting with '.' is still stuffed. */
static void test_subject_tag(void **state)
{
    static const char body[] = "From: a@b\r\nSubject: hi\r\n\r\n.dot\r\n";
    static const char sent[] = "From: a@b\r\nSubject: [SPAM] hi\r\n\r\n.dot\r\n";
    conv_t t;
    txn_t x;
    char want[512];

    (void)state;
    conv_opts(&t);
    session(&t, "250-PIPELINING\r\n250 SIZE 1000\r\n");
    txn_init(&x, 1, body);
    x.txn.subject_tag = "[SPAM]";
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    snprintf(want, sizeof(want), "MAIL FROM:<s@a.test> SIZE=%zu\r\nRCPT TO:<r1@b.test>\r\n"
             "DATA\r\n", strlen(sent));
    expect_one_read(&t, want);
    srv_send(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "From: a@b\r\nSubject: [SPAM] hi\r\n\r\n..dot\r\n.\r\n");
    srv_send(&t, "250 queued\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    conv_end(&t);
}

/* drop_headers: the named fields of the body's header (folded lines
 * too) are not sent, the prepended one is; a kept range that starts with
 * '.' is dot-stuffed; SIZE= counts what is sent; a peer SIZE limit the
 * whole body exceeds but the kept bytes do not is no refusal. */
static void test_drop_headers(void **state)
{
    static const char body[] = "Subject: hi\r\n folded\r\n.Odd: x\r\nsubject: again\r\n"
                               "X-Keep: 1\r\n\r\n.body\r\nSubject: body\r\n";
    static const char header[] = "Subject: [external] hi\r\n";
    static const char sent[] = "Subject: [external] hi\r\n.Odd: x\r\nX-Keep: 1\r\n\r\n"
                               ".body\r\nSubject: body\r\n";
    static const char *const drop[] = {"SUBJECT"};
    conv_t t;
    txn_t x;
    char want[512];

    (void)state;
    assert_true(strlen(header) + strlen(body) > 90 && strlen(sent) <= 90);
    conv_opts(&t);
    session(&t, "250-PIPELINING\r\n250 SIZE 90\r\n");
    txn_init(&x, 1, body);
    txn_header(&x, header);
    x.txn.drop_headers = drop;
    x.txn.n_drop_headers = 1;
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    snprintf(want, sizeof(want), "MAIL FROM:<s@a.test> SIZE=%zu\r\nRCPT TO:<r1@b.test>\r\n"
             "DATA\r\n", strlen(sent));
    expect_one_read(&t, want);
    srv_send(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "Subject: [external] hi\r\n..Odd: x\r\nX-Keep: 1\r\n\r\n"
           "..body\r\nSubject: body\r\n.\r\n");
    srv_send(&t, "250 queued\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 250, "2.0.0", "end of DATA", "250 queued");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);

    /* the same connection, a body of only dropped fields: just the
     * prepended field, then the dot */
    txn_init(&x, 1, "Subject: a\r\n b\r\n");
    txn_header(&x, header);
    x.txn.drop_headers = drop;
    x.txn.n_drop_headers = 1;
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    snprintf(want, sizeof(want), "MAIL FROM:<s@a.test> SIZE=%zu\r\nRCPT TO:<r1@b.test>\r\n"
             "DATA\r\n", strlen(header));
    expect_one_read(&t, want);
    srv_send(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "Subject: [external] hi\r\n.\r\n");
    srv_send(&t, "250 queued\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    conv_end(&t);
}

/* Without PIPELINING: one command per reply; no parameters the peer did
 * not offer; a multi-line reply without enhanced codes. */
static void test_one_at_a_time(void **state)
{
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    session(&t, "");
    txn_init(&x, 2, "x\r\n");
    x.txn.body_type = CORREIO__BODY_TYPE__BODY_8BITMIME;        /* but pure ASCII */
    x.txn.ret = CORREIO__DSN_RET__RET_FULL;
    x.txn.envid = "e1";
    x.notify[0] = CORREIO__NOTIFY__NOTIFY_DELAY;
    x.orcpt[0] = "rfc822;r1@b.test";
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(smtp_client_wants(t.c), SMTP_WANT_WRITE | SMTP_WANT_READ);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\n");
    expect_silence(&t);
    assert_int_equal(smtp_client_wants(t.c), SMTP_WANT_READ);
    srv_send(&t, "250 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RCPT TO:<r1@b.test>\r\n");
    expect_silence(&t);
    srv_send(&t, "550-no such\r\n550 user here\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RCPT TO:<r2@b.test>\r\n");
    expect_silence(&t);
    srv_send(&t, "250 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "DATA\r\n");
    expect_silence(&t);
    srv_send(&t, "354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "x\r\n.\r\n");
    srv_send(&t, "250 queued\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 550, "5.0.0", "RCPT TO",
                 "550 no such user here");
    assert_reply(smtp_client_rcpt_reply(t.c, 1), 250, "2.0.0", "end of DATA", "250 queued");
    assert_false(smtp_client_peer_dsn(t.c));
    conv_end(&t);
}

static void test_helo_fallback(void **state)
{
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    conv_start(&t);
    srv_send(&t, "220 old.test\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    srv_send(&t, "502 5.5.1 what\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "HELO " HELO "\r\n");
    srv_send(&t, "250 old.test\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);

    /* 8-bit content to a peer without 8BITMIME: refused here, at once */
    txn_init(&x, 2, "caf\xc3\xa9\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(smtp_client_deadline_ms(t.c), 0);
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    expect_silence(&t);
    for (size_t i = 0; i < 2; i++)
        assert_reply(smtp_client_rcpt_reply(t.c, i), 550, "5.6.3", "MAIL FROM",
                     "message has 8-bit content but the server " PEER
                     " does not support 8BITMIME");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    assert_int_equal(smtp_client_transactions(t.c), 0);

    /* 8-bit in a header is 8-bit content too */
    txn_init(&x, 1, "plain\r\n");
    txn_header(&x, "Subject: \xff\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_string_equal(smtp_client_rcpt_reply(t.c, 0)->status, "5.6.3");
    conv_end(&t);
}

/* Failures known before sending: SIZE over the peer's limit, SMTPUTF8. */
static void test_prechecks(void **state)
{
    char body[200];
    conv_t t;
    txn_t x;

    (void)state;
    memset(body, 'a', sizeof(body) - 3);
    memcpy(body + sizeof(body) - 3, "\r\n", 3);
    conv_opts(&t);
    session(&t, "250-8BITMIME\r\n250 SIZE 100\r\n");
    txn_init(&x, 1, body);
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 550, "5.3.4", "MAIL FROM",
                 "message size 199 exceeds size limit 100 of server " PEER);
    txn_init(&x, 1, "x\r\n");
    x.txn.smtputf8 = true;
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_string_equal(smtp_client_rcpt_reply(t.c, 0)->status, "5.6.7");
    expect_silence(&t);

    /* within the limit: SIZE goes on MAIL */
    txn_init(&x, 1, "x\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test> SIZE=3\r\n");
    conv_end(&t);
}

/* A refused MAIL is every recipient's reply, and RSET comes before the
 * next transaction; the connection then carries a second one. */
static void test_rset_and_reuse(void **state)
{
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    session(&t, "250 ENHANCEDSTATUSCODES\r\n");
    txn_init(&x, 2, "one\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\n");
    srv_send(&t, "553 5.7.1 sender rejected\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    expect_silence(&t);
    for (size_t i = 0; i < 2; i++)
        assert_reply(smtp_client_rcpt_reply(t.c, i), 553, "5.7.1", "MAIL FROM",
                     "553 5.7.1 sender rejected");

    txn_init(&x, 1, "two\r\n");
    x.txn.sender = "";
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RSET\r\n");
    expect_silence(&t);
    srv_send(&t, "250 2.0.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<>\r\n");
    srv_send(&t, "250 2.1.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RCPT TO:<r1@b.test>\r\n");
    srv_send(&t, "250 2.1.5 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "DATA\r\n");
    srv_send(&t, "354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "two\r\n.\r\n");
    srv_send(&t, "250 2.0.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_int_equal(smtp_client_rcpt_reply(t.c, 0)->code, 250);

    /* after a delivered message no RSET */
    txn_init(&x, 1, "three");           /* no CRLF at the end */
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\n");
    srv_send(&t, "250 2.1.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RCPT TO:<r1@b.test>\r\n");
    srv_send(&t, "250 2.1.5 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "DATA\r\n");
    srv_send(&t, "354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "three\r\n.\r\n");
    srv_send(&t, "250 2.0.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_int_equal(smtp_client_transactions(t.c), 3);
    conv_end(&t);
}

/* Pipelined, no recipient taken, and DATA still gets 354: only the dot
 * goes (RFC 2920), and the next transaction starts with RSET. */
static void test_pipelined_no_recipient(void **state)
{
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    session(&t, "250 PIPELINING\r\n");
    txn_init(&x, 1, "body\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect_one_read(&t, "MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\nDATA\r\n");
    srv_send(&t, "250 ok\r\n550 no\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, ".\r\n");
    srv_send(&t, "554 no valid recipients\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 550, "5.0.0", "RCPT TO", "550 no");
    txn_init(&x, 1, "body\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RSET\r\n");
    conv_end(&t);
}

/* LMTP: LHLO, and one reply per accepted recipient after the dot. */
static void test_lmtp(void **state)
{
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    t.opts.lmtp = true;
    session(&t, "250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
    txn_init(&x, 3, "hello\r\n");
    x.txn.extra_header = "Delivered-To: r1@b.test\r\n";
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect_one_read(&t, "MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\n"
                    "RCPT TO:<r2@b.test>\r\nRCPT TO:<r3@b.test>\r\nDATA\r\n");
    srv_send(&t, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n250 2.1.5 ok\r\n"
             "354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "Delivered-To: r1@b.test\r\nhello\r\n.\r\n");
    srv_send(&t, "250 2.0.0 r1 saved\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    srv_send(&t, "452 4.2.2 r3 over quota\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 250, "2.0.0", "end of DATA",
                 "250 2.0.0 r1 saved");
    assert_reply(smtp_client_rcpt_reply(t.c, 1), 550, "5.1.1", "RCPT TO", "550 5.1.1 unknown");
    assert_reply(smtp_client_rcpt_reply(t.c, 2), 452, "4.2.2", "end of DATA",
                 "452 4.2.2 r3 over quota");
    conv_end(&t);
}

/* expected_content - what a body looks like on the wire (reference). */
static void expected_content(buf_t *out, const char *p, size_t len)
{
    bool line_start = true;

    for (size_t i = 0; i < len; i++) {
        if (line_start && p[i] == '.')
            buf_append_char(out, '.');
        buf_append_char(out, p[i]);
        line_start = p[i] == '\n';
    }
    buf_append_str(out, ".\r\n");
}

/* make_big_body - many lines, some starting with dots, over chunk ends. */
static char *make_big_body(size_t lines, size_t *len)
{
    buf_t b = BUF_INIT;

    for (size_t i = 0; i < lines; i++)
        buf_printf(&b, "%s line %zu %.*s\r\n", i % 3 == 0 ? "." : "x", i, (int)(i % 97),
                   "0123456789012345678901234567890123456789012345678901234567890123456789"
                   "012345678901234567890123456789");
    return buf_steal(&b, len);
}

/* A body much larger than the socket buffer, streamed in chunks. */
static void test_big_body(void **state)
{
    buf_t want = BUF_INIT;
    size_t len;
    char *body = make_big_body(40000, &len);
    smtp_client_status st = SMTP_CLIENT_RUNNING;
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    session(&t, "250 PIPELINING\r\n");
    txn_init(&x, 1, body);
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\nDATA\r\n");
    srv_send(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    expected_content(&want, body, len);
    for (int round = 0; t.got.len < want.len && round < MAX_ROUNDS; round++) {
        st = io(&t);
        assert_int_equal(st, SMTP_CLIENT_RUNNING);
        if (!srv_read_some(&t))
            wait_fd(t.fd[1], POLLIN);
    }
    assert_int_equal(t.got.len, want.len);
    assert_memory_equal(t.got.data, want.data, want.len);
    buf_reset(&t.got);
    srv_send(&t, "250 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    buf_free(&want);
    free(body);
    conv_end(&t);
}

/* The peer goes away while the content is being written. */
static void test_eof_mid_data(void **state)
{
    size_t len;
    char *body = make_big_body(40000, &len);
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    session(&t, "250 PIPELINING\r\n");
    txn_init(&x, 2, body);
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\nRCPT TO:<r2@b.test>\r\nDATA\r\n");
    srv_send(&t, "250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);     /* the socket is full */
    assert_int_equal(smtp_client_wants(t.c), SMTP_WANT_WRITE);
    close(t.fd[1]);
    t.fd[1] = -1;
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_rcpt_reply(t.c, 0), 550, "5.0.0", "RCPT TO", "550 no");
    assert_reply(smtp_client_rcpt_reply(t.c, 1), 0, "4.4.2", "DATA",
                 "lost connection with " PEER " while sending message body");
    assert_string_equal(smtp_client_failure(t.c, NULL)->status, "4.4.2");
    free(body);
    conv_end(&t);
}

/* The final reply never comes: the undecided get the timeout. */
static void test_timeouts(void **state)
{
    bool tls_failed = true;
    conv_t t;
    txn_t x;

    (void)state;
    conv_opts(&t);
    t.opts.timeouts.helo = SHORT_MS;
    conv_start(&t);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    wait_deadline(&t);
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, &tls_failed), 0, "4.4.2", "greeting",
                 "conversation with " PEER " timed out while receiving the initial greeting");
    assert_false(tls_failed);
    conv_end(&t);

    conv_opts(&t);
    t.opts.timeouts.rcpt = SHORT_MS;
    session(&t, "");
    txn_init(&x, 2, "x\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\n");
    srv_send(&t, "250 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "RCPT TO:<r1@b.test>\r\n");
    wait_deadline(&t);
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    for (size_t i = 0; i < 2; i++)
        assert_reply(smtp_client_rcpt_reply(t.c, i), 0, "4.4.2", "RCPT TO",
                     "conversation with " PEER " timed out while sending RCPT TO");
    conv_end(&t);
}

/* ------------------------------------------------------------ broken peers */

static void test_bad_replies(void **state)
{
    static const struct {
        const char *greeting;
        const char *text;           /* the failure text starts with this */
    } cases[] = {
        {"hello there\r\n", "conversation with " PEER " failed: malformed reply while "
                            "receiving the initial greeting: \"hello there\""},
        {"220\x01oops\r\n", "conversation with " PEER " failed: malformed reply"},
        {"22 short\r\n", "conversation with " PEER " failed: malformed reply"},
        {"120 too early\r\n", "conversation with " PEER " failed: malformed reply"},
        {"220-one\r\n250 two\r\n", "conversation with " PEER " failed: reply code changed"},
        {"", "lost connection with " PEER " while receiving the initial greeting"},
    };
    conv_t t;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conv_opts(&t);
        conv_start(&t);
        if (*cases[i].greeting != '\0') {
            srv_send(&t, cases[i].greeting);
        } else {
            close(t.fd[1]);
            t.fd[1] = -1;
        }
        assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
        assert_int_equal(smtp_client_failure(t.c, NULL)->code, 0);
        assert_string_equal(smtp_client_failure(t.c, NULL)->status, "4.4.2");
        if (strncmp(smtp_client_failure(t.c, NULL)->text, cases[i].text,
                    strlen(cases[i].text)) != 0)
            fail_msg("case %zu: %s", i, smtp_client_failure(t.c, NULL)->text);
        conv_end(&t);
    }
}

static void test_long_line(void **state)
{
    char line[SMTP_CLIENT_LINE_MAX + 100];
    conv_t t;

    (void)state;
    memset(line, 'a', sizeof(line) - 1);
    memcpy(line, "220 ", 4);
    line[sizeof(line) - 1] = '\0';
    conv_opts(&t);
    conv_start(&t);
    srv_send(&t, line);                 /* no line end yet */
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, NULL), 0, "4.4.2", "greeting",
                 smtp_client_failure(t.c, NULL)->text);
    assert_non_null(strstr(smtp_client_failure(t.c, NULL)->text, "reply line too long"));
    conv_end(&t);

    /* the longest line allowed is fine */
    memset(line, 'a', SMTP_CLIENT_LINE_MAX);
    memcpy(line, "220 ", 4);
    memcpy(line + SMTP_CLIENT_LINE_MAX - 2, "\r\n", 3);
    conv_opts(&t);
    conv_start(&t);
    srv_send(&t, line);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    assert_int_equal(strlen(smtp_client_failure(t.c, NULL)->text), 0);
    conv_end(&t);
}

/* A 5xx greeting ends the session with that reply; a 421 while idle too. */
static void test_refusals(void **state)
{
    conv_t t;

    (void)state;
    conv_opts(&t);
    conv_start(&t);
    srv_send(&t, "554 5.7.1 go away\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, NULL), 554, "5.7.1", "greeting", "554 5.7.1 go away");
    conv_end(&t);

    conv_opts(&t);
    session(&t, "");
    assert_int_equal(smtp_client_wants(t.c), SMTP_WANT_READ);
    srv_send(&t, "421 4.4.2 idle too long\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, NULL), 421, "4.4.2", "idle", "421 4.4.2 idle too long");
    conv_end(&t);
}

/* ------------------------------------------------------------ AUTH, TLS */

static void test_auth_plain(void **state)
{
    conv_t t;

    (void)state;
    conv_opts(&t);
    t.opts.auth_user = "user";
    t.opts.auth_pass = "secret";
    conv_start(&t);
    srv_send(&t, "220 mx\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    srv_send(&t, "250-mx\r\n250 AUTH LOGIN PLAIN\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    srv_send(&t, "235 2.7.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    conv_end(&t);

    /* refused: the session fails with the reply */
    conv_opts(&t);
    t.opts.auth_user = "user";
    t.opts.auth_pass = "secret";
    conv_start(&t);
    srv_send(&t, "220 mx\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    srv_send(&t, "250-mx\r\n250 AUTH PLAIN\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    srv_send(&t, "535 5.7.8 bad credentials\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, NULL), 535, "5.7.8", "AUTH",
                 "535 5.7.8 bad credentials");
    conv_end(&t);
}

static void test_auth_login(void **state)
{
    conv_t t;

    (void)state;
    conv_opts(&t);
    t.opts.auth_user = "user";
    t.opts.auth_pass = "secret";
    conv_start(&t);
    srv_send(&t, "220 mx\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    srv_send(&t, "250-mx\r\n250 AUTH=LOGIN\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "AUTH LOGIN\r\n");
    srv_send(&t, "334 VXNlcm5hbWU6\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "dXNlcg==\r\n");
    srv_send(&t, "334 UGFzc3dvcmQ6\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "c2VjcmV0\r\n");
    srv_send(&t, "235 2.7.0 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    conv_end(&t);
}

/* AUTH that cannot happen: no mechanism we speak, or no TLS when needed. */
static void test_auth_impossible(void **state)
{
    static const struct {
        const char *ehlo;
        bool        needs_tls;
        const char *text;
    } cases[] = {
        {"250-mx\r\n250 AUTH CRAM-MD5\r\n", false, "SASL authentication to " PEER
         " is not possible: it offers neither PLAIN nor LOGIN"},
        {"250 mx\r\n", false, "SASL authentication to " PEER
         " is not possible: it does not offer AUTH"},
        {"250-mx\r\n250 AUTH PLAIN\r\n", true, "refusing to send credentials to " PEER
         " over a connection without TLS"},
    };
    conv_t t;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conv_opts(&t);
        t.opts.auth_user = "user";
        t.opts.auth_pass = "secret";
        t.opts.auth_needs_tls = cases[i].needs_tls;
        conv_start(&t);
        srv_send(&t, "220 mx\r\n");
        assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
        expect(&t, "EHLO " HELO "\r\n");
        srv_send(&t, cases[i].ehlo);
        assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
        expect_silence(&t);
        assert_reply(smtp_client_failure(t.c, NULL), 0, "4.7.0", "EHLO", cases[i].text);
        conv_end(&t);
    }
}

static void test_tls_required_not_offered(void **state)
{
    char *err = NULL;
    tls_ctx_t *ctx = tls_client_ctx_new(NULL, &err);
    bool tls_failed = true;
    conv_t t;

    (void)state;
    assert_non_null(ctx);
    conv_opts(&t);
    t.opts.tls_level = SMTP_TLS_ENCRYPT;
    t.opts.tls_ctx = ctx;
    conv_start(&t);
    srv_send(&t, "220 mx\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    srv_send(&t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    expect_silence(&t);
    assert_reply(smtp_client_failure(t.c, &tls_failed), 0, "4.7.4", "EHLO",
                 "TLS is required, but was not offered by host " PEER);
    assert_false(tls_failed);
    conv_end(&t);

    /* MAY: not offered, go on in clear */
    conv_opts(&t);
    t.opts.tls_level = SMTP_TLS_MAY;
    t.opts.tls_ctx = ctx;
    session(&t, "250 PIPELINING\r\n");
    conv_end(&t);
    tls_ctx_free(&ctx);
}

/* ---------------------------------------------------------- real STARTTLS */

static char tmpdir[] = "/tmp/smtp_client_test.XXXXXX";
static char *cert_file;         /* self-signed for localhost */
static char *key_file;

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* make_cert - a self-signed CA certificate for localhost. */
static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name;

    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"localhost", -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, NID_subject_key_identifier, "hash");
    add_ext(x, NID_subject_alt_name, "DNS:localhost");
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static int setup(void **state)
{
    EVP_PKEY *key;
    X509 *x;
    FILE *f;

    (void)state;
    signal(SIGPIPE, SIG_DFL);   /* the client must never raise it */
    if (mkdtemp(tmpdir) == NULL || (key = EVP_EC_gen("P-256")) == NULL)
        return -1;
    cert_file = xasprintf("%s/cert.pem", tmpdir);
    key_file = xasprintf("%s/key.pem", tmpdir);
    x = make_cert(key);
    if ((f = fopen(cert_file, "w")) == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0)
        return -1;
    if ((f = fopen(key_file, "w")) == NULL
        || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0)
        return -1;
    X509_free(x);
    EVP_PKEY_free(key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert_file);
    unlink(key_file);
    xfree(&cert_file);
    xfree(&key_file);
    return rmdir(tmpdir);
}

/* tls_session_start - a session up to STARTTLS's 220 (sent as reply220)
 * with a client that trusts the test certificate. */
static void tls_session_start(conv_t *t, tls_ctx_t *cctx, const char *server_name,
                              const char *reply220)
{
    conv_opts(t);
    t->opts.tls_level = SMTP_TLS_VERIFY;
    t->opts.tls_ctx = cctx;
    t->opts.tls_server_name = server_name;
    conv_start(t);
    srv_send(t, "220 mx\r\n");
    assert_int_equal(io(t), SMTP_CLIENT_RUNNING);
    expect(t, "EHLO " HELO "\r\n");
    srv_send(t, "250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n");
    assert_int_equal(io(t), SMTP_CLIENT_RUNNING);
    expect(t, "STARTTLS\r\n");
    srv_send(t, reply220);
}

/* handshake - drive both ends until the server's handshake is done or
 * the client stops running; returns the client's status. */
static smtp_client_status handshake(conv_t *t, tls_ctx_t *sctx)
{
    struct pollfd p[2] = {{.fd = t->fd[0], .events = POLLIN}, {.fd = t->fd[1], .events = POLLIN}};
    smtp_client_status st = SMTP_CLIENT_RUNNING;
    tls_status sst = TLS_WANT_READ;

    t->srv_tls = tls_conn_new(sctx, t->fd[1], NULL);
    for (int round = 0; round < MAX_ROUNDS; round++) {
        st = io(t);
        if (st != SMTP_CLIENT_RUNNING)
            return st;
        if (sst != TLS_OK)
            sst = tls_handshake(t->srv_tls);
        if (sst == TLS_FAILED || sst == TLS_CLOSED)
            return st;
        if (sst == TLS_OK && smtp_client_wants(t->c) == SMTP_WANT_READ)
            return st;
        if (poll(p, 2, POLL_MS) < 1)
            fail_msg("the handshake stalled");
    }
    fail_msg("the handshake never ended");
    return st;
}

static void test_starttls(void **state)
{
    char *err = NULL;
    tls_ctx_t *sctx = tls_server_ctx_new(cert_file, key_file, &err);
    tls_ctx_t *cctx = tls_client_ctx_new(cert_file, &err);
    bool tls_failed = false;
    conv_t t;
    txn_t x;

    (void)state;
    assert_non_null(sctx);
    assert_non_null(cctx);
    tls_session_start(&t, cctx, "localhost", "220 2.0.0 go ahead\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    assert_int_equal(handshake(&t, sctx), SMTP_CLIENT_RUNNING);
    expect(&t, "EHLO " HELO "\r\n");
    srv_send(&t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_READY);
    assert_string_equal(smtp_client_tls_protocol(t.c), "TLSv1.3");
    assert_string_not_equal(smtp_client_tls_cipher(t.c), "");

    txn_init(&x, 1, ".secret\r\n");
    smtp_client_start(t.c, &x.txn);
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\nDATA\r\n");
    srv_send(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_RUNNING);
    expect(&t, "..secret\r\n.\r\n");
    srv_send(&t, "250 ok\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_DONE);
    assert_int_equal(smtp_client_rcpt_reply(t.c, 0)->code, 250);
    conv_end(&t);

    /* the certificate is not for the name wanted */
    tls_session_start(&t, cctx, "otherhost", "220 2.0.0 go ahead\r\n");
    assert_int_equal(handshake(&t, sctx), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, &tls_failed), 0, "4.7.5", "STARTTLS",
                 "Server certificate not verified: host " PEER);
    assert_true(tls_failed);
    conv_end(&t);

    /* STARTTLS refused */
    tls_session_start(&t, cctx, "localhost", "454 4.7.0 TLS not available\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_reply(smtp_client_failure(t.c, &tls_failed), 454, "4.7.0", "STARTTLS",
                 "454 4.7.0 TLS not available");
    assert_true(tls_failed);
    conv_end(&t);

    /* a reply injected after the 220, in clear */
    tls_session_start(&t, cctx, "localhost", "220 go ahead\r\n250 injected\r\n");
    assert_int_equal(io(&t), SMTP_CLIENT_FAILED);
    assert_string_equal(smtp_client_failure(t.c, &tls_failed)->text,
                        "conversation with " PEER " failed: unexpected data after the reply "
                        "to STARTTLS");
    assert_true(tls_failed);
    conv_end(&t);

    tls_ctx_free(&sctx);
    tls_ctx_free(&cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_one_at_a_time),
        cmocka_unit_test(test_drop_headers),
        cmocka_unit_test(test_subject_tag),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_prechecks),
        cmocka_unit_test(test_rset_and_reuse),
        cmocka_unit_test(test_pipelined_no_recipient),
        cmocka_unit_test(test_lmtp),
        cmocka_unit_test(test_big_body),
        cmocka_unit_test(test_eof_mid_data),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_auth_plain),
        cmocka_unit_test(test_auth_login),
        cmocka_unit_test(test_auth_impossible),
        cmocka_unit_test(test_tls_required_not_offered),
        cmocka_unit_test(test_starttls),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
