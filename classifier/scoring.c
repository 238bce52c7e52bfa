/* scoring.c - the classifier's table of tests and the engine that runs
 * them (see scoring.h).  To add a test: write test_NAME.c, declare it in
 * scoring.h, add its row to scoring_table below. */
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "log.h"
#include "scoring.h"
#include "xalloc.h"

/* The one table of tests, in the order they run. */
static const scoring_test scoring_table[] = {
    {"GTUBE", 1000.0, test_gtube,
     "the GTUBE test string is in the message (spam filter self-test)", NULL, NULL},
    /* `correio list` (test_lists.c): at most one sender row hits */
    {"USER_WHITELIST", -100.0, test_lists_user_white,
     "the recipient's own whitelist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"USER_BLACKLIST", 100.0, test_lists_user_black,
     "the recipient's own blacklist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"DOMAIN_WHITELIST", -100.0, test_lists_domain_white,
     "the recipient domain's whitelist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"DOMAIN_BLACKLIST", 100.0, test_lists_domain_black,
     "the recipient domain's blacklist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"SERVER_WHITELIST", -100.0, test_lists_server_white,
     "the server-wide whitelist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"SERVER_BLACKLIST", 100.0, test_lists_server_black,
     "the server-wide blacklist names the sender or its domain",
     test_lists_new, test_lists_free},
    {"KEYWORDS", 1.0, test_lists_keywords,
     "keywords of the lists in Subject or body: their points added up (times this score)",
     test_lists_new, test_lists_free},
    {"AUTH_WHITELIST", -100.0, test_lists_auth,
     "the client authenticated (spam_whitelist_authenticated)",
     test_lists_new, test_lists_free},
    {"MIME_HTML_ONLY", 1.0, test_mime_html_only,
     "the message has an HTML part and no text/plain part", NULL, NULL},
    {"MIME_HTML_MISMATCH", 1.0, test_mime_html_mismatch,
     "text and HTML alternatives say different things (word sets differ)", NULL, NULL},
    {"HTML_EXTERNAL_IMAGE", 0.5, test_html_external_image,
     "HTML shows an image fetched from the web (<img src=http...>)", NULL, NULL},
    {"HTML_EMBEDDED_IMAGE", 0.5, test_html_embedded_image,
     "HTML shows an image embedded in the message (cid:)", NULL, NULL},
    {"CHARSET_FORBIDDEN", 2.0, test_charset_forbidden,
     "a text part, Subject or From uses a charset of spam_forbidden_charsets",
     test_charset_forbidden_new, test_charset_forbidden_free},
    {"NONASCII_NO_CHARSET", 1.0, test_nonascii_no_charset,
     "8-bit bytes in a text part with no charset, or raw 8-bit in Subject/From", NULL, NULL},
    {"MIME_BAD_STRUCTURE", 1.0, test_mime_bad_structure,
     "broken MIME: missing or unterminated boundary, bad base64/quoted-printable", NULL, NULL},
    {"MIME_TRUNCATED", 0.5, test_mime_truncated,
     "the message goes past a MIME parser bound (parts, depth, header size)", NULL, NULL},
    /* Asynchronous tests (no fn): the classify loop (classify_loop.c,
     * test_dns.c) decides whether they hit and asks scoring_hit_score. */
    {"HELO_NO_MATCH", 0.5, NULL,
     "the HELO name does not resolve to the client's address", NULL, NULL},
    {"SPF_PASS", 0.0, NULL, "SPF of the envelope sender: pass", NULL, NULL},
    {"SPF_FAIL", 3.0, NULL, "SPF of the envelope sender: fail", NULL, NULL},
    {"SPF_SOFTFAIL", 1.0, NULL, "SPF of the envelope sender: softfail", NULL, NULL},
    {"SPF_NEUTRAL", 0.0, NULL, "SPF of the envelope sender: neutral", NULL, NULL},
    {"SPF_NONE", 0.0, NULL, "SPF of the envelope sender: no record", NULL, NULL},
    {"SPF_PERMERROR", 0.5, NULL, "SPF of the envelope sender: broken record", NULL, NULL},
    {"SPF_TEMPERROR", 0.0, NULL, "SPF of the envelope sender: DNS failure", NULL, NULL},
    {"DKIM_SIGNED", 0.0, NULL, "the message has a DKIM signature (information)", NULL, NULL},
    {"DKIM_VALID", -0.1, NULL, "DKIM: at least one signature verifies", NULL, NULL},
    {"DKIM_VALID_AU", -0.1, NULL,
     "DKIM: a valid signature's d= is the From: domain or a parent of it", NULL, NULL},
    {"DKIM_INVALID", 1.0, NULL,
     "DKIM: signed, no signature verifies (bad signature, body hash or broken tags)", NULL, NULL},
    {"DKIM_KEY_MISSING", 0.5, NULL,
     "DKIM: no signature verifies and a signature's key record does not exist", NULL, NULL},
    {"DKIM_TEMPERROR", 0.0, NULL, "DKIM: a key lookup failed for now (DNS)", NULL, NULL},
    {"SCAN_TIMEOUT", 0.0, NULL,
     "lookups did not answer within spam_scan_time_limit (scored without them)", NULL, NULL},
    /* Bayes (test_bayes.c, spam_bayes): one band of the probability hits;
     * scores of SpamAssassin 4.0's 50_scores.cf (Bayes on, no network) */
    {"BAYES_00", -1.9, test_bayes_00, "Bayes spam probability is 0 to 1%",
     test_bayes_new, test_bayes_free},
    {"BAYES_05", -0.5, test_bayes_05, "Bayes spam probability is 1 to 5%",
     test_bayes_new, test_bayes_free},
    {"BAYES_20", -0.001, test_bayes_20, "Bayes spam probability is 5 to 20%",
     test_bayes_new, test_bayes_free},
    {"BAYES_40", -0.001, test_bayes_40, "Bayes spam probability is 20 to 40%",
     test_bayes_new, test_bayes_free},
    {"BAYES_50", 0.8, test_bayes_50, "Bayes spam probability is 40 to 60%",
     test_bayes_new, test_bayes_free},
    {"BAYES_60", 1.5, test_bayes_60, "Bayes spam probability is 60 to 80%",
     test_bayes_new, test_bayes_free},
    {"BAYES_80", 2.0, test_bayes_80, "Bayes spam probability is 80 to 95%",
     test_bayes_new, test_bayes_free},
    {"BAYES_95", 3.0, test_bayes_95, "Bayes spam probability is 95 to 99%",
     test_bayes_new, test_bayes_free},
    {"BAYES_99", 3.5, test_bayes_99, "Bayes spam probability is 99 to 100%",
     test_bayes_new, test_bayes_free},
    {"BAYES_999", 0.2, test_bayes_999, "Bayes spam probability is 99.9 to 100% (in addition to BAYES_99)",
     test_bayes_new, test_bayes_free},
};
#define SCORING_NTESTS (sizeof scoring_table / sizeof scoring_table[0])

/* Tests whose points vary per message: a hit counts what points returns
 * (called right after the test hit) times the row's score. */
static const struct {
    scoring_test_fn fn;
    double        (*points)(const scoring_msg *msg, void *ctx);
} scoring_variable[] = {
    {test_lists_keywords, test_lists_keyword_points},
};

/* scoring_points - what a hit of row i counts. */
static double scoring_points(const scoring_t *s, size_t i, const scoring_msg *msg);

struct scoring {
    double required;
    double score[SCORING_NTESTS];   /* effective score per table row */
    void  *ctx[SCORING_NTESTS];     /* per-test state (ctx_new), or NULL */
    rules_t *rules;                 /* spam_rules_files (rules.h), or NULL */
};

scoring_t *scoring_new(const config_t *cfg)
{
    scoring_t *s = xcalloc(1, sizeof *s);
    for (size_t i = 0; i < SCORING_NTESTS; i++)
        s->score[i] = scoring_table[i].score;
    scoring_configure(s, cfg);
    return s;
}

void scoring_configure(scoring_t *s, const config_t *cfg)
{
    s->required = config_number(cfg, "spam_required_score");
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (scoring_table[i].ctx_new == NULL)
            continue;
        if (s->ctx[i])
            scoring_table[i].ctx_free(s->ctx[i]);
        s->ctx[i] = scoring_table[i].ctx_new(cfg);
    }
}

bool scoring_set_score(scoring_t *s, const char *name, double score)
{
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (strcasecmp(scoring_table[i].name, name) == 0) {
            s->score[i] = score;
            return true;
        }
    }
    return false;
}

bool scoring_known(const char *name, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < SCORING_NTESTS; i++)
        if (strcasecmp(scoring_table[i].name, name) == 0)
            return true;
    return false;
}

void scoring_set_rules(scoring_t *s, rules_t *rules)
{
    size_t n = 0;
    const rules_override *ov = rules ? rules_overrides(rules, &n) : NULL;

    rules_free(&s->rules);
    s->rules = rules;
    for (size_t i = 0; i < SCORING_NTESTS; i++)     /* forget older overrides */
        s->score[i] = scoring_table[i].score;
    for (size_t i = 0; i < n; i++)
        (void)scoring_set_score(s, ov[i].name, ov[i].score);
}

/* scoring_builtin_hit - did built-in test name hit (for metas)? */
static bool scoring_builtin_hit(const char *name, void *ctx)
{
    const scoring_result *out = ctx;
    for (size_t i = 0; i < out->n_hits; i++)
        if (strcasecmp(out->hits[i].name, name) == 0)
            return true;
    return false;
}

/* scoring_split - find the blank line between header section and body. */
static void scoring_split(const Envelope *env, scoring_msg *msg)
{
    const char *data = (const char *)env->body.data;
    size_t len = data ? env->body.len : 0;

    msg->env = env;
    msg->headers = data;
    msg->headers_len = 0;
    msg->body = data;
    msg->body_len = len;
    if (len >= 2 && data[0] == '\r' && data[1] == '\n') {   /* no headers */
        msg->body = data + 2;
        msg->body_len = len - 2;
        return;
    }
    const char *sep = len ? memmem(data, len, "\r\n\r\n", 4) : NULL;
    if (sep) {
        msg->headers_len = (size_t)(sep - data) + 2;   /* keep the last CRLF */
        msg->body = sep + 4;
        msg->body_len = len - (size_t)(sep + 4 - data);
    }
}

bool scoring_hit_score(const scoring_t *s, const char *name, double *score)
{
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (strcasecmp(scoring_table[i].name, name) != 0)
            continue;
        *score = s->score[i];
        /* a row whose default is 0 is informational: always shown */
        return s->score[i] != 0.0 || scoring_table[i].score == 0.0;
    }
    return false;
}

void scoring_run(const scoring_t *s, const Envelope *env, scoring_result *out)
{
    mime_msg mime;
    mime_parse((const char *)env->body.data, env->body.data ? env->body.len : 0, &mime);
    scoring_run_mime(s, env, &mime, out);
    mime_free(&mime);
}

void scoring_run_mime(const scoring_t *s, const Envelope *env, const mime_msg *mime,
                      scoring_result *out)
{
    scoring_msg msg;
    scoring_split(env, &msg);
    msg.mime = mime;

    memset(out, 0, sizeof *out);
    out->required = s->required;
    size_t n_rules = s->rules ? rules_count(s->rules) : 0;
    out->hits = xcalloc(SCORING_NTESTS + n_rules, sizeof *out->hits);
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (s->score[i] == 0.0 || scoring_table[i].fn == NULL)
            continue;                   /* disabled by `score NAME 0`, or asynchronous */
        if (!scoring_table[i].fn(&msg, s->ctx[i]))
            continue;
        double sc = scoring_points(s, i, &msg);
        out->hits[out->n_hits].name = scoring_table[i].name;
        out->hits[out->n_hits].score = sc;
        out->n_hits++;
        out->score += sc;
    }
    if (n_rules) {                      /* after the table: metas may name its tests */
        rules_hit *rh = xcalloc(n_rules, sizeof *rh);
        size_t n = rules_run(s->rules, mime, (const char *)env->body.data,
                             env->body.data ? env->body.len : 0, scoring_builtin_hit, out, rh);
        for (size_t i = 0; i < n; i++) {
            out->hits[out->n_hits].name = rh[i].name;
            out->hits[out->n_hits].score = rh[i].score;
            out->n_hits++;
            out->score += rh[i].score;
        }
        xfree(&rh);
    }
    out->is_spam = out->score >= out->required;
}

static double scoring_points(const scoring_t *s, size_t i, const scoring_msg *msg)
{
    for (size_t v = 0; v < sizeof scoring_variable / sizeof scoring_variable[0]; v++)
        if (scoring_variable[v].fn == scoring_table[i].fn)
            return s->score[i] * scoring_variable[v].points(msg, s->ctx[i]);
    return s->score[i];
}

void scoring_result_free(scoring_result *r)
{
    xfree(&r->hits);
    r->n_hits = 0;
}

char *scoring_tests_text(const scoring_result *r)
{
    if (r->n_hits == 0)
        return xstrdup("none");
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < r->n_hits; i++) {
        if (i)
            buf_append_char(&b, ',');
        buf_append_str(&b, r->hits[i].name);
    }
    return buf_steal(&b, NULL);
}

void scoring_free(scoring_t **s)
{
    if (*s == NULL)
        return;
    for (size_t i = 0; i < SCORING_NTESTS; i++)
        if ((*s)->ctx[i])
            scoring_table[i].ctx_free((*s)->ctx[i]);
    rules_free(&(*s)->rules);
    xfree(s);
}
