/* relayhost_test.c - next-hop specifications: every accepted form, its
 * credential-free rewrite, and malformed input refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "relayhost.h"

static const struct good_case {
    const char *spec;
    bool        creds;          /* allow_credentials */
    const char *host;
    unsigned    port;
    bool        mx;
    const char *user, *pass;
    const char *nexthop;        /* relayhost_nexthop */
} good[] = {
    {"[mail.example.com]:587", false, "mail.example.com", 587, false, "", "", "[mail.example.com]:587"},
    {"[mail.example.com]", false, "mail.example.com", 0, false, "", "", "[mail.example.com]"},
    {"example.com", false, "example.com", 0, true, "", "", "example.com"},
    {"example.com:2525", false, "example.com", 2525, true, "", "", "example.com:2525"},
    {"example.com.", false, "example.com.", 0, true, "", "", "example.com."},
    {"[192.0.2.1]:25", false, "192.0.2.1", 25, false, "", "", "[192.0.2.1]:25"},
    {"192.0.2.1:25", false, "192.0.2.1", 25, false, "", "", "[192.0.2.1]:25"},
    {"[2001:db8::1]:587", false, "2001:db8::1", 587, false, "", "", "[2001:db8::1]:587"},
    {"[::1]", false, "::1", 0, false, "", "", "[::1]"},
    {"relay_1.example-2.net:65535", false, "relay_1.example-2.net", 65535, true, "", "", "relay_1.example-2.net:65535"},
    {"user:secret@smtp.example.com:587", true, "smtp.example.com", 587, true, "user", "secret", "smtp.example.com:587"},
    {"user@domain.com:pa:ss@[smtp.example.com]:587", true, "smtp.example.com", 587, false,
     "user@domain.com", "pa:ss", "[smtp.example.com]:587"},
    {"u:p@ss@[2001:db8::2]", true, "2001:db8::2", 0, false, "u", "p@ss", "[2001:db8::2]"},
    {"example.com", true, "example.com", 0, true, "", "", "example.com"},
};

static const struct bad_case {
    const char *spec;
    bool        creds;
    const char *why;            /* a substring of the error */
} bad[] = {
    {"", false, "empty host name"},
    {"[]:25", false, "empty host name"},
    {":25", false, "empty host name"},
    {"example.com:", false, "missing port"},
    {"example.com:0", false, "bad port 0"},
    {"example.com:99999", false, "bad port 99999"},
    {"example.com:25x", false, "bad port 25x"},
    {"example.com:-1", false, "bad port -1"},
    {"[example.com]:", false, "missing port"},
    {"[example.com]:123456789012345678901234", false, "bad port"},
    {"[example.com", false, "missing ']'"},
    {"example.com]", false, "unbalanced"},
    {"[[example.com]]", false, "unbalanced"},
    {"[example.com]]:25", false, "unbalanced"},
    {"[example.com]x", false, "expected ':port'"},
    {"2001:db8::1", false, "brackets"},
    {"[2001:db8::zz]", false, "bad host name"},
    {"exa mple.com", false, "white space"},
    {" example.com", false, "white space"},
    {"example.com\n", false, "white space"},
    {"ex/ample.com", false, "bad host name"},
    {"a..b", false, "bad host name"},
    {".example.com", false, "bad host name"},
    {"user:pass@example.com", false, "not allowed"},
    {"user:pass@", true, "without a host"},
    {"user@example.com", true, "without a password"},
    {":pass@example.com", true, "empty user name"},
    {"user:@example.com", true, "empty password"},
    {"user:pass@[x]:0", true, "bad port"},
};

static void test_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const struct good_case *c = &good[i];
        relayhost_t r;
        char err[128], hop[300];

        if (relayhost_parse(c->spec, c->creds, &r, err, sizeof err) != 0)
            fail_msg("%s: refused: %s", c->spec, err);
        if (strcmp(r.host, c->host) != 0 || r.port != c->port || r.mx != c->mx
            || strcmp(r.user, c->user) != 0 || strcmp(r.pass, c->pass) != 0)
            fail_msg("%s: got host=%s port=%u mx=%d user=%s pass=%s", c->spec, r.host, r.port,
                     r.mx, r.user, r.pass);
        relayhost_nexthop(&r, hop, sizeof hop);
        if (strcmp(hop, c->nexthop) != 0)
            fail_msg("%s: nexthop %s, want %s", c->spec, hop, c->nexthop);
    }
}

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct bad_case *c = &bad[i];
        relayhost_t r;
        char err[128];

        if (relayhost_parse(c->spec, c->creds, &r, err, sizeof err) != -1)
            fail_msg("\"%s\": accepted (host=%s)", c->spec, r.host);
        if (strstr(err, c->why) == NULL)
            fail_msg("\"%s\": error \"%s\", want \"%s\"", c->spec, err, c->why);
        assert_string_equal(r.pass, "");    /* no half-parsed secret left */
    }
}

/* A host name of 255 bytes fits, 256 does not; the error never overflows. */
static void test_lengths(void **state)
{
    char spec[400], err[16];
    relayhost_t r;

    (void)state;
    memset(spec, 'a', 255);
    spec[255] = '\0';
    assert_int_equal(relayhost_parse(spec, false, &r, err, sizeof err), 0);
    assert_int_equal(strlen(r.host), 255);
    memset(spec, 'a', 256);
    spec[256] = '\0';
    assert_int_equal(relayhost_parse(spec, false, &r, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(relayhost_parse("h:99999999999999999999", false, &r, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
