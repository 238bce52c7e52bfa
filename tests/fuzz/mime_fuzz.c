/* mime_fuzz.c - libFuzzer target for mime_parse() and the HTML reader
 * (lib/mime.c, lib/html.c).
 *
 *   make build-fuzz/mime_fuzz && build-fuzz/mime_fuzz -max_total_time=30 \
 *       build-fuzz/mime_fuzz.corpus tests/fuzz/seeds/mime
 *
 * Besides "no crash, no leak", it checks what mime.h promises: the
 * bounds hold, every string is there and NUL-terminated at its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so reads past size are caught by ASan */
    char *copy = malloc(size ? size : 1);
    mime_msg m;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    mime_parse(copy, size, &m);
    if (m.n_parts > MIME_MAX_PARTS || m.n_headers > MIME_MAX_HEADERS
        || m.n_uris > MIME_MAX_URIS || m.depth > MIME_MAX_DEPTH)
        abort();
    size_t decoded = 0;
    for (size_t i = 0; i < m.n_parts; i++) {
        const mime_part *p = &m.parts[i];
        if (p->type == NULL || p->raw == NULL || p->raw[p->raw_len] != '\0')
            abort();
        if (p->text && (p->text[p->text_len] != '\0' || strlen(p->text) != p->text_len))
            abort();
        decoded += p->raw_len;
    }
    if (decoded > MIME_MAX_DECODED)
        abort();
    for (size_t i = 0; i < m.n_headers; i++)
        if (!m.headers[i].name || !m.headers[i].value || !m.headers[i].decoded)
            abort();
    for (size_t i = 0; i < m.n_uris; i++)
        if (!m.uris[i].url || !m.uris[i].host)
            abort();
    mime_free(&m);
    free(copy);
    return 0;
}
