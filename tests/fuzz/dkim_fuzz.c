/* dkim_fuzz.c - libFuzzer target for the DKIM check of the classifier
 * (classifier/dkim.c over libopendkim): any message, with DKIM-Signature
 * fields or not, and any key record answer.
 *
 *   make build-fuzz/dkim_fuzz && build-fuzz/dkim_fuzz -max_total_time=30 \
 *       build-fuzz/dkim_fuzz.corpus tests/fuzz/seeds/dkim
 *
 * Input: the first byte picks how the keys are answered (found, none,
 * lookup failed, never), the first line after it is the key record, the
 * rest the message.  Besides "no crash, no leak", it checks what dkim.h
 * promises: at most DKIM_CHECK_MAX_SIGS signatures and keys, every
 * string there, key names no longer than a DNS name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../classifier/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 4;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    const char *nl = memchr(rest, '\n', len);
    size_t klen = nl ? (size_t)(nl - rest) : 0;
    char *key = malloc(klen + 1);
    char *msg = malloc(len - klen + 1);     /* a private copy: ASan sees overreads */

    if (!key || !msg)
        abort();
    memcpy(key, rest, klen);
    key[klen] = 0;
    size_t mlen = nl ? len - klen - 1 : len;
    memcpy(msg, nl ? nl + 1 : rest, mlen);

    dkim_check_t *c = dkim_check_new("FUZZ", msg, mlen);
    if (dkim_check_keys(c) > DKIM_CHECK_MAX_SIGS)
        abort();
    for (size_t i = 0; i < dkim_check_keys(c) && mode < 3; i++) {
        if (strlen(dkim_check_key_name(c, i)) > 253)
            abort();
        dkim_check_key_answer(c, i, (dkim_check_key)mode, key);
    }
    dkim_check_finish(c);
    if (dkim_check_sigs(c) > DKIM_CHECK_MAX_SIGS)
        abort();
    for (size_t i = 0; i < dkim_check_sigs(c); i++) {
        const dkim_check_sig *g = dkim_check_get(c, i);
        if (!g->domain || !g->selector || !g->b || !g->reason || strlen(g->b) > 8)
            abort();
        dkim_check_aligned(g->domain, "example.com");
    }
    dkim_check_free(&c);
    free(key);
    free(msg);
    return 0;
}
