/* spam_action_test.c - the router's spam actions (thresholds, the action
 * they give, spam_action_maps values and lookup order) and the
 * classifier's verdict facts (reasons grouped by source, header From,
 * the X-Spam-* fields of a bypassed message): table-driven. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../classifier/spam_headers.h"
#include "../../classifier/spam_reasons.h"
#include "../../router/spam_action.h"
#include "config.h"
#include "map.h"
#include "xalloc.h"

#define NONE       CORREIO__SPAM_ACTION__SPAM_ACTION_NONE
#define TAG        CORREIO__SPAM_ACTION__SPAM_ACTION_TAG
#define FOLDER     CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER
#define QUARANTINE CORREIO__SPAM_ACTION__SPAM_ACTION_QUARANTINE
#define DELETE     CORREIO__SPAM_ACTION__SPAM_ACTION_DELETE

static char dir[] = "/tmp/spam_action_test.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    xfree(&path);
}

static config_t *load(const char *text)
{
    char *err = NULL;
    write_file("correio.conf", text);
    config_t *cfg = config_load(dir, &err);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    return 0;
}

/* The server defaults: tag 5 and folder 5 (folder wins), quarantine and
 * delete 0 = never. */
static void test_defaults_and_choice(void **state)
{
    (void)state;
    config_t *cfg = load("");
    spam_thresholds t;
    spam_action_defaults(cfg, &t);
    assert_int_equal(spam_action_choose(&t, 4.99), NONE);
    assert_int_equal(spam_action_choose(&t, 5.0), FOLDER);
    assert_int_equal(spam_action_choose(&t, 1000.0), FOLDER);
    assert_int_equal(spam_action_choose(&t, -100.0), NONE);
    config_free(&cfg);

    cfg = load("spam_tag_score = 3\nspam_folder_score = 6\nspam_quarantine_score = 10\n"
               "spam_delete_score = 20\n");
    spam_action_defaults(cfg, &t);
    static const struct {
        double score;
        Correio__SpamAction want;
    } cases[] = {
        {-5, NONE}, {2.99, NONE}, {3, TAG}, {5.9, TAG}, {6, FOLDER}, {9.99, FOLDER},
        {10, QUARANTINE}, {19.9, QUARANTINE}, {20, DELETE}, {1000, DELETE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (spam_action_choose(&t, cases[i].score) != cases[i].want)
            fail_msg("score %.2f: got %s", cases[i].score,
                     spam_action_name(spam_action_choose(&t, cases[i].score)));
    config_free(&cfg);

    /* a higher action with a lower threshold still wins */
    cfg = load("spam_tag_score = 8\nspam_folder_score = 0\nspam_delete_score = 4\n");
    spam_action_defaults(cfg, &t);
    assert_int_equal(spam_action_choose(&t, 9), DELETE);
    assert_int_equal(spam_action_choose(&t, 3), NONE);
    config_free(&cfg);

    assert_string_equal(spam_action_name(NONE), "none");
    assert_string_equal(spam_action_name(QUARANTINE), "quarantine");
    assert_int_equal(spam_action_level(NONE), -1);
    assert_int_equal(spam_action_level(DELETE), SPAM_LEVEL_DELETE);
}

/* Map values: any subset, "off", bad words refused whole. */
static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool        ok;
        const char *bad;        /* the word *bad points at */
        double      want[SPAM_LEVELS];  /* 0: off */
    } cases[] = {
        {"tag=3 folder=6 quarantine=10 delete=20", true, NULL, {3, 6, 10, 20}},
        {"folder=7", true, NULL, {5, 7, 0, 0}},
        {"  Tag=2.5,DELETE=9  ", true, NULL, {2.5, 5, 0, 9}},
        {"tag=off folder=off", true, NULL, {0, 0, 0, 0}},
        {"folder=OFF quarantine=-3", true, NULL, {5, 0, -3, 0}},
        {"delete=0", true, NULL, {5, 5, 0, 0}},
        {"", true, NULL, {5, 5, 0, 0}},
        {"tag=3 junk=4", false, "junk=4", {5, 5, 0, 0}},
        {"tag=abc", false, "tag=abc", {5, 5, 0, 0}},
        {"tag=", false, "tag=", {5, 5, 0, 0}},
        {"tag", false, "tag", {5, 5, 0, 0}},
        {"folder=5x", false, "folder=5x", {5, 5, 0, 0}},
        {"delete=1e9", false, "delete=1e9", {5, 5, 0, 0}},
        {"delete=nan", false, "delete=nan", {5, 5, 0, 0}},
        {"quarantine=inf", false, "quarantine=inf", {5, 5, 0, 0}},
        {"=3", false, "=3", {5, 5, 0, 0}},
        {"tag=1234567890123456789012345678901234567890", false,
         "tag=1234567890123456789012345678901234567890", {5, 5, 0, 0}},
    };
    config_t *cfg = load("");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spam_thresholds t;
        const char *bad = "unset";
        spam_action_defaults(cfg, &t);
        bool ok = spam_action_parse(cases[i].value, &t, &bad);
        if (ok != cases[i].ok)
            fail_msg("\"%s\": parse %d", cases[i].value, ok);
        if (!ok && strcmp(bad, cases[i].bad) != 0)
            fail_msg("\"%s\": bad at \"%s\"", cases[i].value, bad);
        for (int l = 0; l < SPAM_LEVELS; l++) {
            bool on = cases[i].want[l] != 0;
            if (t.on[l] != on || (on && t.score[l] != cases[i].want[l]))
                fail_msg("\"%s\": level %d on=%d score=%.2f", cases[i].value, l, t.on[l],
                         t.score[l]);
        }
    }
    config_free(&cfg);
}

/* spam_action_maps: user@domain, then @domain, then domain; each table
 * asked for a key before the next key; a bad value gives the defaults. */
static void test_maps(void **state)
{
    (void)state;
    char *err = NULL;
    write_file("actions", "boss@example.test   tag=off folder=off\n"
                          "@example.test       delete=15\n"
                          "example.test        tag=1\n"
                          "other.test          folder=2\n"
                          "bad@other.test      folder=two\n");
    write_file("actions2", "someone@other.test  quarantine=3\n"
                           "@third.test         tag=4\n");
    char *path = xasprintf("%s/actions", dir);
    assert_true(map_build(path, &err) >= 0);
    xfree(&path);
    path = xasprintf("%s/actions2", dir);
    assert_true(map_build(path, &err) >= 0);
    xfree(&path);
    config_t *cfg = load("myhostname = mx.example.test\n"
                         "spam_action_maps = hash:actions, hash:actions2\n");
    spam_action_t *sa = spam_action_open(cfg, &err);
    assert_non_null(sa);

    static const struct {
        const char *rcpt;
        double      want[SPAM_LEVELS];
    } cases[] = {
        {"boss@example.test", {0, 0, 0, 0}},           /* the user's own entry only */
        {"Boss@Example.TEST", {0, 0, 0, 0}},           /* hash maps fold case */
        {"anyone@example.test", {5, 5, 0, 15}},        /* @domain beats domain */
        {"x@other.test", {5, 2, 0, 0}},                /* domain */
        {"someone@other.test", {5, 5, 3, 0}},          /* the address in table 2 first */
        {"bad@other.test", {5, 5, 0, 0}},              /* bad value: defaults */
        {"x@third.test", {4, 5, 0, 0}},
        {"x@nowhere.test", {5, 5, 0, 0}},
        {"postmaster", {5, 5, 0, 0}},                  /* at myhostname */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spam_thresholds t;
        assert_int_equal(spam_action_thresholds(sa, cfg, cases[i].rcpt, &t), 0);
        for (int l = 0; l < SPAM_LEVELS; l++) {
            bool on = cases[i].want[l] != 0;
            if (t.on[l] != on || (on && t.score[l] != cases[i].want[l]))
                fail_msg("%s: level %d on=%d score=%.2f", cases[i].rcpt, l, t.on[l],
                         t.score[l]);
        }
    }
    spam_action_close(&sa);
    assert_null(sa);
    config_free(&cfg);

    /* a table that is not there: an error at open, naming it */
    cfg = load("spam_action_maps = hash:missing\n");
    assert_null(spam_action_open(cfg, &err));
    assert_non_null(strstr(err, "spam_action_maps: "));
    assert_non_null(strstr(err, "missing"));
    xfree(&err);
    config_free(&cfg);
}

/* A known-test callback for the grouping: the classifier's own table. */
static bool known(const char *name, void *ctx)
{
    (void)ctx;
    static const char *const table[] = {"GTUBE", "HELO_NO_MATCH", "MIME_HTML_ONLY",
                                        "MIME_HTML_MISMATCH", "HTML_EXTERNAL_IMAGE",
                                        "HTML_EMBEDDED_IMAGE", "CHARSET_FORBIDDEN",
                                        "NONASCII_NO_CHARSET", "MIME_BAD_STRUCTURE",
                                        "MIME_TRUNCATED", "SCAN_TIMEOUT", "AUTH_WHITELIST"};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i], name) == 0)
            return true;
    return false;
}

static void test_reasons(void **state)
{
    (void)state;
    static const scoring_hit h1[] = {
        {"BODY_LOTTERY", 0.11}, {"SUBJ_ALL_CAPS", 0.10}, {"RBL_ZEN", 3.0},
        {"SPF_SOFTFAIL", 1.0}, {"MIME_HTML_MISMATCH", 1.0}, {"HTML_EXTERNAL_IMAGE", 0.5},
        {"HELO_NO_MATCH", 0.5}, {"USER_WHITELIST", -100.0}, {"URIBL_DBL", 2.5},
        {"DKIM_VALID", -0.1}, {"BAYES_99", 3.5}, {"KEYWORDS", 2.0}, {"GTUBE", 1000},
    };
    static const scoring_hit h2[] = {{"SPF_PASS", 0.0}};
    static const scoring_hit h3[] = {{"MIME_TRUNCATED", 0.5}, {"MIME_HTML_ONLY", 1.0},
                                     {"CHARSET_FORBIDDEN", 2.0}, {"NONASCII_NO_CHARSET", 1},
                                     {"MIME_BAD_STRUCTURE", 1.0}, {"HTML_EMBEDDED_IMAGE", 0.5}};
    static const scoring_hit h4[] = {{"AUTO_WHITELIST", -5}, {"AUTH_WHITELIST", -100},
                                     {"LOCAL_RULE", 0.21}};
    static const struct {
        const scoring_hit *hits;
        size_t n;
        const char *want;
    } cases[] = {
        {h1, sizeof h1 / sizeof h1[0],
         "[Rules=0.21,DNSBL=3.00,URIBL=2.50,SPF=1.00,DKIM=-0.10,Bayes=3.50,Lists=-98.00,"
         "Other=1002.00:Body=PE]"},
        {h2, 1, "[SPF=0.00]"},
        {h3, sizeof h3 / sizeof h3[0], "[Other=6.00:Body=HICNMT]"},
        {h4, 3, "[Rules=0.21,Lists=-105.00]"},
        {NULL, 0, "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = spam_reasons_format(cases[i].hits, cases[i].n, known, NULL);
        assert_string_equal(got, cases[i].want);
        xfree(&got);
    }
    /* without a table every unknown name is a rule */
    char *got = spam_reasons_format(h2, 1, NULL, NULL);
    assert_string_equal(got, "[SPF=0.00]");
    xfree(&got);
    assert_string_equal(spam_reasons_group("GTUBE", NULL, NULL), "Rules");
    assert_string_equal(spam_reasons_group("GTUBE", known, NULL), "Other");
    assert_string_equal(spam_reasons_group("DOMAIN_BLACKLIST", known, NULL), "Lists");
}

static void test_header_from(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        const char *want;
    } cases[] = {
        {"From: <a@b.example>\r\nTo: x\r\n\r\nbody\r\n", "a@b.example"},
        {"Subject: s\r\nFROM: \"Ann, Smith\" <ann@x.example>\r\n\r\n", "ann@x.example"},
        {"From: \"a <fake@evil>\" <real@x.example>\r\n\r\n", "real@x.example"},
        {"From: bob@x.example (Bob)\r\n\r\n", "bob@x.example"},
        {"From: (Bob) bob@x.example\r\n\r\n", "bob@x.example"},
        {"From: Bob\r\n <bob@folded.example>\r\n\r\n", "bob@folded.example"},
        {"From:bare@x.example\n\nbody", "bare@x.example"},
        {"From : spaced@x.example\r\n\r\n", "spaced@x.example"},
        {"From: undisclosed\r\n\r\n", "undisclosed"},
        {"From: <>\r\n\r\n", ""},
        {"From: <caf\xc3\xa9@x.example>\r\n\r\n", "caf??@x.example"},
        {"From: <a\tb@x>\r\n\r\n", "a?b@x"},
        {"To: x\r\n\r\nFrom: body@x.example\r\n", ""},      /* only the header section */
        {"no header here\r\nFrom: a@b\r\n", ""},
        {"From: <first@x>\r\nFrom: <second@x>\r\n\r\n", "first@x"},
        {"From: <unterminated@x\r\n\r\n", "unterminated@x"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = spam_reasons_header_from(cases[i].msg, strlen(cases[i].msg));
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\" want \"%s\"", i, got, cases[i].want);
        xfree(&got);
    }
    char *got = spam_reasons_header_from(NULL, 0);
    assert_string_equal(got, "");
    xfree(&got);

    /* a long address is cut */
    size_t n = 5000;
    char *big = xcalloc(n + 32, 1);
    strcpy(big, "From: <");
    memset(big + 7, 'a', n);
    strcpy(big + 7 + n, "@x>\r\n\r\n");
    got = spam_reasons_header_from(big, strlen(big));
    assert_int_equal(strlen(got), SPAM_REASONS_FROM_MAX);
    xfree(&got);
    xfree(&big);
}

/* A bypassed message: no tests, X-Spam-Status says why, no X-Spam-Flag,
 * the verdict's facts as given. */
static void test_headers_bypass(void **state)
{
    (void)state;
    scoring_result r = {.required = 5.0};
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.version = 1;
    env.queue_id = "0123456789ABCDEFG";
    Recipient rc = CORREIO__RECIPIENT__INIT, *rcp = &rc;
    rc.address = "demo@example.test";
    env.rcpt = &rcp;
    env.n_rcpt = 1;
    spam_facts facts = {.reasons = "[]", .header_from = "a@b", .bypass = "size",
                        .outbound = true, .act = false};
    size_t len;
    uint8_t *packed = spam_headers_pack(&env, &r, &facts, "node1", &len);
    Envelope *out = wire_unpack_envelope(packed, len, "test");
    assert_non_null(out);
    assert_int_equal(out->n_prepend_headers, 2);
    const char *want = "X-Spam-Status: No, score=0.0 required=5.0 tests=none bypass=size\r\n";
    assert_int_equal(out->prepend_headers[1].len, strlen(want));
    assert_memory_equal(out->prepend_headers[1].data, want, strlen(want));
    assert_string_equal(out->verdict->bypass, "size");
    assert_string_equal(out->verdict->header_from, "a@b");
    assert_string_equal(out->verdict->reasons, "[]");
    assert_true(out->verdict->outbound);
    assert_false(out->verdict->act);
    wire_free_envelope(&out);
    xfree(&packed);

    /* spam: the flag after the status; the default facts act */
    scoring_hit hit = {"GTUBE", 1000};
    r.hits = &hit;
    r.n_hits = 1;
    r.score = 1000;
    r.is_spam = true;
    packed = spam_headers_pack(&env, &r, NULL, "node1", &len);
    out = wire_unpack_envelope(packed, len, "test");
    assert_non_null(out);
    assert_int_equal(out->n_prepend_headers, 3);
    assert_memory_equal(out->prepend_headers[2].data, "X-Spam-Flag: YES\r\n", 18);
    assert_true(out->verdict->act);
    assert_false(out->verdict->outbound);
    assert_string_equal(out->verdict->bypass, "");
    wire_free_envelope(&out);
    xfree(&packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_choice),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_header_from),
        cmocka_unit_test(test_headers_bypass),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
