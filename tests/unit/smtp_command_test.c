/* smtp_command_test.c - SMTP command line parsing (ingress/smtp_command.c):
 * verb split, MAIL FROM:/RCPT TO: paths with spaces and ESMTP parameters,
 * SIZE values; table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../ingress/smtp_command.h"

static void test_split(void **state)
{
    static const struct { const char *line, *verb, *arg; bool ok; } t[] = {
        { "EHLO client.example", "EHLO", "client.example", true },
        { "noop", "noop", "", true },
        { "MAIL FROM:<a@b>  ", "MAIL", "FROM:<a@b>", true },
        { "  RSET", "RSET", "", true },
        { "", NULL, NULL, false },
        { "   ", NULL, NULL, false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *v, *a;
        size_t vl, al;
        bool ok = smtp_cmd_split(t[i].line, strlen(t[i].line), &v, &vl, &a, &al);
        assert_int_equal(ok, t[i].ok);
        if (!ok)
            continue;
        assert_int_equal(vl, strlen(t[i].verb));
        assert_memory_equal(v, t[i].verb, vl);
        assert_int_equal(al, strlen(t[i].arg));
        assert_memory_equal(a, t[i].arg, al);
    }
}

static void test_path_args(void **state)
{
    static const struct {
        const char *arg, *prefix;
        bool allow_null;
        smtp_args_status st;
        const char *address;
        size_t n_params;
    } t[] = {
        { "FROM:<a@b.example>", "FROM:", true, SMTP_ARGS_OK, "a@b.example", 0 },
        { "from: <a@b.example>", "FROM:", true, SMTP_ARGS_OK, "a@b.example", 0 },
        { "FROM:   <a@b.example> SIZE=100 BODY=8BITMIME", "FROM:", true, SMTP_ARGS_OK, "a@b.example", 2 },
        { "FROM:<>", "FROM:", true, SMTP_ARGS_OK, "", 0 },
        { "TO:<>", "TO:", false, SMTP_ARGS_BAD_PATH, NULL, 0 },
        { "FROM:a@b.example", "FROM:", true, SMTP_ARGS_SYNTAX, NULL, 0 },
        { "FROM <a@b.example>", "FROM:", true, SMTP_ARGS_SYNTAX, NULL, 0 },
        { "FROM:", "FROM:", true, SMTP_ARGS_SYNTAX, NULL, 0 },
        { "TO:<x@y.example>junk", "TO:", false, SMTP_ARGS_BAD_PATH, NULL, 0 },
        { "TO:<x@y.example> NOTIFY=NEVER", "TO:", false, SMTP_ARGS_OK, "x@y.example", 1 },
        { "TO:<x@y.example> =x", "TO:", false, SMTP_ARGS_BAD_PARAM, NULL, 0 },
        { "TO:<x@y.example> A B C D E F G H I J K L M N O P Q", "TO:", false,
          SMTP_ARGS_BAD_PARAM, NULL, 0 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        smtp_path p;
        smtp_param params[SMTP_PARAM_MAX];
        size_t n = 99;
        smtp_args_status st = smtp_path_args(t[i].arg, strlen(t[i].arg), t[i].prefix,
                                             t[i].allow_null, &p, params, &n);
        print_message("%s\n", t[i].arg);
        assert_int_equal(st, t[i].st);
        if (st != SMTP_ARGS_OK)
            continue;
        assert_string_equal(p.address, t[i].address);
        assert_int_equal(n, t[i].n_params);
    }
}

static void test_params(void **state)
{
    const char *arg = "FROM:<a@b.example> size=1234 BODY=7BIT FLAG";
    smtp_path p;
    smtp_param params[SMTP_PARAM_MAX];
    size_t n;
    unsigned long long v;

    (void)state;
    assert_int_equal(smtp_path_args(arg, strlen(arg), "FROM:", true, &p, params, &n),
                     SMTP_ARGS_OK);
    assert_int_equal(n, 3);
    assert_true(smtp_param_is(&params[0], "SIZE"));
    assert_true(smtp_parse_size(params[0].value, params[0].value_len, &v));
    assert_int_equal(v, 1234);
    assert_true(smtp_param_is(&params[1], "body"));
    assert_int_equal(params[1].value_len, 4);
    assert_memory_equal(params[1].value, "7BIT", 4);
    assert_true(smtp_param_is(&params[2], "FLAG"));
    assert_null(params[2].value);
    assert_false(smtp_parse_size("", 0, &v));
    assert_false(smtp_parse_size("12a", 3, &v));
    assert_false(smtp_parse_size("99999999999999999999", 20, &v));
}

/* <Postmaster> without a domain (RFC 5321 4.5.1), and what is not it. */
static void test_postmaster(void **state)
{
    static const struct { const char *arg; bool want; } cases[] = {
        {"TO:<Postmaster>", true},
        {"to:<postmaster>", true},
        {"TO: <POSTMASTER>", true},
        {"TO:<Postmaster> NOTIFY=NEVER", false},
        {"TO:<Postmaster@example.test>", false},
        {"TO:<Postmasters>", false},
        {"TO:Postmaster", false},
        {"FROM:<Postmaster>", false},
        {"TO:", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(smtp_rcpt_is_postmaster(cases[i].arg, strlen(cases[i].arg)),
                         cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_path_args),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
