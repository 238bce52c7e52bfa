/* test_charset.c - charset tests: CHARSET_FORBIDDEN (a text part, or an
 * RFC 2047 encoded word of Subject or From, in a charset the operator
 * lists in spam_forbidden_charsets: the seed's "gb2312 big5 koi8-r
 * windows-1251" for a site that gets no Chinese or Cyrillic mail) and
 * NONASCII_NO_CHARSET (8-bit bytes where no charset says how to read
 * them: a text part without charset=, raw 8-bit in Subject or From). */
#include <string.h>
#include <strings.h>
#include "scoring.h"
#include "xalloc.h"

/* The forbidden charsets, lower-cased, NULL-terminated. */
typedef struct charset_list {
    char **names;
} charset_list;

/* The header fields whose encoded words and raw bytes we look at. */
static const char *const charset_fields[] = {"Subject", "From", NULL};

void *test_charset_forbidden_new(const config_t *cfg)
{
    const char *const *items = config_list(cfg, "spam_forbidden_charsets");
    charset_list *l = xcalloc(1, sizeof *l);
    size_t n = 0;

    while (items && items[n])
        n++;
    l->names = xcalloc(n + 1, sizeof *l->names);
    for (size_t i = 0; i < n; i++) {
        l->names[i] = xstrdup(items[i]);
        for (char *c = l->names[i]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c |= 0x20;
    }
    return l;
}

void test_charset_forbidden_free(void *ctx)
{
    charset_list *l = ctx;

    for (size_t i = 0; l->names[i]; i++)
        xfree(&l->names[i]);
    xfree(&l->names);
    xfree(&l);
}

/* charset_listed - is cs[0..n) (any case) in the list? */
static bool charset_listed(const charset_list *l, const char *cs, size_t n)
{
    for (size_t i = 0; l->names[i]; i++)
        if (strlen(l->names[i]) == n && strncasecmp(l->names[i], cs, n) == 0)
            return true;
    return false;
}

/* charset_in_words - does value hold an encoded word "=?cs?" (cs may
 * carry an RFC 2231 "*lang") with a listed charset? */
static bool charset_in_words(const charset_list *l, const char *v)
{
    for (const char *p = strstr(v, "=?"); p; p = strstr(p + 2, "=?")) {
        const char *cs = p + 2;
        size_t n = strcspn(cs, "?* \t");
        if (cs[n] != '\0' && n && charset_listed(l, cs, n))
            return true;
    }
    return false;
}

bool test_charset_forbidden(const scoring_msg *msg, void *ctx)
{
    const charset_list *l = ctx;
    const mime_msg *m = msg->mime;

    if (l == NULL || l->names[0] == NULL)
        return false;
    for (size_t i = 0; i < m->n_parts; i++) {
        const mime_part *p = &m->parts[i];
        if (p->charset && strncmp(p->type, "text/", 5) == 0
            && charset_listed(l, p->charset, strlen(p->charset)))
            return true;
    }
    for (size_t f = 0; charset_fields[f]; f++) {
        const mime_header *h;
        for (size_t k = 0; (h = mime_header_get(m, charset_fields[f], k)) != NULL; k++)
            if (charset_in_words(l, h->value))
                return true;
    }
    return false;
}

bool test_nonascii_no_charset(const scoring_msg *msg, void *ctx)
{
    const mime_msg *m = msg->mime;
    (void)ctx;

    for (size_t i = 0; i < m->n_parts; i++)
        if (m->parts[i].eight_bit_no_charset)
            return true;
    for (size_t f = 0; charset_fields[f]; f++) {
        const mime_header *h;
        for (size_t k = 0; (h = mime_header_get(m, charset_fields[f], k)) != NULL; k++)
            for (const unsigned char *c = (const unsigned char *)h->value; *c; c++)
                if (*c >= 0x80)
                    return true;
    }
    return false;
}
