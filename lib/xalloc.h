/* xalloc.h - allocation that never returns NULL.
 *
 * Every allocation in correio goes through these wrappers: out of memory
 * logs and aborts (there is no sane way for a mail stage to go on), so
 * callers never test for NULL.  xfree() takes the address of the pointer
 * and leaves it NULL, so a freed pointer cannot be used again by mistake.
 */
#ifndef CORREIO_XALLOC_H
#define CORREIO_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xmemdup - a copy of len bytes with a NUL after them (len + 1 allocated). */
char *xmemdup(const void *p, size_t len);
/* xasprintf - formatted string in fresh memory; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* xfree_impl - free *pp and set it to NULL; use the xfree() macro. */
void xfree_impl(void **pp);
#define xfree(pp) xfree_impl((void **)(pp))

#endif
