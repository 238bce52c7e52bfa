/* routing_test.c - the router's per-recipient decision: local Maildir,
 * relay, and every local part that must never become a path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../router/routing.h"

#define MAILDIR CORREIO__ROUTE_KIND__ROUTE_MAILDIR
#define RELAY   CORREIO__ROUTE_KIND__ROUTE_RELAY
#define ERROR   CORREIO__ROUTE_KIND__ROUTE_ERROR

static const char *const mydest[] = {"example.test", "localhost", "mx.example.test", NULL};

static const struct {
    const char        *address;
    Correio__RouteKind route;
    const char        *mailbox;   /* maildir */
    const char        *nexthop;
} cases[] = {
    {"demo@example.test", MAILDIR, "example.test/demo", "demo@example.test"},
    {"Demo@EXAMPLE.Test", MAILDIR, "example.test/demo", "Demo@EXAMPLE.Test"},
    {"first.last+tag@example.test", MAILDIR, "example.test/first.last+tag", NULL},
    {"postmaster", MAILDIR, "mx.example.test/postmaster", NULL},
    {"\"John\"@example.test", MAILDIR, "example.test/john", NULL},
    {"\"a\\b\"@example.test", MAILDIR, "example.test/ab", NULL},
    {"user@other.test", RELAY, "", "other.test"},
    {"user@Other.TEST", RELAY, "", "other.test"},
    {"user@sub.example.test", RELAY, "", "sub.example.test"},
    /* nothing below may become a directory */
    {"\"a/b\"@example.test", ERROR, "", NULL},
    {"\"../x\"@example.test", ERROR, "", NULL},
    {"\"..\"@example.test", ERROR, "", NULL},
    {"\".\"@example.test", ERROR, "", NULL},
    {".hidden@example.test", ERROR, "", NULL},
    {"\"\"@example.test", ERROR, "", NULL},
    {"@example.test", ERROR, "", NULL},
    {"\"john doe\"@example.test", ERROR, "", NULL},
    {"\"a\\/b\"@example.test", ERROR, "", NULL},
    {"\"tab\there\"@example.test", ERROR, "", NULL},
    {"\"caf\xc3\xa9\"@example.test", ERROR, "", NULL},
    {"\"a@b\"@example.test", ERROR, "", NULL},
    {"\"unterminated@example.test", ERROR, "", NULL},
    {"\"x\\\"@example.test", ERROR, "", NULL},
    {"a\\b@example.test", ERROR, "", NULL},
};

static void test_routing_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        routing_decision d;
        routing_decide(mydest, "mx.example.test", cases[i].address, &d);
        assert_int_equal(d.route, cases[i].route);
        assert_string_equal(d.mailbox, cases[i].mailbox);
        if (cases[i].nexthop)
            assert_string_equal(d.nexthop, cases[i].nexthop);
        if (d.route == ERROR)
            assert_string_equal(d.status_text, ROUTING_UNSAFE_TEXT);
        else
            assert_string_equal(d.status_text, "");
        if (d.route == MAILDIR) {
            const char *slash = strchr(d.mailbox, '/');
            assert_non_null(slash);
            assert_null(strchr(slash + 1, '/'));
            assert_true(slash[1] != '.' && slash[1] != '\0');
        }
        routing_decision_free(&d);
    }
}

static void test_routing_mailbox_safe(void **state)
{
    (void)state;
    assert_true(routing_mailbox_safe("demo"));
    assert_true(routing_mailbox_safe("a.b"));
    assert_false(routing_mailbox_safe(""));
    assert_false(routing_mailbox_safe("."));
    assert_false(routing_mailbox_safe(".."));
    assert_false(routing_mailbox_safe("a/b"));
    assert_false(routing_mailbox_safe("a b"));
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(routing_mailbox_safe(longname));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_table),
        cmocka_unit_test(test_routing_mailbox_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
