/* mime_test.c - the classifier's MIME parser and HTML reader: header
 * fields and RFC 2047, the multipart tree, transfer encodings, charsets,
 * HTML text and links, the bounds; and a timing loop (printed, not
 * asserted). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "html.h"
#include "mime.h"
#include "buf.h"
#include "xalloc.h"

static void parse(const char *s, mime_msg *m)
{
    mime_parse(s, strlen(s), m);
}

static const mime_uri *find_uri(const mime_msg *m, const char *url)
{
    for (size_t i = 0; i < m->n_uris; i++)
        if (strcmp(m->uris[i].url, url) == 0)
            return &m->uris[i];
    return NULL;
}

static void test_headers(void **state)
{
    (void)state;
    mime_msg m;
    parse("From: =?ISO-8859-1?Q?Jos=E9?= <j@example.test>\r\n"
          "Subject: =?utf-8?B?w6l0w6k=?=   =?utf-8?Q?_d=C3=A9j=C3=A0?= x\r\n"
          "X-Folded: one\r\n two\r\n\tthree\r\n"
          "Received: a\r\nReceived: b\r\n"
          "Subject : bad =?x-nothing?Q?=41?= =?broken\r\n"
          "\r\nbody\r\n", &m);
    assert_int_equal(m.n_headers, 6);
    const mime_header *h = mime_header_get(&m, "from", 0);
    assert_non_null(h);
    assert_string_equal(h->decoded, "Jos\xC3\xA9 <j@example.test>");
    h = mime_header_get(&m, "SUBJECT", 0);
    assert_string_equal(h->decoded, "\xC3\xA9t\xC3\xA9 d\xC3\xA9j\xC3\xA0 x");
    assert_string_equal(h->value, "=?utf-8?B?w6l0w6k=?=   =?utf-8?Q?_d=C3=A9j=C3=A0?= x");
    assert_string_equal(mime_header_get(&m, "x-folded", 0)->value, "one two\tthree");
    assert_string_equal(mime_header_get(&m, "received", 1)->value, "b");
    assert_null(mime_header_get(&m, "received", 2));
    h = mime_header_get(&m, "subject", 1);
    assert_non_null(h);
    assert_string_equal(h->decoded, "bad A =?broken");
    assert_true(m.has_text);
    assert_int_equal(m.n_parts, 1);
    assert_string_equal(m.parts[0].type, "text/plain");
    assert_string_equal(m.parts[0].text, "body\n");
    assert_false(m.bad_structure);
    mime_free(&m);

    /* no header section at all, LF line ends, empty input */
    parse("just text\nmore\n", &m);
    assert_int_equal(m.n_headers, 0);
    assert_string_equal(m.parts[0].text, "just text\nmore\n");
    mime_free(&m);
    mime_parse(NULL, 0, &m);
    assert_int_equal(m.n_parts, 1);
    assert_int_equal(m.parts[0].text_len, 0);
    mime_free(&m);
}

static const char alternative[] =
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/related; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative;\r\n boundary=\"=_b \\\"q\\\"\"\r\n"
    "\r\n"
    "--=_b \"q\"\r\n"
    "Content-Type: text/plain; charset=\"ISO-8859-1\"\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 au lait =\r\n"
    "see http://Example.COM/x, and www.foo.org.   \r\n"
    "--=_b \"q\"\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PGh0bWw+PGhlYWQ+PHRpdGxlPlQ8L3RpdGxlPjxzdHlsZT5wIHtjb2xvcjpyZWR9PC9zdHlsZT48\r\n"
    "L2hlYWQ+PGJvZHk+PHA+Q2FmJiMyMzM7IDxiPmF1PC9iPiBsYWl0PC9wPjxhIGhyZWY9Imh0dHA6\r\n"
    "Ly91c2VyQFNob3AuRXhhbXBsZTo4MC9hP2I9MSZhbXA7Yz0yIj5idXk8L2E+PGltZyBzcmM9J2h0\r\n"
    "dHBzOi8vaW1nLmV4YW1wbGUvcC5naWYnPjxpbWcgc3JjPWNpZDpsb2dvQGV4PjxzY3JpcHQ+ZG9j\r\n"
    "dW1lbnQud3JpdGUoJ3gnKTwvc2NyaXB0PiAmYW1wOyZsdDsmI3g0MTsmbmJzcDsmZXVybzs8IS0t\r\n"
    "IGhpZGRlbiAtLT5lbmQ8L2JvZHk+PC9odG1sPg==\r\n"
    "--=_b \"q\"--\r\n"
    "--outer\r\n"
    "Content-Type: image/png; name=\"logo.png\"\r\n"
    "Content-ID: <logo@ex>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

static void test_alternative(void **state)
{
    (void)state;
    mime_msg m;
    parse(alternative, &m);
    /* the HTML above, before base64 (&#233; is not decoded by base64):
     * <html><head><title>T</title><style>p {color:red}</style></head>
     * <body><p>Caf&#233; <b>au</b> lait</p><a href="http://user@Shop.Example:80/a?b=1&amp;c=2">buy</a>
     * <img src='https://img.example/p.gif'><img src=cid:logo@ex>
     * <script>document.write('x')</script> &amp;&lt;&#x41;&nbsp;&euro;<!-- hidden -->end</body></html> */
    assert_false(m.bad_structure);
    assert_false(m.truncated);
    assert_int_equal(m.n_parts, 3);
    assert_int_equal(m.depth, 2);
    assert_true(m.has_text);
    assert_true(m.has_html);
    const mime_part *t = &m.parts[0], *h = &m.parts[1], *img = &m.parts[2];
    assert_string_equal(t->type, "text/plain");
    assert_string_equal(t->charset, "iso-8859-1");
    assert_string_equal(t->text, "Caf\xC3\xA9 au lait see http://Example.COM/x, and www.foo.org.");
    assert_false(t->bad_encoding);
    assert_false(t->bad_charset);
    assert_string_equal(h->type, "text/html");
    assert_true(t->alt_id != 0 && t->alt_id == h->alt_id);
    assert_int_equal(img->alt_id, 0);
    assert_string_equal(h->text, "Caf\xC3\xA9 au lait\nbuy &<A \xE2\x82\xAC" "end");
    assert_string_equal(img->type, "image/png");
    assert_string_equal(img->filename, "logo.png");
    assert_string_equal(img->content_id, "logo@ex");
    assert_true(img->inline_image);
    assert_int_equal(img->raw_len, 8);
    assert_memory_equal(img->raw, "\x89PNG\r\n\x1a\n", 8);

    const mime_uri *u = find_uri(&m, "http://user@Shop.Example:80/a?b=1&c=2");
    assert_non_null(u);
    assert_string_equal(u->host, "shop.example");
    assert_false(u->image);
    u = find_uri(&m, "https://img.example/p.gif");
    assert_non_null(u);
    assert_true(u->image);
    assert_string_equal(u->host, "img.example");
    u = find_uri(&m, "cid:logo@ex");
    assert_non_null(u);
    assert_true(u->image);
    assert_string_equal(u->host, "");
    u = find_uri(&m, "http://Example.COM/x");
    assert_non_null(u);
    assert_string_equal(u->host, "example.com");
    u = find_uri(&m, "www.foo.org");
    assert_non_null(u);
    assert_string_equal(u->host, "www.foo.org");
    assert_int_equal(m.n_uris, 5);
    mime_free(&m);
}

static void test_encodings(void **state)
{
    (void)state;
    mime_msg m;
    parse("Content-Type: text/plain; charset=us-ascii\r\n"
          "Content-Transfer-Encoding: base64\r\n\r\n"
          "aGVs bG8*\r\n", &m);
    assert_true(m.parts[0].bad_encoding);
    assert_string_equal(m.parts[0].text, "hello");
    mime_free(&m);

    parse("Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
          "a=3Db =ZZ c=\n", &m);
    assert_true(m.parts[0].bad_encoding);
    assert_string_equal(m.parts[0].raw, "a=b =ZZ c");
    mime_free(&m);

    parse("Content-Transfer-Encoding: base64\r\n\r\n"
          "aGVsbG8=\r\n", &m);
    assert_false(m.parts[0].bad_encoding);
    assert_string_equal(m.parts[0].raw, "hello");
    mime_free(&m);
}

static void test_charsets(void **state)
{
    (void)state;
    mime_msg m;
    /* KOI8-R "привет" */
    parse("Content-Type: text/plain; charset=KOI8-R\r\n\r\n\xD0\xD2\xC9\xD7\xC5\xD4", &m);
    assert_string_equal(m.parts[0].charset, "koi8-r");
    assert_string_equal(m.parts[0].text, "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    assert_false(m.parts[0].bad_charset);
    mime_free(&m);

    /* GB2312 "中文" */
    parse("Content-Type: text/plain; charset=gb2312\r\n\r\n\xD6\xD0\xCE\xC4", &m);
    assert_string_equal(m.parts[0].text, "\xE4\xB8\xAD\xE6\x96\x87");
    mime_free(&m);

    parse("Content-Type: text/plain; charset=x-no-such\r\n\r\nab\xFF" "c", &m);
    assert_true(m.parts[0].bad_charset);
    assert_string_equal(m.parts[0].text, "ab\xEF\xBF\xBD" "c");
    assert_int_equal(m.parts[0].raw_len, 4);
    mime_free(&m);

    parse("Content-Type: text/plain; charset=\"utf-8//IGNORE\"\r\n\r\nabc", &m);
    assert_true(m.parts[0].bad_charset);
    mime_free(&m);

    parse("Content-Type: text/plain; charset=utf-8\r\n\r\nok \xC3\xA9 bad \xC3(", &m);
    assert_true(m.parts[0].bad_charset);
    assert_false(m.parts[0].eight_bit_no_charset);
    assert_string_equal(m.parts[0].text, "ok \xC3\xA9 bad \xEF\xBF\xBD(");
    mime_free(&m);

    parse("Subject: x\r\n\r\nsans charset \xE9t\xE9\r\n", &m);
    assert_true(m.parts[0].eight_bit_no_charset);
    assert_false(m.parts[0].bad_charset);
    mime_free(&m);

    parse("Subject: x\r\n\r\nplain ascii\r\n", &m);
    assert_false(m.parts[0].eight_bit_no_charset);
    mime_free(&m);
}

static void test_structure(void **state)
{
    (void)state;
    mime_msg m;
    /* no boundary parameter */
    parse("Content-Type: multipart/mixed\r\n\r\nhello\r\n", &m);
    assert_true(m.bad_structure);
    assert_int_equal(m.n_parts, 1);
    assert_string_equal(m.parts[0].text, "hello\n");
    mime_free(&m);

    /* boundary never used */
    parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\nhello\r\n", &m);
    assert_true(m.bad_structure);
    assert_string_equal(m.parts[0].text, "hello\n");
    mime_free(&m);

    /* no close delimiter */
    parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\none\r\n--zz\r\n\r\ntwo\r\n", &m);
    assert_true(m.bad_structure);
    assert_int_equal(m.n_parts, 2);
    assert_string_equal(m.parts[0].text, "one");
    assert_string_equal(m.parts[1].text, "two\n");
    mime_free(&m);

    /* inner boundary longer than the outer one with the same start */
    parse("Content-Type: multipart/mixed; boundary=abc\r\n\r\n"
          "--abc\r\nContent-Type: multipart/alternative; boundary=abcd\r\n\r\n"
          "--abcd\r\n\r\nin1\r\n--abcd\r\n\r\nin2\r\n--abcd--\r\n"
          "--abc\r\n\r\nlast\r\n--abc--\r\n", &m);
    assert_false(m.bad_structure);
    assert_int_equal(m.n_parts, 3);
    assert_string_equal(m.parts[0].text, "in1");
    assert_string_equal(m.parts[1].text, "in2");
    assert_string_equal(m.parts[2].text, "last");
    mime_free(&m);

    /* a forwarded message: its parts are leaves of ours */
    parse("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
          "--o\r\n\r\nsee below\r\n"
          "--o\r\nContent-Type: message/rfc822\r\n\r\n"
          "Subject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
          "--i\r\nContent-Type: text/html\r\n\r\n<p>inner html</p>\r\n--i--\r\n"
          "--o--\r\n", &m);
    assert_false(m.bad_structure);
    assert_int_equal(m.n_parts, 2);
    assert_int_equal(m.n_headers, 1);           /* the inner Subject is not ours */
    assert_string_equal(m.parts[1].type, "text/html");
    assert_string_equal(m.parts[1].text, "inner html\n");
    assert_int_equal(m.depth, 3);
    mime_free(&m);
}

/* The bounds: nesting, parts, header size. */
static void test_bounds(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    mime_msg m;

    for (int i = 0; i < 40; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    buf_append_str(&b, "\r\ndeep\r\n");
    mime_parse(b.data, b.len, &m);
    assert_true(m.truncated);
    assert_int_equal(m.depth, MIME_MAX_DEPTH);
    mime_free(&m);

    buf_reset(&b);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 1500; i++)
        buf_printf(&b, "--p\r\n\r\npart %d\r\n", i);
    buf_append_str(&b, "--p--\r\n");
    mime_parse(b.data, b.len, &m);
    assert_true(m.truncated);
    assert_int_equal(m.n_parts, MIME_MAX_PARTS);
    mime_free(&m);

    buf_reset(&b);
    for (int i = 0; i < 20000; i++)
        buf_printf(&b, "X-Junk-%d: %s\r\n", i, "0123456789012345678901234567890123456789");
    buf_append_str(&b, "\r\nthe body\r\n");
    mime_parse(b.data, b.len, &m);
    assert_true(m.truncated);
    assert_true(m.n_headers <= MIME_MAX_HEADERS);
    assert_int_equal(m.n_parts, 1);
    assert_string_equal(m.parts[0].text, "the body\n");
    mime_free(&m);

    /* many "=?" without an end: stays linear (the timing shows it) */
    buf_reset(&b);
    buf_append_str(&b, "Subject: ");
    for (int i = 0; i < 30000; i++)
        buf_append_str(&b, "=?a?b?");
    buf_append_str(&b, "\r\n\r\nx\r\n");
    mime_parse(b.data, b.len, &m);
    assert_non_null(mime_header_get(&m, "subject", 0));
    mime_free(&m);
    buf_free(&b);
}

static void test_html(void **state)
{
    (void)state;
    buf_t t = BUF_INIT;
    html_to_text("<div>a<br/>b</div>  c&nbsp;&nbsp;d &bogus; &#9999999999; <a href=x", 64, &t, NULL, NULL);
    assert_string_equal(t.data, "a\nb\nc d &bogus; \xEF\xBF\xBD ");
    buf_free(&t);
    html_to_text("<!-- never closed", 17, &t, NULL, NULL);
    assert_int_equal(t.len, 0);
    buf_free(&t);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A 100 KB message (text, HTML, a base64 attachment) parsed in a loop;
 * the time is printed for the record, not asserted. */
static void test_timing(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_str(&b, "From: a@example.test\r\nSubject: =?utf-8?Q?timing_test?=\r\n"
                       "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
                       "--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
                       "--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n");
    for (int i = 0; i < 300; i++)
        buf_append_str(&b, "Dear customer, your order http://shop.example/o is ready \xE9t\xE9.\r\n");
    buf_append_str(&b, "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
    for (int i = 0; i < 300; i++)
        buf_append_str(&b, "<p>Dear customer, your <a href=\"http://shop.example/o\">order</a> is ready &amp; ok.</p>\r\n");
    buf_append_str(&b, "</body></html>\r\n--a--\r\n--m\r\nContent-Type: application/pdf\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n");
    while (b.len < 100 * 1024)
        buf_append_str(&b, "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZUR\r\n");
    buf_append_str(&b, "--m--\r\n");

    enum { ROUNDS = 500 };
    double t0 = now_us();
    for (int i = 0; i < ROUNDS; i++) {
        mime_msg m;
        mime_parse(b.data, b.len, &m);
        assert_int_equal(m.n_parts, 3);
        mime_free(&m);
    }
    double per = (now_us() - t0) / ROUNDS;
    printf("mime_parse: %zu bytes in %.1f us (%.0f MB/s)\n", b.len, per, (double)b.len / per);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
