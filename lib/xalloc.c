/* xalloc.c - allocation wrappers that never return NULL.
 *
 * Out of memory is not something a mail stage can recover from in a
 * useful way, so it is a panic (the message says how much was asked for).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

/* out_of_memory - report and abort; never returns. */
static void out_of_memory(const char *fn, size_t size)
{
    log_panic("%s: out of memory allocating %zu bytes", fn, size);
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        out_of_memory("xmalloc", size);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);

    if (p == NULL)
        out_of_memory("xcalloc", count * size);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        out_of_memory("xrealloc", size);
    return p;
}

char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    return xmemdup(s, strnlen(s, n));
}

char *xmemdup(const void *p, size_t len)
{
    char *d = xmalloc(len + 1);

    if (len)
        memcpy(d, p, len);
    d[len] = 0;
    return d;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory("xasprintf", 0);
    return s;
}

void xfree_impl(void **pp)
{
    if (pp) {
        free(*pp);
        *pp = NULL;
    }
}
