/* buf.h - growable byte string with explicit length.
 *
 * Anything that came off the wire lives in a buf_t: it may hold NUL bytes
 * and is never assumed to be a C string.  As a convenience the storage
 * always has one NUL byte after `len` (so data can be printed when it is
 * known to be text), but `len` is the truth.  The struct is open: readers
 * use data/len directly; writers go through the functions.
 */
#ifndef CORREIO_BUF_H
#define CORREIO_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char  *data;   /* NULL until the first append; then len + 1 <= cap */
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT { NULL, 0, 0 }

void buf_init(buf_t *b);
/* buf_reserve - make room for extra more bytes after len. */
void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *p, size_t n);
void buf_append_str(buf_t *b, const char *s);
void buf_append_char(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* buf_consume - drop the first n bytes (n <= len), keeping the rest. */
void buf_consume(buf_t *b, size_t n);
/* buf_reset - length 0, storage kept. */
void buf_reset(buf_t *b);
/* buf_free - release the storage; the buf is empty and reusable after. */
void buf_free(buf_t *b);
/* buf_steal - hand the storage to the caller (NUL-terminated, may be NULL
 * when empty) and leave the buf empty. */
char *buf_steal(buf_t *b, size_t *len);

#endif
