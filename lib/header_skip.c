/* header_skip.c - the ranges of a message left once some header fields
 * are dropped (see header_skip.h).  Only the header section is looked
 * at; the body after the empty line is one range however long it is. */
#include <string.h>
#include <strings.h>
#include "header_skip.h"
#include "xalloc.h"

/* hs_line_end - the offset just past the line starting at i (after its
 * LF, or len for a last line without one). */
static size_t hs_line_end(const char *d, size_t len, size_t i)
{
    const char *nl = memchr(d + i, '\n', len - i);
    return nl != NULL ? (size_t)(nl - d) + 1 : len;
}

/* hs_is_empty - is d[i, end) an empty line ("\r\n" or "\n")? */
static int hs_is_empty(const char *d, size_t i, size_t end)
{
    return (end - i == 1 && d[i] == '\n') || (end - i == 2 && d[i] == '\r' && d[i + 1] == '\n');
}

/* hs_dropped - does the field line d[i, end) have one of the names?  The
 * name is what precedes the colon, less white space before the colon
 * (RFC 5322's obsolete "Subject :"). */
static int hs_dropped(const char *d, size_t i, size_t end, const char *const *drop, size_t n_drop)
{
    const char *colon = memchr(d + i, ':', end - i);
    size_t n;

    if (colon == NULL)
        return 0;
    n = (size_t)(colon - (d + i));
    while (n > 0 && (d[i + n - 1] == ' ' || d[i + n - 1] == '\t'))
        n--;
    if (n == 0)
        return 0;
    for (size_t k = 0; k < n_drop; k++)
        if (drop[k] != NULL && strlen(drop[k]) == n && strncasecmp(drop[k], d + i, n) == 0)
            return 1;
    return 0;
}

/* hs_keep - add d[off, off + n) to the list, joined to the last range
 * when adjacent. */
static void hs_keep(header_range **r, size_t *count, size_t *cap, size_t off, size_t n)
{
    if (n == 0)
        return;
    if (*count > 0 && (*r)[*count - 1].offset + (*r)[*count - 1].len == off) {
        (*r)[*count - 1].len += n;
        return;
    }
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *r = xrealloc(*r, *cap * sizeof **r);
    }
    (*r)[(*count)++] = (header_range){off, n};
}

size_t header_skip_ranges(const void *data, size_t len,
                          const char *const *drop, size_t n_drop,
                          header_range **ranges)
{
    const char *d = data;
    header_range *r = NULL;
    size_t count = 0, cap = 0, i = 0;
    int dropping = 0;           /* the field under way is left out */

    if (n_drop == 0) {
        hs_keep(&r, &count, &cap, 0, len);
        *ranges = r;
        return count;
    }
    while (i < len) {
        size_t end = hs_line_end(d, len, i);
        if (hs_is_empty(d, i, end))
            break;                          /* the empty line: the rest is kept */
        if (d[i] != ' ' && d[i] != '\t')    /* a new field (or a stray line) */
            dropping = hs_dropped(d, i, end, drop, n_drop);
        if (!dropping)
            hs_keep(&r, &count, &cap, i, end - i);
        i = end;
    }
    hs_keep(&r, &count, &cap, i, len - i);
    *ranges = r;
    return count;
}

size_t header_skip_size(const header_range *ranges, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ranges[i].len;
    return total;
}
