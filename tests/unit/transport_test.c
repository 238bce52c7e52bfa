/* transport_test.c - transport specifications (transport_maps values,
 * local_transport): every accepted form with what it becomes, and the
 * malformed ones with a reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "transport.h"

static const struct {
    const char    *spec;
    transport_kind kind;
    const char    *nexthop;
    const char    *text;
} good[] = {
    {"local", TRANSPORT_MAILDIR, "", ""},
    {"local:", TRANSPORT_MAILDIR, "", ""},
    {"maildir", TRANSPORT_MAILDIR, "", ""},
    {"  Maildir  ", TRANSPORT_MAILDIR, "", ""},
    {"smtp:", TRANSPORT_SMTP, "", ""},
    {"smtp", TRANSPORT_SMTP, "", ""},
    {"relay:", TRANSPORT_SMTP, "", ""},
    {"smtp:[mail.example.com]:587", TRANSPORT_SMTP, "[mail.example.com]:587", ""},
    {"smtp:[mail.example.com]", TRANSPORT_SMTP, "[mail.example.com]", ""},
    {"smtp:mail.example.com", TRANSPORT_SMTP, "mail.example.com", ""},
    {"smtp:mail.example.com:2525", TRANSPORT_SMTP, "mail.example.com:2525", ""},
    {"relay:[192.0.2.1]:25", TRANSPORT_SMTP, "[192.0.2.1]:25", ""},
    {"SMTP:[2001:db8::1]:25", TRANSPORT_SMTP, "[2001:db8::1]:25", ""},
    {"lmtp:unix:/run/dovecot/lmtp", TRANSPORT_LMTP, "unix:/run/dovecot/lmtp", ""},
    {"lmtp:[127.0.0.1]:24", TRANSPORT_LMTP, "[127.0.0.1]:24", ""},
    {"lmtp:imap.example.com:24", TRANSPORT_LMTP, "imap.example.com:24", ""},
    {"lmtp:inet:imap.example.com:24", TRANSPORT_LMTP, "imap.example.com:24", ""},
    {"error:5.1.1 no such user here", TRANSPORT_ERROR, "", "5.1.1 no such user here"},
    {"error:user has moved", TRANSPORT_ERROR, "", "5.0.0 user has moved"},
    {"error:5.7.1", TRANSPORT_ERROR, "", "5.7.1 recipient address rejected"},
    {"error:", TRANSPORT_ERROR, "", TRANSPORT_ERROR_DEFAULT},
    {"error", TRANSPORT_ERROR, "", TRANSPORT_ERROR_DEFAULT},
    {"error:5.1.1x is not a code", TRANSPORT_ERROR, "", "5.0.0 5.1.1x is not a code"},
    {"discard:", TRANSPORT_DISCARD, "", ""},
    {"discard", TRANSPORT_DISCARD, "", ""},
    {"discard:old list", TRANSPORT_DISCARD, "", "old list"},
};

static const struct {
    const char *spec;
    const char *why;       /* a part of the reason */
} bad[] = {
    {"", "empty"},
    {"   ", "empty"},
    {"procmail:", "unknown transport"},
    {"uucp", "unknown transport"},
    {"local:host", "no next hop"},
    {"maildir:x", "no next hop"},
    {"smtp:user:pw@[host]:25", "credentials"},
    {"smtp:[host]:99999", "bad port"},
    {"smtp:[host", "missing ']'"},
    {"smtp:2001:db8::1", "IPv6"},
    {"smtp:bad host", "white space"},
    {"smtp:ho$t", "bad host name"},
    {"lmtp:", "needs a next hop"},
    {"lmtp:unix:", "absolute path"},
    {"lmtp:unix:relative/path", "absolute path"},
    {"lmtp:unix:/with space", "bad socket path"},
    {"lmtp:host", "needs a port"},
    {"lmtp:[127.0.0.1]", "needs a port"},
    {"error:4.2.2 try later", "5.X.Y"},
    {"error:2.0.0 fine", "5.X.Y"},
    {"error:bad\x01text", "control"},
    {"discard:caf\xc3\xa9", "non-ASCII"},
};

static void test_transport_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        transport_t t;
        char err[256] = "";
        int rc = transport_parse(good[i].spec, &t, err, sizeof err);
        if (rc != 0)
            fail_msg("\"%s\": %s", good[i].spec, err);
        assert_int_equal(t.kind, good[i].kind);
        assert_string_equal(t.nexthop, good[i].nexthop);
        assert_string_equal(t.text, good[i].text);
    }
}

static void test_transport_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        transport_t t;
        char err[256] = "";
        if (transport_parse(bad[i].spec, &t, err, sizeof err) != -1)
            fail_msg("\"%s\" was accepted", bad[i].spec);
        if (!strstr(err, bad[i].why))
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].spec, err, bad[i].why);
    }
}

static void test_transport_long(void **state)
{
    (void)state;
    char spec[2048], err[256];
    transport_t t;
    memcpy(spec, "error:5.1.1 ", 12);
    memset(spec + 12, 'x', sizeof spec - 13);
    spec[sizeof spec - 1] = 0;
    assert_int_equal(transport_parse(spec, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));
    assert_string_equal(transport_kind_name(TRANSPORT_LMTP), "lmtp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_good),
        cmocka_unit_test(test_transport_bad),
        cmocka_unit_test(test_transport_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
