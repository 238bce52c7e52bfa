/* spam_headers.c - X-Spam-* header fields and the Verdict for a scored
 * envelope.  The additions go into prepend_headers, never into the body:
 * the client's bytes travel unchanged to delivery. */
#include <string.h>
#include "spam_headers.h"
#include "xalloc.h"

void spam_headers_format(const scoring_result *r, buf_t *score_hdr, buf_t *status_hdr)
{
    char *tests = scoring_tests_text(r);
    buf_printf(score_hdr, "X-Spam-Score: %.1f\r\n", r->score);
    buf_printf(status_hdr, "X-Spam-Status: %s, score=%.1f required=%.1f tests=%s\r\n",
               r->is_spam ? "Yes" : "No", r->score, r->required, tests);
    xfree(&tests);
}

uint8_t *spam_headers_pack(const Envelope *env, const scoring_result *r,
                           const char *node, size_t *len)
{
    buf_t score_hdr = BUF_INIT, status_hdr = BUF_INIT;
    spam_headers_format(r, &score_hdr, &status_hdr);

    /* The prepend list: what earlier stages added, then ours. */
    size_t n = env->n_prepend_headers;
    ProtobufCBinaryData *hdrs = xcalloc(n + 2, sizeof *hdrs);
    if (n)
        memcpy(hdrs, env->prepend_headers, n * sizeof *hdrs);
    hdrs[n].data = (uint8_t *)score_hdr.data;
    hdrs[n].len = score_hdr.len;
    hdrs[n + 1].data = (uint8_t *)status_hdr.data;
    hdrs[n + 1].len = status_hdr.len;

    Verdict verdict = CORREIO__VERDICT__INIT;
    char **hits = xcalloc(r->n_hits + 1, sizeof *hits);
    for (size_t i = 0; i < r->n_hits; i++)
        hits[i] = xasprintf("%s=%.1f", r->hits[i].name, r->hits[i].score);
    verdict.score = r->score;
    verdict.required = r->required;
    verdict.is_spam = r->is_spam;
    verdict.n_hits = r->n_hits;
    verdict.hits = hits;
    verdict.classifier = (char *)node;

    Envelope copy = *env;          /* shallow: shares everything else */
    copy.n_prepend_headers = n + 2;
    copy.prepend_headers = hdrs;
    copy.verdict = &verdict;
    uint8_t *out = wire_pack_envelope(&copy, len);

    for (size_t i = 0; i < r->n_hits; i++)
        xfree(&hits[i]);
    xfree(&hits);
    xfree(&hdrs);
    buf_free(&score_hdr);
    buf_free(&status_hdr);
    return out;
}
