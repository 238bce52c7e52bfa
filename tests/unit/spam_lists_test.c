/* spam_lists_test.c - lib/spam_lists: normalisation, add/del/show, the
 * precedence of user, domain and server entries, keyword points, a
 * read-only reader that sees the writer's commits; and the classifier's
 * rows (classifier/test_lists.c): whose lists, AUTH_WHITELIST, KEYWORDS
 * times its score. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../classifier/scoring.h"
#include "config.h"
#include "spam_lists.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/spam_lists_test.XXXXXX";

static void rm_env(void)
{
    char *p = xasprintf("rm -rf %s", tmpdir);
    assert_int_equal(system(p), 0);
    xfree(&p);
}

static spam_lists_t *open_rw(void)
{
    char *err = NULL;
    spam_lists_t *l = spam_lists_open(tmpdir, true, NULL, &err);
    assert_non_null(l);
    return l;
}

static void add(spam_lists_t *l, const char *scope, spam_lists_kind kind, const char *value,
                double points)
{
    char *err = NULL;
    if (spam_lists_add(l, scope, kind, value, points, &err) != 0)
        fail_msg("add %s %s: %s", scope, value, err);
}

static void test_norm(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *scope;      /* NULL: rejected */
    } scopes[] = {
        {"*", "*"}, {"Example.COM", "example.com"}, {"Alice@Example.com", "alice@example.com"},
        {"", NULL}, {"bad scope", NULL}, {"@example.com", NULL}, {"a@", NULL},
        {"a..b", NULL}, {".a.b", NULL}, {"a b@c.d", NULL},
    };
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
        char *err = NULL, *s = spam_lists_scope_norm(scopes[i].in, &err);
        if (scopes[i].scope) {
            assert_non_null(s);
            assert_string_equal(s, scopes[i].scope);
        } else {
            assert_null(s);
            assert_non_null(err);
        }
        xfree(&s);
        xfree(&err);
    }
    static const struct {
        spam_lists_kind kind;
        const char *in, *out;
    } values[] = {
        {SPAM_LISTS_WHITELIST, "Sender@Partner.com", "sender@partner.com"},
        {SPAM_LISTS_BLACKLIST, "@Spammer.Example", "@spammer.example"},
        {SPAM_LISTS_BLACKLIST, "spammer.example", "@spammer.example"},
        {SPAM_LISTS_BLACKLIST, "@", NULL},
        {SPAM_LISTS_BLACKLIST, "x@@y", NULL},
        {SPAM_LISTS_KEYWORD, "  Cheap \t Viagra  ", "cheap viagra"},
        {SPAM_LISTS_KEYWORD, "   ", NULL},
        {SPAM_LISTS_KEYWORD, "a\001b", NULL},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *err = NULL, *v = spam_lists_value_norm(values[i].kind, values[i].in, &err);
        if (values[i].out) {
            assert_non_null(v);
            assert_string_equal(v, values[i].out);
        } else {
            assert_null(v);
            assert_non_null(err);
        }
        xfree(&v);
        xfree(&err);
    }
    char *long_kw = xmalloc(SPAM_LISTS_VALUE_MAX + 2), *err = NULL;
    memset(long_kw, 'a', SPAM_LISTS_VALUE_MAX + 1);
    long_kw[SPAM_LISTS_VALUE_MAX + 1] = 0;
    assert_null(spam_lists_value_norm(SPAM_LISTS_KEYWORD, long_kw, &err));
    xfree(&err);
    xfree(&long_kw);
}

static void test_add_del_show(void **state)
{
    (void)state;
    spam_lists_t *l = open_rw();
    spam_lists_entry *e = NULL;
    char *err = NULL;

    add(l, "Alice@Example.com", SPAM_LISTS_WHITELIST, "Sender@Partner.com", 0);
    add(l, "*", SPAM_LISTS_BLACKLIST, "@spammer.example", 0);
    add(l, "example.com", SPAM_LISTS_KEYWORD, "Viagra", 3.5);
    add(l, "example.com", SPAM_LISTS_KEYWORD, "viagra", -1);   /* replaces */
    /* bad points are refused */
    assert_int_equal(spam_lists_add(l, "*", SPAM_LISTS_KEYWORD, "x", 0, &err), -1);
    xfree(&err);
    assert_int_equal(spam_lists_add(l, "*", SPAM_LISTS_KEYWORD, "x", 1e9, &err), -1);
    xfree(&err);

    long n = spam_lists_show(l, NULL, &e, &err);
    assert_int_equal(n, 3);
    assert_string_equal(e[0].scope, "*");
    assert_int_equal(e[0].kind, SPAM_LISTS_BLACKLIST);
    assert_string_equal(e[0].value, "@spammer.example");
    assert_string_equal(e[1].scope, "alice@example.com");
    assert_string_equal(e[1].value, "sender@partner.com");
    assert_int_equal(e[1].kind, SPAM_LISTS_WHITELIST);
    assert_string_equal(e[2].scope, "example.com");
    assert_int_equal(e[2].kind, SPAM_LISTS_KEYWORD);
    assert_string_equal(e[2].value, "viagra");
    assert_true(e[2].points == -1.0);
    spam_lists_entries_free(&e, (size_t)n);

    n = spam_lists_show(l, "EXAMPLE.com", &e, &err);   /* one scope, not its users */
    assert_int_equal(n, 1);
    assert_string_equal(e[0].value, "viagra");
    spam_lists_entries_free(&e, (size_t)n);

    assert_int_equal(spam_lists_del(l, "*", SPAM_LISTS_BLACKLIST, "spammer.example", &err), 1);
    assert_int_equal(spam_lists_del(l, "*", SPAM_LISTS_BLACKLIST, "spammer.example", &err), 0);
    assert_int_equal(spam_lists_del(l, "no scope!", SPAM_LISTS_BLACKLIST, "a@b", &err), -1);
    xfree(&err);
    n = spam_lists_show(l, "*", &e, &err);
    assert_int_equal(n, 0);
    assert_null(e);
    spam_lists_close(&l);
    rm_env();
}

/* The precedence table: entries, then (rcpt, sender) -> level, white. */
static void test_precedence(void **state)
{
    (void)state;
    spam_lists_t *l = open_rw();

    add(l, "*", SPAM_LISTS_BLACKLIST, "@spam.example", 0);
    add(l, "*", SPAM_LISTS_WHITELIST, "@partner.example", 0);
    add(l, "example.com", SPAM_LISTS_WHITELIST, "friend@spam.example", 0);
    add(l, "example.com", SPAM_LISTS_BLACKLIST, "@news.partner.example", 0);
    add(l, "alice@example.com", SPAM_LISTS_BLACKLIST, "friend@spam.example", 0);
    add(l, "alice@example.com", SPAM_LISTS_WHITELIST, "@news.partner.example", 0);
    add(l, "bob@example.com", SPAM_LISTS_BLACKLIST, "@partner.example", 0);
    add(l, "bob@example.com", SPAM_LISTS_WHITELIST, "boss@partner.example", 0);
    add(l, "carol@example.com", SPAM_LISTS_WHITELIST, "x@y.example", 0);
    add(l, "carol@example.com", SPAM_LISTS_BLACKLIST, "x@y.example", 0);

    static const struct {
        const char *rcpt, *sender;
        spam_lists_level level;
        bool white;
    } cases[] = {
        /* server only */
        {"dave@other.example", "a@spam.example", SPAM_LISTS_SERVER, false},
        {"dave@other.example", "a@mx.spam.example", SPAM_LISTS_SERVER, false},   /* subdomain */
        {"dave@other.example", "a@notspam.example", SPAM_LISTS_NONE, false},
        {NULL, "a@partner.example", SPAM_LISTS_SERVER, true},
        {"dave@other.example", "", SPAM_LISTS_NONE, false},                      /* <> */
        /* domain whitelist beats server blacklist */
        {"dave@example.com", "friend@spam.example", SPAM_LISTS_DOMAIN, true},
        {"dave@example.com", "other@spam.example", SPAM_LISTS_SERVER, false},
        /* domain blacklist beats server whitelist; longest domain first */
        {"dave@example.com", "a@news.partner.example", SPAM_LISTS_DOMAIN, false},
        /* user beats domain, both ways */
        {"alice@example.com", "Friend@Spam.example", SPAM_LISTS_USER, false},
        {"ALICE@example.com", "a@news.partner.example", SPAM_LISTS_USER, true},
        /* within a scope an address beats a domain */
        {"bob@example.com", "boss@partner.example", SPAM_LISTS_USER, true},
        {"bob@example.com", "clerk@partner.example", SPAM_LISTS_USER, false},
        /* same value white and black: white */
        {"carol@example.com", "x@y.example", SPAM_LISTS_USER, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spam_lists_verdict v;
        char *err = NULL;
        assert_int_equal(spam_lists_check(l, cases[i].rcpt, cases[i].sender, NULL, NULL, 0, &v,
                                          &err), 0);
        if (v.level != cases[i].level || (v.level != SPAM_LISTS_NONE && v.whitelisted != cases[i].white))
            fail_msg("case %zu (%s from %s): got %s %s", i, cases[i].rcpt, cases[i].sender,
                     spam_lists_level_name(v.level), v.whitelisted ? "white" : "black");
    }
    spam_lists_close(&l);
    rm_env();
}

static void test_keywords(void **state)
{
    (void)state;
    spam_lists_t *l = open_rw();

    add(l, "*", SPAM_LISTS_KEYWORD, "viagra", 3.5);
    add(l, "example.com", SPAM_LISTS_KEYWORD, "cheap pills", 2);
    add(l, "example.com", SPAM_LISTS_KEYWORD, "viagra", 1);         /* counts again */
    add(l, "alice@example.com", SPAM_LISTS_KEYWORD, "invoice", -4);
    add(l, "alice@example.com", SPAM_LISTS_KEYWORD, "$$$", 1.5);
    add(l, "bob@example.com", SPAM_LISTS_KEYWORD, "never", 50);

    static const struct {
        const char *rcpt, *subject, *body;
        double points;
        unsigned hits;
    } cases[] = {
        {"dave@other.example", "Buy VIAGRA now", "", 3.5, 1},
        {"dave@other.example", "", "viagras are", 0, 0},                 /* word boundary */
        {"dave@other.example", "", "xviagra", 0, 0},
        {"dave@other.example", "", "Viagra, viagra, viagra", 3.5, 1},   /* once a keyword */
        {"dave@example.com", "cheap\r\n  Pills", "and viagra", 6.5, 3},   /* phrase over a fold */
        {"alice@example.com", "Your invoice", "viagra $$$!", 2.0, 4},
        {"alice@example.com", "", "caf\xc3\xa9invoice", 0, 0},           /* UTF-8 is a word char */
        {NULL, "viagra", "cheap pills", 3.5, 1},                          /* server only */
        {"dave@other.example", "", "", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *texts[2] = {cases[i].subject, cases[i].body};
        size_t lens[2] = {strlen(cases[i].subject), strlen(cases[i].body)};
        spam_lists_verdict v;
        char *err = NULL;
        assert_int_equal(spam_lists_check(l, cases[i].rcpt, "a@b.example", texts, lens, 2, &v,
                                          &err), 0);
        if (v.keyword_points != cases[i].points || v.keyword_hits != cases[i].hits)
            fail_msg("case %zu: %.2f points %u hits, expected %.2f %u", i, v.keyword_points,
                     v.keyword_hits, cases[i].points, cases[i].hits);
        assert_int_equal(v.level, SPAM_LISTS_NONE);
    }
    spam_lists_close(&l);
    rm_env();
}

/* A read-only reader: missing at first, then sees each commit at its
 * next check. */
static void test_reader(void **state)
{
    (void)state;
    bool missing = false;
    char *err = NULL;
    spam_lists_verdict v;

    assert_null(spam_lists_open(tmpdir, false, &missing, &err));
    assert_true(missing);
    xfree(&err);

    spam_lists_t *w = open_rw();
    spam_lists_t *r = spam_lists_open(tmpdir, false, &missing, &err);
    assert_non_null(r);
    assert_int_equal(spam_lists_check(r, "a@example.com", "s@x.example", NULL, NULL, 0, &v, &err), 0);
    assert_int_equal(v.level, SPAM_LISTS_NONE);
    add(w, "example.com", SPAM_LISTS_BLACKLIST, "@x.example", 0);
    assert_int_equal(spam_lists_check(r, "a@example.com", "s@x.example", NULL, NULL, 0, &v, &err), 0);
    assert_int_equal(v.level, SPAM_LISTS_DOMAIN);
    assert_false(v.whitelisted);
    /* a reader cannot write */
    assert_int_equal(spam_lists_add(r, "*", SPAM_LISTS_BLACKLIST, "@y.example", 0, &err), -1);
    xfree(&err);
    assert_int_equal(spam_lists_del(w, "example.com", SPAM_LISTS_BLACKLIST, "@x.example", &err), 1);
    assert_int_equal(spam_lists_check(r, "a@example.com", "s@x.example", NULL, NULL, 0, &v, &err), 0);
    assert_int_equal(v.level, SPAM_LISTS_NONE);
    spam_lists_close(&r);
    spam_lists_close(&w);
    rm_env();
}

/* The classifier's rows on envelopes, with the lists in data_directory. */
static void test_scoring_rows(void **state)
{
    (void)state;
    char cdir[] = "/tmp/spam_lists_cfg.XXXXXX", *err = NULL;
    assert_non_null(mkdtemp(cdir));
    char *conf = xasprintf("%s/correio.conf", cdir), *lists = xasprintf("%s/lists", cdir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "data_directory = %s\nmydestination = example.com\n"
               "virtual_mailbox_domains = virt.example\nrecipient_delimiter = +\n", cdir);
    fclose(f);
    config_t *cfg = config_load(cdir, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err);

    scoring_t *sc = scoring_new(cfg);      /* no lists yet: nothing hits */
    spam_lists_t *l = spam_lists_open(lists, true, NULL, &err);
    assert_non_null(l);
    add(l, "alice@example.com", SPAM_LISTS_WHITELIST, "@partner.example", 0);
    add(l, "example.com", SPAM_LISTS_BLACKLIST, "@partner.example", 0);
    add(l, "virt.example", SPAM_LISTS_BLACKLIST, "@partner.example", 0);
    add(l, "*", SPAM_LISTS_KEYWORD, "lottery", 2.5);
    add(l, "example.com", SPAM_LISTS_KEYWORD, "lottery", 1);

    static const struct {
        const char *rcpt[3];
        const char *sender, *auth, *body;
        const char *tests;
        double score;
    } cases[] = {
        {{"alice@example.com"}, "x@partner.example", "", "hi", "USER_WHITELIST", -100},
        {{"Alice+news@Example.COM"}, "x@partner.example", "", "hi", "USER_WHITELIST", -100},
        {{"bob@example.com", "alice@example.com"}, "x@partner.example", "", "hi",
         "DOMAIN_BLACKLIST", 100},
        /* not ours first: the next recipient of ours decides */
        {{"far@remote.example", "alice@example.com"}, "x@partner.example", "", "hi",
         "USER_WHITELIST", -100},
        {{"eve@virt.example"}, "x@partner.example", "", "hi", "DOMAIN_BLACKLIST", 100},
        {{"far@remote.example"}, "x@partner.example", "", "hi", "none", 0},
        {{"far@remote.example"}, "", "", "you won the LOTTERY", "KEYWORDS", 2.5},
        {{"bob@example.com"}, "", "", "you won the lottery", "KEYWORDS", 3.5},
        {{"bob@example.com"}, "a@b.example", "bob", "hi", "AUTH_WHITELIST", -100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Envelope env = CORREIO__ENVELOPE__INIT;
        Client cl = CORREIO__CLIENT__INIT;
        Recipient rc[3], *rcp[3];
        char *body = xasprintf("Subject: test\r\n\r\n%s\r\n", cases[i].body);
        scoring_result r;

        env.queue_id = "TESTQID";
        cl.auth_user = (char *)cases[i].auth;
        env.client = &cl;
        env.reverse_path = (char *)cases[i].sender;
        for (size_t j = 0; j < 3 && cases[i].rcpt[j]; j++) {
            Recipient init = CORREIO__RECIPIENT__INIT;
            rc[j] = init;
            rc[j].address = (char *)cases[i].rcpt[j];
            rcp[j] = &rc[j];
            env.n_rcpt = j + 1;
        }
        env.rcpt = rcp;
        env.body.data = (uint8_t *)body;
        env.body.len = strlen(body);
        scoring_run(sc, &env, &r);
        char *tests = scoring_tests_text(&r);
        if (strcmp(tests, cases[i].tests) != 0 || r.score != cases[i].score)
            fail_msg("case %zu: %s %.2f, expected %s %.2f", i, tests, r.score, cases[i].tests,
                     cases[i].score);
        xfree(&tests);
        scoring_result_free(&r);
        xfree(&body);
    }

    /* `score KEYWORDS 2` doubles the points; `score USER_WHITELIST 0` disables it */
    assert_true(scoring_set_score(sc, "KEYWORDS", 2));
    assert_true(scoring_set_score(sc, "USER_WHITELIST", 0));
    {
        Envelope env = CORREIO__ENVELOPE__INIT;
        Recipient rc = CORREIO__RECIPIENT__INIT, *rcp = &rc;
        const char *body = "Subject: lottery\r\n\r\nhi\r\n";
        scoring_result r;

        env.queue_id = "TESTQID";
        env.reverse_path = "x@partner.example";
        rc.address = "alice@example.com";
        env.n_rcpt = 1;
        env.rcpt = &rcp;
        env.body.data = (uint8_t *)body;
        env.body.len = strlen(body);
        scoring_run(sc, &env, &r);
        char *tests = scoring_tests_text(&r);
        assert_string_equal(tests, "KEYWORDS");
        assert_true(r.score == 7.0);
        xfree(&tests);
        scoring_result_free(&r);
    }
    scoring_free(&sc);
    spam_lists_close(&l);
    config_free(&cfg);
    char *rm = xasprintf("rm -rf %s", cdir);
    assert_int_equal(system(rm), 0);
    xfree(&rm);
    xfree(&conf);
    xfree(&lists);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm),
        cmocka_unit_test(test_add_del_show),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_scoring_rows),
    };
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rmdir(tmpdir);      /* spam_lists_open makes it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
