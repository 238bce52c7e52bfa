/* classifier_dns_test.c - the pure parts of the classifier's DNS tests
 * (classifier/test_dns.c): registered domains, DNS list items, query
 * names of client addresses, address comparison. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../classifier/test_dns.h"
#include "xalloc.h"

static void registrable(void **state)
{
    static const struct { const char *host, *want; } cases[] = {
        {"example.com", "example.com"},
        {"www.spammy-link.example", "spammy-link.example"},
        {"a.b.c.example.org", "example.org"},
        {"shop.example.co.uk", "example.co.uk"},
        {"example.co.uk", "example.co.uk"},
        {"x.y.loja.com.br", "loja.com.br"},
        {"www.example.ne.jp", "example.ne.jp"},
        {"co.uk", "co.uk"},                 /* no third label: the two there are */
        {"www.co.example", "co.example"},   /* not a ccTLD: two labels */
        {"example.com.", "example.com."},   /* trailing dot kept (the caller trims) */
        {"localhost", NULL},
        {"", NULL},
        {"192.0.2.1", NULL},
        {"[2001:db8::1]", NULL},
        {".", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = test_dns_registrable(cases[i].host);
        if (cases[i].want == NULL)
            assert_null(got);
        else {
            assert_non_null(got);
            assert_string_equal(got, cases[i].want);
        }
    }
    assert_null(test_dns_registrable(NULL));
}

static void lists_parse(void **state)
{
    const char *good[] = {"dnsbl.test=2.5", "zen.spamhaus.org=127.0.0.4=1", "b-l.test=-1", NULL};
    test_dns_lists l;
    char *err = NULL;
    (void)state;

    assert_true(test_dns_lists_parse(good, "RBL", &l, &err));
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0].zone, "dnsbl.test");
    assert_null(l.v[0].expect);
    assert_true(l.v[0].score == 2.5);
    assert_string_equal(l.v[0].hit, "RBL_DNSBL_TEST");
    assert_string_equal(l.v[1].zone, "zen.spamhaus.org");
    assert_string_equal(l.v[1].expect, "127.0.0.4");
    assert_true(l.v[1].score == 1.0);
    assert_string_equal(l.v[1].hit, "RBL_ZEN_SPAMHAUS_ORG");
    assert_string_equal(l.v[2].hit, "RBL_B_L_TEST");
    test_dns_lists_free(&l);

    assert_true(test_dns_lists_parse(NULL, "URIBL", &l, &err));
    assert_int_equal(l.n, 0);

    static const char *const bad[] = {"dnsbl.test", "=1", "dnsbl.test=", "dnsbl.test=x",
                                      "dnsbl.test=1e9", "dnsbl.test=not.an.ip=1",
                                      "bad zone=1", "dnsbl.test=127.0.0.2=", NULL};
    for (size_t i = 0; bad[i]; i++) {
        const char *items[] = {"ok.test=1", bad[i], NULL};
        err = NULL;
        assert_false(test_dns_lists_parse(items, "RBL", &l, &err));
        assert_non_null(err);
        assert_int_equal(l.n, 0);
        xfree(&err);
    }
}

static void reverse_ip(void **state)
{
    char out[80];
    (void)state;

    assert_true(test_dns_reverse_ip("127.0.0.30", out, sizeof out));
    assert_string_equal(out, "30.0.0.127");
    assert_true(test_dns_reverse_ip("::ffff:192.0.2.1", out, sizeof out));
    assert_string_equal(out, "1.2.0.192");
    assert_true(test_dns_reverse_ip("2001:db8::1", out, sizeof out));
    assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
    assert_false(test_dns_reverse_ip("", out, sizeof out));
    assert_false(test_dns_reverse_ip("mx.example", out, sizeof out));
    assert_false(test_dns_reverse_ip("2001:db8::1", out, 20));
}

static void same_ip(void **state)
{
    (void)state;
    assert_true(test_dns_same_ip("127.0.0.1", "::ffff:127.0.0.1"));
    assert_true(test_dns_same_ip("[127.0.0.1]", "127.0.0.1"));
    assert_true(test_dns_same_ip("[IPv6:2001:db8::1]", "2001:DB8:0::1"));
    assert_false(test_dns_same_ip("127.0.0.1", "127.0.0.2"));
    assert_false(test_dns_same_ip("mx.example", "127.0.0.1"));
    assert_false(test_dns_same_ip("", ""));
}

static void hit_name(void **state)
{
    char *n = test_dns_hit_name("URIBL", "multi.uribl-x.test");
    (void)state;
    assert_string_equal(n, "URIBL_MULTI_URIBL_X_TEST");
    xfree(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registrable),
        cmocka_unit_test(lists_parse),
        cmocka_unit_test(reverse_ip),
        cmocka_unit_test(same_ip),
        cmocka_unit_test(hit_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
