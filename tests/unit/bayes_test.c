/* bayes_test.c - lib/bayes: the tokenizer (Subject, body, address, link
 * tokens, deduplication, bounds on huge input), the probability pieces,
 * training on a generated corpus (unseen ham < 0.2, unseen spam > 0.8),
 * silence below min_learned, learning twice, moving between classes,
 * forgetting, a read-only reader that sees the trainer's commits; and the
 * classifier's rows (classifier/test_bayes.c): BAYES_99/BAYES_999 on
 * spam, BAYES_00 on ham, nothing with spam_bayes = no or no database. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../classifier/scoring.h"
#include "bayes.h"
#include "buf.h"
#include "config.h"
#include "mime.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/bayes_test.XXXXXX";

static void rm_dir(const char *dir)
{
    char *p = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(p), 0);
    xfree(&p);
}

static void tokenize(const char *msg, bayes_tokens *t)
{
    mime_msg m;
    mime_parse(msg, strlen(msg), &m);
    bayes_tokenize(&m, t);
    mime_free(&m);
}

static size_t count_token(const bayes_tokens *t, const char *text)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += strcmp(bayes_token(t, i), text) == 0;
    return n;
}

static void test_tokenize(void **state)
{
    (void)state;
    const char *msg =
        "From: Alice Example <Alice.B@Example.COM>\r\n"
        "To: bob@example.org, carol@other.example\r\n"
        "Subject: Cheap PILLS today\r\n"
        "Message-ID: <1@example.com>\r\n"
        "X-Mailer: SuperMailer/2.0 (bulk)\r\n"
        "Received: from a by b\r\n"
        "Received: from c by d\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=\"B\"\r\n"
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hello hello HELLO meeting 12345 at supercalifragilisticexpialidocious go\r\n"
        "visit http://www.Shop.Example.net/buy now. Caf\xc3\xa9 d\xc3\xa9j\xc3\xa0vu\r\n"
        "--B\r\n"
        "Content-Type: text/html\r\n"
        "\r\n"
        "<p>Agenda <a href=\"https://links.example.org/x\">here</a></p>\r\n"
        "--B--\r\n";
    bayes_tokens t;

    tokenize(msg, &t);
    static const char *const want[] = {
        "S:cheap", "S:pills", "S:today", "H*F:alice.b", "H*F:example.com", "H*T:bob",
        "H*T:example.org", "H*T:carol", "H*T:other.example", "H:X-Mailer:supermailer",
        "H:Message-ID", "H!List-Unsubscribe", "H:Received:2", "H*CT:text/plain",
        "H*CT:text/html", "H*CS:utf-8", "U:www.shop.example.net", "U:example.net",
        "U:links.example.org", "U:example.org", "hello", "meeting", "sk:superca", "visit",
        "café", "déjàvu", "agenda", "here",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!bayes_tokens_has(&t, want[i]))
            fail_msg("token %s missing", want[i]);
    static const char *const unwanted[] = {
        "12345", "at", "go", "Hello", "supercalifragilisticexpialidocious", "S:Cheap",
    };
    for (size_t i = 0; i < sizeof unwanted / sizeof unwanted[0]; i++)
        if (bayes_tokens_has(&t, unwanted[i]))
            fail_msg("token %s should not be there", unwanted[i]);
    assert_int_equal(count_token(&t, "hello"), 1);       /* deduplicated */
    for (size_t i = 0; i < t.n; i++)                        /* every one distinct */
        for (size_t j = i + 1; j < t.n; j++)
            assert_true(t.hash[i] != t.hash[j]);
    bayes_tokens_free(&t);

    /* a long UTF-8 word is cut at a character boundary: "sk:" + <= 7 bytes */
    tokenize("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\r\n",
             &t);
    assert_true(bayes_tokens_has(&t, "sk:\xc3\xa9\xc3\xa9\xc3\xa9"));
    bayes_tokens_free(&t);
}

/* Huge input: at most BAYES_MAX_TOKENS tokens, at most BAYES_MAX_TEXT
 * bytes of text read. */
static void test_bounds(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    bayes_tokens t;

    buf_append_str(&b, "Subject: many\r\n\r\n");
    for (unsigned i = 0; i < 200000; i++)                 /* ~2 MB of distinct words */
        buf_printf(&b, "w%07x ", i * 2654435761u);
    tokenize(b.data, &t);
    assert_int_equal(t.n, BAYES_MAX_TOKENS);
    bayes_tokens_free(&t);
    buf_free(&b);

    buf_append_str(&b, "Subject: late\r\n\r\n");
    while (b.len < BAYES_MAX_TEXT + 1000)
        buf_append_str(&b, "same words again ");
    buf_append_str(&b, "latecomer\r\n");
    tokenize(b.data, &t);
    assert_true(bayes_tokens_has(&t, "same"));
    assert_false(bayes_tokens_has(&t, "latecomer"));      /* past the text bound */
    bayes_tokens_free(&t);
    buf_free(&b);

    /* empty and header-only messages give header tokens only, no crash */
    tokenize("", &t);
    assert_true(bayes_tokens_has(&t, "H:Received:0"));
    bayes_tokens_free(&t);
}

static void test_probability(void **state)
{
    (void)state;
    assert_true(bayes_token_prob(0, 0, 10, 10) < 0);
    assert_true(bayes_token_prob(10, 0, 10, 10) > 0.99);
    assert_true(bayes_token_prob(0, 10, 10, 10) < 0.01);
    assert_true(fabs(bayes_token_prob(5, 5, 10, 10) - 0.5) < 0.01);
    /* one sighting is weaker than ten */
    assert_true(bayes_token_prob(1, 0, 10, 10) < bayes_token_prob(10, 0, 10, 10));

    double spammy[150], hammy[150], mixed[150];
    for (int i = 0; i < 150; i++) {
        spammy[i] = 0.99;
        hammy[i] = 0.01;
        mixed[i] = i % 2 ? 0.99 : 0.01;
    }
    assert_true(bayes_combine(spammy, 150, 100, 100) > 0.999);
    assert_true(bayes_combine(hammy, 150, 100, 100) < 0.001);
    assert_true(fabs(bayes_combine(mixed, 150, 100, 100) - 0.5) < 0.05);
    assert_true(bayes_combine(spammy, 0, 100, 100) == 0.5);
}

/* ------------------------------------------------------------ corpus */

static const char *const ham_words[] = {
    "meeting", "agenda", "invoice", "project", "schedule", "quarterly", "report", "minutes",
    "budget", "review", "deadline", "colleagues", "attached", "draft", "conference", "team",
    "payment", "accounting", "proposal", "calendar", "office", "thanks", "regards", "tuesday",
};
static const char *const spam_words[] = {
    "pills", "lottery", "viagra", "winner", "casino", "prize", "cheap", "pharmacy", "jackpot",
    "bonus", "claim", "unclaimed", "guaranteed", "discount", "miracle", "millions", "urgent",
    "congratulations", "free", "offer", "pharma", "weightloss", "refund", "bitcoin",
};
static const char *const neutral[] = {
    "the", "and", "you", "your", "with", "this", "that", "have", "will", "from", "please",
    "about", "today", "more", "information", "here", "there", "would", "could", "should",
};

/* make_msg - a generated message of class spam (or ham) number i. */
static char *make_msg(bool spam, unsigned i, unsigned *seed)
{
    const char *const *w = spam ? spam_words : ham_words;
    size_t nw = spam ? sizeof spam_words / sizeof *spam_words : sizeof ham_words / sizeof *ham_words;
    buf_t b = BUF_INIT;

    buf_printf(&b, "From: %s%u@%s\r\nTo: user@example.com\r\nSubject: %s %s\r\n"
                   "Message-ID: <%s-%u-%u@test>\r\n\r\n",
               spam ? "promo" : "colleague", rand_r(seed) % 50,
               spam ? "deals.example" : "work.example", w[rand_r(seed) % nw],
               w[rand_r(seed) % nw], spam ? "s" : "h", i, rand_r(seed));
    for (int k = 0; k < 60; k++) {
        if (rand_r(seed) % 3 == 0)
            buf_printf(&b, "%s ", w[rand_r(seed) % nw]);
        else
            buf_printf(&b, "%s ", neutral[rand_r(seed) % (sizeof neutral / sizeof *neutral)]);
        if (k % 12 == 11)
            buf_append_str(&b, "\r\n");
    }
    buf_printf(&b, "rnd%x\r\n", rand_r(seed));            /* a random word of its own */
    return buf_steal(&b, NULL);
}

static double classify(bayes_t *db, const char *msg, unsigned min_learned, int *rc)
{
    mime_msg m;
    double p = -1;
    char *err = NULL;

    mime_parse(msg, strlen(msg), &m);
    *rc = bayes_classify(db, &m, min_learned, &p, &err);
    if (*rc < 0)
        fail_msg("classify: %s", err);
    mime_free(&m);
    return p;
}

static void learn(bayes_t *db, const char *msg, bayes_class cls, bayes_learned expect)
{
    bayes_learned what;
    char *err = NULL;

    if (bayes_learn(db, msg, strlen(msg), cls, &what, &err) != 0)
        fail_msg("learn: %s", err);
    assert_int_equal(what, expect);
}

static void train(const char *dir, unsigned n)
{
    char *err = NULL;
    bayes_t *db = bayes_open(dir, true, NULL, &err);
    unsigned seed = 42;

    assert_non_null(db);
    assert_int_equal(bayes_begin(db, &err), 0);
    for (unsigned i = 0; i < n; i++) {
        char *h = make_msg(false, i, &seed), *s = make_msg(true, i, &seed);
        learn(db, h, BAYES_HAM, BAYES_LEARNED_NEW);
        learn(db, s, BAYES_SPAM, BAYES_LEARNED_NEW);
        xfree(&h);
        xfree(&s);
    }
    assert_int_equal(bayes_commit(db, &err), 0);
    bayes_close(&db);
}

static void test_train(void **state)
{
    (void)state;
    char *err = NULL;
    bool missing = false;
    uint32_t h, s;
    size_t tokens, tokens2;
    int rc;

    assert_null(bayes_open(tmpdir, false, &missing, &err));    /* none yet */
    assert_true(missing);
    xfree(&err);

    train(tmpdir, 250);
    bayes_t *r = bayes_open(tmpdir, false, &missing, &err);     /* a classifier */
    assert_non_null(r);
    assert_int_equal(bayes_counts(r, &h, &s, &tokens, &err), 0);
    assert_int_equal(h, 250);
    assert_int_equal(s, 250);
    assert_true(tokens > 200);

    unsigned seed = 7777;                                        /* unseen messages */
    for (unsigned i = 0; i < 30; i++) {
        char *hm = make_msg(false, 1000 + i, &seed), *sm = make_msg(true, 1000 + i, &seed);
        double ph = classify(r, hm, 200, &rc);
        assert_int_equal(rc, 1);
        if (ph >= 0.2)
            fail_msg("unseen ham %u: P = %.4f", i, ph);
        double ps = classify(r, sm, 200, &rc);
        assert_int_equal(rc, 1);
        if (ps <= 0.8)
            fail_msg("unseen spam %u: P = %.4f", i, ps);
        xfree(&hm);
        xfree(&sm);
    }
    /* below min_learned: silent */
    char *probe = make_msg(true, 5000, &seed);
    (void)classify(r, probe, 251, &rc);
    assert_int_equal(rc, 0);
    double before = classify(r, probe, 200, &rc);
    assert_int_equal(rc, 1);

    /* learning the same messages again changes nothing */
    bayes_t *w = bayes_open(tmpdir, true, NULL, &err);
    assert_non_null(w);
    seed = 42;
    assert_int_equal(bayes_begin(w, &err), 0);
    char *h0 = make_msg(false, 0, &seed), *s0 = make_msg(true, 0, &seed);
    learn(w, h0, BAYES_HAM, BAYES_LEARNED_KNOWN);
    learn(w, s0, BAYES_SPAM, BAYES_LEARNED_KNOWN);
    assert_int_equal(bayes_commit(w, &err), 0);
    assert_int_equal(bayes_counts(r, &h, &s, &tokens2, &err), 0);
    assert_int_equal(h, 250);
    assert_int_equal(s, 250);
    assert_int_equal(tokens2, tokens);
    assert_true(classify(r, probe, 200, &rc) == before);

    /* learning a ham as spam moves it; the reader sees the commit */
    assert_int_equal(bayes_begin(w, &err), 0);
    learn(w, h0, BAYES_SPAM, BAYES_LEARNED_MOVED);
    learn(w, h0, BAYES_SPAM, BAYES_LEARNED_KNOWN);       /* within the batch too */
    assert_int_equal(bayes_commit(w, &err), 0);
    assert_int_equal(bayes_counts(r, &h, &s, NULL, &err), 0);
    assert_int_equal(h, 249);
    assert_int_equal(s, 251);

    /* moving back and forgetting */
    bool found = false;
    assert_int_equal(bayes_begin(w, &err), 0);
    learn(w, h0, BAYES_HAM, BAYES_LEARNED_MOVED);
    assert_int_equal(bayes_forget(w, s0, strlen(s0), &found, &err), 0);
    assert_true(found);
    assert_int_equal(bayes_forget(w, s0, strlen(s0), &found, &err), 0);
    assert_false(found);
    assert_int_equal(bayes_commit(w, &err), 0);
    assert_int_equal(bayes_counts(r, &h, &s, NULL, &err), 0);
    assert_int_equal(h, 250);
    assert_int_equal(s, 249);

    /* an aborted batch (closing without commit) changes nothing */
    assert_int_equal(bayes_begin(w, &err), 0);
    learn(w, probe, BAYES_SPAM, BAYES_LEARNED_NEW);
    bayes_close(&w);
    assert_int_equal(bayes_counts(r, &h, &s, NULL, &err), 0);
    assert_int_equal(s, 249);

    xfree(&h0);
    xfree(&s0);
    xfree(&probe);
    bayes_close(&r);
}

/* Garbage in the directory: a clear error, no crash. */
static void test_bad_database(void **state)
{
    (void)state;
    char dir[] = "/tmp/bayes_bad.XXXXXX", *err = NULL;
    bool missing = true;
    assert_non_null(mkdtemp(dir));
    char *data = xasprintf("%s/data.mdb", dir);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    fputs("this is not an LMDB file, not at all, and it is long enough to read\n", f);
    fclose(f);
    assert_null(bayes_open(dir, false, &missing, &err));
    assert_false(missing);
    assert_non_null(err);
    xfree(&err);
    xfree(&data);
    rm_dir(dir);
}

/* ------------------------------------------------------------ rows */

static char *run_rows(scoring_t *sc, const char *msg)
{
    Envelope env = CORREIO__ENVELOPE__INIT;
    scoring_result r;

    env.queue_id = "TESTQID";
    env.reverse_path = "";
    env.body.data = (uint8_t *)msg;
    env.body.len = strlen(msg);
    scoring_run(sc, &env, &r);
    char *tests = scoring_tests_text(&r);
    scoring_result_free(&r);
    return tests;
}

static config_t *rows_config(const char *cdir, const char *db, bool on, const char *min)
{
    char *conf = xasprintf("%s/correio.conf", cdir), *err = NULL;
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "data_directory = %s\nspam_bayes = %s\nspam_bayes_database = %s\n"
               "spam_bayes_min_learned = %s\n", cdir, on ? "yes" : "no", db, min);
    fclose(f);
    xfree(&conf);
    config_t *cfg = config_load(cdir, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err);
    return cfg;
}

static void test_scoring_rows(void **state)
{
    (void)state;
    char cdir[] = "/tmp/bayes_cfg.XXXXXX";
    assert_non_null(mkdtemp(cdir));
    char *db = xasprintf("%s/bayes", cdir);
    unsigned seed = 99;
    char *hm = make_msg(false, 2000, &seed), *sm = make_msg(true, 2000, &seed);
    char *tests;

    /* on, but no database: silent */
    config_t *cfg = rows_config(cdir, db, true, "100");
    scoring_t *sc = scoring_new(cfg);
    tests = run_rows(sc, sm);
    assert_null(strstr(tests, "BAYES_"));
    xfree(&tests);
    scoring_free(&sc);
    config_free(&cfg);

    train(db, 150);
    cfg = rows_config(cdir, db, true, "100");
    sc = scoring_new(cfg);
    tests = run_rows(sc, sm);
    if (strstr(tests, "BAYES_99,BAYES_999") == NULL)
        fail_msg("spam: %s", tests);
    xfree(&tests);
    tests = run_rows(sc, hm);
    if (strcmp(tests, "BAYES_00") != 0)
        fail_msg("ham: %s", tests);
    xfree(&tests);
    /* `score BAYES_00 0`: the other rows still see each message afresh */
    assert_true(scoring_set_score(sc, "BAYES_00", 0));
    tests = run_rows(sc, sm);
    assert_non_null(strstr(tests, "BAYES_99"));
    xfree(&tests);
    tests = run_rows(sc, hm);
    assert_string_equal(tests, "none");
    xfree(&tests);
    scoring_free(&sc);
    config_free(&cfg);

    /* min_learned above what is learned: silent */
    cfg = rows_config(cdir, db, true, "151");
    sc = scoring_new(cfg);
    tests = run_rows(sc, sm);
    assert_null(strstr(tests, "BAYES_"));
    xfree(&tests);
    scoring_free(&sc);
    config_free(&cfg);

    /* spam_bayes = no: silent */
    cfg = rows_config(cdir, db, false, "100");
    sc = scoring_new(cfg);
    tests = run_rows(sc, sm);
    assert_null(strstr(tests, "BAYES_"));
    xfree(&tests);
    scoring_free(&sc);
    config_free(&cfg);

    xfree(&hm);
    xfree(&sm);
    xfree(&db);
    rm_dir(cdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_probability),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_bad_database),
        cmocka_unit_test(test_scoring_rows),
    };
    int rc;

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rmdir(tmpdir);      /* bayes_open makes it */
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rm_dir(tmpdir);
    return rc;
}
