/* config_test.c - the parameter table and correio.conf parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/config_test.XXXXXX";

/* load_text - write text as correio.conf in tmpdir and load it. */
static config_t *load_text(const char *text, char **err)
{
    char *path = xasprintf("%s/correio.conf", tmpdir);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
    return config_load(tmpdir, err);
}

static void test_every_param_has_doc(void **state)
{
    (void)state;
    for (int i = 0; config_params[i].name; i++) {
        assert_non_null(config_params[i].doc);
        assert_true(strlen(config_params[i].doc) > 0);
        assert_null(strchr(config_params[i].doc, '\n'));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(config_params[i].name, config_params[j].name);
    }
}

static void test_defaults_validate(void **state)
{
    char *err = NULL;
    config_t *cfg;

    (void)state;
    cfg = config_load("/nonexistent/correio-test", &err);
    if (cfg == NULL)
        fail_msg("defaults do not validate: %s", err);
    assert_true(config_size(cfg, "message_size_limit") == 10240000);
    assert_true(config_time_ms(cfg, "smtpd_timeout") == 300000);
    assert_true(config_time_ms(cfg, "duplicate_retention_time") == 10LL * 86400000);
    assert_true(config_size(cfg, "spool_map_size") == 4LL << 30);
    assert_true(config_int(cfg, "smtpd_recipient_limit") == 1000);
    assert_true(config_number(cfg, "spam_required_score") == 5.0);
    assert_true(strlen(config_str(cfg, "myhostname")) > 0);
    assert_string_equal(config_str(cfg, "classifier_endpoint"), "ipc:///run/correio/classifier");
    {
        const char *const *l = config_list(cfg, "mynetworks");
        assert_string_equal(l[0], "127.0.0.0/8");
        assert_string_equal(l[1], "[::1]/128");
        assert_null(l[2]);
    }
    config_free(&cfg);
    assert_null(cfg);
}

static const struct good_case {
    const char *text;
    const char *name;
    const char *str;       /* expected string value, or NULL */
    long long   num;       /* expected number for INT/SIZE/TIME */
} good_cases[] = {
    {"message_size_limit = 10m\n", "message_size_limit", NULL, 10LL << 20},
    {"message_size_limit = 2048k\n", "message_size_limit", NULL, 2048LL << 10},
    {"message_size_limit = 1g\n", "message_size_limit", NULL, 1LL << 30},
    {"message_size_limit=5000\n", "message_size_limit", NULL, 5000},
    {"smtpd_timeout = 5m\n", "smtpd_timeout", NULL, 300000},
    {"smtpd_timeout = 45\n", "smtpd_timeout", NULL, 45000},
    {"smtpd_timeout = 1500ms\n", "smtpd_timeout", NULL, 1500},
    {"smtpd_timeout = 1h\n", "smtpd_timeout", NULL, 3600000},
    {"duplicate_retention_time = 2w\n", "duplicate_retention_time", NULL, 14LL * 86400000},
    {"smtpd_recipient_limit = 50\n", "smtpd_recipient_limit", NULL, 50},
    /* duplicates: the last one wins */
    {"smtpd_recipient_limit = 50\nsmtpd_recipient_limit = 60\n", "smtpd_recipient_limit", NULL, 60},
    /* comments and blank lines */
    {"# comment\n\n   # indented comment\nsmtpd_banner = hi\n", "smtpd_banner", "hi", 0},
    /* continuation lines */
    {"smtpd_banner = one\n  two\n\tthree\n", "smtpd_banner", "one two three", 0},
    /* expansion */
    {"myhostname = mx.example.com\n", "smtpd_banner", "mx.example.com ESMTP correio", 0},
    {"myhostname = mx.example.com\n", "mydomain", "example.com", 0},
    {"myhostname = single\n", "mydomain", "single", 0},
    {"myhostname = mx.example.com\nsmtpd_banner = ${myhostname}x $mydomain\n",
     "smtpd_banner", "mx.example.comx example.com", 0},
    {"run_directory = /tmp/r\n", "router_endpoint", "ipc:///tmp/r/router", 0},
    {"smtpd_banner = cost $$5\n", "smtpd_banner", "cost $5", 0},
    /* a later definition is seen by an earlier reference */
    {"smtpd_banner = $mail_owner\nmail_owner = postman\n", "smtpd_banner", "postman", 0},
    {"mail_owner = a\nmail_root = /m/$mail_owner\nsmtpd_banner = $mail_root\n",
     "smtpd_banner", "/m/a", 0},
    {"smtpd_banner = x\r\n", "smtpd_banner", "x", 0},
    /* transports and next hops (read as text) */
    {"local_transport = lmtp:unix:/run/dovecot/lmtp\n", "local_transport",
     "lmtp:unix:/run/dovecot/lmtp", 0},
    {"local_transport = lmtp:[127.0.0.1]:24\n", "local_transport", "lmtp:[127.0.0.1]:24", 0},
    {"local_transport = local\n", "local_transport", "local", 0},
    {"relayhost = [smtp.example.net]:587\n", "relayhost", "[smtp.example.net]:587", 0},
    {"relayhost = user@example.net:s3cret@[smtp.example.net]:587\n", "relayhost",
     "user@example.net:s3cret@[smtp.example.net]:587", 0},
    {"relayhost =\n", "relayhost", "", 0},
    {"best_mx_transport = local\n", "best_mx_transport", "local", 0},
    {"best_mx_transport =\n", "best_mx_transport", "", 0},
};

static void test_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        const struct good_case *c = &good_cases[i];
        char *err = NULL;
        config_t *cfg = load_text(c->text, &err);

        if (cfg == NULL)
            fail_msg("case %zu: %s", i, err);
        if (c->str) {
            assert_string_equal(config_str(cfg, c->name), c->str);
        } else {
            int t = -1;
            for (int j = 0; config_params[j].name; j++)
                if (!strcmp(config_params[j].name, c->name))
                    t = config_params[j].type;
            long long v = t == PARAM_SIZE ? config_size(cfg, c->name)
                        : t == PARAM_TIME ? config_time_ms(cfg, c->name)
                        : config_int(cfg, c->name);
            if (v != c->num)
                fail_msg("case %zu: %s = %lld, expected %lld", i, c->name, v, c->num);
        }
        config_free(&cfg);
    }
}

static const struct bad_case {
    const char *text;
    const char *error;  /* expected, after "DIR/correio.conf" */
} bad_cases[] = {
    {"message_size_limit = 10x\n",
     ":1: message_size_limit: '10x' is not a size (use 10240000, 10m, 1g)"},
    {"# c\n\nmessage_size_limit = 10\n", ":3: message_size_limit: '10' is out of range (1k..4g)"},
    {"message_size_limit = 5g\n", ":1: message_size_limit: '5g' is out of range (1k..4g)"},
    {"message_size_limit = -5\n", ":1: message_size_limit: '-5' is not a size (use 10240000, 10m, 1g)"},
    {"message_size_limit = 99999999999999999999999\n",
     ":1: message_size_limit: '99999999999999999999999' is not a size (use 10240000, 10m, 1g)"},
    {"smtpd_timeout = 5y\n", ":1: smtpd_timeout: '5y' is not a time (use 300s, 5m, 1h, 2d, 500ms)"},
    {"smtpd_timeout = 2h\n", ":1: smtpd_timeout: '2h' is out of range (1s..1h)"},
    {"smtpd_timeout = \n", ":1: smtpd_timeout: '' is not a time (use 300s, 5m, 1h, 2d, 500ms)"},
    {"smtpd_recipient_limit = 1x\n", ":1: smtpd_recipient_limit: '1x' is not an integer"},
    {"smtpd_recipient_limit = 0\n", ":1: smtpd_recipient_limit: '0' is out of range (1..1000000)"},
    {"spam_required_score = lots\n", ":1: spam_required_score: 'lots' is not a number (use 5 or 6.5)"},
    {"smtpd_tls_security_level = maybe\n",
     ":1: smtpd_tls_security_level: 'maybe' is not one of: none may encrypt"},
    {"# restrictions\nsmtpd_recipient_restrictions = permit_mynetworks,\n"
     "    reject_unauth_destinaton\n",
     ":2: smtpd_recipient_restrictions: unknown restriction \"reject_unauth_destinaton\""},
    {"smtpd_client_restrictions = check_client_access\n",
     ":1: smtpd_client_restrictions: check_client_access needs a table such as "
     "hash:/etc/correio/access"},
    {"header_checks = regexp:/etc/x\n",
     ":1: header_checks: \"regexp:/etc/x\" is not a table such as "
     "hash:/etc/correio/access or pcre:/etc/correio/checks"},
    {"spam_required_score = 5000\n", ":1: spam_required_score: '5000' is out of range (-1000..1000)"},
    {"no_such_thing = 1\n", ":1: no_such_thing: unknown parameter"},
    {"smtpd_banner\n", ":1: missing '=' after parameter name \"smtpd_banner\""},
    {"  indented = 1\n", ":1: continuation line without a parameter before it"},
    {"= x\n", ":1: missing parameter name before '='"},
    {"x\nsmtpd_banner = $nothing\n", ":1: missing '=' after parameter name \"x\""},
    {"\nsmtpd_banner = $nothing here\n", ":2: smtpd_banner: '$nothing here': unknown parameter $nothing"},
    {"smtpd_banner = ${myhostname\n", ":1: smtpd_banner: '${myhostname': missing '}' after ${"},
    {"smtpd_banner = a $ b\n", ":1: smtpd_banner: 'a $ b': '$' without a parameter name (write $$ for a $)"},
    {"local_transport = procmail\n",
     ":1: local_transport: unknown transport \"procmail\" (use local, smtp:, lmtp:, "
     "error: or discard:)"},
    {"local_transport = lmtp:\n",
     ":1: local_transport: lmtp: needs a next hop (lmtp:unix:/path or lmtp:[host]:port)"},
    {"local_transport = lmtp:host\n",
     ":1: local_transport: lmtp: \"host\" needs a port (lmtp:[host]:24)"},
    {"\nlocal_transport = smtp:[relay.example]:25\n",
     ":2: local_transport: 'smtp:[relay.example]:25': the smtp transport is not allowed here"},
    {"local_transport = error:5.1.1 no\n",
     ":1: local_transport: 'error:5.1.1 no': the error transport is not allowed here"},
    {"local_transport =\n", ":1: local_transport: empty transport"},
    {"relayhost = [smtp.example.net]:99999\n", ":1: relayhost: bad port 99999"},
    {"relayhost = user:s3cret@\n", ":1: relayhost: credentials without a host"},
    {"relayhost = user@[smtp.example.net]\n",
     ":1: relayhost: credentials without a password (expected user:password@host)"},
    {"relayhost = smtp example\n", ":1: relayhost: white space or control character in next hop"},
    {"best_mx_transport = lmtp\n", ":1: best_mx_transport: 'lmtp' is not one of: local"},
    /* an error in a referenced value is reported where it is used */
    {"message_size_limit = $smtpd_recipient_limit\n", ":1: message_size_limit: '1000' is out of range (1k..4g)"},
};

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        char *err = NULL;
        config_t *cfg = load_text(bad_cases[i].text, &err);
        char *want = xasprintf("%s/correio.conf%s", tmpdir, bad_cases[i].error);

        if (cfg != NULL)
            fail_msg("case %zu: accepted", i);
        assert_non_null(err);
        if (strcmp(err, want) != 0)
            fail_msg("case %zu:\n got  %s\n want %s", i, err, want);
        free(err);
        free(want);
    }
}

static void test_loops(void **state)
{
    static const char *const loops[] = {
        "smtpd_banner = $smtpd_banner\n",
        "smtpd_banner = $mail_owner\nmail_owner = $smtpd_banner\n",
        "myhostname = $mydomain\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        char *err = NULL;
        config_t *cfg = load_text(loops[i], &err);

        if (cfg != NULL)
            fail_msg("loop %zu accepted", i);
        assert_non_null(strstr(err, "correio.conf:"));
        free(err);
    }
}

/* the relayhost's password never leaves the process in config_print */
static void test_relayhost_masked(void **state)
{
    static const struct {
        const char *value, *shown;
    } cases[] = {
        {"user:s3cret@[smtp.example.net]:587", "user:****@[smtp.example.net]:587"},
        {"me@example.net:s3:cret@smtp.example.net", "me@example.net:****@smtp.example.net"},
        {"[smtp.example.net]:587", "[smtp.example.net]:587"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL, *out = NULL, *text, *want;
        size_t outlen = 0;
        config_t *cfg;
        FILE *f;

        text = xasprintf("relayhost = %s\n", cases[i].value);
        cfg = load_text(text, &err);
        if (cfg == NULL)
            fail_msg("case %zu: %s", i, err);
        assert_string_equal(config_str(cfg, "relayhost"), cases[i].value);
        want = xasprintf("relayhost = %s\n", cases[i].shown);
        for (int what = CONFIG_SHOW_EFFECTIVE; what <= CONFIG_SHOW_CHANGED; what++) {
            if (what == CONFIG_SHOW_DEFAULTS)
                continue;
            f = open_memstream(&out, &outlen);
            config_print(cfg, f, (config_show)what);
            fclose(f);
            assert_null(strstr(out, "s3"));
            assert_non_null(strstr(out, want));
            free(out);
        }
        free(want);
        free(text);
        config_free(&cfg);
    }
}

static void test_path_and_print(void **state)
{
    char *err = NULL, *p, *out = NULL;
    size_t outlen = 0;
    config_t *cfg;
    FILE *f;

    (void)state;
    cfg = load_text("users_file = accounts\nmyhostname = h.example\n", &err);
    assert_non_null(cfg);
    p = config_path(cfg, "users_file");
    {
        char *want = xasprintf("%s/accounts", tmpdir);
        assert_string_equal(p, want);
        free(want);
    }
    free(p);
    assert_string_equal(config_dir(cfg), tmpdir);

    f = open_memstream(&out, &outlen);
    config_print(cfg, f, CONFIG_SHOW_CHANGED);
    fclose(f);
    assert_string_equal(out, "myhostname = h.example\nusers_file = accounts\n");
    free(out);

    f = open_memstream(&out, &outlen);
    config_print(cfg, f, CONFIG_SHOW_EFFECTIVE);
    fclose(f);
    assert_non_null(strstr(out, "smtpd_banner = h.example ESMTP correio\n"));
    free(out);

    f = open_memstream(&out, &outlen);
    config_print(cfg, f, CONFIG_SHOW_DEFAULTS);
    fclose(f);
    assert_non_null(strstr(out, "smtpd_banner = $myhostname ESMTP correio    # "));
    free(out);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_param_has_doc),
        cmocka_unit_test(test_defaults_validate),
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_path_and_print),
        cmocka_unit_test(test_relayhost_masked),
    };
    int rc;

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    {
        char *path = xasprintf("%s/correio.conf", tmpdir);
        unlink(path);
        free(path);
        rmdir(tmpdir);
    }
    return rc;
}
