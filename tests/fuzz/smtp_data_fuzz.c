/* smtp_data_fuzz.c - libFuzzer target for the DATA stream parser
 * (ingress/smtp_data.c).
 *
 *   clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address -Ilib -Ibuild/gen \
 *       tests/fuzz/smtp_data_fuzz.c ingress/smtp_data.c lib/buf.c lib/xalloc.c \
 *       lib/log.c -o build/smtp_data_fuzz
 *
 * The first input byte picks a split point; the rest is fed in two pieces
 * and then byte by byte.  Besides "no crash" it checks what the parser
 * promises: the same outcome however the input is split, the end of data
 * only right after CRLF "." CRLF, an accepted body that ends in CRLF (or
 * is empty), has no bare CR or LF, fits the limit and has no line over
 * 998 octets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingress/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 4096

/* feed_split - the whole input in two pieces; returns consumed. */
static size_t feed_split(smtp_data_t *d, buf_t *body, const char *p, size_t n, size_t at)
{
    size_t off = 0;

    smtp_data_init(d, LIMIT);
    if (at > n)
        at = n;
    off = smtp_data_feed(d, p, at, body);
    if (!d->done && off < n)
        off += smtp_data_feed(d, p + off, n - off, body);
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    smtp_data_t a, b;
    buf_t ba = BUF_INIT, bb = BUF_INIT;
    size_t ca, cb = 0, at;
    char *p;

    if (size < 1)
        return 0;
    at = data[0];
    p = malloc(size - 1 ? size - 1 : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, size - 1);
    size--;

    ca = feed_split(&a, &ba, p, size, at);
    smtp_data_init(&b, LIMIT);
    while (!b.done && cb < size)
        cb += smtp_data_feed(&b, p + cb, 1, &bb);

    if (ca != cb || a.done != b.done || a.refused != b.refused || a.size != b.size)
        abort();
    if (a.done) {
        /* the end is CRLF "." CRLF, or "." CRLF at the very start */
        if (ca < 3 || memcmp(p + ca - 3, ".\r\n", 3) != 0)
            abort();
        if (ca > 3 && (ca < 5 || memcmp(p + ca - 5, "\r\n", 2) != 0))
            abort();
    }
    if (a.done && a.refused == 0) {
        size_t line = 0;
        if (ba.len != bb.len || (ba.len && memcmp(ba.data, bb.data, ba.len) != 0))
            abort();
        if (ba.len > LIMIT)
            abort();
        if (ba.len && (ba.len < 2 || memcmp(ba.data + ba.len - 2, "\r\n", 2) != 0))
            abort();
        for (size_t i = 0; i < ba.len; i++) {
            char c = ba.data[i];
            if (c == '\n' && (i == 0 || ba.data[i - 1] != '\r'))
                abort();
            if (c == '\r' && (i + 1 == ba.len || ba.data[i + 1] != '\n'))
                abort();
            line = c == '\n' ? 0 : line + 1;
            if (line > 999)     /* 998 + a dot that was unstuffed, + CR */
                abort();
        }
    }
    buf_free(&ba);
    buf_free(&bb);
    free(p);
    return 0;
}
