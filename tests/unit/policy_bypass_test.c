/* policy_bypass_test.c - the bypass lists of the policy checks
 * (ingress/policy_bypass): items, files, and what they match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../ingress/policy_bypass.h"

/* sa - a sockaddr for a text address (IPv4 or IPv6). */
static const struct sockaddr *sa(const char *ip)
{
    static struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return (const struct sockaddr *)&ss;
}

static const char *const items[] = {
    "192.0.2.0/24", "198.51.100.7", "[2001:db8::]/32", "mx.example.com", ".trusted.example",
    "Boss@Example.org", "@partner.example", NULL,
};

static const struct client_case {
    const char *ip, *name;
    bool match;
} clients[] = {
    { "192.0.2.99", NULL, true },
    { "192.0.3.1", NULL, false },
    { "198.51.100.7", "unknown", true },
    { "198.51.100.8", "unknown", false },
    { "2001:db8:1::5", NULL, true },
    { "2001:db9::5", NULL, false },
    { "::ffff:192.0.2.1", NULL, true },
    { "203.0.113.1", "MX.example.com", true },
    { "203.0.113.1", "mx2.example.com", false },
    { "203.0.113.1", "a.b.trusted.example", true },
    { "203.0.113.1", "trusted.example", false },
    { "203.0.113.1", "xtrusted.example", false },
    { "203.0.113.1", "unknown", false },
    { "203.0.113.1", "", false },
};

static const struct address_case {
    const char *address;
    bool match;
} addresses[] = {
    { "boss@example.org", true },
    { "BOSS@EXAMPLE.ORG", true },
    { "other@example.org", false },
    { "anyone@partner.example", true },
    { "anyone@Partner.Example", true },
    { "anyone@sub.partner.example", false },
    { "", false },
    { "no-at-sign", false },
};

static void test_items(void **state)
{
    char *err = NULL;
    policy_bypass_t *b = policy_bypass_open("rbl_bypass", items, &err);

    (void)state;
    if (b == NULL)
        fail_msg("open: %s", err);
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
        if (policy_bypass_client(b, sa(clients[i].ip), clients[i].name) != clients[i].match)
            fail_msg("client %s name %s: want %s", clients[i].ip,
                     clients[i].name ? clients[i].name : "(null)",
                     clients[i].match ? "match" : "no match");
    for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++)
        if (policy_bypass_address(b, addresses[i].address) != addresses[i].match)
            fail_msg("address %s: want %s", addresses[i].address,
                     addresses[i].match ? "match" : "no match");
    policy_bypass_free(&b);
    assert_null(b);
}

static void test_empty(void **state)
{
    const char *const none[] = { NULL };
    char *err = NULL;
    policy_bypass_t *b = policy_bypass_open("rbl_bypass", none, &err);

    (void)state;
    assert_non_null(b);
    assert_false(policy_bypass_client(b, sa("192.0.2.1"), "mx.example.com"));
    assert_false(policy_bypass_address(b, "a@b.example"));
    policy_bypass_free(&b);
    assert_false(policy_bypass_client(NULL, sa("192.0.2.1"), NULL));
}

static void test_file(void **state)
{
    char path[] = "/tmp/bypass-test.XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    const char *list[] = { "10.0.0.1", path, NULL };
    char *err = NULL;
    policy_bypass_t *b;

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("# the partners\n\n  192.0.2.0/28   # office\n@partner.example\n.good.example\n", f);
    fclose(f);
    b = policy_bypass_open("greylist_bypass", list, &err);
    if (b == NULL)
        fail_msg("open: %s", err);
    assert_true(policy_bypass_client(b, sa("10.0.0.1"), NULL));
    assert_true(policy_bypass_client(b, sa("192.0.2.15"), NULL));
    assert_false(policy_bypass_client(b, sa("192.0.2.16"), NULL));
    assert_true(policy_bypass_client(b, sa("192.0.2.200"), "x.good.example"));
    assert_true(policy_bypass_address(b, "rcpt@partner.example"));
    policy_bypass_free(&b);

    /* a bad line names the file and line */
    f = fopen(path, "a");
    fputs("not valid!\n", f);
    fclose(f);
    assert_null(policy_bypass_open("greylist_bypass", list, &err));
    assert_non_null(err);
    {
        char want[200];
        snprintf(want, sizeof(want), "%s:6: not valid!: not a host name, address, network "
                 "or file", path);
        assert_string_equal(err, want);
    }
    free(err);
    unlink(path);
    assert_null(policy_bypass_open("greylist_bypass", list, &err));
    assert_non_null(strstr(err, "No such file"));
    free(err);
}

static const struct bad_case {
    const char *item, *err;
} bad[] = {
    { "192.0.2.0/33", "rbl_bypass: 192.0.2.0/33: not an IP address or network" },
    { "300.1.1.1", "rbl_bypass: 300.1.1.1: not an IP address or network" },
    { "a@b@c", "rbl_bypass: a@b@c: not an address: want user@example.com or @example.com" },
    { "@", "rbl_bypass: @: not an address: want user@example.com or @example.com" },
    { ".", "rbl_bypass: .: not a domain name" },
    { "bad host", "rbl_bypass: bad host: not a host name, address, network or file" },
};

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *list[] = { bad[i].item, NULL };
        char *err = NULL;
        assert_null(policy_bypass_open("rbl_bypass", list, &err));
        assert_non_null(err);
        assert_string_equal(err, bad[i].err);
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
