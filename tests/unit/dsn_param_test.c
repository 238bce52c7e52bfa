/* dsn_param_test.c - the DSN parameters of MAIL and RCPT (RFC 3461):
 * xtext, NOTIFY, ORCPT, ENVID, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../ingress/smtp_command.h"
#include "wire.h"

static void test_xtext(void **state)
{
    static const struct { const char *in; const char *want; } cases[] = {
        {"abc", "abc"},
        {"a+2Bb@c", "a+b@c"},
        {"a+2bb@c", "a+b@c"},               /* lower-case hex taken too */
        {"+20", " "},
        {"QQ314159", "QQ314159"},
        {"", ""},
        {"a+2", NULL},                      /* cut short */
        {"a+", NULL},
        {"a+G0", NULL},
        {"a+0D+0A", NULL},                  /* CR LF */
        {"a+00", NULL},                     /* NUL */
        {"a+80", NULL},                     /* not ASCII */
        {"a=b", NULL},                      /* '=' must be encoded */
        {"a b", NULL},
        {"caf\xc3\xa9", NULL},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = smtp_xtext_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        if (!cases[i].want) {
            if (ok)
                fail_msg("xtext %s: decoded as %s", cases[i].in, out);
            continue;
        }
        if (!ok)
            fail_msg("xtext %s: refused", cases[i].in);
        assert_string_equal(out, cases[i].want);
    }
    /* it must fit, NUL included */
    assert_false(smtp_xtext_decode("abcd", 4, out, 4));
    assert_true(smtp_xtext_decode("abc", 3, out, 4));
}

static void test_notify(void **state)
{
    static const struct { const char *in; unsigned want; } cases[] = {
        {"NEVER", CORREIO__NOTIFY__NOTIFY_NEVER},
        {"never", CORREIO__NOTIFY__NOTIFY_NEVER},
        {"SUCCESS", CORREIO__NOTIFY__NOTIFY_SUCCESS},
        {"FAILURE,DELAY", CORREIO__NOTIFY__NOTIFY_FAILURE | CORREIO__NOTIFY__NOTIFY_DELAY},
        {"delay,Success,FAILURE", CORREIO__NOTIFY__NOTIFY_FAILURE | CORREIO__NOTIFY__NOTIFY_DELAY
                                  | CORREIO__NOTIFY__NOTIFY_SUCCESS},
        {"NEVER,SUCCESS", 0},
        {"FAILURE,NEVER", 0},
        {"SUCCESS,SUCCESS", 0},
        {"SUCCESS,", 0},
        {",SUCCESS", 0},
        {"", 0},
        {"ALWAYS", 0},
        {"SUCCESS FAILURE", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (smtp_parse_notify(cases[i].in, strlen(cases[i].in)) != cases[i].want)
            fail_msg("NOTIFY=%s: %u, want %u", cases[i].in,
                     smtp_parse_notify(cases[i].in, strlen(cases[i].in)), cases[i].want);
    assert_true(smtp_notify_valid(0));
    assert_true(smtp_notify_valid(CORREIO__NOTIFY__NOTIFY_NEVER));
    assert_false(smtp_notify_valid(CORREIO__NOTIFY__NOTIFY_NEVER | CORREIO__NOTIFY__NOTIFY_DELAY));
    assert_false(smtp_notify_valid(16));
}

static void test_orcpt(void **state)
{
    static const struct { const char *in; const char *want; } cases[] = {
        {"rfc822;a+2Bb@c", "rfc822;a+b@c"},
        {"rfc822;user@example.com", "rfc822;user@example.com"},
        {"RFC822;user@example.com", "RFC822;user@example.com"},
        {"x-local;joe", "x-local;joe"},
        {"rfc822;+22john+20doe+22@example.com", "rfc822;\"john doe\"@example.com"},
        {"rfc822;", NULL},
        {"rfc822", NULL},
        {";user@example.com", NULL},
        {"rfc 822;user@example.com", NULL},
        {"rfc822;a+0Ab@c", NULL},
        {"rfc822;a=b", NULL},
    };
    char out[DSN_ORCPT_MAX + 1], big[700];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = smtp_parse_orcpt(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        if (!cases[i].want) {
            if (ok)
                fail_msg("ORCPT=%s: taken as %s", cases[i].in, out);
            continue;
        }
        if (!ok)
            fail_msg("ORCPT=%s: refused", cases[i].in);
        assert_string_equal(out, cases[i].want);
        assert_true(smtp_orcpt_valid(out));
    }
    /* at most DSN_ORCPT_MAX decoded */
    memcpy(big, "rfc822;", 7);
    memset(big + 7, 'a', DSN_ORCPT_MAX - 7);
    assert_true(smtp_parse_orcpt(big, DSN_ORCPT_MAX, out, sizeof(out)));
    big[DSN_ORCPT_MAX] = 'a';
    assert_false(smtp_parse_orcpt(big, DSN_ORCPT_MAX + 1, out, sizeof(out)));
    assert_false(smtp_orcpt_valid("rfc822"));
    assert_false(smtp_orcpt_valid("rfc822;a\r\nb"));
    assert_false(smtp_orcpt_valid(""));
}

static void test_envid(void **state)
{
    char e[DSN_ENVID_MAX + 2];

    (void)state;
    assert_true(smtp_envid_valid(""));
    assert_true(smtp_envid_valid("QQ314159 x"));
    assert_false(smtp_envid_valid("a\nb"));
    memset(e, 'x', DSN_ENVID_MAX);
    e[DSN_ENVID_MAX] = '\0';
    assert_true(smtp_envid_valid(e));
    e[DSN_ENVID_MAX] = 'x';
    e[DSN_ENVID_MAX + 1] = '\0';
    assert_false(smtp_envid_valid(e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_orcpt),
        cmocka_unit_test(test_envid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
