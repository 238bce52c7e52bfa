/* rules_test.c - the SpamAssassin-like rules files (classifier/rules.c):
 * parse errors with their line, every rule kind on a crafted message and
 * silent on a clean one, metas, score overrides of built-in tests, the
 * match limit against a catastrophic pattern, include, and the shipped
 * default rules file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../classifier/rules.h"
#include "../../classifier/scoring.h"
#include "config.h"
#include "xalloc.h"

/* ------------------------------------------------------------ hand-built messages */

typedef struct test_msg {
    const char *headers[16][2];     /* name, decoded value */
    const char *text;               /* one text/plain part */
    const char *html_text;          /* one text/html part: its visible text */
    const char *html_raw;           /* ... and its decoded HTML */
    const char *uris[4];
} test_msg;

/* msg_build - a mime_msg from t, as mime_parse would give it. */
static void msg_build(const test_msg *t, mime_msg *m, mime_header *h, mime_part *p, mime_uri *u)
{
    memset(m, 0, sizeof *m);
    m->headers = h;
    for (size_t i = 0; i < 16 && t->headers[i][0]; i++) {
        h[i].name = (char *)t->headers[i][0];
        h[i].value = (char *)t->headers[i][1];
        h[i].decoded = (char *)t->headers[i][1];
        m->n_headers++;
    }
    m->parts = p;
    if (t->text) {
        memset(&p[m->n_parts], 0, sizeof *p);
        p[m->n_parts].type = "text/plain";
        p[m->n_parts].text = (char *)t->text;
        p[m->n_parts].text_len = strlen(t->text);
        p[m->n_parts].raw = (char *)t->text;
        p[m->n_parts].raw_len = strlen(t->text);
        m->n_parts++;
        m->has_text = true;
    }
    if (t->html_text) {
        memset(&p[m->n_parts], 0, sizeof *p);
        p[m->n_parts].type = "text/html";
        p[m->n_parts].text = (char *)t->html_text;
        p[m->n_parts].text_len = strlen(t->html_text);
        p[m->n_parts].raw = (char *)t->html_raw;
        p[m->n_parts].raw_len = strlen(t->html_raw);
        m->n_parts++;
        m->has_html = true;
    }
    m->uris = u;
    for (size_t i = 0; i < 4 && t->uris[i]; i++) {
        u[i].url = (char *)t->uris[i];
        u[i].host = "";
        m->n_uris++;
    }
}

static bool known_gtube(const char *name, void *ctx)
{
    (void)ctx;
    return strcasecmp(name, "GTUBE") == 0;
}

static bool builtin_gtube_hit(const char *name, void *ctx)
{
    return ctx != NULL && strcasecmp(name, "GTUBE") == 0;
}

static rules_t *parse_ok(const char *text)
{
    char *err = NULL;
    rules_t *r = rules_parse("t.cf", text, strlen(text), known_gtube, NULL, &err);
    if (!r)
        fail_msg("unexpected error: %s", err);
    return r;
}

/* run - the hit names joined by spaces, with their scores: "A=1.0 B=2.0". */
static char *run(const rules_t *r, const test_msg *t, const char *raw, void *bctx)
{
    mime_msg m;
    mime_header h[16];
    mime_part p[2];
    mime_uri u[4];
    msg_build(t, &m, h, p, u);
    rules_hit *hits = xcalloc(rules_count(r) + 1, sizeof *hits);
    size_t n = rules_run(r, &m, raw, raw ? strlen(raw) : 0, builtin_gtube_hit, bctx, hits);
    assert_true(n <= rules_count(r));
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s%s=%.1f", out, i ? " " : "", hits[i].name, hits[i].score);
        xfree(&out);
        out = next;
    }
    xfree(&hits);
    return out;
}

/* ------------------------------------------------------------ parse errors */

static const struct {
    const char *text;
    const char *err;        /* exact message */
} bad[] = {
    {"# ok\nbody A /x/\nfrobnicate B /x/\n", "t.cf:3: unknown directive \"frobnicate\""},
    {"\n\nbody A /a(b/\n", "t.cf:3: A: bad pattern /a(b/: missing closing parenthesis at offset 3"},
    {"body A /abc\n", "t.cf:1: A: pattern without its closing /"},
    {"body A /abc/q\n", "t.cf:1: A: unknown pattern flag 'q' (i, m, s, x)"},
    {"body A abc\n", "t.cf:1: A: expected a pattern /.../ or m{...}"},
    {"body A /abc/ trailing\n", "t.cf:1: A: unexpected \"trailing\" after the pattern"},
    {"body\n", "t.cf:1: body: missing rule name"},
    {"body 9A /x/\n", "t.cf:1: body: bad rule name \"9A\" (letters, digits, _)"},
    {"header A Subject /x/\n", "t.cf:1: A: expected =~ or !~ after the field name"},
    {"header A Subject:foo =~ /x/\n", "t.cf:1: A: unknown header modifier \":foo\" (raw, addr, name)"},
    {"header A eval:check_foo()\n", "t.cf:1: A: eval: tests are not supported"},
    {"body A /x/\nscore A lots\n", "t.cf:2: score A: \"lots\" is not a score (-1000..1000)"},
    {"body A /x/\n\nscore NOPE 1\n", "t.cf:3: score for NOPE, which is neither a rule nor a built-in test"},
    {"body A /x/\nscore A -1\n", "t.cf:2: score A: a negative score needs \"tflags A nice\""},
    {"meta M A &&\nbody A /x/\n", "t.cf:1: M: meta: expected a rule name, a number, ! or ( at \"end of line\""},
    {"body A /x/\nmeta M (A || A\n", "t.cf:2: M: meta: expected ) at \"end of line\""},
    {"body A /x/\nmeta M A B\n", "t.cf:2: M: meta: unexpected text at \"B\""},
    {"meta M1 M2\nmeta M2 !M1\n", "t.cf:1: meta M1 depends on itself"},
    {"include other.cf\n", "t.cf:1: include is not allowed here"},
    {"body A m{a{b}c\n", "t.cf:1: A: pattern without its closing }"},
};

static void test_rules_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err = NULL;
        rules_t *r = rules_parse("t.cf", bad[i].text, strlen(bad[i].text), known_gtube, NULL, &err);
        assert_null(r);
        assert_non_null(err);
        if (strcmp(err, bad[i].err) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad[i].err);
        xfree(&err);
    }
}

/* Comments, tflags, describe, several score values, delimiters. */
static void test_rules_syntax(void **state)
{
    (void)state;
    rules_t *r = parse_ok(
        "# a comment\n"
        "   # an indented comment\n"
        "body  A   m{fo+}i      # trailing comment\n"
        "body  B   m!b/a/r!\n"
        "body  C   /x\\/y/\n"
        "body  D   m(a(b)c)x\n"
        "score A 1.5 2.0 3.0 4.0\n"
        "describe A Has foo\r\n"
        "tflags A learn\n"
        "body  E /never/\n"
        "score E 0\n");
    assert_int_equal(rules_count(r), 5);
    assert_string_equal(rules_describe(r, "A"), "Has foo");
    test_msg t = {.text = "FOOO b/a/r x/y abc"};
    char *hits = run(r, &t, NULL, NULL);
    assert_string_equal(hits, "A=1.5 B=1.0 C=1.0 D=1.0");
    xfree(&hits);
    rules_free(&r);
}

/* ------------------------------------------------------------ each kind */

static const char kinds_rules[] =
    "header SUBJ_FREE   Subject =~ /\\bfree\\b/i\n"
    "header SUBJ_RAW    Subject:raw =~ /=\\?utf-8\\?/i\n"
    "header FROM_ADDR   From:addr =~ /\\@bad\\.example$/\n"
    "header FROM_NAME   From:name =~ /^PayPal$/\n"
    "header NO_DATE     Date !~ /./\n"
    "header HAS_XM      exists:X-Mailer\n"
    "header TOCC_MANY   ToCc =~ /a\\@x\\n.*c\\@x/\n"
    "header ALL_HOP     ALL =~ /^Received: from evil/m\n"
    "header UNSET_DEF   X-Prio =~ /^none$/ [if-unset: none]\n"
    "body   BODY_PARA   /^claim your prize now$/i\n"
    "body   BODY_SUBJ   /^Win a free cruise/\n"
    "rawbody RAW_FONT   /<font\\s+size=\"?7/i\n"
    "full   FULL_XMAIL  /^X-Mailer: spamtool/m\n"
    "uri    URI_IP      m{^https?://\\d+\\.\\d+\\.\\d+\\.\\d+[/:]}\n"
    "body   __CLICK     /click here/i\n"
    "body   __UNSUB     /unsubscribe/i\n"
    "meta   CLICK_UNSUB __CLICK && __UNSUB\n"
    "meta   CNT_2       (__CLICK + __UNSUB + SUBJ_FREE) > 2\n"
    "meta   NOT_BODY    !__CLICK && !(BODY_PARA || BODY_SUBJ) && HAS_XM\n"
    "meta   WITH_GTUBE  GTUBE && __CLICK\n"
    "meta   UNKNOWN_REF NO_SUCH_RULE || 0\n"
    "score  SUBJ_FREE 0.5\n"
    "score  GTUBE 500\n"
    "score  CLICK_UNSUB 2\n";

static void test_rules_kinds(void **state)
{
    (void)state;
    rules_t *r = parse_ok(kinds_rules);

    test_msg spam = {
        .headers = {
            {"Received", "from evil.example by mx"},
            {"Subject", "Win a free cruise"},
            {"From", "\"PayPal\" <service@bad.example>"},
            {"To", "a@x"}, {"Cc", "b@x, c@x"},
            {"X-Mailer", "spamtool 1.0"},
        },
        .text = "Dear friend,\n\nClaim\n  your   prize\r\nnow\n\nclick here\nto unsubscribe\n",
        .html_text = "Big", .html_raw = "<font size=7>Big</font>",
        .uris = {"http://192.0.2.1/win", "https://example.com/"},
    };
    const char *raw = "Subject: x\r\nX-Mailer: spamtool 1.0\r\n\r\nbody\r\n";
    char *hits = run(r, &spam, raw, NULL);
    assert_string_equal(hits,
        "SUBJ_FREE=0.5 FROM_ADDR=1.0 FROM_NAME=1.0 NO_DATE=1.0 HAS_XM=1.0 TOCC_MANY=1.0 "
        "ALL_HOP=1.0 UNSET_DEF=1.0 BODY_PARA=1.0 BODY_SUBJ=1.0 RAW_FONT=1.0 FULL_XMAIL=1.0 "
        "URI_IP=1.0 CLICK_UNSUB=2.0 CNT_2=1.0");
    xfree(&hits);

    /* The same rules on a clean message: only the if-unset default. */
    test_msg ham = {
        .headers = {
            {"Received", "from mail.example.org by mx"},
            {"Subject", "=?utf-8?q?minutes?= of the meeting"},
            {"From", "Ann Example <ann@example.org>"},
            {"To", "team@example.org"},
            {"Date", "Mon, 1 Jan 2024 10:00:00 +0000"},
            {"X-Prio", "high"},
        },
        .text = "Hi all,\n\nthe minutes are attached.\nPrize draw of the\nsummer party: see below.\n",
        .uris = {"https://example.org/minutes"},
    };
    hits = run(r, &ham, "Subject: minutes\r\n\r\nHi\r\n", NULL);
    assert_string_equal(hits, "SUBJ_RAW=1.0");  /* the raw form still has the encoded word */
    xfree(&hits);

    /* A meta over a built-in test that hit, and a body-less message. */
    test_msg gt = {.headers = {{"X-Mailer", "x"}, {"Date", "today"}}, .text = "click here"};
    hits = run(r, &gt, NULL, (void *)1);
    assert_string_equal(hits, "HAS_XM=1.0 UNSET_DEF=1.0 WITH_GTUBE=1.0");
    xfree(&hits);
    test_msg nothing = {.headers = {{NULL, NULL}}};
    hits = run(r, &nothing, NULL, NULL);
    assert_string_equal(hits, "NO_DATE=1.0 UNSET_DEF=1.0");
    xfree(&hits);

    size_t n;
    const rules_override *ov = rules_overrides(r, &n);
    assert_int_equal(n, 1);
    assert_string_equal(ov[0].name, "GTUBE");
    assert_true(ov[0].score == 500.0);
    rules_free(&r);
}

/* tflags multiple counts every match; a later definition replaces. */
static void test_rules_multiple(void **state)
{
    (void)state;
    rules_t *r = parse_ok(
        "body BANG /!/\n"
        "tflags BANG multiple\n"
        "score BANG 0.1\n"
        "body DUP /first/\n"
        "body DUP /second/\n"
        "uri  URI_ANY /./\n"
        "tflags URI_ANY multiple\n"
        "score GOOD -1\n"
        "body GOOD /regards/\n"
        "tflags GOOD nice\n");
    test_msg t = {.text = "wow!!! really!!! second. regards", .uris = {"a", "b", "c"}};
    char *hits = run(r, &t, NULL, NULL);
    assert_string_equal(hits, "BANG=0.6 DUP=1.0 URI_ANY=3.0 GOOD=-1.0");
    xfree(&hits);
    rules_free(&r);
}

/* ------------------------------------------------------------ the match limit */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_rules_match_limit(void **state)
{
    (void)state;
    rules_t *r = parse_ok("body CATASTROPHE /(a+)+$/\nbody AFTER /b$/m\n");
    size_t n = 30000;
    char *text = xmalloc(n + 2);
    memset(text, 'a', n);
    text[n] = 'b';
    text[n + 1] = '\0';
    /* (a+)+$ cannot match "aaa...ab" but tries 2^n ways without a limit */
    test_msg t = {.text = text};
    double t0 = now_s();
    char *hits = run(r, &t, NULL, NULL);
    double t1 = now_s();
    assert_string_equal(hits, "AFTER=1.0");      /* stopped, not matching; the next rule ran */
    assert_true(rules_limit_hits(r) >= 1);
    assert_true(t1 - t0 < 2.0);
    xfree(&hits);
    hits = run(r, &t, NULL, NULL);               /* again: logged once, counted again */
    assert_true(rules_limit_hits(r) >= 2);
    xfree(&hits);
    xfree(&text);
    rules_free(&r);
}

/* ------------------------------------------------------------ files */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_rules_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/rules_test.XXXXXX", a[64], b[64], sub[64], c[80];
    assert_non_null(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/a.cf", dir);
    snprintf(b, sizeof b, "%s/b.cf", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(c, sizeof c, "%s/sub/c.cf", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(a, "body A /a/\ninclude sub/c.cf\n");
    write_file(c, "body C /c/\nscore A 2\n");
    write_file(b, "meta AC A && C\nscore GTUBE 7\n");

    const char *paths[] = {"a.cf", b, NULL};
    char *err = NULL;
    rules_t *r = rules_load(paths, dir, known_gtube, NULL, &err);
    assert_non_null(r);
    assert_int_equal(rules_count(r), 3);
    test_msg t = {.text = "ac"};
    char *hits = run(r, &t, NULL, NULL);
    assert_string_equal(hits, "A=2.0 C=1.0 AC=1.0");
    xfree(&hits);
    rules_free(&r);

    /* An error in an included file names that file and line. */
    write_file(c, "body C /c/\n\nbody BAD /(/\n");
    r = rules_load(paths, dir, known_gtube, NULL, &err);
    assert_null(r);
    char *want = xasprintf("%s/sub/c.cf:3: BAD: bad pattern /(/: missing closing parenthesis at offset 1", dir);
    assert_string_equal(err, want);
    xfree(&want);
    xfree(&err);

    /* A missing file; an include loop stops at the depth limit. */
    const char *missing[] = {"nope.cf", NULL};
    r = rules_load(missing, dir, known_gtube, NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err, "nope.cf: cannot open"));
    xfree(&err);
    write_file(c, "include c.cf\n");
    r = rules_load(paths, dir, known_gtube, NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err, "include nested deeper than"));
    xfree(&err);

    /* No files: an empty set. */
    r = rules_load(NULL, dir, NULL, NULL, &err);
    assert_non_null(r);
    assert_int_equal(rules_count(r), 0);
    rules_free(&r);

    unlink(a);
    unlink(b);
    unlink(c);
    rmdir(sub);
    rmdir(dir);
}

/* The shipped default rules: they load, a clean message scores nothing
 * much and a spammy one crosses 5. */
static void test_rules_default_file(void **state)
{
    (void)state;
    const char *paths[] = {"classifier/rules/default.cf", NULL};
    const char *srcdir = getenv("SRCDIR");
    char *err = NULL;
    rules_t *r = rules_load(paths, srcdir ? srcdir : ".", known_gtube, NULL, &err);
    if (!r)
        fail_msg("default.cf: %s", err ? err : "?");
    assert_true(rules_count(r) >= 30);

    test_msg ham = {
        .headers = {
            {"From", "Ann Example <ann@example.org>"},
            {"To", "team@example.org"},
            {"Subject", "Minutes of Tuesday's meeting"},
            {"Date", "Tue, 2 Jan 2024 10:00:00 +0000"},
            {"Message-ID", "<123@example.org>"},
        },
        .text = "Hi all,\n\nthe minutes are below. Next meeting on Friday at 10.\n\n"
                "Action items: Bob reviews the budget, Carol books the room.\n\nRegards,\nAnn\n",
        .uris = {"https://example.org/wiki/minutes"},
    };
    test_msg spam = {
        .headers = {
            {"From", "\"support@paypal.com\" <x9@win-prize.example>"},
            {"To", "undisclosed-recipients:;"},
            {"Subject", "CONGRATULATIONS YOU HAVE WON!!!"},
        },
        .text = "Dear Winner,\n\nYou have been selected as the lucky winner of our international "
                "lottery. You won $1,500,000.00 USD!!! To claim your prize, click here and send us "
                "your bank account details. 100% free, risk free, act now!!!\n\n"
                "Buy cheap v1agra and cialis online, no prescription needed.\n\n"
                "To unsubscribe click here.\n",
        .uris = {"http://203.0.113.9/claim.php", "http://bit.ly/abc123"},
    };
    mime_msg m;
    mime_header h[16];
    mime_part p[2];
    mime_uri u[4];
    rules_hit *hits = xcalloc(rules_count(r), sizeof *hits);
    double score;

    msg_build(&ham, &m, h, p, u);
    size_t n = rules_run(r, &m, NULL, 0, NULL, NULL, hits);
    score = 0;
    for (size_t i = 0; i < n; i++) {
        print_message("ham hit %s=%.2f\n", hits[i].name, hits[i].score);
        score += hits[i].score;
    }
    assert_true(score < 1.0);

    msg_build(&spam, &m, h, p, u);
    n = rules_run(r, &m, NULL, 0, NULL, NULL, hits);
    score = 0;
    for (size_t i = 0; i < n; i++) {
        print_message("spam hit %s=%.2f\n", hits[i].name, hits[i].score);
        score += hits[i].score;
    }
    assert_true(score >= 5.0);
    xfree(&hits);
    rules_free(&r);
}

/* ------------------------------------------------------------ in the scoring engine */

#define GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

static char *score_text(scoring_t *s, const char *body, double *score)
{
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.queue_id = "0123456789ABCDEFG";
    env.body.data = (uint8_t *)body;
    env.body.len = strlen(body);
    scoring_result r;
    scoring_run(s, &env, &r);
    *score = r.score;
    char *out = xstrdup("");
    for (size_t i = 0; i < r.n_hits; i++) {
        char *next = xasprintf("%s%s%s=%.1f", out, i ? " " : "", r.hits[i].name, r.hits[i].score);
        xfree(&out);
        out = next;
    }
    scoring_result_free(&r);
    return out;
}

/* spam_rules_files through the config, real MIME parsing, a score
 * override of GTUBE, a meta naming it, and a reload that drops both. */
static void test_rules_scoring(void **state)
{
    (void)state;
    char dir[] = "/tmp/rules_test.XXXXXX", conf[64], cf[64];
    assert_non_null(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/correio.conf", dir);
    snprintf(cf, sizeof cf, "%s/local.cf", dir);
    write_file(conf, "spam_rules_files = local.cf\n");
    write_file(cf,
        "score GTUBE 500\n"
        "body  LOTTERY /\\blottery\\b/i\n"
        "header SUBJ_WIN Subject =~ /you won/i\n"
        "uri   URI_IP m{^https?://\\d+\\.\\d+\\.\\d+\\.\\d+/}\n"
        "meta  GTUBE_LOTTERY GTUBE && LOTTERY\n"
        "score LOTTERY 1.5\n");
    char *err = NULL;
    config_t *cfg = config_load(dir, &err);
    assert_non_null(cfg);
    scoring_t *s = scoring_new(cfg);
    rules_t *r = rules_load(config_list(cfg, "spam_rules_files"), config_dir(cfg), scoring_known, NULL, &err);
    assert_non_null(r);
    scoring_set_rules(s, r);

    double score;
    char *hits = score_text(s, "Subject: =?utf-8?q?You_won?=\r\nContent-Type: text/plain\r\n\r\n"
                               "The national lottery, " GTUBE "\r\n", &score);
    assert_string_equal(hits, "GTUBE=500.0 LOTTERY=1.5 SUBJ_WIN=1.0 GTUBE_LOTTERY=1.0");
    assert_true(score == 503.5);
    xfree(&hits);
    hits = score_text(s, "Subject: hello\r\nContent-Type: text/html\r\n\r\n"
                         "<p>see <a href=\"http://192.0.2.7/x\">this</a></p>\r\n", &score);
    assert_non_null(strstr(hits, "URI_IP=1.0"));
    assert_null(strstr(hits, "LOTTERY"));
    xfree(&hits);
    hits = score_text(s, "Subject: minutes\r\n\r\nSee you on Monday.\r\n", &score);
    assert_string_equal(hits, "");
    xfree(&hits);

    /* A reload with other rules: the override and the meta are gone. */
    write_file(cf, "body LOTTERY /lottery/i\n");
    r = rules_load(config_list(cfg, "spam_rules_files"), config_dir(cfg), scoring_known, NULL, &err);
    assert_non_null(r);
    scoring_set_rules(s, r);
    hits = score_text(s, "Subject: x\r\n\r\nlottery " GTUBE "\r\n", &score);
    assert_string_equal(hits, "GTUBE=1000.0 LOTTERY=1.0");
    xfree(&hits);

    scoring_free(&s);
    config_free(&cfg);
    unlink(cf);
    unlink(conf);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_errors),
        cmocka_unit_test(test_rules_syntax),
        cmocka_unit_test(test_rules_kinds),
        cmocka_unit_test(test_rules_multiple),
        cmocka_unit_test(test_rules_match_limit),
        cmocka_unit_test(test_rules_load),
        cmocka_unit_test(test_rules_default_file),
        cmocka_unit_test(test_rules_scoring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
