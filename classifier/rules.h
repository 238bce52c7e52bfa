/* rules.h - SpamAssassin-like rules files: an operator adds scored
 * regular-expression tests without code (spam_rules_files).
 *
 * The syntax is the subset of SpamAssassin's that matters, one directive
 * per line, `#` starts a comment:
 *
 *   header NAME Field =~ /re/flags [if-unset: TEXT]   also !~; Field may be
 *                          Field:raw (not RFC 2047 decoded), Field:addr (the
 *                          address), Field:name (the display name), ToCc
 *                          (To and Cc), ALL (every field as "Name: value")
 *   header NAME exists:Field
 *   body NAME /re/         the visible text of the text parts (HTML as its
 *                          text), Subject first; see "body text" below
 *   rawbody NAME /re/      the text parts decoded (base64, QP), not rendered
 *   full NAME /re/         the message as received, header and body
 *   uri NAME /re/          each link and image URL, one at a time
 *   meta NAME EXPR         other rules (and built-in tests) as 0/1, or as
 *                          hit counts: && || ! ( ) + - * and comparisons
 *                          > >= < <= == != over names and numbers
 *   score NAME S [S...]    the first value is used; for a name that is no
 *                          rule here but a built-in test (scoring.h), it
 *                          overrides that test's score
 *   describe NAME TEXT
 *   tflags NAME nice|multiple|...   nice: a negative score is allowed;
 *                          multiple: every match counts (score x count, at
 *                          most RULES_MAX_MULTIPLE); other words are ignored
 *   include FILE           relative to the including file (rules_load only)
 *
 * Patterns are /re/, m/re/, m{re}, m(re), m[re], m<re>, or m!re! with any
 * punctuation as delimiter; flags i, m, s, x.  They are compiled by PCRE2
 * in byte mode (case-insensitivity is ASCII only; UTF-8 text is matched
 * byte by byte), with JIT when available and a match limit: a pattern that
 * hits the limit counts as not matching and is logged once per rule.
 *
 * Body text: as SpamAssassin does, each paragraph (lines up to a blank
 * line) is one line, its white space runs made one space; the paragraphs
 * are joined with "\n" and body and rawbody patterns are compiled with
 * PCRE2_MULTILINE, so ^ and $ anchor at each paragraph (rawbody: each
 * line) and `.` does not cross one, without a match call per line.
 *
 * Header values: every field of that name, unfolded, joined by "\n" and
 * ended by "\n"; a missing field is the empty string (or the if-unset
 * text), so `!~` hits on it.  Names starting with "__" are sub-rules for
 * metas: evaluated, never scored or reported.  A rule without a score line
 * scores 1.0; `score NAME 0` disables it.
 *
 * Errors are "FILE:LINE: what" (a bad pattern carries PCRE2's message and
 * offset).  Warnings (a meta naming an unknown rule, which then counts as
 * 0) are logged with log_warn.
 */
#ifndef CORREIO_CLASSIFIER_RULES_H
#define CORREIO_CLASSIFIER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include "mime.h"

#define RULES_FILE_MAX      (16 << 20)  /* one rules file */
#define RULES_INCLUDE_DEPTH 8
#define RULES_MAX_RULES     20000
#define RULES_MAX_MULTIPLE  20          /* hits counted for tflags multiple */
#define RULES_MATCH_LIMIT   200000      /* pcre2_set_match_limit per match */
#define RULES_DEPTH_LIMIT   10000       /* pcre2_set_depth_limit */

typedef struct rules rules_t;

/* Is name a built-in test?  (Lets `score` override built-in tests and
 * metas refer to them.)  May be NULL: no built-in tests. */
typedef bool (*rules_known_fn)(const char *name, void *ctx);
/* Did built-in test name hit this message?  Asked by metas only. */
typedef bool (*rules_builtin_fn)(const char *name, void *ctx);

/* rules_load - read the files (paths relative to dir unless absolute)
 * into one rule set.  On error returns NULL and *err is a malloc'ed
 * "FILE:LINE: what" message the caller frees.  paths may be empty (NULL
 * or a NULL first item): an empty rule set. */
rules_t *rules_load(const char *const *paths, const char *dir,
                    rules_known_fn known, void *kctx, char **err);
/* rules_parse - the same for text already in memory; fname is used in
 * messages only and `include` is an error. */
rules_t *rules_parse(const char *fname, const char *text, size_t len,
                     rules_known_fn known, void *kctx, char **err);
void rules_free(rules_t **r);

/* Number of scored rules (the most hits rules_run can give). */
size_t rules_count(const rules_t *r);

/* `score NAME value` lines for built-in tests, in file order (a later
 * line for the same name wins when applied in order). */
typedef struct rules_override {
    const char *name;       /* owned by the rule set */
    double      score;
} rules_override;
const rules_override *rules_overrides(const rules_t *r, size_t *n);

/* One rule that hit. */
typedef struct rules_hit {
    const char *name;       /* owned by the rule set */
    double      score;      /* score x count for tflags multiple */
} rules_hit;

/* rules_run - evaluate every rule on the message: m is the message taken
 * apart, raw/raw_len the bytes as received (for `full`).  builtin (may be
 * NULL) answers for built-in tests named in metas.  Writes up to
 * rules_count(r) entries to hits and returns how many. */
size_t rules_run(const rules_t *r, const mime_msg *m, const char *raw, size_t raw_len,
                 rules_builtin_fn builtin, void *bctx, rules_hit *hits);

/* rules_limit_hits - how many matches stopped at the match limit so far
 * (each rule is logged the first time only). */
unsigned long rules_limit_hits(const rules_t *r);

/* rules_describe - a rule's describe text, or NULL. */
const char *rules_describe(const rules_t *r, const char *name);

#endif
