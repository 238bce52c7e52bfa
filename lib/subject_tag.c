/* subject_tag.c - where the spam tag goes in a Subject, and the pieces a
 * writer emits to put it there (see subject_tag.h).  Only the header
 * section is looked at, line by line; nothing is copied but the tag. */
#include <string.h>
#include <strings.h>
#include "subject_tag.h"
#include "xalloc.h"

#define ST_NAME "subject"

/* st_line_end - the offset just past the line starting at i. */
static size_t st_line_end(const char *d, size_t len, size_t i)
{
    const char *nl = memchr(d + i, '\n', len - i);
    return nl != NULL ? (size_t)(nl - d) + 1 : len;
}

/* st_is_empty - is d[i, end) an empty line? */
static bool st_is_empty(const char *d, size_t i, size_t end)
{
    return (end - i == 1 && d[i] == '\n') || (end - i == 2 && d[i] == '\r' && d[i + 1] == '\n');
}

/* st_is_subject - does the field line d[i, end) start "Subject:" (white
 * space allowed before the colon)?  *colon is the colon's offset. */
static bool st_is_subject(const char *d, size_t i, size_t end, size_t *colon)
{
    const size_t nl = sizeof ST_NAME - 1;
    size_t k = i + nl;

    if (end - i <= nl || strncasecmp(d + i, ST_NAME, nl) != 0)
        return false;
    while (k < end && (d[k] == ' ' || d[k] == '\t'))
        k++;
    if (k >= end || d[k] != ':')
        return false;
    *colon = k;
    return true;
}

bool subject_tag_find(const void *msg, size_t len, size_t *off, size_t *n)
{
    const char *d = msg;
    size_t i = 0;

    if (d == NULL)
        return false;
    while (i < len) {
        size_t end = st_line_end(d, len, i), colon;
        if (st_is_empty(d, i, end))
            return false;                   /* the body: no Subject in the header */
        if (d[i] != ' ' && d[i] != '\t' && st_is_subject(d, i, end, &colon)) {
            /* the value runs on over continuation lines */
            while (end < len && (d[end] == ' ' || d[end] == '\t'))
                end = st_line_end(d, len, end);
            size_t stop = end;
            if (stop > colon + 1 && d[stop - 1] == '\n')
                stop--;
            if (stop > colon + 1 && d[stop - 1] == '\r')
                stop--;
            *off = colon + 1;
            *n = stop - *off;
            return true;
        }
        i = end;
    }
    return false;
}

/* st_tag_len - tag's length less its trailing white space; 0 when the
 * tag cannot be written (empty, too long, not printable ASCII). */
static size_t st_tag_len(const char *tag)
{
    size_t n = tag ? strlen(tag) : 0, trimmed;

    if (n == 0 || n > SUBJECT_TAG_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tag[i] < 0x20 || tag[i] > 0x7e)
            return 0;
    for (trimmed = n; trimmed > 0 && tag[trimmed - 1] == ' '; trimmed--)
        ;
    return trimmed;
}

bool subject_tag_plan_make(const void *msg, size_t len, const char *tag,
                           subject_tag_plan *p)
{
    const char *d = msg;
    size_t tlen = st_tag_len(tag), off, n;

    *p = (subject_tag_plan){0};
    if (tlen == 0)
        return false;
    if (!subject_tag_find(msg, len, &off, &n)) {
        p->text = xasprintf("Subject: %.*s\r\n", (int)tlen, tag);
        p->len = strlen(p->text);
        p->at = 0;
        return true;
    }
    /* skip white space and folding line breaks after the colon */
    size_t v = off, end = off + n;
    while (v < end && (d[v] == ' ' || d[v] == '\t' || d[v] == '\r' || d[v] == '\n'))
        v++;
    if (end - v >= tlen && memcmp(d + v, tag, tlen) == 0)
        return false;                       /* tagged already */
    bool space = v > off;                   /* white space after the colon */
    bool empty = v == end;
    /* the tag, then one space before the old Subject (a configured tag
     * loses its trailing space in correio.conf) */
    p->text = xasprintf("%s%.*s%s", space ? "" : " ", (int)tlen, tag, empty ? "" : " ");
    p->len = strlen(p->text);
    p->at = v;
    return true;
}

void subject_tag_plan_free(subject_tag_plan *p)
{
    xfree(&p->text);
    p->len = 0;
}

size_t subject_tag_pieces(const void *msg, const header_range *keep, size_t n_keep,
                          const subject_tag_plan *p, struct iovec **out)
{
    const char *d = msg;
    bool insert = p != NULL && p->text != NULL && p->len > 0;
    struct iovec *v = xcalloc(n_keep + 3, sizeof *v);
    size_t n = 0;

    if (insert && p->at == 0) {
        v[n++] = (struct iovec){p->text, p->len};
        insert = false;
    }
    for (size_t i = 0; i < n_keep; i++) {
        const header_range *k = &keep[i];
        if (insert && p->at >= k->offset && p->at <= k->offset + k->len) {
            size_t head = p->at - k->offset;
            if (head > 0)
                v[n++] = (struct iovec){(void *)(d + k->offset), head};
            v[n++] = (struct iovec){p->text, p->len};
            if (k->len > head)
                v[n++] = (struct iovec){(void *)(d + p->at), k->len - head};
            insert = false;
            continue;
        }
        if (k->len > 0)
            v[n++] = (struct iovec){(void *)(d + k->offset), k->len};
    }
    if (n == 0)
        xfree(&v);
    *out = v;
    return n;
}
