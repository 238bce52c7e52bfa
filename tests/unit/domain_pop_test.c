/* domain_pop_test.c - Domain POP recipients from a header section, table
 * driven: each header kind alone; the tiers' order (X-Envelope-To beats
 * Delivered-To beats X-Original-To beats To/Cc); display names, quoted
 * commas, comments, groups and folded lines; other domains ignored;
 * unknown local users and messages naming nobody go to forward_to;
 * duplicates merged; Received "for" only when asked; the recipient cap;
 * the body is never read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../fetcher/domain_pop.h"
#include "xalloc.h"

static const char *const local_users[] = {
    "alice@example.test", "bob@example.test", "carol@example.test", "demo@example.test", NULL,
};

static bool exists(void *ctx, const char *address)
{
    (void)ctx;
    for (size_t i = 0; local_users[i]; i++)
        if (strcmp(local_users[i], address) == 0)
            return true;
    return false;
}

typedef struct row {
    const char *name;
    const char *msg;
    bool        received_for;   /* !ignore_received_for */
    size_t      max;
    const char *want;           /* recipients joined by ',' in order found */
    const char *source;
} row;

static const row rows[] = {
    {"envelope-to", "X-Envelope-To: <alice@example.test>\r\nTo: bob@example.test\r\n\r\nb\r\n",
     false, 10, "alice@example.test", "X-Envelope-To"},
    {"delivered-to", "To: alice@example.test\r\nDelivered-To: bob@example.test\r\n\r\n", false,
     10, "bob@example.test", "Delivered-To"},
    {"original-to", "To: alice@example.test\r\nX-Original-To: carol@Example.TEST\r\n\r\n", false,
     10, "carol@example.test", "X-Original-To"},
    {"to-cc", "To: Alice <alice@example.test>, x@other.example\r\n"
              "Cc: \"Bob, B.\" <bob@example.test>, carol@example.test (Carol)\r\n\r\n",
     false, 10, "alice@example.test,bob@example.test,carol@example.test", "To/Cc"},
    {"folded", "To: x@other.example,\r\n\tbob@example.test\r\n\r\n", false, 10,
     "bob@example.test", "To/Cc"},
    {"group", "To: team: alice@example.test, bob@example.test;\r\n\r\n", false, 10,
     "alice@example.test,bob@example.test", "To/Cc"},
    {"unknown user", "To: nobody@example.test\r\n\r\n", false, 10, "demo@example.test", "To/Cc"},
    {"unknown and known", "To: nobody@example.test, alice@example.test\r\n\r\n", false, 10,
     "demo@example.test,alice@example.test", "To/Cc"},
    {"other domain only", "To: someone@elsewhere.example\r\n\r\n", false, 10,
     "demo@example.test", "none"},
    {"sub-domain is not the domain", "To: alice@sub.example.test\r\n\r\n", false, 10,
     "demo@example.test", "none"},
    {"nothing", "Subject: hi\r\n\r\nTo: alice@example.test\r\n", false, 10, "demo@example.test",
     "none"},
    {"dedupe", "X-Envelope-To: alice@example.test\r\nX-Envelope-To: ALICE@example.test\r\n\r\n",
     false, 10, "alice@example.test", "X-Envelope-To"},
    {"received for ignored", "Received: from a by b\r\n\tfor <bob@example.test>; Mon, 1 Jan 2024"
                             "\r\nTo: list@lists.example\r\n\r\n", false, 10,
     "demo@example.test", "none"},
    {"received for used", "Received: from a by b\r\n\tfor <bob@example.test>; Mon, 1 Jan 2024"
                          "\r\nTo: list@lists.example\r\n\r\n", true, 10, "bob@example.test",
     "To/Cc"},
    {"cap", "To: alice@example.test, bob@example.test, carol@example.test\r\n\r\n", false, 2,
     "alice@example.test,bob@example.test", "To/Cc"},
    {"bare LF", "To: carol@example.test\nSubject: x\n\nbody\n", false, 10, "carol@example.test",
     "To/Cc"},
    {"quoted local part refused", "To: \"a b\"@example.test\r\n\r\n", false, 10,
     "demo@example.test", "none"},
    {"no colon line skipped", "garbage line\r\nTo: bob@example.test\r\n\r\n", false, 10,
     "bob@example.test", "To/Cc"},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row *r = &rows[i];
        domain_pop_opts o = {
            .domain = "example.test", .forward_to = "demo@example.test",
            .ignore_received_for = !r->received_for, .exists = exists, .max = r->max,
        };
        char **got = NULL, joined[1000] = "";
        const char *source = NULL;
        size_t n = domain_pop_recipients(r->msg, strlen(r->msg), &o, &got, &source);

        for (size_t j = 0; j < n; j++) {
            if (j)
                strcat(joined, ",");
            strcat(joined, got[j]);
        }
        if (strcmp(joined, r->want) != 0 || strcmp(source, r->source) != 0)
            fail_msg("%s: got %s (from %s), want %s (from %s)", r->name, joined, source, r->want,
                     r->source);
        domain_pop_free(&got, n);
        assert_null(got);
    }
}

/* test_hostile - huge, unterminated and NUL-laden input stays bounded. */
static void test_hostile(void **state)
{
    (void)state;
    size_t len = 2 * 1024 * 1024;
    char *big = xmalloc(len);
    domain_pop_opts o = {.domain = "example.test", .forward_to = "demo@example.test",
                         .ignore_received_for = true, .exists = exists, .max = 5};
    char **got = NULL;
    const char *source;
    size_t n;

    memset(big, 'a', len);
    memcpy(big, "To: (((((\"", 10);
    n = domain_pop_recipients(big, len, &o, &got, &source);
    assert_int_equal(n, 1);
    assert_string_equal(got[0], "demo@example.test");
    domain_pop_free(&got, n);
    memcpy(big, "To: <alice@example.test>\0\r\n", 27);
    n = domain_pop_recipients(big, 27, &o, &got, &source);
    assert_int_equal(n, 1);
    domain_pop_free(&got, n);
    n = domain_pop_recipients("", 0, &o, &got, &source);
    assert_int_equal(n, 1);
    domain_pop_free(&got, n);
    xfree(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
