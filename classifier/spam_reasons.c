/* spam_reasons.c - the verdict's reasons text and header From (see
 * spam_reasons.h). */
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "mime.h"
#include "spam_reasons.h"
#include "xalloc.h"

#define SPAM_REASONS_VALUE_MAX 4096  /* From: value bytes looked at */

/* The groups in the order they are written. */
static const char *const spam_reasons_groups[] = {
    "Rules", "DNSBL", "URIBL", "SPF", "DKIM", "Bayes", "Lists", "Other",
};
#define SPAM_REASONS_NGROUPS (sizeof spam_reasons_groups / sizeof spam_reasons_groups[0])

/* Name prefixes that say where a hit comes from. */
static const struct {
    const char *prefix;
    const char *group;
} spam_reasons_prefixes[] = {
    {"RBL_", "DNSBL"}, {"URIBL_", "URIBL"}, {"SPF_", "SPF"},
    {"DKIM_", "DKIM"}, {"BAYES_", "Bayes"},
};

/* IceWarp's content letters. */
static const struct {
    const char *name;
    char        letter;
} spam_reasons_letters[] = {
    {"MIME_HTML_ONLY", 'H'},     {"MIME_HTML_MISMATCH", 'P'}, {"HTML_EXTERNAL_IMAGE", 'E'},
    {"HTML_EMBEDDED_IMAGE", 'I'}, {"CHARSET_FORBIDDEN", 'C'}, {"NONASCII_NO_CHARSET", 'N'},
    {"MIME_BAD_STRUCTURE", 'M'}, {"MIME_TRUNCATED", 'T'},
};

/* spam_reasons_ends - does name end with suffix (any case)? */
static bool spam_reasons_ends(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcasecmp(name + n - s, suffix) == 0;
}

const char *spam_reasons_group(const char *name, bool (*known)(const char *name, void *ctx),
                               void *ctx)
{
    for (size_t i = 0; i < sizeof spam_reasons_prefixes / sizeof spam_reasons_prefixes[0]; i++)
        if (strncasecmp(name, spam_reasons_prefixes[i].prefix,
                        strlen(spam_reasons_prefixes[i].prefix)) == 0)
            return spam_reasons_prefixes[i].group;
    if (spam_reasons_ends(name, "_WHITELIST") || spam_reasons_ends(name, "_BLACKLIST")
        || strcasecmp(name, "KEYWORDS") == 0)
        return "Lists";
    return known && known(name, ctx) ? "Other" : "Rules";
}

char *spam_reasons_format(const scoring_hit *hits, size_t n_hits,
                          bool (*known)(const char *name, void *ctx), void *ctx)
{
    double sum[SPAM_REASONS_NGROUPS] = {0};
    bool hit[SPAM_REASONS_NGROUPS] = {0};
    char letters[sizeof spam_reasons_letters / sizeof spam_reasons_letters[0] + 1] = "";
    size_t n_letters = 0;
    buf_t b = BUF_INIT;

    for (size_t i = 0; i < n_hits; i++) {
        const char *g = spam_reasons_group(hits[i].name, known, ctx);
        for (size_t k = 0; k < SPAM_REASONS_NGROUPS; k++)
            if (strcmp(g, spam_reasons_groups[k]) == 0) {
                sum[k] += hits[i].score;
                hit[k] = true;
            }
    }
    /* the letters in the table's order, each once */
    for (size_t l = 0; l < sizeof spam_reasons_letters / sizeof spam_reasons_letters[0]; l++)
        for (size_t i = 0; i < n_hits; i++)
            if (strcasecmp(hits[i].name, spam_reasons_letters[l].name) == 0) {
                letters[n_letters++] = spam_reasons_letters[l].letter;
                break;
            }
    letters[n_letters] = '\0';

    buf_append_char(&b, '[');
    bool first = true;
    for (size_t k = 0; k < SPAM_REASONS_NGROUPS; k++) {
        if (!hit[k])
            continue;
        /* -0.00 reads oddly: a sum that rounds to zero is written 0.00 */
        double v = sum[k] > -0.005 && sum[k] < 0.005 ? 0.0 : sum[k];
        buf_printf(&b, "%s%s=%.2f", first ? "" : ",", spam_reasons_groups[k], v);
        first = false;
    }
    if (n_letters)
        buf_printf(&b, ":Body=%s", letters);
    buf_append_char(&b, ']');
    return buf_steal(&b, NULL);
}

/* spam_reasons_from_value - the unfolded value of the first From: field
 * of the header section of msg, or NULL. */
static char *spam_reasons_from_value(const char *msg, size_t len)
{
    size_t end = len < MIME_MAX_HEADER_BYTES ? len : MIME_MAX_HEADER_BYTES;
    size_t pos = 0;
    buf_t v = BUF_INIT;
    bool in_from = false, found = false;

    while (pos < end) {
        const char *nl = memchr(msg + pos, '\n', end - pos);
        size_t eol = nl ? (size_t)(nl - msg) : end;
        size_t n = eol - pos;
        const char *line = msg + pos;

        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0)
            break;                              /* the blank line: end of the header */
        if (line[0] == ' ' || line[0] == '\t') {
            if (in_from && v.len + n <= SPAM_REASONS_VALUE_MAX)
                buf_append(&v, line, n);
        } else {
            if (found)
                break;                          /* the first From: is complete */
            const char *colon = memchr(line, ':', n);
            if (!colon)
                break;                          /* not a header field: no header section */
            size_t name_len = (size_t)(colon - line);
            while (name_len && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
                name_len--;
            if (name_len == 4 && strncasecmp(line, "From", 4) == 0) {
                size_t vn = n - (size_t)(colon + 1 - line);
                buf_append(&v, colon + 1, vn < SPAM_REASONS_VALUE_MAX ? vn : SPAM_REASONS_VALUE_MAX);
                in_from = found = true;
            }
        }
        pos = eol + 1;
    }
    if (!found) {
        buf_free(&v);
        return NULL;
    }
    char *s = buf_steal(&v, NULL);
    return s ? s : xstrdup("");
}

/* spam_reasons_trim - s without the white space, quotes, parentheses
 * and commas around it (in place). */
static char *spam_reasons_trim(char *s)
{
    static const char junk[] = " \t\"'(),;";
    size_t n;

    while (*s && strchr(junk, *s))
        s++;
    n = strlen(s);
    while (n && strchr(junk, s[n - 1]))
        s[--n] = '\0';
    return s;
}

char *spam_reasons_header_from(const char *msg, size_t len)
{
    char *value = msg ? spam_reasons_from_value(msg, len) : NULL;
    const char *addr = NULL;
    size_t n;

    if (!value)
        return xstrdup("");
    char *lt = strrchr(value, '<');
    if (lt) {
        char *gt = strchr(lt + 1, '>');
        if (gt)
            *gt = '\0';
        addr = spam_reasons_trim(lt + 1);
    } else if (strchr(value, '@')) {
        /* a bare address, maybe with a comment: the first word with '@' */
        for (char *save = NULL, *w = strtok_r(value, " \t,", &save); w;
             w = strtok_r(NULL, " \t,", &save))
            if (strchr(w, '@')) {
                addr = spam_reasons_trim(w);
                break;
            }
    }
    if (!addr)
        addr = spam_reasons_trim(value);
    n = strlen(addr);
    if (n > SPAM_REASONS_FROM_MAX)
        n = SPAM_REASONS_FROM_MAX;
    char *out = xmemdup(addr, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e)
            out[i] = '?';
    xfree(&value);
    return out;
}
