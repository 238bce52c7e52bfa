/* address_test.c - RFC 5321 path parsing, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "xalloc.h"

#define NUL_OK  true
#define NO_NULL false

static const struct path_case {
    const char *in;
    bool        allow_null;
    path_status want;
    const char *address;   /* on PATH_OK */
    const char *domain;
    size_t      consumed;  /* 0: strlen(in) */
} cases[] = {
    /* null sender */
    {"<>", NUL_OK, PATH_OK, "", "", 0},
    {"<>", NO_NULL, PATH_NULL_REFUSED, NULL, NULL, 0},
    {"<> SIZE=100", NUL_OK, PATH_OK, "", "", 2},
    /* plain mailboxes */
    {"<user@example.com>", NO_NULL, PATH_OK, "user@example.com", "example.com", 0},
    {"<User.Name+tag@Example.COM>", NO_NULL, PATH_OK, "User.Name+tag@Example.COM", "Example.COM", 0},
    {"<a@b>", NO_NULL, PATH_OK, "a@b", "b", 0},
    {"<user@localhost>", NO_NULL, PATH_OK, "user@localhost", "localhost", 0},
    {"<!#$%&'*+-/=?^_`{|}~@example.com>", NO_NULL, PATH_OK, "!#$%&'*+-/=?^_`{|}~@example.com", "example.com", 0},
    {"<user@mx-1.ex-ample.co.uk>", NO_NULL, PATH_OK, "user@mx-1.ex-ample.co.uk", "mx-1.ex-ample.co.uk", 0},
    {"<u@123.example>", NO_NULL, PATH_OK, "u@123.example", "123.example", 0},
    {"<user@example.com> SIZE=1000 BODY=8BITMIME", NO_NULL, PATH_OK, "user@example.com", "example.com", 18},
    /* quoted local parts */
    {"<\"john doe\"@example.com>", NO_NULL, PATH_OK, "\"john doe\"@example.com", "example.com", 0},
    {"<\"a\\\"b\"@example.com>", NO_NULL, PATH_OK, "\"a\\\"b\"@example.com", "example.com", 0},
    {"<\"a\\\\b\"@example.com>", NO_NULL, PATH_OK, "\"a\\\\b\"@example.com", "example.com", 0},
    {"<\"a@b>c\"@example.com>", NO_NULL, PATH_OK, "\"a@b>c\"@example.com", "example.com", 0},
    {"<\"\"@example.com>", NO_NULL, PATH_OK, "\"\"@example.com", "example.com", 0},
    {"<\"a\"b@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<\"unterminated@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<\"tab\there\"@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<\"bs\\\x01\"@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    /* source routes: accepted and dropped */
    {"<@relay1,@relay2:user@example.com>", NO_NULL, PATH_OK, "user@example.com", "example.com", 0},
    {"<@relay.example:user@example.com>", NO_NULL, PATH_OK, "user@example.com", "example.com", 0},
    {"<@relay1,relay2:user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<@relay1:>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<@:user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<@relay1;user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    /* address literals */
    {"<user@[192.0.2.1]>", NO_NULL, PATH_OK, "user@[192.0.2.1]", "[192.0.2.1]", 0},
    {"<user@[IPv6:2001:db8::1]>", NO_NULL, PATH_OK, "user@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", 0},
    {"<user@[ipv6:::1]>", NO_NULL, PATH_OK, "user@[ipv6:::1]", "[ipv6:::1]", 0},
    {"<user@[IPv6:::ffff:192.0.2.1]>", NO_NULL, PATH_OK, "user@[IPv6:::ffff:192.0.2.1]", "[IPv6:::ffff:192.0.2.1]", 0},
    {"<user@[192.0.2.256]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[192.0.2]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[2001:db8::1]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[IPv6:2001:db8::g]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[x-tag:stuff]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[]>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@[192.0.2.1>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    /* syntax errors */
    {"", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"user@example.com", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {" <user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example.com", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"< user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example.com >", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user @example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<.user@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user.@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<us..er@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example..com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@.example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example.com.>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@-example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example-.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@exa_mple.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<us(er@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<us,er@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@exam@ple.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<us\xc3\xa9r@example.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@ex\xc3\xa4mple.com>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<<user@example.com>>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<user@example.com\r\n>", NO_NULL, PATH_SYNTAX, NULL, NULL, 0},
    {"<>", NUL_OK, PATH_OK, "", "", 0},
    {"< >", NUL_OK, PATH_SYNTAX, NULL, NULL, 0},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct path_case *c = &cases[i];
        smtp_path p;
        size_t consumed = 0;
        path_status st = smtp_path_parse(c->in, strlen(c->in), c->allow_null, &p, &consumed);

        if (st != c->want)
            fail_msg("case %zu \"%s\": status %d, want %d", i, c->in, st, c->want);
        if (st != PATH_OK)
            continue;
        if (strcmp(p.address, c->address) != 0)
            fail_msg("case %zu \"%s\": address \"%s\"", i, c->in, p.address);
        if (strcmp(p.domain, c->domain) != 0)
            fail_msg("case %zu \"%s\": domain \"%s\"", i, c->in, p.domain);
        assert_int_equal(p.null, c->address[0] == 0);
        assert_int_equal(consumed, c->consumed ? c->consumed : strlen(c->in));
    }
}

/* make_path - "<" + local + "@" + domain + ">" */
static char *make_path(size_t local_len, size_t label_len, size_t labels)
{
    char *s = xmalloc(local_len + labels * (label_len + 1) + 8);
    size_t n = 0;

    s[n++] = '<';
    memset(s + n, 'a', local_len);
    n += local_len;
    s[n++] = '@';
    for (size_t i = 0; i < labels; i++) {
        memset(s + n, 'b', label_len);
        n += label_len;
        s[n++] = i + 1 < labels ? '.' : '>';
    }
    s[n] = 0;
    return s;
}

static const struct length_case {
    size_t local, label, labels;
    path_status want;
} lengths[] = {
    {64, 10, 1, PATH_OK},
    {65, 10, 1, PATH_TOO_LONG},
    {10, 63, 1, PATH_OK},
    {10, 64, 1, PATH_TOO_LONG},
    {10, 63, 3, PATH_OK},           /* domain 191 */
    {60, 60, 3, PATH_OK},           /* path 60+1+182+2 = 245 */
    {64, 62, 3, PATH_OK},           /* path 64+1+188+2 = 255 */
    {64, 62, 4, PATH_TOO_LONG},     /* path over 256 */
    {10, 50, 6, PATH_TOO_LONG},     /* domain 305 */
    {5000, 10, 1, PATH_TOO_LONG},
};

static void test_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        char *s = make_path(lengths[i].local, lengths[i].label, lengths[i].labels);
        smtp_path p;
        size_t consumed;
        path_status st = smtp_path_parse(s, strlen(s), false, &p, &consumed);

        if (st != lengths[i].want)
            fail_msg("length case %zu (%zu bytes): status %d, want %d", i, strlen(s), st,
                     lengths[i].want);
        if (st == PATH_OK)
            assert_int_equal(strlen(p.address), strlen(s) - 2);
        free(s);
    }
    {
        /* quoted local part: 64 octets inside the quotes */
        char s[128];
        smtp_path p;
        size_t consumed;
        snprintf(s, sizeof(s), "<\"%.*s\"@x>", 64,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_int_equal(smtp_path_parse(s, strlen(s), false, &p, &consumed), PATH_OK);
        assert_int_equal(strlen(p.local), 66);
        snprintf(s, sizeof(s), "<\"%.*s\"@x>", 65,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_int_equal(smtp_path_parse(s, strlen(s), false, &p, &consumed), PATH_TOO_LONG);
    }
}

static void test_len_is_respected(void **state)
{
    smtp_path p;
    size_t consumed;

    (void)state;
    /* the '>' is beyond len: not seen */
    assert_int_equal(smtp_path_parse("<a@b>", 4, false, &p, &consumed), PATH_SYNTAX);
    assert_int_equal(smtp_path_parse("<a@b>", 5, false, &p, &consumed), PATH_OK);
    /* a NUL inside is just a bad byte */
    assert_int_equal(smtp_path_parse("<a\0b@c>", 7, false, &p, &consumed), PATH_SYNTAX);
}

static void test_helpers(void **state)
{
    static const char *const list[] = {"example.com", "Example.NET", NULL};
    char *l;

    (void)state;
    assert_string_equal(address_domain("user@example.com"), "example.com");
    assert_string_equal(address_domain("\"a@b\"@example.com"), "example.com");
    assert_string_equal(address_domain("nodomain"), "");
    assert_true(domain_list_match(list, "EXAMPLE.com"));
    assert_true(domain_list_match(list, "example.net"));
    assert_false(domain_list_match(list, "example.org"));
    assert_false(domain_list_match(list, "sub.example.com"));
    assert_false(domain_list_match(NULL, "example.com"));
    l = address_lower("User@Example.COM");
    assert_string_equal(l, "user@example.com");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_len_is_respected),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
