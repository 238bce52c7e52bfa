/* mailbox_test.c - the POP3 and IMAP clients of the fetcher (fetcher/
 * mailbox.h), first against a scripted server (a thread on 127.0.0.1 that
 * checks each command line and answers with canned bytes: happy sessions,
 * dot-unstuffing, garbage, over-long lines, a literal of {4000000000},
 * silence, refused credentials), then against a real Dovecot started by
 * tests/peers/dovecot_mailbox.sh (plain, STLS/STARTTLS and implicit TLS,
 * list -> fetch -> delete -> close with and without commit, a certificate
 * for another name, a wrong password).  The Dovecot cases print SKIP
 * when Dovecot cannot start (not installed, not root).
 *
 * No sleeps: every wait is a poll with a deadline that fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "../../fetcher/mailbox.h"
#include "timeutil.h"
#include "xalloc.h"

#define WAIT_MS     5000        /* the fake server gives up after this */
#define STEP_MS     3000        /* the client's timeout unless a test says */
#define SHORT_MS    300         /* a timeout a test waits for */
#define PASSWORD    "s3cr3t-pw"
#define DRIP_MS     100         /* a trickling server's pace */

/* =========================================================== fake server */

/* A script: "S:bytes" sends, "C:prefix" reads one line and checks that
 * it starts with prefix, "L:n" sends n bytes 'A' with no line end, "D:n"
 * sends n short lines DRIP_MS apart (a server that trickles), "W" waits
 * for the client to hang up.  After the last step the server
 * waits for the client to hang up too. */
typedef struct fake {
    int                lfd;
    unsigned           port;
    const char *const *script;
    pthread_t          th;
    char               failure[512];    /* "" when all went as scripted */
} fake_t;

/* fake_line - one line from fd (CRLF removed) into line; false on EOF
 * or after WAIT_MS. */
static bool fake_line(int fd, buf_t *in, buf_t *line)
{
    int64_t deadline = time_mono_ms() + WAIT_MS;

    for (;;) {
        char *lf = in->len ? memchr(in->data, '\n', in->len) : NULL;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char chunk[4096];
        ssize_t n;

        if (lf != NULL) {
            size_t len = (size_t)(lf - in->data);

            buf_reset(line);
            buf_append(line, in->data, len > 0 && lf[-1] == '\r' ? len - 1 : len);
            buf_consume(in, len + 1);
            return true;
        }
        if (time_mono_ms() >= deadline || poll(&p, 1, 100) < 0)
            return false;
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if ((n = read(fd, chunk, sizeof(chunk))) <= 0)
            return false;
        buf_append(in, chunk, (size_t)n);
    }
}

/* fake_hangup - wait (bounded) until the client closes. */
static void fake_hangup(int fd)
{
    int64_t deadline = time_mono_ms() + WAIT_MS;
    char chunk[4096];

    while (time_mono_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};

        if (poll(&p, 1, 100) > 0 && read(fd, chunk, sizeof(chunk)) <= 0)
            return;
    }
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    buf_t in = BUF_INIT, line = BUF_INIT;
    int fd;

    if (poll(&p, 1, WAIT_MS) != 1 || (fd = accept(f->lfd, NULL, NULL)) < 0) {
        snprintf(f->failure, sizeof(f->failure), "no client came");
        return NULL;
    }
    for (size_t i = 0; f->script[i] != NULL; i++) {
        const char *s = f->script[i];

        if (s[0] == 'S') {
            if (write(fd, s + 2, strlen(s + 2)) != (ssize_t)strlen(s + 2))
                snprintf(f->failure, sizeof(f->failure), "step %zu: write failed", i);
        } else if (s[0] == 'L') {
            size_t n = strtoul(s + 2, NULL, 10);
            char *a = xmalloc(n);

            memset(a, 'A', n);
            if (write(fd, a, n) != (ssize_t)n)
                snprintf(f->failure, sizeof(f->failure), "step %zu: write failed", i);
            xfree(&a);
        } else if (s[0] == 'C') {
            if (!fake_line(fd, &in, &line)) {
                snprintf(f->failure, sizeof(f->failure), "step %zu: no line, wanted \"%s\"",
                         i, s + 2);
                break;
            }
            if (strncmp(line.data, s + 2, strlen(s + 2)) != 0) {
                snprintf(f->failure, sizeof(f->failure), "step %zu: got \"%.200s\", wanted \"%s\"",
                         i, line.data, s + 2);
                break;
            }
        } else if (s[0] == 'D') {
            size_t n = strtoul(s + 2, NULL, 10);

            for (size_t k = 0; k < n; k++) {
                poll(NULL, 0, DRIP_MS);         /* the pace is what is tested */
                if (write(fd, "X-CAP\r\n", 7) != 7)
                    break;                      /* the client gave up: expected */
            }
        } else if (s[0] == 'W') {
            break;
        }
        if (f->failure[0])
            break;
    }
    fake_hangup(fd);
    close(fd);
    buf_free(&in);
    buf_free(&line);
    return NULL;
}

/* fake_start - a server on 127.0.0.1 (any port) playing script. */
static void fake_start(fake_t *f, const char *const *script)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);

    memset(f, 0, sizeof(*f));
    f->script = script;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

/* fake_end - join the server; the script must have gone as written. */
static void fake_end(fake_t *f)
{
    assert_int_equal(pthread_join(f->th, NULL), 0);
    close(f->lfd);
    if (f->failure[0])
        fail_msg("fake server: %s", f->failure);
}

static mailbox_server fake_srv(const fake_t *f, mailbox_protocol proto)
{
    return (mailbox_server){
        .host = "127.0.0.1", .port = f->port, .protocol = proto, .tls = MAILBOX_TLS_NONE,
        .verify = true, .user = "user", .password = PASSWORD, .timeout_ms = STEP_MS,
    };
}

/* open_fails - mailbox_open must fail with want; returns the error. */
static char *open_fails(const mailbox_server *srv, mailbox_status want)
{
    mailbox_status st = MAILBOX_OK;
    char *err = NULL;
    mailbox_t *m = mailbox_open(srv, &st, &err);

    if (m != NULL)
        mailbox_close(&m, false, NULL);
    assert_null(m);
    assert_non_null(err);
    if (st != want)
        fail_msg("status %s, wanted %s: %s", mailbox_status_name(st), mailbox_status_name(want),
                 err);
    assert_null(strstr(err, PASSWORD));
    return err;
}

static mailbox_t *open_ok(const mailbox_server *srv)
{
    mailbox_status st = MAILBOX_ERROR;
    char *err = NULL;
    mailbox_t *m = mailbox_open(srv, &st, &err);

    if (m == NULL)
        fail_msg("open: %s: %s", mailbox_status_name(st), err ? err : "?");
    assert_int_equal(st, MAILBOX_OK);
    return m;
}

static void assert_contains(const char *s, const char *part)
{
    if (s == NULL || strstr(s, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", s ? s : "(null)", part);
}

/* ========================================================= POP3, scripted */

static void test_pop3_happy(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:+OK\r\nUIDL\r\nSASL LOGIN PLAIN\r\nUSER\r\n.\r\n",
        "C:AUTH PLAIN AHVzZXIAczNjcjN0LXB3",     /* \0user\0s3cr3t-pw */
        "S:+OK logged in\r\n",
        "C:UIDL",
        "S:+OK\r\n1 aaa\r\n2 bbb\r\n.\r\n",
        "C:LIST",
        "S:+OK 2 messages\r\n1 31\r\n2 5000\r\n.\r\n",
        "C:RETR 1",
        "S:+OK\r\nSubject: x\r\n\r\n..dot\r\n...two\r\n.\r\n",
        "C:DELE 1",
        "S:+OK\r\n",
        "C:QUIT",
        "S:+OK bye\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL, other = {.uid = "zzz"};
    size_t n = 0;
    char uv[32], *err = NULL;
    buf_t out = BUF_INIT;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    m = open_ok(&srv);
    assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_OK);
    assert_int_equal(n, 2);
    assert_string_equal(uv, "");
    assert_string_equal(msgs[0].uid, "aaa");
    assert_int_equal(msgs[0].size, 31);
    assert_string_equal(msgs[1].uid, "bbb");
    assert_int_equal(msgs[1].size, 5000);
    buf_append_str(&out, "X: 1\r\n");      /* fetch appends */
    assert_int_equal(mailbox_fetch(m, &msgs[0], 1000, &out, &err), MAILBOX_OK);
    assert_string_equal(out.data, "X: 1\r\nSubject: x\r\n\r\n.dot\r\n..two\r\n");
    /* larger than max by its LIST size: refused without asking, session goes on */
    assert_int_equal(mailbox_fetch(m, &msgs[1], 1000, &out, &err), MAILBOX_TOO_BIG);
    assert_contains(err, "5000");
    xfree(&err);
    assert_false(mailbox_broken(m));
    assert_int_equal(mailbox_fetch(m, &other, 1000, &out, &err), MAILBOX_GONE);
    xfree(&err);
    assert_int_equal(out.len, strlen("X: 1\r\nSubject: x\r\n\r\n.dot\r\n..two\r\n"));
    assert_int_equal(mailbox_delete(m, &msgs[0], &err), MAILBOX_OK);
    assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);
    assert_null(m);
    assert_null(err);
    mailbox_msgs_free(&msgs, n);
    buf_free(&out);
    fake_end(&f);
}

static void test_pop3_user_pass_refused(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:-ERR what?\r\n",
        "C:USER user",
        "S:+OK\r\n",
        "C:PASS " PASSWORD,
        "S:-ERR [AUTH] Authentication failed for " PASSWORD "\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    err = open_fails(&srv, MAILBOX_AUTH_FAILED);     /* and the echo is scrubbed */
    assert_contains(err, "[AUTH] Authentication failed");
    xfree(&err);
    fake_end(&f);
}

static void test_pop3_in_use(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:+OK\r\nUSER\r\nUIDL\r\n.\r\n",
        "C:USER user",
        "S:+OK\r\n",
        "C:PASS ",
        "S:-ERR [IN-USE] Mailbox locked by another session\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    err = open_fails(&srv, MAILBOX_ERROR);          /* not a wrong password */
    assert_contains(err, "IN-USE");
    xfree(&err);
    fake_end(&f);
}

static void test_pop3_no_uidl(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:+OK\r\nUSER\r\n.\r\n",
        "C:USER user",
        "S:+OK\r\n",
        "C:PASS ",
        "S:+OK\r\n",
        "C:UIDL",
        "S:-ERR unknown command\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char uv[32], *err = NULL;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    m = open_ok(&srv);
    assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_ERROR);
    assert_contains(err, "server lacks UIDL");
    assert_int_equal(n, 0);
    assert_true(mailbox_broken(m));
    xfree(&err);
    assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);   /* nothing to commit */
    fake_end(&f);
}

static void test_pop3_stls_required(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:+OK\r\nUSER\r\nUIDL\r\n.\r\n",
        "W",                    /* never USER: no fallback to plain text */
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    srv.tls = MAILBOX_TLS_STARTTLS;
    err = open_fails(&srv, MAILBOX_ERROR);
    assert_contains(err, "STLS");
    xfree(&err);
    fake_end(&f);
}

/* a message longer than LIST said and than max: cut off, session broken */
static void test_pop3_retr_too_long(void **state)
{
    static const char *const script[] = {
        "S:+OK ready\r\n",
        "C:CAPA",
        "S:+OK\r\nUSER\r\nUIDL\r\n.\r\n",
        "C:USER user",
        "S:+OK\r\n",
        "C:PASS ",
        "S:+OK\r\n",
        "C:UIDL",
        "S:+OK\r\n1 aaa\r\n.\r\n",
        "C:LIST",
        "S:+OK\r\n1 10\r\n.\r\n",
        "C:RETR 1",
        "S:+OK\r\n0123456789012345678901234567890123456789\r\n"
        "0123456789012345678901234567890123456789\r\n",
        "L:100000",
        "W",
        NULL};
    fake_t f;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char uv[32], *err = NULL;
    buf_t out = BUF_INIT;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    m = open_ok(&srv);
    assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_OK);
    assert_int_equal(mailbox_fetch(m, &msgs[0], 50, &out, &err), MAILBOX_TOO_BIG);
    assert_int_equal(out.len, 0);
    assert_true(mailbox_broken(m));
    xfree(&err);
    assert_int_equal(mailbox_delete(m, &msgs[0], &err), MAILBOX_ERROR);
    xfree(&err);
    assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);
    mailbox_msgs_free(&msgs, n);
    buf_free(&out);
    fake_end(&f);
}

static void test_pop3_garbage_greeting(void **state)
{
    static const char *const script[] = {"S:HTTP/1.1 400 Bad Request\r\n", "W", NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    err = open_fails(&srv, MAILBOX_ERROR);
    assert_contains(err, "HTTP/1.1 400");
    xfree(&err);
    fake_end(&f);
}

static void test_pop3_long_line(void **state)
{
    static const char *const script[] = {"S:+OK ", "L:5000", "W", NULL};
    fake_t f;
    mailbox_server srv;
    char *err;
    int64_t t0 = time_mono_ms();

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    srv.timeout_ms = 20000;            /* the cap decides, not the clock */
    err = open_fails(&srv, MAILBOX_ERROR);
    assert_contains(err, "line too long");
    assert_true(time_mono_ms() - t0 < 5000);
    xfree(&err);
    fake_end(&f);
}

/* silence: the deadline ends it, neither earlier nor much later */
static void test_pop3_silent(void **state)
{
    static const char *const script[] = {"W", NULL};
    fake_t f;
    mailbox_server srv;
    char *err;
    int64_t t0 = time_mono_ms(), took;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    srv.timeout_ms = SHORT_MS;
    err = open_fails(&srv, MAILBOX_ERROR);
    took = time_mono_ms() - t0;
    assert_contains(err, "timed out");
    assert_true(took >= SHORT_MS - 10);
    assert_true(took < SHORT_MS + 2000);
    xfree(&err);
    fake_end(&f);
}

/* lines that each come in time, but never end: session_ms ends it */
static void test_pop3_trickle(void **state)
{
    static const char *const script[] = {"S:+OK ready\r\n", "C:CAPA", "S:+OK\r\n", "D:100", NULL};
    fake_t f;
    mailbox_server srv;
    char *err;
    int64_t t0 = time_mono_ms(), took;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_POP3);
    srv.timeout_ms = SHORT_MS;
    srv.session_ms = 4 * SHORT_MS;
    err = open_fails(&srv, MAILBOX_ERROR);
    took = time_mono_ms() - t0;
    assert_contains(err, "the session took longer than 1200 ms");
    assert_true(took >= 4 * SHORT_MS - 10);
    assert_true(took < 4 * SHORT_MS + 2000);
    xfree(&err);
    fake_end(&f);
}

/* ========================================================= IMAP, scripted */

static void test_imap_happy(void **state)
{
    static const char *const script[] = {
        "S:* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        "C:C1 LOGIN \"user\" \"a\\\"b\\\\c\"",
        "S:C1 OK [CAPABILITY IMAP4rev1 UIDPLUS] done\r\n",
        "C:C2 SELECT \"INBOX\"",
        "S:* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen \\Deleted)\r\n"
        "* OK [UIDVALIDITY 777] UIDs valid\r\n* OK [UIDNEXT 12] next\r\nC2 OK [READ-WRITE] done\r\n",
        "C:C3 UID FETCH 1:* (UID RFC822.SIZE)",
        "S:* 1 FETCH (UID 10 RFC822.SIZE 12)\r\n"
        "* 2 FETCH (RFC822.SIZE 99 FLAGS (\\Seen) UID 11)\r\nC3 OK done\r\n",
        "C:C4 UID FETCH 10 BODY.PEEK[]",
        "S:* 1 FETCH (UID 10 BODY[] {12}\r\nHello\r\nWorld)\r\nC4 OK done\r\n",
        "C:C5 UID FETCH 11 BODY.PEEK[]",
        "S:* 1 FETCH (FLAGS (\\Seen))\r\nC5 OK nothing\r\n",
        "C:C6 UID STORE 10 +FLAGS.SILENT (\\Deleted)",
        "S:C6 OK stored\r\n",
        "C:C7 UID EXPUNGE 10",
        "S:* 1 EXPUNGE\r\nC7 OK expunged\r\n",
        "C:C8 LOGOUT",
        "S:* BYE logging out\r\nC8 OK bye\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char uv[32], *err = NULL;
    buf_t out = BUF_INIT;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    srv.password = "a\"b\\c";
    m = open_ok(&srv);
    assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_OK);
    assert_string_equal(uv, "777");
    assert_int_equal(n, 2);
    assert_string_equal(msgs[0].uid, "10");
    assert_int_equal(msgs[0].size, 12);
    assert_string_equal(msgs[1].uid, "11");
    assert_int_equal(msgs[1].size, 99);
    assert_int_equal(mailbox_fetch(m, &msgs[0], 1000, &out, &err), MAILBOX_OK);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "Hello\r\nWorld", 12);
    /* gone: no FETCH data for it */
    assert_int_equal(mailbox_fetch(m, &msgs[1], 1000, &out, &err), MAILBOX_GONE);
    assert_contains(err, "gone");
    xfree(&err);
    assert_int_equal(out.len, 12);
    assert_int_equal(mailbox_delete(m, &msgs[0], &err), MAILBOX_OK);
    assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);
    assert_null(err);
    mailbox_msgs_free(&msgs, n);
    buf_free(&out);
    fake_end(&f);
}

/* no UIDPLUS: EXPUNGE; no commit: the \Deleted marks are taken back */
static void test_imap_expunge_and_keep(void **state)
{
    static const char *const script1[] = {
        "S:* PREAUTH [CAPABILITY IMAP4rev1] hello\r\n",
        "C:C1 SELECT \"Other \\\"box\\\"\"",
        "S:* 3 EXISTS\r\n* OK [UIDVALIDITY 5] ok\r\nC1 OK done\r\n",
        "C:C2 UID FETCH 1:*",
        "S:* 1 FETCH (UID 1 RFC822.SIZE 1)\r\n* 2 FETCH (UID 2 RFC822.SIZE 1)\r\n"
        "* 3 FETCH (UID 3 RFC822.SIZE 1)\r\nC2 OK done\r\n",
        "C:C3 UID STORE 1 +FLAGS.SILENT (\\Deleted)",
        "S:C3 OK\r\n",
        "C:C4 UID STORE 2 +FLAGS.SILENT (\\Deleted)",
        "S:C4 OK\r\n",
        "C:C5 EXPUNGE",
        "S:* 1 EXPUNGE\r\n* 1 EXPUNGE\r\nC5 OK\r\n",
        "C:C6 LOGOUT",
        "S:* BYE\r\nC6 OK\r\n",
        NULL};
    static const char *const script2[] = {
        "S:* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS] hello\r\n",
        "C:C1 SELECT \"Other \\\"box\\\"\"",
        "S:* 3 EXISTS\r\n* OK [UIDVALIDITY 5] ok\r\nC1 OK done\r\n",
        "C:C2 UID FETCH 1:*",
        "S:* 1 FETCH (UID 1 RFC822.SIZE 1)\r\n* 2 FETCH (UID 2 RFC822.SIZE 1)\r\n"
        "* 3 FETCH (UID 3 RFC822.SIZE 1)\r\nC2 OK done\r\n",
        "C:C3 UID STORE 3 +FLAGS.SILENT (\\Deleted)",
        "S:C3 OK\r\n",
        "C:C4 UID STORE 1 +FLAGS.SILENT (\\Deleted)",
        "S:C4 OK\r\n",
        "C:C5 UID STORE 2 +FLAGS.SILENT (\\Deleted)",
        "S:C5 OK\r\n",
        "C:C6 UID STORE 1:3 -FLAGS.SILENT (\\Deleted)",
        "S:C6 OK\r\n",
        "C:C7 LOGOUT",
        "S:* BYE\r\nC7 OK\r\n",
        NULL};
    const char *const *scripts[] = {script1, script2};

    (void)state;
    for (int round = 0; round < 2; round++) {
        fake_t f;
        mailbox_server srv;
        mailbox_t *m;
        mailbox_msg *msgs = NULL;
        size_t n = 0;
        char uv[32], *err = NULL;

        fake_start(&f, scripts[round]);
        srv = fake_srv(&f, MAILBOX_IMAP);
        srv.folder = "Other \"box\"";
        m = open_ok(&srv);
        assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_OK);
        assert_int_equal(n, 3);
        assert_string_equal(uv, "5");
        if (round == 1)
            assert_int_equal(mailbox_delete(m, &msgs[2], &err), MAILBOX_OK);
        assert_int_equal(mailbox_delete(m, &msgs[0], &err), MAILBOX_OK);
        assert_int_equal(mailbox_delete(m, &msgs[1], &err), MAILBOX_OK);
        assert_int_equal(mailbox_close(&m, round == 0, &err), MAILBOX_OK);
        mailbox_msgs_free(&msgs, n);
        fake_end(&f);
    }
}

/* a password with 8-bit bytes goes as a literal, after the go-ahead */
static void test_imap_literal_login_refused(void **state)
{
    static const char *const script[] = {
        "S:* OK IMAP4rev1 ready\r\n",
        "C:C1 CAPABILITY",
        "S:* CAPABILITY IMAP4rev1 IDLE\r\nC1 OK\r\n",
        "C:C2 LOGIN \"user\" {6}",
        "S:+ go ahead\r\n",
        "C:p\xc3\xa4 ss",
        "S:C2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    srv.password = "p\xc3\xa4 ss";
    err = open_fails(&srv, MAILBOX_AUTH_FAILED);
    assert_contains(err, "AUTHENTICATIONFAILED");
    xfree(&err);
    fake_end(&f);
}

/* AUTHENTICATE PLAIN without SASL-IR: the response after "+" */
static void test_imap_authenticate(void **state)
{
    static const char *const script[] = {
        "S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        "C:C1 AUTHENTICATE PLAIN",
        "S:+ \r\n",
        "C:AHVzZXIAczNjcjN0LXB3",
        "S:C1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        NULL};
    static const char *const script_ir[] = {
        "S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n",
        "C:C1 AUTHENTICATE PLAIN AHVzZXIAczNjcjN0LXB3",
        "S:C1 NO [UNAVAILABLE] try later\r\n",
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    err = open_fails(&srv, MAILBOX_AUTH_FAILED);
    xfree(&err);
    fake_end(&f);
    fake_start(&f, script_ir);
    srv = fake_srv(&f, MAILBOX_IMAP);
    err = open_fails(&srv, MAILBOX_ERROR);          /* UNAVAILABLE: not the password */
    assert_contains(err, "UNAVAILABLE");
    xfree(&err);
    fake_end(&f);
}

/* {4000000000}: the message literal is refused unread, the session ends */
static void test_imap_huge_literal(void **state)
{
    static const char *const script[] = {
        "S:* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n",
        "C:C1 SELECT \"INBOX\"",
        "S:* 1 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nC1 OK\r\n",
        "C:C2 UID FETCH 1:*",
        "S:* 1 FETCH (UID 4 RFC822.SIZE 100)\r\nC2 OK\r\n",
        "C:C3 UID FETCH 4 BODY.PEEK[]",
        "S:* 1 FETCH (UID 4 BODY[] {4000000000}\r\nFrom: a\r\n",
        "W",
        NULL};
    fake_t f;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL, *again = NULL;
    size_t n = 0, n2 = 0;
    char uv[32], *err = NULL;
    buf_t out = BUF_INIT;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    m = open_ok(&srv);
    assert_int_equal(mailbox_list(m, &msgs, &n, uv, &err), MAILBOX_OK);
    assert_int_equal(mailbox_fetch(m, &msgs[0], 1 << 20, &out, &err), MAILBOX_TOO_BIG);
    assert_contains(err, "4000000000");
    xfree(&err);
    assert_int_equal(out.len, 0);
    assert_true(mailbox_broken(m));
    assert_int_equal(mailbox_list(m, &again, &n2, uv, &err), MAILBOX_ERROR);
    xfree(&err);
    assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);
    mailbox_msgs_free(&msgs, n);
    buf_free(&out);
    fake_end(&f);
}

/* a huge literal anywhere else is an error at once */
static void test_imap_huge_literal_elsewhere(void **state)
{
    static const char *const script[] = {"S:* OK [ALERT] {4000000000}\r\n", "W", NULL};
    fake_t f;
    mailbox_server srv;
    char *err;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    err = open_fails(&srv, MAILBOX_ERROR);
    assert_contains(err, "literal of 4000000000 bytes");
    xfree(&err);
    fake_end(&f);
}

static void test_imap_bad_greetings(void **state)
{
    static const char *const garbage[] = {"S:220 smtp.example ESMTP\r\n", "W", NULL};
    static const char *const bye[] = {"S:* BYE too many connections\r\n", "W", NULL};
    static const char *const preauth[] = {"S:* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n",
                                          "W", NULL};
    static const char *const no_tls[] = {"S:* OK [CAPABILITY IMAP4rev1] hi\r\n", "W", NULL};
    static const char *const long_line[] = {"S:* OK ", "L:70000", "W", NULL};
    static const char *const wrong_tag[] = {"S:* OK [CAPABILITY IMAP4rev1] hi\r\n",
                                            "C:C1 LOGIN", "S:X9 OK what\r\n", "W", NULL};
    static const struct {
        const char *const *script;
        mailbox_tls tls;
        const char *why;
    } cases[] = {
        {garbage, MAILBOX_TLS_NONE, "unexpected greeting"},
        {bye, MAILBOX_TLS_NONE, "too many connections"},
        {preauth, MAILBOX_TLS_STARTTLS, "PREAUTH"},
        {no_tls, MAILBOX_TLS_STARTTLS, "does not offer STARTTLS"},
        {long_line, MAILBOX_TLS_NONE, "line too long"},
        {wrong_tag, MAILBOX_TLS_NONE, "unknown tag"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_t f;
        mailbox_server srv;
        char *err;

        fake_start(&f, cases[i].script);
        srv = fake_srv(&f, MAILBOX_IMAP);
        srv.tls = cases[i].tls;
        err = open_fails(&srv, MAILBOX_ERROR);
        assert_contains(err, cases[i].why);
        xfree(&err);
        fake_end(&f);
    }
}

static void test_imap_silent_select(void **state)
{
    static const char *const script[] = {
        "S:* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
        "C:C1 SELECT",
        "W",
        NULL};
    fake_t f;
    mailbox_server srv;
    char *err;
    int64_t t0, took;

    (void)state;
    fake_start(&f, script);
    srv = fake_srv(&f, MAILBOX_IMAP);
    srv.timeout_ms = SHORT_MS;
    t0 = time_mono_ms();
    err = open_fails(&srv, MAILBOX_ERROR);
    took = time_mono_ms() - t0;
    assert_contains(err, "timed out");
    assert_contains(err, "SELECT");
    assert_true(took < SHORT_MS + 2000);
    xfree(&err);
    fake_end(&f);
}

static void test_connect_refused(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    mailbox_server srv;
    fake_t f = {0};
    char *err;
    int fd;

    (void)state;
    /* a port that was just free and has no listener */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    f.port = ntohs(sa.sin_port);
    srv = fake_srv(&f, MAILBOX_POP3);
    err = open_fails(&srv, MAILBOX_ERROR);
    assert_contains(err, "cannot connect");
    xfree(&err);
    close(fd);
}

/* ================================================================ Dovecot */

#define DC_ADDR       "127.0.0.61"     /* the certificate's address */
#define DC_OTHER_ADDR "127.0.0.62"     /* same server, not in the certificate */
#define DC_PORT       10110            /* POP3; +1 POP3S, +2 IMAP, +3 IMAPS */
#define DC_SCRIPT     "tests/peers/dovecot_mailbox.sh"
#define DC_USERS      12

static char dc_dir[] = "/tmp/mailbox_test.XXXXXX";
static bool dc_up;
static int dc_next_user;

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext != NULL) {
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
}

/* make_cert - a self-signed certificate for IP:DC_ADDR into dir. */
static bool make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    FILE *f;
    bool ok = key != NULL && x != NULL;

    if (ok) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mbx.test",
                                   -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509_set_pubkey(x, key);
        add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, NID_subject_alt_name, "IP:" DC_ADDR ",DNS:mbx.test");
        ok = X509_sign(x, key, EVP_sha256()) > 0;
    }
    if (ok && (f = fopen(cert_path, "w")) != NULL) {
        ok = PEM_write_X509(f, x) == 1;
        fclose(f);
    }
    if (ok && (f = fopen(key_path, "w")) != NULL) {
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
        fclose(f);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

static char *dc_path(const char *name)
{
    return xasprintf("%s/%s", dc_dir, name);
}

static int dc_setup(void **state)
{
    char *cert = dc_path("cert.pem"), *key = dc_path("key.pem"), *users = dc_path("users");
    char *cmd;
    FILE *f;
    int rc;

    (void)state;
    dc_up = false;
    if (chmod(dc_dir, 0755) != 0 || access(DC_SCRIPT, R_OK) != 0 || !make_cert(cert, key) || (f = fopen(users, "w")) == NULL)
        goto out;
    for (int i = 0; i < DC_USERS; i++)
        fprintf(f, "u%d@mbx.test:{PLAIN}pw-%d\n", i, i);
    fclose(f);
    cmd = xasprintf("sh %s start %s/dc %s,%s %d %s %s %s >%s/start.log 2>&1", DC_SCRIPT, dc_dir,
                    DC_ADDR, DC_OTHER_ADDR, DC_PORT, cert, key, users, dc_dir);
    rc = system(cmd);
    xfree(&cmd);
    dc_up = WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
    if (!dc_up) {
        char line[512];

        fprintf(stderr, "# SKIP: Dovecot did not start (exit %d): the Dovecot cases skip\n",
                WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
        cmd = xasprintf("%s/start.log", dc_dir);
        if ((f = fopen(cmd, "r")) != NULL) {
            for (int i = 0; i < 20 && fgets(line, sizeof(line), f) != NULL; i++)
                fprintf(stderr, "#   %s", line);
            fclose(f);
        }
        xfree(&cmd);
    }
out:
    xfree(&cert);
    xfree(&key);
    xfree(&users);
    return 0;
}

static int dc_teardown(void **state)
{
    char *cmd = xasprintf("sh %s stop %s/dc >/dev/null 2>&1; rm -rf %s", DC_SCRIPT, dc_dir,
                          dc_dir);

    (void)state;
    if (system(cmd) != 0)
        fprintf(stderr, "# cleanup of %s failed\n", dc_dir);
    xfree(&cmd);
    return 0;
}

/* A user of its own for each test, with n messages in its Maildir. */
typedef struct dc_box {
    char   user[32], password[32];
    char  *body[8];             /* as fetched: CRLF line ends */
    size_t n;
} dc_box;

static void mkdir_owned(const char *path, const struct passwd *pw)
{
    assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
    assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
}

static void dc_box_new(dc_box *b, size_t n)
{
    int u = dc_next_user++;
    struct passwd *pw = getpwnam("mailtest");
    char *dir;

    assert_true(u < DC_USERS);
    assert_non_null(pw);
    memset(b, 0, sizeof(*b));
    snprintf(b->user, sizeof(b->user), "u%d@mbx.test", u);
    snprintf(b->password, sizeof(b->password), "pw-%d", u);
    b->n = n;
    dir = xasprintf("%s/dc/mail/mbx.test", dc_dir);
    mkdir_owned(dir, pw);
    xfree(&dir);
    dir = xasprintf("%s/dc/mail/mbx.test/u%d", dc_dir, u);
    mkdir_owned(dir, pw);
    for (size_t i = 0; i < n; i++) {
        static const char *const subs[] = {"tmp", "new", "cur"};
        char *path, *lf;
        FILE *f;

        for (size_t s = 0; s < 3; s++) {
            path = xasprintf("%s/%s", dir, subs[s]);
            mkdir_owned(path, pw);
            xfree(&path);
        }
        b->body[i] = xasprintf("From: a@remote.test\r\nSubject: message %zu\r\n\r\n"
                               "line one\r\n.leading dot\r\n..two dots\r\n.\r\nend %zu\r\n", i, i);
        /* Maildir keeps LF line ends; POP3 and IMAP give CRLF */
        lf = xstrdup(b->body[i]);
        for (char *r = lf, *w = lf;; r++) {
            if (*r != '\r')
                *w++ = *r;
            if (*r == 0)
                break;
        }
        path = xasprintf("%s/new/%zu.M%zuP%d.test", dir, 1700000000 + i, i, (int)getpid());
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(lf, f);
        fclose(f);
        assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
        xfree(&path);
        xfree(&lf);
    }
    xfree(&dir);
}

static void dc_box_free(dc_box *b)
{
    for (size_t i = 0; i < b->n; i++)
        xfree(&b->body[i]);
}

static mailbox_server dc_srv(const dc_box *b, mailbox_protocol proto, mailbox_tls tls)
{
    static char ca[256];
    unsigned port = DC_PORT + (proto == MAILBOX_IMAP ? 2 : 0)
        + (tls == MAILBOX_TLS_IMPLICIT ? 1 : 0);

    snprintf(ca, sizeof(ca), "%s/cert.pem", dc_dir);
    return (mailbox_server){
        .host = DC_ADDR, .port = port, .protocol = proto, .tls = tls, .verify = true,
        .ca_file = ca, .user = b->user, .password = b->password, .timeout_ms = 10000,
    };
}

/* list_ok - open, list (n messages expected), the session stays open. */
static mailbox_t *list_ok(const mailbox_server *srv, mailbox_msg **msgs, size_t *n,
                          size_t want)
{
    mailbox_t *m = open_ok(srv);
    char uv[32], *err = NULL;

    if (mailbox_list(m, msgs, n, uv, &err) != MAILBOX_OK)
        fail_msg("list: %s", err);
    assert_int_equal(*n, want);
    if (srv->protocol == MAILBOX_IMAP)
        assert_true(uv[0] != 0);
    else
        assert_string_equal(uv, "");
    return m;
}

/* dc_cycle - list, fetch all (compared with what was put there), delete
 * one and close without commit (it stays), delete it and commit (gone). */
static void dc_cycle(mailbox_protocol proto, mailbox_tls tls)
{
    dc_box b;
    mailbox_server srv;
    mailbox_t *m;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char *err = NULL;

    if (!dc_up)
        skip();
    dc_box_new(&b, 3);
    srv = dc_srv(&b, proto, tls);
    m = list_ok(&srv, &msgs, &n, 3);
    for (size_t i = 0; i < n; i++) {
        buf_t out = BUF_INIT;
        bool found = false;

        if (mailbox_fetch(m, &msgs[i], 1 << 20, &out, &err) != MAILBOX_OK)
            fail_msg("fetch: %s", err);
        assert_int_equal(out.len, msgs[i].size);
        for (size_t k = 0; k < b.n; k++)
            found |= strcmp(out.data, b.body[k]) == 0;
        if (!found)
            fail_msg("fetched \"%s\": not one of the messages", out.data);
        /* too big by the listed size: refused, the session goes on */
        assert_int_equal(mailbox_fetch(m, &msgs[i], 10, &out, &err), MAILBOX_TOO_BIG);
        xfree(&err);
        buf_free(&out);
    }
    assert_int_equal(mailbox_delete(m, &msgs[1], &err), MAILBOX_OK);
    assert_int_equal(mailbox_close(&m, false, &err), MAILBOX_OK);
    mailbox_msgs_free(&msgs, n);

    m = list_ok(&srv, &msgs, &n, 3);            /* kept */
    assert_int_equal(mailbox_delete(m, &msgs[1], &err), MAILBOX_OK);
    if (mailbox_close(&m, true, &err) != MAILBOX_OK)
        fail_msg("close: %s", err);
    {
        char *gone = xstrdup(msgs[1].uid);
        mailbox_msg *after = NULL;
        size_t n2 = 0;

        m = list_ok(&srv, &after, &n2, 2);      /* removed */
        for (size_t i = 0; i < n2; i++)
            assert_string_not_equal(after[i].uid, gone);
        assert_int_equal(mailbox_close(&m, true, &err), MAILBOX_OK);
        mailbox_msgs_free(&after, n2);
        xfree(&gone);
    }
    mailbox_msgs_free(&msgs, n);
    dc_box_free(&b);
}

static void test_dc_pop3_plain(void **state) { (void)state; dc_cycle(MAILBOX_POP3, MAILBOX_TLS_NONE); }
static void test_dc_pop3_stls(void **state) { (void)state; dc_cycle(MAILBOX_POP3, MAILBOX_TLS_STARTTLS); }
static void test_dc_pop3_implicit(void **state) { (void)state; dc_cycle(MAILBOX_POP3, MAILBOX_TLS_IMPLICIT); }
static void test_dc_imap_plain(void **state) { (void)state; dc_cycle(MAILBOX_IMAP, MAILBOX_TLS_NONE); }
static void test_dc_imap_starttls(void **state) { (void)state; dc_cycle(MAILBOX_IMAP, MAILBOX_TLS_STARTTLS); }
static void test_dc_imap_implicit(void **state) { (void)state; dc_cycle(MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT); }

/* the certificate names DC_ADDR: reaching the same server as
 * DC_OTHER_ADDR fails verification, and works with verify off */
static void test_dc_wrong_host(void **state)
{
    static const struct {
        mailbox_protocol proto;
        mailbox_tls tls;
    } cases[] = {
        {MAILBOX_POP3, MAILBOX_TLS_STARTTLS}, {MAILBOX_POP3, MAILBOX_TLS_IMPLICIT},
        {MAILBOX_IMAP, MAILBOX_TLS_STARTTLS}, {MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT},
    };
    dc_box b;

    (void)state;
    if (!dc_up)
        skip();
    dc_box_new(&b, 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mailbox_server srv = dc_srv(&b, cases[i].proto, cases[i].tls);
        mailbox_msg *msgs = NULL;
        size_t n = 0;
        mailbox_t *m;
        char *err;

        srv.host = DC_OTHER_ADDR;
        err = open_fails(&srv, MAILBOX_ERROR);
        assert_contains(err, "certificate verification failed");
        xfree(&err);
        srv.verify = false;
        m = list_ok(&srv, &msgs, &n, 1);
        assert_int_equal(mailbox_close(&m, false, NULL), MAILBOX_OK);
        mailbox_msgs_free(&msgs, n);
        /* and with verification, a CA that is not the server's */
        srv.host = DC_ADDR;
        srv.verify = true;
        srv.ca_file = NULL;                     /* the system's trust store */
        err = open_fails(&srv, MAILBOX_ERROR);
        assert_contains(err, "certificate verification failed");
        xfree(&err);
    }
    dc_box_free(&b);
}

static void test_dc_wrong_password(void **state)
{
    dc_box b;
    mailbox_server srv;
    char *err;

    (void)state;
    if (!dc_up)
        skip();
    dc_box_new(&b, 0);
    snprintf(b.password, sizeof(b.password), "not-the-password");
    srv = dc_srv(&b, MAILBOX_POP3, MAILBOX_TLS_STARTTLS);
    err = open_fails(&srv, MAILBOX_AUTH_FAILED);
    xfree(&err);
    srv = dc_srv(&b, MAILBOX_IMAP, MAILBOX_TLS_IMPLICIT);
    err = open_fails(&srv, MAILBOX_AUTH_FAILED);
    xfree(&err);
    dc_box_free(&b);
}

int main(void)
{
    const struct CMUnitTest scripted[] = {
        cmocka_unit_test(test_pop3_happy),
        cmocka_unit_test(test_pop3_user_pass_refused),
        cmocka_unit_test(test_pop3_in_use),
        cmocka_unit_test(test_pop3_no_uidl),
        cmocka_unit_test(test_pop3_stls_required),
        cmocka_unit_test(test_pop3_retr_too_long),
        cmocka_unit_test(test_pop3_garbage_greeting),
        cmocka_unit_test(test_pop3_long_line),
        cmocka_unit_test(test_pop3_silent),
        cmocka_unit_test(test_pop3_trickle),
        cmocka_unit_test(test_imap_happy),
        cmocka_unit_test(test_imap_expunge_and_keep),
        cmocka_unit_test(test_imap_literal_login_refused),
        cmocka_unit_test(test_imap_authenticate),
        cmocka_unit_test(test_imap_huge_literal),
        cmocka_unit_test(test_imap_huge_literal_elsewhere),
        cmocka_unit_test(test_imap_bad_greetings),
        cmocka_unit_test(test_imap_silent_select),
        cmocka_unit_test(test_connect_refused),
    };
    const struct CMUnitTest dovecot[] = {
        cmocka_unit_test(test_dc_pop3_plain),
        cmocka_unit_test(test_dc_pop3_stls),
        cmocka_unit_test(test_dc_pop3_implicit),
        cmocka_unit_test(test_dc_imap_plain),
        cmocka_unit_test(test_dc_imap_starttls),
        cmocka_unit_test(test_dc_imap_implicit),
        cmocka_unit_test(test_dc_wrong_host),
        cmocka_unit_test(test_dc_wrong_password),
    };
    int failed;

    signal(SIGPIPE, SIG_IGN);
    failed = cmocka_run_group_tests_name("mailbox_scripted", scripted, NULL, NULL);
    if (mkdtemp(dc_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    failed += cmocka_run_group_tests_name("mailbox_dovecot", dovecot, dc_setup, dc_teardown);
    return failed;
}
