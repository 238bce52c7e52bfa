/* scoring_test.c - the classifier's scoring engine, GTUBE test and
 * X-Spam-* header fields: table-driven over sample messages. */
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
#include "../../classifier/spam_headers.h"
#include "config.h"
#include "xalloc.h"

#define GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

static config_t *scoring_test_config(void)
{
    char dir[] = "/tmp/scoring_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *err = NULL;
    config_t *cfg = config_load(dir, &err);   /* no file: defaults */
    assert_non_null(cfg);
    rmdir(dir);
    return cfg;
}

static void scoring_test_env(Envelope *env, Recipient *rc, Recipient **rcp, const char *body)
{
    Envelope e = CORREIO__ENVELOPE__INIT;
    Recipient r = CORREIO__RECIPIENT__INIT;
    *env = e;
    *rc = r;
    rc->address = "demo@example.test";
    *rcp = rc;
    env->version = 1;
    env->queue_id = "0123456789ABCDEFG";
    env->n_rcpt = 1;
    env->rcpt = rcp;
    env->body.data = (uint8_t *)body;
    env->body.len = strlen(body);
}

static const struct {
    const char *body;
    double      score;
    bool        spam;
    const char *tests;
    const char *status;
} cases[] = {
    {"Subject: hi\r\n\r\nhello\r\n", 0.0, false, "none",
     "X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n"},
    {"Subject: t\r\n\r\n" GTUBE "\r\n", 1000.0, true, "GTUBE",
     "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE\r\n"},
    {"Subject: " GTUBE "\r\n\r\nbody\r\n", 1000.0, true, "GTUBE",
     "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE\r\n"},
    {"no header\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34\r\n",
     0.0, false, "none", "X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n"},
    {"", 0.0, false, "none", "X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n"},
};

static void test_scoring_table(void **state)
{
    (void)state;
    config_t *cfg = scoring_test_config();
    scoring_t *s = scoring_new(cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Envelope env;
        Recipient rc, *rcp;
        scoring_test_env(&env, &rc, &rcp, cases[i].body);
        scoring_result r;
        scoring_run(s, &env, &r);
        assert_true(r.score == cases[i].score);
        assert_int_equal(r.is_spam, cases[i].spam);
        assert_true(r.required == 5.0);
        char *tests = scoring_tests_text(&r);
        assert_string_equal(tests, cases[i].tests);
        xfree(&tests);
        buf_t sc = BUF_INIT, st = BUF_INIT;
        spam_headers_format(&r, &sc, &st);
        assert_string_equal(st.data, cases[i].status);
        assert_string_equal(sc.data, cases[i].spam ? "X-Spam-Score: 1000.0\r\n"
                                                   : "X-Spam-Score: 0.0\r\n");
        buf_free(&sc);
        buf_free(&st);
        scoring_result_free(&r);
    }
    scoring_free(&s);
    config_free(&cfg);
}

static void test_scoring_override(void **state)
{
    (void)state;
    config_t *cfg = scoring_test_config();
    scoring_t *s = scoring_new(cfg);
    Envelope env;
    Recipient rc, *rcp;
    scoring_test_env(&env, &rc, &rcp, "\r\n" GTUBE "\r\n");
    scoring_result r;

    assert_true(scoring_set_score(s, "gtube", 3.5));
    assert_false(scoring_set_score(s, "NO_SUCH_TEST", 1.0));
    scoring_run(s, &env, &r);
    assert_true(r.score == 3.5);
    assert_false(r.is_spam);
    scoring_result_free(&r);

    assert_true(scoring_set_score(s, "GTUBE", 0));   /* disabled */
    scoring_run(s, &env, &r);
    assert_int_equal(r.n_hits, 0);
    scoring_result_free(&r);
    scoring_free(&s);
    config_free(&cfg);
}

/* The packed envelope gets the header fields and the verdict; its body
 * stays the client's bytes. */
static void test_spam_headers_pack(void **state)
{
    (void)state;
    config_t *cfg = scoring_test_config();
    scoring_t *s = scoring_new(cfg);
    const char *body = "Subject: x\r\n\r\n" GTUBE "\r\n";
    Envelope env;
    Recipient rc, *rcp;
    scoring_test_env(&env, &rc, &rcp, body);
    ProtobufCBinaryData earlier = {9, (uint8_t *)"X-A: b\r\n"};
    earlier.len = 8;
    env.n_prepend_headers = 1;
    env.prepend_headers = &earlier;

    scoring_result r;
    scoring_run(s, &env, &r);
    size_t len;
    uint8_t *packed = spam_headers_pack(&env, &r, NULL, "node1", &len);
    Envelope *out = wire_unpack_envelope(packed, len, "test");
    assert_non_null(out);
    assert_int_equal(env.n_prepend_headers, 1);            /* input untouched */
    assert_int_equal(out->n_prepend_headers, 4);   /* + X-Spam-Flag: YES */
    assert_memory_equal(out->prepend_headers[3].data, "X-Spam-Flag: YES\r\n", 18);
    assert_memory_equal(out->prepend_headers[0].data, "X-A: b\r\n", 8);
    assert_int_equal(out->prepend_headers[1].len, strlen("X-Spam-Score: 1000.0\r\n"));
    assert_memory_equal(out->prepend_headers[2].data, "X-Spam-Status: Yes,", 19);
    assert_int_equal(out->body.len, strlen(body));
    assert_memory_equal(out->body.data, body, strlen(body));
    assert_non_null(out->verdict);
    assert_true(out->verdict->is_spam);
    assert_true(out->verdict->score == 1000.0);
    assert_int_equal(out->verdict->n_hits, 1);
    assert_string_equal(out->verdict->hits[0], "GTUBE=1000.0");
    assert_string_equal(out->verdict->classifier, "node1");
    wire_free_envelope(&out);
    xfree(&packed);
    scoring_result_free(&r);
    scoring_free(&s);
    config_free(&cfg);
}

/* The content tests: each fires on its crafted message (maybe with
 * others) and none fires on the clean ones. */
#define ALT_START "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
#define TEXT_PART(cs, body) "--b\r\nContent-Type: text/plain; charset=" cs "\r\n\r\n" body "\r\n"
#define HTML_PART(body) "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" body "\r\n"
#define ALT_END "--b--\r\n"
#define NEWS_WORDS "Our spring newsletter: the garden club meets on Tuesday evening at the library"

static const struct {
    const char *name;       /* the test expected, NULL: none at all */
    const char *msg;
} content_cases[] = {
    /* clean */
    {NULL, "From: a@example.test\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n"},
    {NULL, ALT_START TEXT_PART("utf-8", NEWS_WORDS " caf\xC3\xA9.")
           HTML_PART("<p>" NEWS_WORDS " caf&eacute;.</p><a href=\"https://club.example/\">site</a>") ALT_END},
    {NULL, "Subject: =?iso-8859-1?Q?caf=E9?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xE9\r\n"},
    /* fire */
    {"MIME_HTML_ONLY", "Content-Type: text/html\r\n\r\n<p>Buy now</p>\r\n"},
    {"MIME_HTML_MISMATCH", ALT_START TEXT_PART("utf-8", NEWS_WORDS)
           HTML_PART("<p>Cheap watches and pills, limited offer, click here to claim your prize today</p>") ALT_END},
    {"HTML_EXTERNAL_IMAGE", ALT_START TEXT_PART("utf-8", NEWS_WORDS)
           HTML_PART("<p>" NEWS_WORDS "</p><img src=\"http://track.example/p.gif\">") ALT_END},
    {"HTML_EMBEDDED_IMAGE", ALT_START TEXT_PART("utf-8", NEWS_WORDS)
           HTML_PART("<p>" NEWS_WORDS "</p><img src=\"cid:offer@x\">") ALT_END},
    {"CHARSET_FORBIDDEN", "Content-Type: text/plain; charset=\"KOI8-R\"\r\n\r\n\xD0\xD2\xC9\r\n"},
    {"CHARSET_FORBIDDEN", "Subject: =?GB2312?B?1tDOxA==?=\r\n\r\nhello\r\n"},
    {"CHARSET_FORBIDDEN", "From: =?windows-1251?Q?=C8=E2=E0=ED?= <i@example.test>\r\n\r\nhello\r\n"},
    {"NONASCII_NO_CHARSET", "Subject: x\r\n\r\ncaf\xE9\r\n"},
    {"NONASCII_NO_CHARSET", "Subject: caf\xE9\r\n\r\nhello\r\n"},
    {"MIME_BAD_STRUCTURE", "Content-Type: multipart/mixed\r\n\r\nhello\r\n"},
    {"MIME_BAD_STRUCTURE", "Content-Transfer-Encoding: base64\r\n\r\n!!!!aGVsbG8=\r\n"},
};

static bool has_hit(const scoring_result *r, const char *name)
{
    for (size_t i = 0; i < r->n_hits; i++)
        if (strcmp(r->hits[i].name, name) == 0)
            return true;
    return false;
}

static void test_scoring_content(void **state)
{
    (void)state;
    config_t *cfg = scoring_test_config();
    scoring_t *s = scoring_new(cfg);
    for (size_t i = 0; i < sizeof content_cases / sizeof content_cases[0]; i++) {
        Envelope env;
        Recipient rc, *rcp;
        scoring_result r;
        scoring_test_env(&env, &rc, &rcp, content_cases[i].msg);
        scoring_run(s, &env, &r);
        char *tests = scoring_tests_text(&r);
        print_message("case %zu: %s\n", i, tests);
        if (content_cases[i].name == NULL)
            assert_string_equal(tests, "none");
        else
            assert_true(has_hit(&r, content_cases[i].name));
        xfree(&tests);
        scoring_result_free(&r);
    }
    scoring_free(&s);
    config_free(&cfg);
}

/* MIME_TRUNCATED: more parts than mime.h allows; and an empty
 * spam_forbidden_charsets turns CHARSET_FORBIDDEN off. */
static void test_scoring_content_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/scoring_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/correio.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("spam_forbidden_charsets =\n", f);
    fclose(f);
    char *err = NULL;
    config_t *cfg = config_load(dir, &err);
    assert_non_null(cfg);
    unlink(path);
    rmdir(dir);
    scoring_t *s = scoring_new(cfg);

    Envelope env;
    Recipient rc, *rcp;
    scoring_result r;
    scoring_test_env(&env, &rc, &rcp, "Content-Type: text/plain; charset=big5\r\n\r\nhi\r\n");
    scoring_run(s, &env, &r);
    assert_false(has_hit(&r, "CHARSET_FORBIDDEN"));
    scoring_result_free(&r);

    buf_t b = BUF_INIT;
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 1100; i++)
        buf_append_str(&b, "--p\r\n\r\nx\r\n");
    buf_append_str(&b, "--p--\r\n");
    scoring_test_env(&env, &rc, &rcp, b.data);
    scoring_run(s, &env, &r);
    assert_true(has_hit(&r, "MIME_TRUNCATED"));
    assert_false(has_hit(&r, "MIME_BAD_STRUCTURE"));
    scoring_result_free(&r);
    buf_free(&b);
    scoring_free(&s);
    config_free(&cfg);
}

static void test_similarity(void **state)
{
    (void)state;
    const char *a = "The garden club meets on Tuesday";
    assert_true(test_mime_similarity(a, strlen(a), a, strlen(a)) == 1.0);
    const char *b = "the GARDEN club, meets on tuesday! http://x.example/very/long/url";
    assert_true(test_mime_similarity(a, strlen(a), b, strlen(b)) == 1.0);
    const char *c = "Cheap watches pills offer click";
    assert_true(test_mime_similarity(a, strlen(a), c, strlen(c)) < 0.5);
    assert_true(test_mime_similarity("", 0, "", 0) == 1.0);
    assert_true(test_mime_similarity("a b", 3, "c d", 3) == 1.0);   /* too few words */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scoring_table),
        cmocka_unit_test(test_scoring_override),
        cmocka_unit_test(test_spam_headers_pack),
        cmocka_unit_test(test_scoring_content),
        cmocka_unit_test(test_scoring_content_config),
        cmocka_unit_test(test_similarity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
