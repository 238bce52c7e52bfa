/* spam_headers.h - turning a scoring result into what travels on: the
 * X-Spam-Score / X-Spam-Status header fields (SpamAssassin's format) and
 * the envelope's Verdict. */
#ifndef CORREIO_CLASSIFIER_SPAM_HEADERS_H
#define CORREIO_CLASSIFIER_SPAM_HEADERS_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "scoring.h"
#include "wire.h"

/* spam_headers_format - append "X-Spam-Score: 1000.0\r\n" to score_hdr and
 * "X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE\r\n" to
 * status_hdr. */
void spam_headers_format(const scoring_result *r, buf_t *score_hdr, buf_t *status_hdr);

/* spam_headers_pack - encode env with the two header fields appended to
 * its prepend_headers and the verdict (classifier = node) filled in.  env
 * itself is not changed (the additions live in a shallow copy); the
 * client's body bytes are passed through untouched.  Returns fresh memory
 * (free it), *len its size. */
uint8_t *spam_headers_pack(const Envelope *env, const scoring_result *r,
                           const char *node, size_t *len);

#endif
