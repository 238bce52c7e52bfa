/* restriction_test.c - restriction lists (lib/restriction) and the access
 * results tables give (ingress/smtpd_action), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "restriction.h"
#include "../../ingress/smtpd_action.h"

static void test_parse_ok(void **state)
{
    const char *const items[] = { "permit_mynetworks", "PERMIT_SASL_AUTHENTICATED",
                                  "check_sender_access", "hash:/etc/correio/access",
                                  "check_relay_domains", "reject", NULL };
    restriction *r = NULL;
    char *err = NULL;
    long n = restriction_parse(items, &r, &err);

    (void)state;
    assert_int_equal(n, 5);
    assert_int_equal(r[0].kind, R_PERMIT_MYNETWORKS);
    assert_int_equal(r[1].kind, R_PERMIT_SASL_AUTHENTICATED);
    assert_int_equal(r[2].kind, R_CHECK_SENDER_ACCESS);
    assert_string_equal(r[2].table, "hash:/etc/correio/access");
    assert_int_equal(r[3].kind, R_REJECT_UNAUTH_DESTINATION);
    assert_int_equal(r[4].kind, R_REJECT);
    assert_string_equal(restriction_name(r[0].kind), "permit_mynetworks");
    free(r);
}

static const struct bad_case {
    const char *items[4];
    const char *err;
} bad[] = {
    { { "permit_mynetwork", NULL }, "unknown restriction \"permit_mynetwork\"" },
    { { "check_client_access", NULL },
      "check_client_access needs a table such as hash:/etc/correio/access" },
    { { "check_client_access", "reject", NULL },
      "check_client_access needs a table such as hash:/etc/correio/access, not reject" },
    { { "check_helo_access", "btree:/x", NULL },
      "check_helo_access needs a table such as hash:/etc/correio/access, not btree:/x" },
    { { "reject_rbl_client", NULL },
      "reject_rbl_client needs a DNS list zone such as zen.example or "
      "zen.example=127.0.0.[2..11]" },
    { { "reject_rbl_client", "reject", NULL },
      "reject_rbl_client needs a DNS list zone such as zen.example or "
      "zen.example=127.0.0.[2..11], not reject" },
    { { "permit_dnswl_client", "wl.example=127.0.0", NULL },
      "permit_dnswl_client needs a DNS list zone such as zen.example or "
      "zen.example=127.0.0.[2..11], not wl.example=127.0.0" },
    { { "reject_rhsbl_sender", "dbl..example", NULL },
      "reject_rhsbl_sender needs a DNS list zone such as zen.example or "
      "zen.example=127.0.0.[2..11], not dbl..example" },
};

/* DNS list zones: the next item, with an optional answer pattern */
static void test_parse_zones(void **state)
{
    const char *const items[] = { "reject_rbl_client", "Zen.Example",
                                  "reject_rhsbl_sender", "dbl.example=127.0.1.[2..99]",
                                  "permit_dnswl_client", "wl.example=127.0.0.2", "permit",
                                  NULL };
    restriction *r = NULL;
    char *err = NULL;
    long n = restriction_parse(items, &r, &err);

    (void)state;
    assert_int_equal(n, 4);
    assert_int_equal(r[0].kind, R_REJECT_RBL_CLIENT);
    assert_string_equal(r[0].zone, "zen.example");
    assert_null(r[0].filter);
    assert_int_equal(r[1].kind, R_REJECT_RHSBL_SENDER);
    assert_string_equal(r[1].zone, "dbl.example");
    assert_string_equal(r[1].filter, "127.0.1.[2..99]");
    assert_int_equal(r[2].kind, R_PERMIT_DNSWL_CLIENT);
    assert_string_equal(r[2].zone, "wl.example");
    assert_string_equal(r[2].filter, "127.0.0.2");
    assert_int_equal(r[3].kind, R_PERMIT);
    free(r);
}

static const struct filter_case {
    const char *filter, *addr;
    bool match;
} filters[] = {
    { NULL, "127.0.0.2", true },
    { "127.0.0.2", "127.0.0.2", true },
    { "127.0.0.2", "127.0.0.3", false },
    { "127.0.0.[2..11]", "127.0.0.2", true },
    { "127.0.0.[2..11]", "127.0.0.11", true },
    { "127.0.0.[2..11]", "127.0.0.12", false },
    { "127.0.0.[2..11]", "127.0.0.1", false },
    { "127.0.0.[2;4]", "127.0.0.4", true },
    { "127.0.0.[2;4]", "127.0.0.3", false },
    { "127.0.[0..1].[2;4..6;10]", "127.0.1.5", true },
    { "127.0.[0..1].[2;4..6;10]", "127.0.2.5", false },
    { "127.0.0.2", "::1", false },
    { "127.0.0.2", "not an address", false },
    /* bad patterns never match (the configuration check refuses them) */
    { "127.0.0", "127.0.0.2", false },
    { "127.0.0.256", "127.0.0.2", false },
    { "127.0.0.[5..2]", "127.0.0.3", false },
    { "127.0.0.[2", "127.0.0.2", false },
    { "127.0.0.2x", "127.0.0.2", false },
};

static void test_filters(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (restriction_filter_match(filters[i].filter, filters[i].addr) != filters[i].match)
            fail_msg("filter %s, answer %s: want %s", filters[i].filter ? filters[i].filter
                     : "(none)", filters[i].addr, filters[i].match ? "match" : "no match");
}

static void test_parse_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        restriction *r = NULL;
        char *err = NULL;
        assert_int_equal(restriction_parse(bad[i].items, &r, &err), -1);
        assert_non_null(err);
        assert_string_equal(err, bad[i].err);
        free(err);
    }
}

static const struct action_case {
    const char *value;
    action_kind kind;
    int code;
    const char *dsn, *text;
} actions[] = {
    { "OK", ACT_OK, 0, "", "" },
    { "ok", ACT_OK, 0, "", "" },
    { "1234", ACT_OK, 0, "", "" },
    { "DUNNO", ACT_DUNNO, 0, "", "" },
    { "REJECT", ACT_REJECT, 554, "5.7.1", "" },
    { "REJECT go away", ACT_REJECT, 554, "5.7.1", "go away" },
    { "REJECT 5.7.26 spf fail", ACT_REJECT, 554, "5.7.26", "spf fail" },
    { "DEFER later", ACT_DEFER, 450, "4.7.1", "later" },
    { "450 4.7.1 try later", ACT_DEFER, 450, "4.7.1", "try later" },
    { "550 5.7.1 go away", ACT_REJECT, 550, "5.7.1", "go away" },
    { "421 closing", ACT_DEFER, 421, "4.7.1", "closing" },
    { "553 no dsn here", ACT_REJECT, 553, "5.7.1", "no dsn here" },
    { "DEFER_IF_PERMIT dns", ACT_DEFER_IF_PERMIT, 450, "4.7.1", "dns" },
    { "WARN look", ACT_WARN, 0, "", "look" },
    { "HOLD held", ACT_HOLD, 0, "", "held" },
    { "DISCARD gone", ACT_DISCARD, 0, "", "gone" },
    { "IGNORE", ACT_IGNORE, 0, "", "" },
};

static void test_actions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        smtpd_action a;
        assert_true(smtpd_action_parse(actions[i].value, 554, 450, &a));
        assert_int_equal(a.kind, actions[i].kind);
        assert_int_equal(a.code, actions[i].code);
        assert_string_equal(a.dsn, actions[i].dsn);
        assert_string_equal(a.text, actions[i].text);
    }
}

static void test_bad_actions(void **state)
{
    static const char *const bad_values[] = { "", "   ", "FROB", "399 x", "600 x",
                                              "REJECTED x" };
    (void)state;
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        smtpd_action a;
        assert_false(smtpd_action_parse(bad_values[i], 554, 450, &a));
        assert_int_equal(a.kind, ACT_BAD);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_zones),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_bad_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
