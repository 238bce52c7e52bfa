/* spf_test.c - lib/spf.c: the record parser, macro expansion (RFC 7208
 * 7.4's examples, exact), and check_host() against the DNS lab's spf.test
 * zone (tests/dns/unbound.conf.in) for every case of
 * tests/dns/spf_cases.txt, the table that tests/blackbox/test_spf.py
 * also runs through python3-spf, so both implementations agree with it.
 *
 * CORREIO_TEST_DNS=127.0.0.1:PORT names a running lab; without it this
 * program starts its own with tests/dns/lab.sh (as dns_test does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dns.h"
#include "spf.h"
#include "timeutil.h"
#include "xalloc.h"

#define LOOKUP_TIMEOUT_MS 400   /* x.timeout.test never answers: keep it short */

/* ------------------------------------------------------------ the lab */

static const char *lab_server;
static char lab_dir[64];
static char *repo;              /* where tests/dns/ is */

/* find_repo - the checkout, from the cwd or from build/tests/spf_test. */
static char *find_repo(void)
{
    char exe[PATH_MAX];
    ssize_t n;

    if (access("tests/dns/lab.sh", R_OK) == 0)
        return xstrdup(".");
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = 0;
    }
    char *p = xasprintf("%s/tests/dns/lab.sh", exe);
    bool ok = access(p, R_OK) == 0;
    xfree(&p);
    return ok ? xstrdup(exe) : NULL;
}

static int run_sh(const char *cmd)
{
    int st = system(cmd);

    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lab_setup(void **state)
{
    static char server[32];

    (void)state;
    repo = find_repo();
    lab_server = getenv("CORREIO_TEST_DNS");
    if (lab_server != NULL && lab_server[0] != 0)
        return 0;
    lab_server = NULL;
    strcpy(lab_dir, "/tmp/correio-spflab.XXXXXX");
    if (repo == NULL || mkdtemp(lab_dir) == NULL) {
        lab_dir[0] = 0;
        return 0;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        unsigned port = 20000 + arc4random_uniform(10000);
        char *cmd = xasprintf("sh '%s/tests/dns/lab.sh' start '%s' %u", repo, lab_dir, port);
        int rc = run_sh(cmd);

        xfree(&cmd);
        if (rc == 0) {
            snprintf(server, sizeof(server), "127.0.0.1:%u", port);
            lab_server = server;
            return 0;
        }
        if (rc != 2)
            break;
    }
    return 0;
}

static int lab_teardown(void **state)
{
    (void)state;
    if (lab_dir[0] != 0) {
        char *cmd = xasprintf("sh '%s/tests/dns/lab.sh' stop '%s'; rm -rf '%s'", repo, lab_dir,
                              lab_dir);
        run_sh(cmd);
        xfree(&cmd);
    }
    xfree(&repo);
    return 0;
}

static const char *need_lab(void)
{
    if (lab_server == NULL)
        fail_msg("no DNS lab: set CORREIO_TEST_DNS=127.0.0.1:PORT or install unbound");
    return lab_server;
}

/* ------------------------------------------------------------ the parser */

static void test_record_parse(void **state)
{
    static const struct { const char *in, *dump; } ok[] = {
        {"v=spf1", ""},
        {"V=SPF1 -ALL", "-all"},
        {"v=spf1  ip4:192.0.2.0/24   ~all ", "+ip4:192.0.2.0/24 ~all"},
        {"v=spf1 ip6:2001:DB8::/32 ?ip4:10.1.2.3", "+ip6:2001:db8::/32 ?ip4:10.1.2.3"},
        {"v=spf1 a mx/24 a:%{d}.example.com//64 mx:m.example/0//0 ptr ptr:example.org",
         "+a +mx/24 +a:%{d}.example.com//64 +mx:m.example/0//0 +ptr +ptr:example.org"},
        {"v=spf1 include:_spf.example.com exists:%{ir}.%{l1r+-}._spf.%{d} -all",
         "+include:_spf.example.com +exists:%{ir}.%{l1r+-}._spf.%{d} -all"},
        {"v=spf1 redirect=_spf.example.com", "redirect=_spf.example.com"},
        {"v=spf1 -all exp=explain._spf.%{d} moo=bar x.y-z=%{l}", "-all exp=explain._spf.%{d}"},
        {"v=spf1 a:example.com. -all", "+a:example.com. -all"},
    };
    static const struct { const char *in, *err; } bad[] = {
        {"v=spf10 -all", "not an SPF record"},
        {"spf1 -all", "not an SPF record"},
        {"v=spf1 ip4:300.1.1.1", "bad network"},
        {"v=spf1 ip4:192.0.2.0/33", "bad network"},
        {"v=spf1 ip4:192.0.2.0/024", "bad network"},
        {"v=spf1 ip6:2001:db8::/129", "bad network"},
        {"v=spf1 ip4", "needs an address"},
        {"v=spf1 foo:bar.example", "unknown mechanism"},
        {"v=spf1 all:x.example", "takes no argument"},
        {"v=spf1 include", "needs a domain"},
        {"v=spf1 a/33", "bad CIDR"},
        {"v=spf1 mx//129", "bad CIDR"},
        {"v=spf1 a:example.com/", "bad CIDR"},
        {"v=spf1 a:example", "top-level label"},
        {"v=spf1 a:example.123", "top-level label"},
        {"v=spf1 ptr/24", "no CIDR"},
        {"v=spf1 redirect=a.example redirect=b.example", "given twice"},
        {"v=spf1 exp=a.example exp=b.example", "given twice"},
        {"v=spf1 exists:%{x}.example.com", "unknown macro letter"},
        {"v=spf1 exists:%{c}.example.com", "only in exp"},
        {"v=spf1 exists:%{d0}.example.com", "transformer 0"},
        {"v=spf1 exists:%{d.example.com", "bad macro"},
        {"v=spf1 exists:%x.example.com", "bad macro"},
        {"v=spf1 moo=%{", "macro letter"},
        {"v=spf1 +redirect=x.example", "unknown mechanism"},
        {"v=spf1 \x01", "bad character"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *err = NULL, *dump;
        spf_record_t *r = spf_record_parse(ok[i].in, &err);

        if (r == NULL)
            fail_msg("\"%s\": %s", ok[i].in, err);
        dump = spf_record_dump(r);
        if (strcmp(dump, ok[i].dump) != 0)
            fail_msg("\"%s\" parsed as \"%s\", not \"%s\"", ok[i].in, dump, ok[i].dump);
        xfree(&dump);
        spf_record_free(&r);
        assert_null(r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        spf_record_t *r = spf_record_parse(bad[i].in, &err);

        if (r != NULL)
            fail_msg("\"%s\" was accepted", bad[i].in);
        if (err == NULL || strstr(err, bad[i].err) == NULL)
            fail_msg("\"%s\": error \"%s\", expected one with \"%s\"", bad[i].in,
                     err ? err : "(none)", bad[i].err);
        xfree(&err);
    }
}

/* ------------------------------------------------------------ macros */

static char *expand(const spf_macro_env *env, const char *in, bool explain)
{
    char *out = NULL, *err = NULL;

    if (!spf_macro_expand(env, in, explain, &out, &err))
        fail_msg("\"%s\": %s", in, err);
    return out;
}

/* RFC 7208 7.4: sender strong-bad@email.example.com, client 192.0.2.3 or
 * 2001:db8::cb01; every expected output below is the RFC's. */
static void test_macro_rfc_examples(void **state)
{
    spf_macro_env v4 = {
        .s = "strong-bad@email.example.com", .l = "strong-bad", .o = "email.example.com",
        .d = "email.example.com", .i = "192.0.2.3", .v = "in-addr", .h = "mx.example.org",
    };
    spf_macro_env v6 = v4;
    static const struct { const char *in, *out; } t4[] = {
        {"%{s}", "strong-bad@email.example.com"},
        {"%{o}", "email.example.com"},
        {"%{d}", "email.example.com"},
        {"%{d4}", "email.example.com"},
        {"%{d3}", "email.example.com"},
        {"%{d2}", "example.com"},
        {"%{d1}", "com"},
        {"%{dr}", "com.example.email"},
        {"%{d2r}", "example.email"},
        {"%{l}", "strong-bad"},
        {"%{l-}", "strong.bad"},
        {"%{lr}", "strong-bad"},
        {"%{lr-}", "bad.strong"},
        {"%{l1r-}", "strong"},
        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
        /* beyond 7.4: escapes, URL encoding of upper-case letters, h */
        {"%%%_%-", "% %20"},
        {"%{S}", "strong-bad%40email.example.com"},
        {"%{h}", "mx.example.org"},
        {"%{d200}", "email.example.com"},
    };
    char *out;

    (void)state;
    for (size_t i = 0; i < sizeof(t4) / sizeof(t4[0]); i++) {
        out = expand(&v4, t4[i].in, false);
        if (strcmp(out, t4[i].out) != 0)
            fail_msg("%s -> \"%s\", not \"%s\"", t4[i].in, out, t4[i].out);
        xfree(&out);
    }
    v6.i = "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1";
    v6.v = "ip6";
    out = expand(&v6, "%{ir}.%{v}._spf.%{d2}", false);
    assert_string_equal(out, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
                             ".ip6._spf.example.com");
    xfree(&out);
    /* explanations may use c, r, t and spaces */
    v4.c = "192.0.2.3";
    v4.r = "mx.example.net";
    v4.t = "1700000000";
    out = expand(&v4, "%{c} is not allowed by %{o} at %{t} (%{r})", true);
    assert_string_equal(out, "192.0.2.3 is not allowed by email.example.com at 1700000000 "
                             "(mx.example.net)");
    xfree(&out);
}

static void test_domain_truncate(void **state)
{
    char name[600];

    (void)state;
    /* 100 labels "abc." (400 chars) + "example.com": keep the right side */
    name[0] = 0;
    for (int i = 0; i < 100; i++)
        strcat(name, "abc.");
    strcat(name, "example.com.");
    spf_domain_truncate(name);
    assert_true(strlen(name) <= 253);
    assert_true(strlen(name) > 240);
    assert_int_equal(strncmp(name, "abc.", 4), 0);
    assert_string_equal(name + strlen(name) - 12, ".example.com");
    strcpy(name, "short.example.");
    spf_domain_truncate(name);
    assert_string_equal(name, "short.example");
}

/* ------------------------------------------------------------ evaluation */

typedef struct outcome {
    bool        called;
    spf_result  result;
    char       *mechanism, *explanation, *received, *ar;
} outcome;

static void on_result(void *arg, const spf_answer *a)
{
    outcome *o = arg;

    assert_false(o->called);
    o->called = true;
    o->result = a->result;
    o->mechanism = a->mechanism ? xstrdup(a->mechanism) : NULL;
    o->explanation = a->explanation ? xstrdup(a->explanation) : NULL;
    o->received = xstrdup(a->received_spf);
    o->ar = xstrdup(a->auth_results);
}

static void outcome_free(outcome *o)
{
    xfree(&o->mechanism);
    xfree(&o->explanation);
    xfree(&o->received);
    xfree(&o->ar);
}

static void no_watch(void *ctx, int fd, bool r, bool w)
{
    (void)ctx, (void)fd, (void)r, (void)w;
}

static dns_t *lab_resolver(void)
{
    const char *servers[] = {need_lab(), NULL};
    char *err = NULL;
    dns_t *d = dns_new(servers, LOOKUP_TIMEOUT_MS, 1, no_watch, NULL, &err);

    if (d == NULL)
        fail_msg("dns_new: %s", err);
    return d;
}

/* check - one evaluation to its end; the callback must not run early. */
static void check(dns_t *d, const char *ip, const char *sender, const char *helo, outcome *o)
{
    int64_t t0 = time_mono_ms();
    spf_check_t *c;

    memset(o, 0, sizeof(*o));
    c = spf_check(d, ip, helo, sender, "mx.receiver.test", on_result, o);
    assert_non_null(c);
    assert_false(o->called);            /* never from inside spf_check */
    dns_wait(d);
    assert_true(o->called);
    assert_true(time_mono_ms() - t0 < 10000);
}

/* Every case of tests/dns/spf_cases.txt. */
static void test_lab_cases(void **state)
{
    dns_t *d;
    char *path, line[1024];
    FILE *f;
    int n = 0, bad = 0;

    (void)state;
    d = lab_resolver();
    path = xasprintf("%s/tests/dns/spf_cases.txt", repo ? repo : ".");
    f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        char ip[64], sender[256], helo[256], want[32];
        int used = 0;
        outcome o;

        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (sscanf(line, "%63s %255s %255s %31s %n", ip, sender, helo, want, &used) != 4)
            fail_msg("bad line in %s: %s", path, line);
        const char *want_exp = line + used;
        check(d, ip, strcmp(sender, "<>") == 0 ? "" : sender, helo, &o);
        n++;
        if (strcmp(spf_result_name(o.result), want) != 0) {
            print_error("%s %s: %s, expected %s (%s)\n", ip, sender, spf_result_name(o.result),
                        want, o.received);
            bad++;
        } else if (want_exp[0] != 0 &&
                   (o.explanation == NULL || strcmp(o.explanation, want_exp) != 0)) {
            print_error("%s %s: explanation \"%s\", expected \"%s\"\n", ip, sender,
                        o.explanation ? o.explanation : "(none)", want_exp);
            bad++;
        }
        outcome_free(&o);
    }
    fclose(f);
    xfree(&path);
    dns_free(&d);
    assert_true(n >= 40);
    assert_int_equal(bad, 0);
}

/* What the answer carries besides the result. */
static void test_answer_details(void **state)
{
    dns_t *d = lab_resolver();
    outcome o;

    (void)state;
    check(d, "127.0.0.1", "a@pass.spf.test", "helo.example", &o);
    assert_string_equal(o.mechanism, "ip4:127.0.0.0/8");
    assert_string_equal(o.received,
                        "pass (mx.receiver.test: domain of a@pass.spf.test designates 127.0.0.1 "
                        "as permitted sender) client-ip=127.0.0.1; envelope-from=\"a@pass.spf."
                        "test\"; helo=\"helo.example\"; receiver=mx.receiver.test; identity="
                        "mailfrom; mechanism=\"ip4:127.0.0.0/8\";");
    assert_string_equal(o.ar, "spf=pass smtp.mailfrom=a@pass.spf.test");
    outcome_free(&o);

    /* a fail through include reports the including term */
    check(d, "192.0.2.1", "a@inc.spf.test", "helo.example", &o);
    assert_string_equal(o.mechanism, "-all");
    assert_null(o.explanation);
    outcome_free(&o);
    check(d, "127.0.0.1", "a@inc.spf.test", "helo.example", &o);
    assert_string_equal(o.mechanism, "include:inc2.spf.test");
    outcome_free(&o);

    /* the null sender: postmaster@HELO, identity helo */
    check(d, "127.0.0.1", NULL, "pass.spf.test", &o);
    assert_int_equal(o.result, SPF_PASS);
    assert_string_equal(o.ar, "spf=pass smtp.helo=pass.spf.test");
    assert_non_null(strstr(o.received, "envelope-from=\"postmaster@pass.spf.test\""));
    assert_non_null(strstr(o.received, "identity=helo;"));
    outcome_free(&o);

    /* no record: none, no mechanism; a permerror says why */
    check(d, "127.0.0.1", "a@nospf.spf.test", "helo.example", &o);
    assert_int_equal(o.result, SPF_NONE);
    assert_null(o.mechanism);
    outcome_free(&o);
    check(d, "127.0.0.1", "a@many.spf.test", "helo.example", &o);
    assert_int_equal(o.result, SPF_PERMERROR);
    assert_non_null(strstr(o.received, "problem=\"more than 10 DNS lookups\";"));
    outcome_free(&o);

    /* REFUSED is an error other than NXDOMAIN: temperror (RFC 7208 4.4;
     * python3-spf's pydns reads REFUSED as an empty answer, so this case
     * is not in spf_cases.txt) */
    check(d, "127.0.0.1", "a@x.refused.test", "helo.example", &o);
    assert_int_equal(o.result, SPF_TEMPERROR);
    outcome_free(&o);

    /* decided without DNS, still reported later: a bad client address,
     * and a sender domain that cannot exist */
    check(d, "not-an-ip", "a@pass.spf.test", "helo.example", &o);
    assert_int_equal(o.result, SPF_PERMERROR);
    outcome_free(&o);
    check(d, "127.0.0.1", "a@nodot", "helo.example", &o);
    assert_int_equal(o.result, SPF_NONE);
    outcome_free(&o);
    check(d, "127.0.0.1", "a@\"bad\r\n;.example", "h\"\r\n", &o);
    assert_null(strpbrk(o.received, "\r\n"));
    outcome_free(&o);
    dns_free(&d);
}

/* spf_abandon: no callback, nothing leaks (ASan), lookups cancelled. */
static void test_abandon(void **state)
{
    dns_t *d = lab_resolver();
    outcome o;
    spf_check_t *c;

    (void)state;
    memset(&o, 0, sizeof(o));
    c = spf_check(d, "127.0.0.7", "helo.example", "a@mx.spf.test", NULL, on_result, &o);
    spf_abandon(&c);
    assert_null(c);
    spf_abandon(&c);
    c = spf_check(d, "bad", "helo.example", "a@mx.spf.test", NULL, on_result, &o);
    spf_abandon(&c);
    assert_int_equal(dns_pending(d), 0);
    assert_false(o.called);
    dns_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_parse),
        cmocka_unit_test(test_macro_rfc_examples),
        cmocka_unit_test(test_domain_truncate),
        cmocka_unit_test(test_lab_cases),
        cmocka_unit_test(test_answer_details),
        cmocka_unit_test(test_abandon),
    };

    return cmocka_run_group_tests(tests, lab_setup, lab_teardown);
}
