/* bounce_test.c - delivery status notifications: every kind of report,
 * its MIME structure and RFC 3464 fields, what is returned of the
 * original, hostile text from outside, and (when Debian's python3 is
 * there) a parse of a report with Python's email package. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../delivery/bounce.h"
#include "xalloc.h"

#define PYTHON "/usr/bin/python3"
#define T0 1770000000000000ull      /* some wall time, microseconds */

static const char ORIG_BODY[] =
    "From: <sender@client.example>\r\n"
    "To: <rcpt@example.net>\r\n"
    "Subject: the original\r\n"
    "Message-ID: <orig-1@client.example>\r\n"
    "\r\n"
    "first body line\r\n"
    "second body line\r\n";
static const char ORIG_RECEIVED[] =
    "Received: from client.example (client.example [192.0.2.7])\r\n"
    "\tby mx.example.test (correio) with ESMTP id 0000000000000ABCD;\r\n"
    "\tMon, 2 Feb 2026 10:00:00 +0000\r\n";

/* A composed report and the original it speaks of. */
typedef struct fixture {
    Envelope env;
    ProtobufCBinaryData ph;
    dsn_report rep;
    dsn_rcpt rcpt[3];
    uint8_t *msg;
    size_t len;
    char *text;         /* msg as a C string (reports hold no NUL) */
} fixture;

static void fixture_init(fixture *f, dsn_action kind, const char *body)
{
    memset(f, 0, sizeof(*f));
    correio__envelope__init(&f->env);
    f->env.queue_id = "0000000000000ABCD";
    f->env.reverse_path = "sender@client.example";
    f->env.envid = "";
    f->env.received_at = T0;
    f->ph.data = (uint8_t *)ORIG_RECEIVED;
    f->ph.len = strlen(ORIG_RECEIVED);
    f->env.n_prepend_headers = 1;
    f->env.prepend_headers = &f->ph;
    f->env.body.data = (uint8_t *)body;
    f->env.body.len = strlen(body);
    f->rep.kind = kind;
    f->rep.reporting_mta = "mx.example.test";
    f->rep.orig = &f->env;
    f->rep.size_limit = 50000;
    f->rep.now_us = T0 + 5 * 3600 * 1000000ull;
    f->rep.rcpt = f->rcpt;
    f->rep.n = 1;
    f->rcpt[0] = (dsn_rcpt){
        .address = "rcpt@example.net", .orcpt = "", .action = kind,
        .status = kind == DSN_FAILED ? "5.1.1" : kind == DSN_DELAYED ? "4.4.1" : "2.0.0",
        .remote_mta = "mx.example.net",
        .diagnostic = kind == DSN_FAILED ? "550 5.1.1 <rcpt@example.net>: no such user"
                      : kind == DSN_DELAYED ? "451 4.4.1 try again later" : "250 2.0.0 Ok",
        .text = "", .last_attempt_us = T0 + 3600 * 1000000ull,
        .retry_until_us = T0 + 5 * 24 * 3600 * 1000000ull,
    };
}

static void compose(fixture *f)
{
    f->msg = bounce_compose(&f->rep, &f->len);
    assert_non_null(f->msg);
    assert_int_equal(memchr(f->msg, '\0', f->len), NULL);
    f->text = xmemdup(f->msg, f->len);
}

static void fixture_free(fixture *f)
{
    xfree(&f->msg);
    xfree(&f->text);
}

/* header_end - the offset of the empty line ending the top-level header. */
static size_t header_end(const char *text)
{
    const char *e = strstr(text, "\r\n\r\n");
    assert_non_null(e);
    return (size_t)(e - text) + 2;
}

/* has_header - is "Name: value" a (whole, unfolded) line of the top header? */
static bool has_header(const char *text, const char *line)
{
    size_t end = header_end(text), n = strlen(line);

    for (const char *p = text; p && (size_t)(p - text) < end; p = strstr(p, "\r\n")) {
        if (p != text)
            p += 2;
        if (strncmp(p, line, n) == 0 && p[n] == '\r')
            return true;
    }
    return false;
}

/* boundary_of - the boundary parameter (malloc'ed). */
static char *boundary_of(const char *text)
{
    const char *b = strstr(text, "boundary=\"");
    const char *q;

    assert_non_null(b);
    b += strlen("boundary=\"");
    q = strchr(b, '"');
    assert_non_null(q);
    assert_true(q - b > 0 && q - b <= 70);     /* RFC 2046 5.1.1 */
    return xmemdup(b, (size_t)(q - b));
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* check_lines - CRLF everywhere, no line over 998 octets; returns the
 * longest line. */
static size_t check_lines(const fixture *f)
{
    size_t longest = 0, start = 0;

    for (size_t i = 0; i < f->len; i++) {
        if (f->msg[i] == '\n') {
            assert_true(i > 0 && f->msg[i - 1] == '\r');
            if (i - 1 - start > longest)
                longest = i - 1 - start;
            start = i + 1;
        } else if (f->msg[i] == '\r') {
            assert_true(i + 1 < f->len && f->msg[i + 1] == '\n');
        }
    }
    assert_int_equal(start, f->len);            /* ends with CRLF */
    assert_true(longest <= 998);
    return longest;
}

/* check_structure - three parts with the expected types, closed. */
static void check_structure(const fixture *f, const char *third_type)
{
    char *b = boundary_of(f->text);
    char *delim = xasprintf("\r\n--%s\r\n", b);
    char *close = xasprintf("\r\n--%s--\r\n", b);
    char *first = xasprintf("\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n--%s\r\n", b);
    const char *p3;

    assert_int_equal(count(f->text, b), 5);     /* the parameter, 4 delimiter lines */
    assert_non_null(strstr(f->text, first));
    assert_int_equal(count(f->text, delim), 3);
    assert_int_equal(count(f->text, close), 1);
    assert_int_equal(strcmp(f->text + f->len - strlen(close), close), 0);
    assert_non_null(strstr(f->text, "Content-Type: text/plain; charset=us-ascii\r\n"));
    assert_non_null(strstr(f->text, "Content-Type: message/delivery-status\r\n\r\n"));
    p3 = strstr(f->text, third_type);
    assert_non_null(p3);
    assert_true(p3 > strstr(f->text, "message/delivery-status"));
    check_lines(f);
    xfree(&b);
    xfree(&delim);
    xfree(&close);
    xfree(&first);
}

static void check_common_header(const fixture *f, const char *subject)
{
    char *want = xasprintf("Subject: %s", subject);

    assert_true(has_header(f->text, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>"));
    assert_true(has_header(f->text, "To: <sender@client.example>"));
    assert_true(has_header(f->text, want));
    assert_true(has_header(f->text, "Auto-Submitted: auto-replied"));
    assert_true(has_header(f->text, "MIME-Version: 1.0"));
    assert_true(has_header(f->text, "Content-Type: multipart/report; report-type=delivery-status;"));
    assert_int_equal(strncmp(f->text, "Date: ", 6), 0);
    assert_non_null(strstr(f->text, "\r\nMessage-ID: <"));
    assert_non_null(strstr(f->text, "@mx.example.test>\r\n"));
    assert_non_null(strstr(f->text, "Reporting-MTA: dns; mx.example.test\r\n"));
    assert_non_null(strstr(f->text, "X-Correio-Queue-ID: 0000000000000ABCD\r\n"));
    assert_non_null(strstr(f->text, "Arrival-Date: "));
    assert_non_null(strstr(f->text, "This is the mail system at host mx.example.test.\r\n"));
    xfree(&want);
}

/* --- each kind */

static void test_failed_full(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_FAILED, ORIG_BODY);
    f.env.envid = "QQ314159";
    f.rcpt[0].orcpt = "rfc822;rcpt+tag@example.net";
    compose(&f);
    check_common_header(&f, "Undelivered Mail Returned to Sender");
    check_structure(&f, "Content-Type: message/rfc822\r\n");
    assert_non_null(strstr(f.text, "Original-Envelope-Id: QQ314159\r\n"));
    assert_non_null(strstr(f.text, "\r\n\r\nOriginal-Recipient: rfc822;rcpt+tag@example.net\r\n"
                                   "Final-Recipient: rfc822; rcpt@example.net\r\n"
                                   "Action: failed\r\nStatus: 5.1.1\r\n"
                                   "Remote-MTA: dns; mx.example.net\r\n"
                                   "Diagnostic-Code: smtp; 550 5.1.1 <rcpt@example.net>: no such user\r\n"
                                   "Last-Attempt-Date: "));
    assert_null(strstr(f.text, "Will-Retry-Until"));
    assert_non_null(strstr(f.text, "<rcpt@example.net>: host mx.example.net said: 550 5.1.1"));
    /* the whole original, its added header first, then the final delimiter */
    {
        char *whole = xasprintf("Content-Description: Undelivered Message\r\n"
                                "Content-Type: message/rfc822\r\n\r\n%s%s\r\n--",
                                ORIG_RECEIVED, ORIG_BODY);
        assert_non_null(strstr(f.text, whole));
        xfree(&whole);
    }
    assert_null(strstr(f.text, "Content-Transfer-Encoding"));
    assert_false(bounce_is_8bit(f.msg, f.len));
    fixture_free(&f);
}

static void test_failed_ret_hdrs(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_FAILED, ORIG_BODY);
    f.env.ret = CORREIO__DSN_RET__RET_HDRS;
    compose(&f);
    check_structure(&f, "Content-Type: text/rfc822-headers\r\n");
    assert_null(strstr(f.text, "first body line"));
    assert_non_null(strstr(f.text, "Message-ID: <orig-1@client.example>\r\n\r\n--"));
    assert_null(strstr(f.text, "Original-Recipient"));      /* no ORCPT given */
    assert_null(strstr(f.text, "Original-Envelope-Id"));
    fixture_free(&f);
}

static void test_failed_too_large(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_FAILED, ORIG_BODY);
    f.rep.size_limit = strlen(ORIG_BODY);       /* the Received: line makes it too big */
    compose(&f);
    check_structure(&f, "Content-Type: text/rfc822-headers\r\n");
    assert_null(strstr(f.text, "first body line"));
    assert_non_null(strstr(f.text, "Its header is attached below."));
    fixture_free(&f);
}

static void test_delayed(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_DELAYED, ORIG_BODY);
    compose(&f);
    check_common_header(&f, "Delayed Mail (still being retried)");
    check_structure(&f, "Content-Type: text/rfc822-headers\r\n");
    assert_non_null(strstr(f.text, "Action: delayed\r\nStatus: 4.4.1\r\n"));
    assert_non_null(strstr(f.text, "Will-Retry-Until: "));
    assert_non_null(strstr(f.text, "THIS IS A WARNING ONLY"));
    assert_non_null(strstr(f.text, "for more than 5 hour(s)"));
    assert_non_null(strstr(f.text, "until it is 5 day(s) old"));
    assert_null(strstr(f.text, "first body line"));
    fixture_free(&f);
}

static void test_delivered_and_relayed(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_DELIVERED, ORIG_BODY);
    f.rep.n = 2;
    f.rcpt[0].remote_mta = "";
    f.rcpt[0].diagnostic = "";
    f.rcpt[0].last_attempt_us = 0;
    f.rcpt[1] = f.rcpt[0];
    f.rcpt[1].address = "far@example.org";
    f.rcpt[1].action = DSN_RELAYED;
    f.rcpt[1].remote_mta = "mx.example.org";
    f.rcpt[1].diagnostic = "250 2.0.0 Ok: queued as 123";
    f.rcpt[1].status = "not a status";
    compose(&f);
    check_common_header(&f, "Successful Mail Delivery Report");
    check_structure(&f, "Content-Type: text/rfc822-headers\r\n");
    assert_non_null(strstr(f.text, "Final-Recipient: rfc822; rcpt@example.net\r\n"
                                   "Action: delivered\r\nStatus: 2.0.0\r\n\r\n"));
    assert_non_null(strstr(f.text, "Final-Recipient: rfc822; far@example.org\r\n"
                                   "Action: relayed\r\nStatus: 2.0.0\r\n"
                                   "Remote-MTA: dns; mx.example.org\r\n"));
    assert_non_null(strstr(f.text, "<rcpt@example.net>: delivered to mailbox\r\n"));
    assert_non_null(strstr(f.text, "<far@example.org>: delivery via mx.example.org: 250"));
    assert_null(strstr(f.text, "Last-Attempt-Date"));
    fixture_free(&f);
}

/* --- text from outside */

static void test_hostile_text(void **state)
{
    fixture f;
    char *huge = xmalloc(2501);
    char *diag;

    (void)state;
    memset(huge, 'x', 2500);
    huge[2500] = '\0';
    diag = xasprintf("550 5.7.1 first line\r\n550-5.7.1 injected: yes\r\n\r\n--fake\nBcc: x %s "
                     "and then many short words to be folded nicely at seventy-eight columns "
                     "please", huge);
    fixture_init(&f, DSN_FAILED, ORIG_BODY);
    f.env.envid = "id\r\nX-Evil: 1";
    f.env.reverse_path = "odd\r\nBcc: victim@example.com";
    f.rcpt[0].diagnostic = diag;
    f.rcpt[0].orcpt = "rfc822;a\r\nX-Injected: 1";
    f.rcpt[0].status = "5.1.1\r\nX: y";
    compose(&f);
    check_structure(&f, "Content-Type: message/rfc822\r\n");
    assert_null(strstr(f.text, "\r\nX-Evil"));
    assert_null(strstr(f.text, "\r\nBcc:"));
    assert_null(strstr(f.text, "\r\nX-Injected"));
    assert_null(strstr(f.text, "\r\n550-5.7.1"));
    assert_null(strstr(f.text, "\r\n--fake"));
    assert_non_null(strstr(f.text, "Status: 5.0.0\r\n"));      /* the bad one replaced */
    assert_true(has_header(f.text, "To: <odd Bcc: victim@example.com>"));
    /* the long word is cut below 998; the words after it fold at 78 */
    assert_non_null(strstr(f.text, "\r\n and then many short words"));
    {
        const char *d = strstr(f.text, "Diagnostic-Code: smtp; 550 5.7.1 first line");
        const char *end;
        assert_non_null(d);
        end = strstr(d, "\r\nLast-Attempt-Date");
        assert_non_null(end);
        for (const char *l = d; l < end; ) {
            const char *e = strstr(l, "\r\n");
            assert_true(e - l <= 998);
            if (l != d)
                assert_true(*l == ' ');
            if (!memchr(l, 'x', (size_t)(e - l)))   /* lines without the huge word */
                assert_true(e - l <= 78);
            l = e + 2;
        }
    }
    xfree(&diag);
    xfree(&huge);
    fixture_free(&f);
}

static void test_boundary_not_in_original(void **state)
{
    fixture f;
    /* an original that contains everything our boundaries start with */
    static const char body[] =
        "Subject: tricky\r\n\r\n--0000000000000ABCD.\r\n0000000000000ABCD.\r\n"
        "--dsn.\r\n/correio\r\n";

    (void)state;
    for (int i = 0; i < 50; i++) {
        char *b;
        fixture_init(&f, DSN_FAILED, body);
        compose(&f);
        b = boundary_of(f.text);
        assert_null(memmem(body, strlen(body), b, strlen(b)));
        assert_int_equal(count(f.text, b), 5);
        xfree(&b);
        fixture_free(&f);
    }
}

static void test_8bit(void **state)
{
    fixture f;
    static const char body[] = "Subject: caf\xc3\xa9\r\n\r\nol\xc3\xa1\r\n";

    (void)state;
    assert_true(bounce_is_8bit((const uint8_t *)body, strlen(body)));
    assert_false(bounce_is_8bit((const uint8_t *)ORIG_BODY, strlen(ORIG_BODY)));
    fixture_init(&f, DSN_FAILED, body);
    compose(&f);
    check_structure(&f, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n");
    assert_true(has_header(f.text, "Content-Transfer-Encoding: 8bit"));
    assert_true(bounce_is_8bit(f.msg, f.len));
    fixture_free(&f);
    /* only the header goes back: a body-only 8-bit original stays 7-bit */
    fixture_init(&f, DSN_DELAYED, "Subject: x\r\n\r\nol\xc3\xa1\r\n");
    compose(&f);
    assert_false(bounce_is_8bit(f.msg, f.len));
    fixture_free(&f);
}

static void test_no_header_section(void **state)
{
    fixture f;

    (void)state;
    fixture_init(&f, DSN_DELAYED, "\r\njust a body\r\n");
    compose(&f);
    check_structure(&f, "Content-Type: text/rfc822-headers\r\n");
    assert_null(strstr(f.text, "just a body"));
    assert_non_null(strstr(f.text, "\tMon, 2 Feb 2026 10:00:00 +0000\r\n\r\n--"));
    fixture_free(&f);
}

/* --- a real MIME parser */

static const char PY_CHECK[] =
    "import email, sys\n"
    "m = email.message_from_bytes(open(sys.argv[1], 'rb').read())\n"
    "def ok(c, what):\n"
    "    if not c: print('FAIL', what); sys.exit(1)\n"
    "ok(not m.defects, 'defects %r' % m.defects)\n"
    "ok(m.get_content_type() == 'multipart/report', 'type ' + m.get_content_type())\n"
    "ok(m.get_param('report-type') == 'delivery-status', 'report-type')\n"
    "ok(m['Auto-Submitted'] == 'auto-replied', 'auto-submitted')\n"
    "p = m.get_payload()\n"
    "ok(len(p) == 3, 'parts %d' % len(p))\n"
    "ok(p[0].get_content_type() == 'text/plain', 'part 1')\n"
    "ok(p[1].get_content_type() == 'message/delivery-status', 'part 2')\n"
    "ok(p[2].get_content_type() == 'message/rfc822', 'part 3')\n"
    "ds = p[1].get_payload()\n"
    "ok(len(ds) == 3, 'status blocks %d' % len(ds))\n"
    "ok(ds[0]['Reporting-MTA'] == 'dns; mx.example.test', 'reporting-mta')\n"
    "ok(ds[0]['Original-Envelope-Id'] == 'env-42', 'envid')\n"
    "r1, r2 = ds[1], ds[2]\n"
    "ok(r1['Original-Recipient'] == 'rfc822;first+x@example.net', 'orcpt')\n"
    "ok(r1['Final-Recipient'] == 'rfc822; rcpt@example.net', 'final 1')\n"
    "ok(r1['Action'] == 'failed' and r1['Status'] == '5.1.1', 'action/status 1')\n"
    "ok(r1['Remote-MTA'] == 'dns; mx.example.net', 'remote-mta')\n"
    "ok(r1['Diagnostic-Code'].replace('\\r\\n', '').startswith('smtp; 550 5.1.1'), 'diag 1')\n"
    "ok(r2['Original-Recipient'] is None, 'orcpt 2')\n"
    "ok(r2['Final-Recipient'] == 'rfc822; second@example.org', 'final 2')\n"
    "ok(r2['Status'] == '5.4.6', 'status 2')\n"
    "ok(r2['Diagnostic-Code'] == 'X-Correio; mail for second@example.org loops back to myself',\n"
    "   'diag 2 %r' % r2['Diagnostic-Code'])\n"
    "orig = p[2].get_payload(0)\n"
    "ok(orig['Subject'] == 'the original', 'original subject')\n"
    "ok('second body line' in orig.get_payload(), 'original body')\n"
    "print('OK')\n";

static void test_python_email_parses_it(void **state)
{
    fixture f;
    char path[] = "/tmp/bounce_test.XXXXXX";
    char *cmd, out[256] = "";
    int fd, rc;
    FILE *p;

    (void)state;
    if (access(PYTHON, X_OK) != 0)
        skip();
    fixture_init(&f, DSN_FAILED, ORIG_BODY);
    f.env.envid = "env-42";
    f.rep.n = 2;
    f.rcpt[0].orcpt = "rfc822;first+x@example.net";
    f.rcpt[1] = (dsn_rcpt){
        .address = "second@example.org", .orcpt = "", .action = DSN_FAILED,
        .status = "5.4.6", .remote_mta = "", .diagnostic = "",
        .text = "mail for second@example.org loops back to myself",
    };
    compose(&f);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, f.msg, f.len), (ssize_t)f.len);
    close(fd);
    {
        char script[] = "/tmp/bounce_test_py.XXXXXX";
        int sfd = mkstemp(script);
        assert_true(sfd >= 0);
        assert_int_equal(write(sfd, PY_CHECK, strlen(PY_CHECK)), (ssize_t)strlen(PY_CHECK));
        close(sfd);
        cmd = xasprintf("%s %s %s 2>&1", PYTHON, script, path);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (!fgets(out, sizeof(out), p))
            out[0] = '\0';
        rc = pclose(p);
        unlink(script);
    }
    unlink(path);
    if (rc != 0 || strncmp(out, "OK", 2) != 0)
        fail_msg("python email check: rc %d: %s", rc, out);
    xfree(&cmd);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_full),
        cmocka_unit_test(test_failed_ret_hdrs),
        cmocka_unit_test(test_failed_too_large),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_delivered_and_relayed),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_boundary_not_in_original),
        cmocka_unit_test(test_8bit),
        cmocka_unit_test(test_no_header_section),
        cmocka_unit_test(test_python_email_parses_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
