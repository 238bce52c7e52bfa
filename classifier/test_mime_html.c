/* test_mime_html.c - MIME structure tests on HTML: MIME_HTML_ONLY (an HTML
 * part and no text/plain part: what bulk mailers send, rarely people) and
 * MIME_HTML_MISMATCH (IceWarp's "P": a multipart/alternative whose text
 * and HTML versions do not say the same thing, e.g. innocent text for the
 * filter and the real offer in the HTML). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "scoring.h"
#include "xalloc.h"

/* Below this word-set similarity the alternatives differ. */
#define MISMATCH_SIMILARITY 0.5
/* Fewer distinct words than this on both sides: too little to judge. */
#define MISMATCH_MIN_WORDS  5
/* Words taken from one text at most (the rest are ignored). */
#define MISMATCH_MAX_WORDS  20000
/* Words shorter than this (bytes) are noise ("a", "to", "of"). */
#define MISMATCH_MIN_LEN    3

bool test_mime_html_only(const scoring_msg *msg, void *ctx)
{
    (void)ctx;
    return msg->mime->has_html && !msg->mime->has_text;
}

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int word_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* mime_words - the distinct normalised words of t as sorted hashes:
 * ASCII lower-cased, URLs and numbers dropped, short words dropped. */
static uint64_t *mime_words(const char *t, size_t n, size_t *count)
{
    uint64_t *w = NULL;
    size_t nw = 0, cap = 0;
    size_t i = 0;

    while (i < n && nw < MISMATCH_MAX_WORDS) {
        if (!word_byte((unsigned char)t[i])) {
            i++;
            continue;
        }
        size_t s = i;
        if ((n - i >= 7 && strncasecmp(t + i, "http://", 7) == 0)
            || (n - i >= 8 && strncasecmp(t + i, "https://", 8) == 0)
            || (n - i >= 4 && strncasecmp(t + i, "www.", 4) == 0)
            || (n - i >= 7 && strncasecmp(t + i, "mailto:", 7) == 0)) {
            while (i < n && t[i] != ' ' && t[i] != '\n' && t[i] != '\t')
                i++;
            continue;
        }
        uint64_t h = 1469598103934665603ull;
        bool digits_only = true;
        for (; i < n && word_byte((unsigned char)t[i]); i++) {
            unsigned char c = (unsigned char)t[i];
            if (c >= 'A' && c <= 'Z')
                c |= 0x20;
            if (c < '0' || c > '9')
                digits_only = false;
            h = (h ^ c) * 1099511628211ull;
        }
        if (i - s < MISMATCH_MIN_LEN || digits_only)
            continue;
        if (nw == cap) {
            cap = cap ? cap * 2 : 64;
            w = xrealloc(w, cap * sizeof *w);
        }
        w[nw++] = h;
    }
    if (nw)
        qsort(w, nw, sizeof *w, word_cmp);
    size_t u = 0;
    for (size_t k = 0; k < nw; k++)
        if (u == 0 || w[u - 1] != w[k])
            w[u++] = w[k];
    *count = u;
    return w;
}

double test_mime_similarity(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t na, nb, inter = 0;
    uint64_t *wa = mime_words(a, alen, &na);
    uint64_t *wb = mime_words(b, blen, &nb);

    for (size_t i = 0, j = 0; i < na && j < nb;) {
        if (wa[i] == wb[j]) {
            inter++;
            i++;
            j++;
        } else if (wa[i] < wb[j]) {
            i++;
        } else {
            j++;
        }
    }
    xfree(&wa);
    xfree(&wb);
    if (na + nb - inter == 0)
        return 1.0;
    if (na < MISMATCH_MIN_WORDS && nb < MISMATCH_MIN_WORDS)
        return 1.0;
    return (double)inter / (double)(na + nb - inter);
}

static bool body_part(const mime_part *p, const char *type)
{
    return !p->attachment && strcmp(p->type, type) == 0;
}

/* test_mime_html_mismatch - the first text/plain of each alternative
 * against the first text/html of the same alternative. */
bool test_mime_html_mismatch(const scoring_msg *msg, void *ctx)
{
    const mime_msg *m = msg->mime;
    (void)ctx;

    for (size_t i = 0; i < m->n_parts; i++) {
        const mime_part *t = &m->parts[i];
        if (t->alt_id == 0 || !body_part(t, "text/plain"))
            continue;
        bool seen = false;
        const mime_part *h = NULL;
        for (size_t j = 0; j < m->n_parts && !seen; j++) {
            const mime_part *p = &m->parts[j];
            if (p->alt_id != t->alt_id || j == i)
                continue;
            if (j < i && body_part(p, "text/plain"))
                seen = true;            /* this alternative was compared */
            else if (h == NULL && body_part(p, "text/html"))
                h = p;
        }
        if (seen || h == NULL)
            continue;
        if (test_mime_similarity(t->text, t->text_len, h->text, h->text_len) < MISMATCH_SIMILARITY)
            return true;
    }
    return false;
}
