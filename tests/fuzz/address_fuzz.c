/* address_fuzz.c - libFuzzer target for smtp_path_parse().
 *
 *   clang -g -fsanitize=fuzzer,address -Ilib -Ibuild/gen tests/fuzz/address_fuzz.c \
 *       lib/address.c lib/xalloc.c lib/log.c -o build/address_fuzz
 *
 * Besides "no crash", it checks what the parser promises: consumed ends on
 * '>', the fields fit their limits, and address is local@domain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    smtp_path p;
    size_t consumed = 0;
    /* a private copy, so reads past size are caught by ASan */
    char *copy = malloc(size ? size : 1);

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    for (int allow_null = 0; allow_null < 2; allow_null++) {
        if (smtp_path_parse(copy, size, allow_null, &p, &consumed) != PATH_OK)
            continue;
        if (consumed < 2 || consumed > size || copy[consumed - 1] != '>' || consumed > ADDR_PATH_MAX)
            abort();
        if (p.null) {
            if (!allow_null || consumed != 2 || p.address[0])
                abort();
            continue;
        }
        if (strlen(p.local) > ADDR_LOCAL_MAX + 2 || strlen(p.domain) > ADDR_DOMAIN_MAX
            || strlen(p.address) != strlen(p.local) + 1 + strlen(p.domain)
            || strncmp(p.address, p.local, strlen(p.local)) != 0
            || strcmp(address_domain(p.address), p.domain) != 0)
            abort();
    }
    free(copy);
    return 0;
}
