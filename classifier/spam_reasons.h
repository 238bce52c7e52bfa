/* spam_reasons.h - the facts of a verdict that the router's anti-spam log
 * line shows: the hits grouped by where they come from, and the From:
 * header's address.  Pure functions of their input (no configuration, no
 * I/O), so that the unit tests pin the text down.
 */
#ifndef CORREIO_CLASSIFIER_SPAM_REASONS_H
#define CORREIO_CLASSIFIER_SPAM_REASONS_H

#include <stdbool.h>
#include <stddef.h>
#include "scoring.h"

#define SPAM_REASONS_FROM_MAX 320   /* longest header_from kept (bytes) */

/* spam_reasons_group - the group a hit belongs to: "DNSBL" (RBL_*),
 * "URIBL" (URIBL_*), "SPF" (SPF_*), "DKIM" (DKIM_*), "Bayes" (BAYES_*),
 * "Lists" (*_WHITELIST, *_BLACKLIST, KEYWORDS), "Other" (any other test
 * for which known(name, ctx) is true: the classifier's own table) or
 * "Rules" (a rules-file rule).  known NULL: nothing is "Other". */
const char *spam_reasons_group(const char *name, bool (*known)(const char *name, void *ctx),
                               void *ctx);

/* spam_reasons_format - the hits as "[Rules=0.21,DNSBL=3.00,Other=3.00:Body=PE]":
 * each group that has a hit, in the order above, with the sum of its
 * scores (two decimals), then ":Body=" and one letter per content test
 * that hit (IceWarp's letters: H MIME_HTML_ONLY, P MIME_HTML_MISMATCH,
 * E HTML_EXTERNAL_IMAGE, I HTML_EMBEDDED_IMAGE, C CHARSET_FORBIDDEN,
 * N NONASCII_NO_CHARSET, M MIME_BAD_STRUCTURE, T MIME_TRUNCATED), left
 * out when none did.  No hits: "[]".  Returns malloc'ed text. */
char *spam_reasons_format(const scoring_hit *hits, size_t n_hits,
                          bool (*known)(const char *name, void *ctx), void *ctx);

/* spam_reasons_header_from - the address of the first From: field of
 * the message msg (header section, then body; only the header section is
 * read, at most MIME_MAX_HEADER_BYTES): what is inside <...>, else the
 * first word with an '@', else the whole value; folded lines joined,
 * comments and quotes around it dropped, bytes outside printable ASCII
 * replaced by '?', at most SPAM_REASONS_FROM_MAX bytes.  "" when there is
 * no From: field.  Returns malloc'ed text. */
char *spam_reasons_header_from(const char *msg, size_t len);

#endif
