/* scoring_test.c - the classifier's scoring engine, GTUBE test and
 * X-Spam-* header fields: table-driven over sample messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
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
    uint8_t *packed = spam_headers_pack(&env, &r, "node1", &len);
    Envelope *out = wire_unpack_envelope(packed, len, "test");
    assert_non_null(out);
    assert_int_equal(env.n_prepend_headers, 1);            /* input untouched */
    assert_int_equal(out->n_prepend_headers, 3);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scoring_table),
        cmocka_unit_test(test_scoring_override),
        cmocka_unit_test(test_spam_headers_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
