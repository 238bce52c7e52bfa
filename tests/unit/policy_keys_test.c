/* policy_keys_test.c - the keys the ingress builds for the policy
 * service, table-driven: greylist sender normalisation (VERP, BATV,
 * +extensions, the null sender), triplets with and without the network,
 * intrusion keys (IPv6 by /64), and sending_limit_maps values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../ingress/policy_keys.h"

static void test_sender(void **state)
{
    static const struct { const char *in, *out; } t[] = {
        { "", "<>" },
        { "User@Example.COM", "user@example.com" },
        { "prvs=1234abcd=user@example.com", "user@example.com" },
        { "PRVS=0123456789=bounce-42@example.com", "bounce-#@example.com" },
        { "user+lists@example.com", "user@example.com" },
        { "bounce-12345-user=example.org@lists.example.com",
          "bounce-#-user=example.org@lists.example.com" },
        { "a1b22c333@x1.example", "a#b#c#@x1.example" },
        { "msgprefix-1-2-3+tag-99@example.com", "msgprefix-#-#-#@example.com" },
        { "prvs=@example.com", "prvs=@example.com" },          /* no tag: left alone */
        { "nodomain123", "nodomain#" },
    };
    char out[POLICY_KEY_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        policy_key_sender(t[i].in, out, sizeof(out));
        assert_string_equal(out, t[i].out);
    }
    policy_key_sender("averyveryverylongsender@example.com", out, 8);    /* bounded */
    assert_string_equal(out, "averyve");
}

static void test_triplet(void **state)
{
    char out[POLICY_KEY_MAX], net[64];

    (void)state;
    policy_key_triplet(NULL, "prvs=77=Joe+x@Example.com", "Rcpt@Example.TEST", out, sizeof(out));
    assert_string_equal(out, "joe@example.com/rcpt@example.test");
    policy_key_network("192.0.2.77", 24, 64, net, sizeof(net));
    assert_string_equal(net, "192.0.2.0/24");
    policy_key_triplet(net, "", "a@b.test", out, sizeof(out));
    assert_string_equal(out, "192.0.2.0/24/<>/a@b.test");
    policy_key_network("10.200.3.4", 12, 64, net, sizeof(net));
    assert_string_equal(net, "10.192.0.0/12");
    policy_key_network("2001:db8:1:2:3:4:5:6", 24, 48, net, sizeof(net));
    assert_string_equal(net, "2001:db8:1::/48");
    policy_key_triplet("x", "s@d", "r@d", out, 5);                    /* bounded */
    assert_int_equal(strlen(out), 4);
}

static void test_ip(void **state)
{
    static const struct { const char *in, *out; } t[] = {
        { "192.0.2.1", "192.0.2.1" },
        { "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64" },
        { "::1", "::/64" },
        { "fe80::1", "fe80::/64" },
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        policy_key_ip(t[i].in, out, sizeof(out));
        assert_string_equal(out, t[i].out);
    }
}

static void test_limits(void **state)
{
    policy_limits l;
    const char *bad = NULL;

    (void)state;
    assert_true(policy_limits_parse("messages=100 recipients=20 domain_messages=1000", &l, &bad));
    assert_int_equal(l.messages, 100);
    assert_int_equal(l.recipients, 20);
    assert_int_equal(l.domain_messages, 1000);
    assert_true(policy_limits_parse(" recipients=5,messages=0 ", &l, &bad));
    assert_int_equal(l.messages, 0);
    assert_int_equal(l.recipients, 5);
    assert_int_equal(l.domain_messages, -1);
    assert_true(policy_limits_parse("", &l, &bad));
    assert_int_equal(l.messages, -1);
    assert_false(policy_limits_parse("messages=10 speed=3", &l, &bad));
    assert_string_equal(bad, "speed=3");
    assert_false(policy_limits_parse("messages=-1", &l, &bad));
    assert_false(policy_limits_parse("messages=12x", &l, &bad));
    assert_false(policy_limits_parse("messages", &l, &bad));
    assert_false(policy_limits_parse("messages=99999999999999999999999", &l, &bad));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sender),
        cmocka_unit_test(test_triplet),
        cmocka_unit_test(test_ip),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
