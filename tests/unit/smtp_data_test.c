/* smtp_data_test.c - the DATA stream parser (ingress/smtp_data.c):
 * end of data, dot-unstuffing, every smuggling variant, splits at every
 * offset, the size limit and the line length limit; table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../ingress/smtp_data.h"

typedef struct {
    const char *name;
    const char *in;         /* the bytes after 354 */
    size_t      in_len;     /* 0: strlen(in) */
    size_t      limit;      /* 0: 1 MB */
    const char *body;       /* expected body when accepted, NULL when refused */
    unsigned    refused;    /* expected bits */
    size_t      consumed;   /* 0: all of in */
    size_t      body_len;   /* 0: strlen(body) */
} data_case;

#define S(x) x, sizeof(x) - 1

static const data_case cases[] = {
    { "empty", S(".\r\n"), 0, "", 0, 0, 0 },
    { "normal", S("Subject: x\r\n\r\nhello\r\n.\r\n"), 0, "Subject: x\r\n\r\nhello\r\n", 0, 0, 0 },
    { "no final crlf in body", S("a\r\n.\r\n"), 0, "a\r\n", 0, 0, 0 },
    { "stuffed dot", S("..\r\n.\r\n"), 0, ".\r\n", 0, 0, 0 },
    { "stuffed text", S("..hidden\r\n.x\r\n...\r\n.\r\n"), 0, ".hidden\r\nx\r\n..\r\n", 0, 0, 0 },
    { "dot inside line", S("a.\r\n a\r\n.\r\n"), 0, "a.\r\n a\r\n", 0, 0, 0 },
    { "trailing data", S("a\r\n.\r\nQUIT\r\n"), 0, "a\r\n", 0, 6, 0 },
    { "binary and NUL", "a\0\xff\r\n.\r\n", 8, 0, "a\0\xff\r\n", 0, 0, 5 },
    { "bare LF line end", S("a\nb\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "bare CR line end", S("a\rb\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle LF.CRLF", S("a\n.\r\nMAIL FROM:<x>\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle CR.CRLF", S("a\r.\r\nMAIL FROM:<x>\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle CRLF.LF", S("a\r\n.\nMAIL FROM:<x>\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle LF.LF", S("a\n.\nMAIL FROM:<x>\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle CRLF.CR", S("a\r\n.\rMAIL\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle CR CRLF", S("a\r\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "smuggle dot CR CR LF", S(".\r\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "bare LF at start", S("\n.\r\n.\r\n"), 0, NULL, SMTP_DATA_BARE, 0, 0 },
    { "size exact", S("12345678\r\n.\r\n"), 10, "12345678\r\n", 0, 0, 0 },
    { "size over", S("123456789\r\n.\r\n"), 10, NULL, SMTP_DATA_TOOBIG, 0, 0 },
    { "size over then smuggle", S("123456789\r\n\n.\r\n.\r\n"), 10, NULL,
      SMTP_DATA_TOOBIG | SMTP_DATA_BARE, 0, 0 },
};

/* run - feed in[] in two pieces split at split_at (0: all at once). */
static void run(const data_case *c, size_t split_at)
{
    smtp_data_t d;
    buf_t body = BUF_INIT;
    size_t len = c->in_len, off = 0, want = c->consumed ? c->consumed : len;

    smtp_data_init(&d, c->limit ? c->limit : 1 << 20);
    if (split_at > 0 && split_at < len) {
        off = smtp_data_feed(&d, c->in, split_at, &body);
    }
    if (!d.done)
        off += smtp_data_feed(&d, c->in + off, len - off, &body);
    assert_true(d.done);
    assert_int_equal(off, want);
    assert_int_equal(d.refused, c->refused);
    if (c->body) {
        assert_null(smtp_data_reply(&d));
        assert_int_equal(body.len, c->body_len ? c->body_len : strlen(c->body));
        assert_memory_equal(body.data ? body.data : "", c->body, body.len);
    } else {
        assert_non_null(smtp_data_reply(&d));
    }
    buf_free(&body);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %s\n", cases[i].name);
        run(&cases[i], 0);
    }
}

/* every split point of every case gives the same result */
static void test_split_everywhere(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t at = 1; at < cases[i].in_len; at++)
            run(&cases[i], at);
}

/* one byte at a time */
static void test_byte_by_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const data_case *c = &cases[i];
        smtp_data_t d;
        buf_t body = BUF_INIT;
        size_t off = 0;

        smtp_data_init(&d, c->limit ? c->limit : 1 << 20);
        while (!d.done && off < c->in_len)
            off += smtp_data_feed(&d, c->in + off, 1, &body);
        assert_true(d.done);
        assert_int_equal(off, c->consumed ? c->consumed : c->in_len);
        assert_int_equal(d.refused, c->refused);
        buf_free(&body);
    }
}

static void test_line_length(void **state)
{
    char in[2100];
    smtp_data_t d;
    buf_t body = BUF_INIT;
    size_t n;

    (void)state;
    /* 998 octets + CRLF: fine */
    memset(in, 'x', 998);
    memcpy(in + 998, "\r\n.\r\n", 5);
    smtp_data_init(&d, 1 << 20);
    n = smtp_data_feed(&d, in, 1003, &body);
    assert_int_equal(n, 1003);
    assert_true(d.done);
    assert_int_equal(d.refused, 0);
    assert_int_equal(body.len, 1000);
    /* 999 octets + CRLF: refused, but read to the end */
    buf_reset(&body);
    memset(in, 'x', 999);
    memcpy(in + 999, "\r\nmore\r\n.\r\n", 11);
    smtp_data_init(&d, 1 << 20);
    n = smtp_data_feed(&d, in, 1010, &body);
    assert_int_equal(n, 1010);
    assert_true(d.done);
    assert_int_equal(d.refused, SMTP_DATA_LONGLINE);
    assert_string_equal(smtp_data_reply(&d),
                        "554 5.6.0 Error: message line longer than 998 characters");
    /* a stuffed line counts its dot: "." + 998 = 999 octets + CRLF */
    buf_reset(&body);
    in[0] = '.';
    memset(in + 1, 'y', 998);
    memcpy(in + 999, "\r\n.\r\n", 5);
    smtp_data_init(&d, 1 << 20);
    smtp_data_feed(&d, in, 1004, &body);
    assert_true(d.done);
    assert_int_equal(d.refused, SMTP_DATA_LONGLINE);
    buf_free(&body);
}

static void test_too_big_keeps_reading(void **state)
{
    smtp_data_t d;
    buf_t body = BUF_INIT;
    char in[5000];
    size_t off = 0;

    (void)state;
    for (int i = 0; i < 49; i++) {
        memset(in + i * 100, 'a' + i % 26, 98);
        memcpy(in + i * 100 + 98, "\r\n", 2);
    }
    memcpy(in + 4900, ".\r\n", 3);
    smtp_data_init(&d, 1024);
    while (!d.done && off < 4903)
        off += smtp_data_feed(&d, in + off, 333 < 4903 - off ? 333 : 4903 - off, &body);
    assert_int_equal(off, 4903);
    assert_int_equal(d.refused, SMTP_DATA_TOOBIG);
    assert_true(body.len <= 1024);
    assert_string_equal(smtp_data_reply(&d), "552 5.3.4 Message size exceeds fixed limit");
    buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_line_length),
        cmocka_unit_test(test_too_big_keeps_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
