/* scoring.h - the classifier's scoring engine: a table of named tests.
 *
 * Each test is {name, default score, function}; a message's score is the
 * sum of the scores of the tests that hit, and it is spam at or above the
 * required score (spam_required_score).  Today the table holds GTUBE
 * only; later tests (DNSBL, header/body regexes, charsets) are new rows in
 * scoring.c and new test_*.c files, and `score NAME value` lines in a
 * rules file go through scoring_set_score().
 */
#ifndef CORREIO_CLASSIFIER_SCORING_H
#define CORREIO_CLASSIFIER_SCORING_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "mime.h"
#include "rules.h"
#include "wire.h"

/* What a test sees: the envelope, and the client's bytes split once into
 * the header section and the body (so each test need not search for the
 * blank line itself).  Valid only during scoring_run(). */
typedef struct scoring_msg {
    const Envelope *env;
    const char     *headers;   /* header section, without the blank line */
    size_t          headers_len;
    const char     *body;      /* after the blank line (all of it if none) */
    size_t          body_len;
    const mime_msg *mime;      /* the message taken apart once (mime.h) */
} scoring_msg;

/* A test: does it hit this message?  ctx is the test's own state (NULL
 * for tests without any, later e.g. a compiled regex or a DNS resolver). */
typedef bool (*scoring_test_fn)(const scoring_msg *msg, void *ctx);

typedef struct scoring_test {
    const char     *name;     /* SpamAssassin-style rule name, "GTUBE" */
    double          score;    /* default score */
    scoring_test_fn fn;
    const char     *doc;      /* one line */
    /* Optional per-test state made from the configuration (at start and
     * on every reload) and freed with ctx_free; NULL for tests without. */
    void         *(*ctx_new)(const config_t *cfg);
    void          (*ctx_free)(void *ctx);
} scoring_test;

/* One test that hit, with the score it counted. */
typedef struct scoring_hit {
    const char *name;         /* points into the test table */
    double      score;
} scoring_hit;

typedef struct scoring_result {
    double       score;
    double       required;
    bool         is_spam;
    size_t       n_hits;
    scoring_hit *hits;        /* n_hits entries, owned by the result */
} scoring_result;

typedef struct scoring scoring_t;

/* scoring_new - an engine with every test of the table at its default
 * score and the required score from cfg (spam_required_score). */
scoring_t *scoring_new(const config_t *cfg);
/* scoring_configure - take the required score from cfg again (SIGHUP). */
void scoring_configure(scoring_t *s, const config_t *cfg);
/* scoring_set_score - override a test's score (`score NAME value`); a
 * score of 0 disables the test.  Returns false for an unknown name. */
bool scoring_set_score(scoring_t *s, const char *name, double score);
/* scoring_set_rules - run rules (spam_rules_files, rules.h) after the
 * table's tests on every message; the engine owns rules from now on and
 * frees the set it had (NULL: none).  Every table score goes back to its
 * default and the set's `score` lines for built-in tests are applied, so
 * a reload forgets overrides that left the files (and scoring_set_score
 * calls made before). */
void scoring_set_rules(scoring_t *s, rules_t *rules);
/* scoring_known - is name a test of the table (any case)?  A
 * rules_known_fn for rules_load; ctx is unused. */
bool scoring_known(const char *name, void *ctx);
/* scoring_run - run every enabled test on env; fills *out (free it with
 * scoring_result_free). */
void scoring_run(const scoring_t *s, const Envelope *env, scoring_result *out);
/* scoring_run_mime - the same on a message the caller has parsed already
 * (the classify loop keeps its links for the URI blocklists). */
void scoring_run_mime(const scoring_t *s, const Envelope *env, const mime_msg *mime,
                      scoring_result *out);
/* scoring_hit_score - for an asynchronous row of the table (fn NULL:
 * HELO_NO_MATCH, SPF_*, SCAN_TIMEOUT): true and *score when a hit of name
 * counts (rows with a default of 0 always show, as information), false
 * when it is disabled (`score NAME 0`) or unknown. */
bool scoring_hit_score(const scoring_t *s, const char *name, double *score);
void scoring_result_free(scoring_result *r);
/* scoring_tests_text - the hit names joined by commas ("GTUBE,FOO"), or
 * "none"; malloc'ed. */
char *scoring_tests_text(const scoring_result *r);
void scoring_free(scoring_t **s);

/* The tests themselves, one file each (test_NAME.c). */
bool test_gtube(const scoring_msg *msg, void *ctx);
/* test_mime_html.c: text/html without text/plain; text and HTML
 * alternatives whose words differ (IceWarp "P"). */
bool test_mime_html_only(const scoring_msg *msg, void *ctx);
bool test_mime_html_mismatch(const scoring_msg *msg, void *ctx);
/* test_mime_similarity - word-set Jaccard similarity of two
 * texts (1.0 when both have no words); exposed for the unit tests. */
double test_mime_similarity(const char *a, size_t alen, const char *b, size_t blen);
/* test_html_image.c: <img src="http(s)://..."> (IceWarp "E"); cid:
 * images embedded in the message. */
bool test_html_external_image(const scoring_msg *msg, void *ctx);
bool test_html_embedded_image(const scoring_msg *msg, void *ctx);
/* test_charset.c: a charset of spam_forbidden_charsets declared by a text
 * part or an encoded word of Subject/From; 8-bit bytes with no charset. */
bool test_charset_forbidden(const scoring_msg *msg, void *ctx);
void *test_charset_forbidden_new(const config_t *cfg);
void test_charset_forbidden_free(void *ctx);
bool test_nonascii_no_charset(const scoring_msg *msg, void *ctx);
/* test_mime_bad.c: broken MIME structure or transfer encoding; a MIME
 * bound (mime.h) reached. */
bool test_mime_bad_structure(const scoring_msg *msg, void *ctx);
bool test_mime_truncated(const scoring_msg *msg, void *ctx);
/* test_lists.c: the lists of `correio list` (lib/spam_lists.h) for the
 * first recipient of ours, and authenticated senders; one ctx per row,
 * sharing one read-only handle. */
void *test_lists_new(const config_t *cfg);
void test_lists_free(void *ctx);
bool test_lists_user_white(const scoring_msg *msg, void *ctx);
bool test_lists_user_black(const scoring_msg *msg, void *ctx);
bool test_lists_domain_white(const scoring_msg *msg, void *ctx);
bool test_lists_domain_black(const scoring_msg *msg, void *ctx);
bool test_lists_server_white(const scoring_msg *msg, void *ctx);
bool test_lists_server_black(const scoring_msg *msg, void *ctx);
bool test_lists_keywords(const scoring_msg *msg, void *ctx);
/* test_lists_keyword_points - the points the last KEYWORDS hit found
 * (scoring.c counts them times the row's score). */
double test_lists_keyword_points(const scoring_msg *msg, void *ctx);
bool test_lists_auth(const scoring_msg *msg, void *ctx);
/* test_bayes.c: the band of the Bayesian spam probability (lib/bayes.h)
 * when spam_bayes = yes; one ctx per row, sharing one read-only database
 * and the probability of the message being scored. */
void *test_bayes_new(const config_t *cfg);
void test_bayes_free(void *ctx);
bool test_bayes_00(const scoring_msg *msg, void *ctx);
bool test_bayes_05(const scoring_msg *msg, void *ctx);
bool test_bayes_20(const scoring_msg *msg, void *ctx);
bool test_bayes_40(const scoring_msg *msg, void *ctx);
bool test_bayes_50(const scoring_msg *msg, void *ctx);
bool test_bayes_60(const scoring_msg *msg, void *ctx);
bool test_bayes_80(const scoring_msg *msg, void *ctx);
bool test_bayes_95(const scoring_msg *msg, void *ctx);
bool test_bayes_99(const scoring_msg *msg, void *ctx);
bool test_bayes_999(const scoring_msg *msg, void *ctx);

#endif
