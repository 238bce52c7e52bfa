/* spam_headers.h - turning a scoring result into what travels on: the
 * X-Spam-Flag / X-Spam-Score / X-Spam-Status header fields
 * (SpamAssassin's format) and the envelope's Verdict with the facts the
 * router needs for its spam actions and its anti-spam log line. */
#ifndef CORREIO_CLASSIFIER_SPAM_HEADERS_H
#define CORREIO_CLASSIFIER_SPAM_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "scoring.h"
#include "wire.h"

/* What the classifier knows about a message besides its hits (the
 * Verdict's fields of the same names); the strings are borrowed. */
typedef struct spam_facts {
    const char *reasons;      /* spam_reasons_format(), "" if none */
    const char *header_from;  /* spam_reasons_header_from(), "" if none */
    const char *bypass;       /* "size", "outbound": not scanned; "" scanned */
    bool        outbound;     /* from our own users */
    bool        act;          /* the router applies spam actions */
} spam_facts;

/* spam_headers_format - append "X-Spam-Score: 1000.0\r\n" to score_hdr and
 * "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE\r\n" to
 * status_hdr; bypass non-empty (not scanned) adds " bypass=size" before
 * the CRLF. */
void spam_headers_format(const scoring_result *r, buf_t *score_hdr, buf_t *status_hdr);
void spam_headers_format_bypass(const scoring_result *r, const char *bypass, buf_t *score_hdr,
                                buf_t *status_hdr);

/* spam_headers_pack - encode env with X-Spam-Score and X-Spam-Status
 * appended to its prepend_headers, then "X-Spam-Flag: YES" when r is
 * spam, and the verdict (classifier = node) filled in from r and facts
 * (NULL: scanned inbound mail the router acts on, no reasons).  env
 * itself is not changed (the additions live in a shallow copy); the
 * client's body bytes are passed through untouched.  Returns fresh
 * memory (free it), *len its size. */
uint8_t *spam_headers_pack(const Envelope *env, const scoring_result *r,
                           const spam_facts *facts, const char *node, size_t *len);

#endif
