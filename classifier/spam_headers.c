/* spam_headers.c - X-Spam-* header fields and the Verdict for a scored
 * envelope.  The additions go into prepend_headers, never into the body:
 * the client's bytes travel unchanged to delivery. */
#include <string.h>
#include "spam_headers.h"
#include "xalloc.h"

void spam_headers_format_bypass(const scoring_result *r, const char *bypass, buf_t *score_hdr,
                                buf_t *status_hdr)
{
    char *tests = scoring_tests_text(r);
    buf_printf(score_hdr, "X-Spam-Score: %.1f\r\n", r->score);
    buf_printf(status_hdr, "X-Spam-Status: %s, score=%.1f required=%.1f tests=%s%s%s\r\n",
               r->is_spam ? "Yes" : "No", r->score, r->required, tests,
               bypass && bypass[0] ? " bypass=" : "", bypass ? bypass : "");
    xfree(&tests);
}

void spam_headers_format(const scoring_result *r, buf_t *score_hdr, buf_t *status_hdr)
{
    spam_headers_format_bypass(r, NULL, score_hdr, status_hdr);
}

uint8_t *spam_headers_pack(const Envelope *env, const scoring_result *r,
                           const spam_facts *facts, const char *node, size_t *len)
{
    static const char flag[] = "X-Spam-Flag: YES\r\n";
    static const spam_facts inbound = {.reasons = "", .header_from = "", .bypass = "",
                                       .act = true};
    buf_t score_hdr = BUF_INIT, status_hdr = BUF_INIT;

    if (!facts)
        facts = &inbound;
    spam_headers_format_bypass(r, facts->bypass, &score_hdr, &status_hdr);

    /* The prepend list: what earlier stages added, then ours. */
    size_t n = env->n_prepend_headers, k = n;
    ProtobufCBinaryData *hdrs = xcalloc(n + 3, sizeof *hdrs);
    if (n)
        memcpy(hdrs, env->prepend_headers, n * sizeof *hdrs);
    hdrs[k].data = (uint8_t *)score_hdr.data;
    hdrs[k++].len = score_hdr.len;
    hdrs[k].data = (uint8_t *)status_hdr.data;
    hdrs[k++].len = status_hdr.len;
    if (r->is_spam) {
        hdrs[k].data = (uint8_t *)flag;
        hdrs[k++].len = sizeof flag - 1;
    }

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
    verdict.reasons = (char *)(facts->reasons ? facts->reasons : "");
    verdict.header_from = (char *)(facts->header_from ? facts->header_from : "");
    verdict.bypass = (char *)(facts->bypass ? facts->bypass : "");
    verdict.outbound = facts->outbound;
    verdict.act = facts->act;

    Envelope copy = *env;          /* shallow: shares everything else */
    copy.n_prepend_headers = k;
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
