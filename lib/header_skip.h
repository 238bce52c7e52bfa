/* header_skip.h - which bytes of a message to write when some fields of
 * its header section are to be left out (a content filter's "edit
 * header": Envelope.drop_headers).  The message itself is never copied
 * or changed: writers (Maildir delivery, the SMTP/LMTP client) write the
 * ranges this returns, one after another, instead of the whole. */
#ifndef CORREIO_HEADER_SKIP_H
#define CORREIO_HEADER_SKIP_H

#include <stddef.h>

/* One run of bytes to keep: data[offset, offset + len). */
typedef struct header_range {
    size_t offset;
    size_t len;
} header_range;

/* header_skip_ranges - the ranges of data[0, len) to write: the header
 * section (up to the first empty line) without every field whose name is
 * one of the n_drop names (case-insensitive; a field is its first line
 * and the continuation lines that start with SP or TAB), then the empty
 * line and everything after it.  Every range starts and ends at a line
 * boundary (after LF, or at 0 or len), so a CRLF is never split and each
 * range starts at a line start; adjacent kept bytes are one range.
 * Returns how many ranges (0 when nothing is left: len 0, or a message
 * of only dropped fields) and sets *ranges to a malloc'ed array the
 * caller frees (NULL when 0).  With n_drop 0 there is one range, the
 * whole. */
size_t header_skip_ranges(const void *data, size_t len,
                          const char *const *drop, size_t n_drop,
                          header_range **ranges);

/* header_skip_size - the sum of the ranges' lengths. */
size_t header_skip_size(const header_range *ranges, size_t n);

#endif
