/* dns_cache_test.c - the DNS answer cache (lib/dns_cache) with a clock the
 * test runs, and hits through a resolver (lib/dns) that is never asked:
 * its only server is a closed port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "dns_cache.h"
#include "timeutil.h"

#define S 1000      /* ms per second */

static dns_rr one_a[] = { { 0, "127.0.0.2" } };

static dns_reply ok_reply(unsigned ttl)
{
    dns_reply r = { DNS_OK, "Successful completion", false, ttl, 0, 1, one_a };
    return r;
}

static dns_reply notfound_reply(unsigned neg_ttl)
{
    dns_reply r = { DNS_NOTFOUND, "Domain name not found", true, 0, neg_ttl, 0, NULL };
    return r;
}

/* alive - is (type, name) a hit at now? */
static bool alive(dns_cache_t *c, dns_type type, const char *name, int64_t now)
{
    dns_reply *r = NULL;
    bool hit = dns_cache_get(c, type, name, now, &r);

    dns_cache_reply_free(&r);
    return hit;
}

/* How long each kind of answer lives: a cache of max_ttl 100 s,
 * negative 30 s. */
static const struct keep_case {
    const char *what;
    dns_reply (*make)(unsigned);
    unsigned    ttl;
    int64_t     alive_until;    /* seconds; 0: never kept */
} keeps[] = {
    { "OK ttl 60", ok_reply, 60, 60 },
    { "OK ttl 1", ok_reply, 1, 1 },
    { "OK ttl capped by max_ttl", ok_reply, 5000, 100 },
    { "OK ttl 0 is not kept", ok_reply, 0, 0 },
    { "NOTFOUND with the SOA's 10 s", notfound_reply, 10, 10 },
    { "NOTFOUND without SOA: neg_ttl", notfound_reply, 0, 30 },
    { "NOTFOUND SOA capped by neg_ttl", notfound_reply, 3600, 30 },
};

static void test_lifetimes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
        const struct keep_case *k = &keeps[i];
        dns_cache_t *c = dns_cache_new(10, 100, 30);
        dns_reply r = k->make(k->ttl);
        int64_t t0 = 5000 * S;

        dns_cache_put(c, DNS_A, "x.test", &r, t0);
        if (k->alive_until == 0) {
            if (alive(c, DNS_A, "x.test", t0))
                fail_msg("%s: kept", k->what);
        } else {
            if (!alive(c, DNS_A, "x.test", t0 + k->alive_until * S - 1))
                fail_msg("%s: gone before %lld s", k->what, (long long)k->alive_until);
            if (alive(c, DNS_A, "x.test", t0 + k->alive_until * S))
                fail_msg("%s: still there at %lld s", k->what, (long long)k->alive_until);
        }
        dns_cache_free(&c);
        assert_null(c);
    }
}

static void test_hit_contents(void **state)
{
    dns_cache_t *c = dns_cache_new(10, 3600, 30);
    dns_rr rr[2] = { { 10, "mx1.ok.test" }, { 20, "mx2.ok.test" } };
    dns_reply r = { DNS_OK, "ok", false, 300, 0, 2, rr };
    dns_reply *got = NULL;
    size_t n;
    uint64_t hits, misses;

    (void)state;
    dns_cache_put(c, DNS_MX, "Ok.Test.", &r, 0);
    /* keys ignore case and the trailing dot; the type is part of them */
    assert_true(dns_cache_get(c, DNS_MX, "ok.test", 100 * S, &got));
    assert_int_equal(got->status, DNS_OK);
    assert_int_equal(got->n, 2);
    assert_int_equal(got->rr[1].pref, 20);
    assert_string_equal(got->rr[1].text, "mx2.ok.test");
    assert_string_equal(got->error, "ok");
    assert_int_equal(got->ttl, 200);            /* what is left */
    dns_cache_reply_free(&got);
    assert_null(got);
    assert_false(dns_cache_get(c, DNS_A, "ok.test", 100 * S, &got));
    assert_null(got);
    assert_true(alive(c, DNS_MX, "OK.TEST", 299 * S + 1));
    dns_cache_stats(c, &n, &hits, &misses);
    assert_int_equal(n, 1);
    assert_int_equal(hits, 2);
    assert_int_equal(misses, 1);
    /* the stored copy does not depend on the caller's strings */
    rr[0].text = "changed";
    assert_true(dns_cache_get(c, DNS_MX, "ok.test", 1, &got));
    assert_string_equal(got->rr[0].text, "mx1.ok.test");
    dns_cache_reply_free(&got);
    dns_cache_free(&c);
}

static void test_tempfail_replaces(void **state)
{
    dns_cache_t *c = dns_cache_new(10, 3600, 30);
    dns_reply ok = ok_reply(300);
    dns_reply tf = { DNS_TEMPFAIL, "Timeout", false, 0, 0, 0, NULL };

    (void)state;
    dns_cache_put(c, DNS_A, "x.test", &tf, 0);
    assert_false(alive(c, DNS_A, "x.test", 1));
    dns_cache_put(c, DNS_A, "x.test", &ok, 0);
    assert_true(alive(c, DNS_A, "x.test", 1));
    /* a newer answer replaces the older one, even one not to be kept */
    dns_cache_put(c, DNS_A, "x.test", &tf, 2);
    assert_false(alive(c, DNS_A, "x.test", 3));
    dns_cache_free(&c);
}

static void test_bounded(void **state)
{
    dns_cache_t *c = dns_cache_new(100, 3600, 30);
    dns_cache_t *none = dns_cache_new(0, 3600, 30);
    dns_reply r = ok_reply(300);
    char name[64];
    size_t n;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "h%d.test", i);
        dns_cache_put(c, DNS_A, name, &r, i);
        dns_cache_put(none, DNS_A, name, &r, i);
    }
    dns_cache_stats(c, &n, NULL, NULL);
    assert_int_equal(n, 100);
    dns_cache_stats(none, &n, NULL, NULL);
    assert_int_equal(n, 0);
    /* the oldest went first: 900..999 are there, 899 is not */
    assert_false(alive(c, DNS_A, "h899.test", 1000));
    for (int i = 900; i < 1000; i++) {
        snprintf(name, sizeof(name), "h%d.test", i);
        assert_true(alive(c, DNS_A, name, 1000));
    }
    /* an expired entry is dropped when met */
    assert_false(alive(c, DNS_A, "h950.test", 400 * S));
    dns_cache_stats(c, &n, NULL, NULL);
    assert_int_equal(n, 99);
    dns_cache_free(&c);
    dns_cache_free(&none);
}

/* ------------------------------------------------------------ through lib/dns */

typedef struct result {
    int      calls;
    dns_status status;
    unsigned ttl;
    char     text[64];
} result;

static void on_reply(void *arg, const dns_reply *r)
{
    result *res = arg;

    res->calls++;
    res->status = r->status;
    res->ttl = r->ttl;
    snprintf(res->text, sizeof(res->text), "%s", r->n ? r->rr[0].text : "");
}

static void test_resolver_hits(void **state)
{
    const char *servers[] = { "127.0.0.1:1", NULL };
    char *err = NULL;
    dns_t *d = dns_new(servers, 200, 1, NULL, NULL, &err);
    dns_cache_t *c = dns_cache_new(10, 3600, 30);
    dns_reply r = ok_reply(300);
    result a = { 0 }, b = { 0 };
    dns_query_t *qb;

    (void)state;
    assert_non_null(d);
    dns_set_cache(d, c);
    dns_cache_put(c, DNS_A, "2.0.0.127.dnsbl.test", &r, time_mono_ms());
    dns_query(d, "2.0.0.127.DNSBL.test.", DNS_A, on_reply, &a);
    qb = dns_query(d, "2.0.0.127.dnsbl.test", DNS_A, on_reply, &b);
    /* never from inside dns_query: from the next dns_process */
    assert_int_equal(a.calls, 0);
    assert_int_equal(dns_pending(d), 2);
    assert_int_equal(dns_timeout_ms(d), 0);
    dns_abandon(&qb);
    assert_null(qb);
    dns_process(d, -1, false, false);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, DNS_OK);
    assert_string_equal(a.text, "127.0.0.2");
    assert_true(a.ttl >= 299 && a.ttl <= 300);
    assert_int_equal(b.calls, 0);
    assert_int_equal(dns_pending(d), 0);

    /* a miss goes to the (dead) server: TEMPFAIL, and nothing is kept */
    memset(&a, 0, sizeof(a));
    dns_query(d, "other.test", DNS_A, on_reply, &a);
    dns_wait(d);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, DNS_TEMPFAIL);
    assert_false(alive(c, DNS_A, "other.test", time_mono_ms()));

    /* a hit still parked when the resolver goes: freed, no callback */
    memset(&a, 0, sizeof(a));
    dns_query(d, "2.0.0.127.dnsbl.test", DNS_A, on_reply, &a);
    dns_free(&d);
    assert_int_equal(a.calls, 0);
    dns_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifetimes),
        cmocka_unit_test(test_hit_contents),
        cmocka_unit_test(test_tempfail_replaces),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_resolver_hits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
