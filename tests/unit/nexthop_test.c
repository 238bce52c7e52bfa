/* nexthop_test.c - recipient routes to destinations: keys, ports, MX or
 * not, TLS levels from smtp_tls_policy_maps, AUTH credentials from the
 * relayhost or smtp_sasl_password_maps (hash maps built in a temp dir),
 * malformed next hops; and the self-address set (myself.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "map.h"
#include "../../delivery/myself.h"
#include "../../delivery/nexthop.h"
#include "xalloc.h"

#define RELAY CORREIO__ROUTE_KIND__ROUTE_RELAY
#define LMTP  CORREIO__ROUTE_KIND__ROUTE_LMTP

static char tmpdir[] = "/tmp/nexthop_test.XXXXXX";

/* build_map - write text as tmpdir/name, compile it, open hash:PATH. */
static map_t *build_map(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name), *spec, *err = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    map_t *m;

    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
    close(fd);
    if (map_build(path, &err) < 0)
        fail_msg("map_build %s: %s", path, err);
    spec = xasprintf("hash:%s", path);
    m = map_open(spec, NULL, &err);
    if (m == NULL)
        fail_msg("map_open %s: %s", spec, err);
    free(spec);
    free(path);
    return m;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static const struct dest_case {
    Correio__RouteKind route;
    const char *nexthop, *rcpt;
    /* want */
    const char *key, *host, *path;
    unsigned port;
    bool mx, lmtp;
    smtp_tls_level tls;
    const char *user, *pass;
} dests[] = {
    {RELAY, "example.com", "u@x.org", "smtp:example.com", "example.com", "", 25, true, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "Example.COM:2525", "u@x.org", "smtp:example.com:2525", "Example.COM", "", 2525,
     true, false, SMTP_TLS_MAY, "", ""},
    {RELAY, "example.com:25", "u@x.org", "smtp:example.com", "example.com", "", 25, true, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "[10.0.0.1]:25", "u@x.org", "smtp:[10.0.0.1]:25", "10.0.0.1", "", 25, false, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "[10.0.0.1]", "u@x.org", "smtp:[10.0.0.1]:25", "10.0.0.1", "", 25, false, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "", "u@Dest.example", "smtp:dest.example", "Dest.example", "", 25, true, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "", "u@[192.0.2.7]", "smtp:[192.0.2.7]:25", "192.0.2.7", "", 25, false, false,
     SMTP_TLS_MAY, "", ""},
    {RELAY, "", "u@[IPv6:2001:db8::7]", "smtp:[2001:db8::7]:25", "2001:db8::7", "", 25, false,
     false, SMTP_TLS_MAY, "", ""},
    {LMTP, "unix:/run/dovecot/lmtp", "u@x.org", "lmtp:unix:/run/dovecot/lmtp", "",
     "/run/dovecot/lmtp", 0, false, true, SMTP_TLS_NONE, "", ""},
    {LMTP, "[127.0.0.1]:24", "u@x.org", "lmtp:[127.0.0.1]:24", "127.0.0.1", "", 24, false, true,
     SMTP_TLS_NONE, "", ""},
    {LMTP, "imap.example:24", "u@x.org", "lmtp:[imap.example]:24", "imap.example", "", 24,
     false, true, SMTP_TLS_NONE, "", ""},
    /* policy maps */
    {RELAY, "secure.example", "u@x.org", "smtp:secure.example", "secure.example", "", 25, true,
     false, SMTP_TLS_VERIFY, "", ""},
    {RELAY, "[10.9.9.9]:587", "u@x.org", "smtp:[10.9.9.9]:587", "10.9.9.9", "", 587, false,
     false, SMTP_TLS_ENCRYPT, "bob", "pw:with:colons"},
    {RELAY, "[10.9.9.9]:25", "u@x.org", "smtp:[10.9.9.9]:25", "10.9.9.9", "", 25, false, false,
     SMTP_TLS_NONE, "carol", "c"},
    {LMTP, "[plain.example]:24", "u@x.org", "lmtp:[plain.example]:24", "plain.example", "", 24,
     false, true, SMTP_TLS_ENCRYPT, "", ""},
    /* the relayhost's own credentials, and only for it: at another port
     * it is another next hop, and the map's entry applies */
    {RELAY, "[relay.example]:587", "u@x.org", "smtp:[relay.example]:587", "relay.example", "",
     587, false, false, SMTP_TLS_MAY, "me@x.org", "s3cret"},
    {RELAY, "[relay.example]:25", "u@x.org", "smtp:[relay.example]:25", "relay.example", "", 25,
     false, false, SMTP_TLS_MAY, "never", "used"},
    {RELAY, "relay.example:587", "u@x.org", "smtp:relay.example:587", "relay.example", "", 587,
     true, false, SMTP_TLS_MAY, "", ""},
};

static const struct bad_case {
    Correio__RouteKind route;
    const char *nexthop;
    nexthop_status want;
    const char *why;
} bads[] = {
    {RELAY, "[10.0.0.1]:0", NEXTHOP_BAD, "4.3.5 bad next hop \"[10.0.0.1]:0\": bad port 0"},
    {RELAY, "user:pw@host", NEXTHOP_BAD, "credentials are not allowed"},
    {RELAY, "a b", NEXTHOP_BAD, "white space"},
    {LMTP, "lmtp.example", NEXTHOP_BAD, "LMTP over TCP needs a port"},
    {LMTP, "unix:relative/path", NEXTHOP_BAD, "expected unix:/absolute/path"},
    {CORREIO__ROUTE_KIND__ROUTE_MAILDIR, "x", NEXTHOP_BAD, "not SMTP or LMTP"},
    {RELAY, "badlevel.example", NEXTHOP_TRYLATER, "4.7.5 TLS policy lookup error"},
    {RELAY, "[10.7.7.7]:25", NEXTHOP_TRYLATER, "4.7.0 SASL credentials lookup error"},
};

static void open_policy(nexthop_policy *p, map_t *tls[3], map_t *sasl[2], relayhost_t *rh)
{
    char err[128];

    tls[0] = build_map("tls1", "secure.example verify\n"
                               "[10.9.9.9]:587 encrypt protocols=>=TLSv1.2\n"
                               "badlevel.example sometimes\n");
    tls[1] = build_map("tls2", "10.9.9.9 none\nsecure.example none\nplain.example encrypt\n");
    tls[2] = NULL;
    sasl[0] = build_map("sasl", "[10.9.9.9]:587 bob:pw:with:colons\n"
                                "10.9.9.9 carol:c\n"
                                "[10.7.7.7]:25 nopassword\n"
                                "[relay.example]:25 never:used\n");
    sasl[1] = NULL;
    assert_int_equal(relayhost_parse("me@x.org:s3cret@[relay.example]:587", true, rh, err,
                                     sizeof err), 0);
    *p = (nexthop_policy){
        .default_port = 25, .tls_level = SMTP_TLS_MAY, .tls_maps = tls, .sasl_maps = sasl,
        .relayhost = rh,
    };
}

static void close_policy(map_t *tls[3], map_t *sasl[2])
{
    map_close(&tls[0]);
    map_close(&tls[1]);
    map_close(&sasl[0]);
}

static void test_destinations(void **state)
{
    map_t *tls[3], *sasl[2];
    relayhost_t rh;
    nexthop_policy p;

    (void)state;
    open_policy(&p, tls, sasl, &rh);
    for (size_t i = 0; i < sizeof dests / sizeof dests[0]; i++) {
        const struct dest_case *c = &dests[i];
        nexthop_dest d;
        char err[256];

        if (nexthop_resolve(&p, c->route, c->nexthop, c->rcpt, &d, err, sizeof err) != NEXTHOP_OK)
            fail_msg("case %zu %s: %s", i, c->nexthop, err);
        if (strcmp(d.key, c->key) != 0 || strcmp(d.host, c->host) != 0
            || strcmp(d.path, c->path) != 0 || d.port != c->port || d.mx != c->mx
            || d.lmtp != c->lmtp || d.tls_level != c->tls)
            fail_msg("case %zu %s: key=%s host=%s path=%s port=%u mx=%d lmtp=%d tls=%s", i,
                     c->nexthop, d.key, d.host, d.path, d.port, d.mx, d.lmtp,
                     nexthop_tls_level_name(d.tls_level));
        if (strcmp(d.user, c->user) != 0 || strcmp(d.pass, c->pass) != 0)
            fail_msg("case %zu %s: user=%s pass=%s", i, c->nexthop, d.user, d.pass);
    }
    close_policy(tls, sasl);
}

static void test_bad_nexthops(void **state)
{
    map_t *tls[3], *sasl[2];
    relayhost_t rh;
    nexthop_policy p;

    (void)state;
    open_policy(&p, tls, sasl, &rh);
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        nexthop_dest d;
        char err[256];
        nexthop_status s = nexthop_resolve(&p, bads[i].route, bads[i].nexthop, "u@x.org", &d,
                                           err, sizeof err);
        if (s != bads[i].want || strstr(err, bads[i].why) == NULL)
            fail_msg("case %zu %s: status %d \"%s\", want %d \"%s\"", i, bads[i].nexthop, s,
                     err, bads[i].want, bads[i].why);
    }
    close_policy(tls, sasl);
}

/* Without maps and relayhost: the configured level, no AUTH. */
static void test_no_maps(void **state)
{
    nexthop_policy p = {.default_port = 2525, .tls_level = SMTP_TLS_ENCRYPT};
    nexthop_dest d;
    char err[128];

    (void)state;
    assert_int_equal(nexthop_resolve(&p, RELAY, "mx.example", "u@x", &d, err, sizeof err),
                     NEXTHOP_OK);
    assert_string_equal(d.key, "smtp:mx.example");
    assert_int_equal(d.port, 2525);
    assert_int_equal(d.tls_level, SMTP_TLS_ENCRYPT);
    assert_string_equal(d.user, "");
    assert_int_equal(nexthop_tls_level_parse("VERIFY"), SMTP_TLS_VERIFY);
    assert_int_equal(nexthop_tls_level_parse("dane"), -1);
}

/* ---------------------------------------------------------------- myself */

static void test_myself_specific(void **state)
{
    const char *listen[] = {"192.0.2.10:25", "[2001:db8::10]:2525", "localhost:26", NULL};
    const char *proxy[] = {"198.51.100.1", "[2001:db8::99]", NULL};
    char *err = NULL;
    myself_t *m = myself_new(listen, proxy, &err);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(25)};

    (void)state;
    if (m == NULL)
        fail_msg("myself_new: %s", err);
    assert_int_equal(myself_count(m), 6);
    assert_true(myself_has_text(m, "192.0.2.10", 25));
    assert_false(myself_has_text(m, "192.0.2.10", 2525));     /* another server there */
    assert_false(myself_has_text(m, "192.0.2.11", 25));
    assert_true(myself_has_text(m, "2001:db8::10", 2525));
    assert_true(myself_has_text(m, "127.0.0.1", 26));
    assert_true(myself_has_text(m, "::1", 26));
    assert_true(myself_has_text(m, "198.51.100.1", 25));       /* proxy: any port */
    assert_true(myself_has_text(m, "198.51.100.1", 587));
    assert_true(myself_has_text(m, "2001:db8::99", 25));
    assert_false(myself_has_text(m, "not-an-address", 25));
    inet_pton(AF_INET6, "::ffff:192.0.2.10", &s6.sin6_addr);  /* mapped counts as IPv4 */
    assert_true(myself_has(m, (struct sockaddr *)&s6));
    myself_free(&m);
    assert_null(m);
}

static void test_myself_wildcard(void **state)
{
    const char *listen[] = {"0.0.0.0:2525", NULL};
    char *err = NULL;
    myself_t *m = myself_new(listen, NULL, &err);

    (void)state;
    assert_non_null(m);
    assert_true(myself_has_text(m, "127.0.0.1", 2525));        /* lo is an interface */
    assert_false(myself_has_text(m, "127.0.0.1", 25));
    assert_false(myself_has_text(m, "::1", 2525));             /* 0.0.0.0 is IPv4 only */
    myself_free(&m);
}

static void test_myself_bad(void **state)
{
    static const struct {
        const char *listen, *proxy, *why;
    } cases[] = {
        {"192.0.2.1", NULL, "smtpd_listen: 192.0.2.1: expected host:port"},
        {"192.0.2.1:0", NULL, "smtpd_listen"},
        {"192.0.2.1:x", NULL, "smtpd_listen"},
        {"[::1:25", NULL, "smtpd_listen"},
        {NULL, "mail.example", "proxy_interfaces: mail.example: not an IP address"},
        {NULL, "[192.0.2.1", "proxy_interfaces"},
        {NULL, "", "proxy_interfaces"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *l[] = {cases[i].listen, NULL}, *p[] = {cases[i].proxy, NULL};
        char *err = NULL;
        myself_t *m = myself_new(l, p, &err);
        if (m != NULL || err == NULL || strstr(err, cases[i].why) == NULL)
            fail_msg("case %zu: %s", i, err ? err : "accepted");
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destinations),
        cmocka_unit_test(test_bad_nexthops),
        cmocka_unit_test(test_no_maps),
        cmocka_unit_test(test_myself_specific),
        cmocka_unit_test(test_myself_wildcard),
        cmocka_unit_test(test_myself_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
