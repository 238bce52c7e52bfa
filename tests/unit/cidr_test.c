/* cidr_test.c - network lists (mynetworks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

static const char *const nets[] = {
    "127.0.0.0/8", "[::1]/128", "192.0.2.1", "10.1.0.0/16", "2001:db8::/32",
    "[198.51.100.0]/24", "fe80::1", NULL,
};

static const struct match_case {
    const char *ip;
    bool want;
} matches[] = {
    {"127.0.0.1", true},
    {"127.255.255.254", true},
    {"128.0.0.1", false},
    {"::1", true},
    {"::2", false},
    {"192.0.2.1", true},
    {"192.0.2.2", false},
    {"10.1.200.3", true},
    {"10.2.0.1", false},
    {"2001:db8::25", true},
    {"2001:db8:ffff::1", true},
    {"2001:db9::1", false},
    {"198.51.100.77", true},
    {"fe80::1", true},
    {"fe80::2", false},
    {"::ffff:127.0.0.1", true},      /* IPv4-mapped matches IPv4 entries */
    {"::ffff:192.0.2.1", true},
    {"::ffff:192.0.2.9", false},
    {"[::1]", true},
    {"not an ip", false},
    {"", false},
};

static void test_match_text(void **state)
{
    char *err = NULL;
    cidr_list_t *l = cidr_list_parse(nets, &err);

    (void)state;
    if (l == NULL)
        fail_msg("parse: %s", err);
    for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++)
        if (cidr_list_match_text(l, matches[i].ip) != matches[i].want)
            fail_msg("case %zu %s: want %d", i, matches[i].ip, matches[i].want);
    cidr_list_free(&l);
    assert_null(l);
}

static void test_match_sockaddr(void **state)
{
    char *err = NULL;
    cidr_list_t *l = cidr_list_parse(nets, &err);
    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};

    (void)state;
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    assert_true(cidr_list_match(l, (struct sockaddr *)&sin));
    inet_pton(AF_INET, "10.3.2.3", &sin.sin_addr);
    assert_false(cidr_list_match(l, (struct sockaddr *)&sin));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.9.9", &sin6.sin6_addr);
    assert_true(cidr_list_match(l, (struct sockaddr *)&sin6));
    inet_pton(AF_INET6, "2001:db8:1::", &sin6.sin6_addr);
    assert_true(cidr_list_match(l, (struct sockaddr *)&sin6));
    inet_pton(AF_INET6, "2002::", &sin6.sin6_addr);
    assert_false(cidr_list_match(l, (struct sockaddr *)&sin6));
    cidr_list_free(&l);
}

static void test_bad_items(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "[10.0.0.0/8",
        "example.com", "", "/8", "10.0.0.0/8/8", "10.0.0.0/-1", "[]",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *items[] = {"127.0.0.0/8", bad[i], NULL};
        char *err = NULL;
        cidr_list_t *l = cidr_list_parse(items, &err);

        if (l != NULL)
            fail_msg("bad item \"%s\" accepted", bad[i]);
        assert_non_null(err);
        assert_non_null(strstr(err, bad[i]));
        free(err);
    }
}

static void test_edges(void **state)
{
    const char *all4[] = {"0.0.0.0/0", NULL};
    const char *all6[] = {"::/0", NULL};
    const char *none[] = {NULL};
    char *err = NULL;
    cidr_list_t *l;

    (void)state;
    l = cidr_list_parse(all4, &err);
    assert_true(cidr_list_match_text(l, "203.0.113.5"));
    assert_false(cidr_list_match_text(l, "2001:db8::1"));
    cidr_list_free(&l);
    l = cidr_list_parse(all6, &err);
    assert_true(cidr_list_match_text(l, "2001:db8::1"));
    cidr_list_free(&l);
    l = cidr_list_parse(none, &err);
    assert_non_null(l);
    assert_false(cidr_list_match_text(l, "127.0.0.1"));
    cidr_list_free(&l);
    /* host bits in the network are ignored, as in Postfix */
    {
        const char *items[] = {"192.0.2.77/24", NULL};
        l = cidr_list_parse(items, &err);
        assert_true(cidr_list_match_text(l, "192.0.2.1"));
        cidr_list_free(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_text),
        cmocka_unit_test(test_match_sockaddr),
        cmocka_unit_test(test_bad_items),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
