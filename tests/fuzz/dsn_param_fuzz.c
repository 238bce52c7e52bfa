/* dsn_param_fuzz.c - libFuzzer target for the DSN parameters the ingress
 * reads from clients (RFC 3461): xtext, NOTIFY=, ORCPT=.
 *
 * Besides "no crash", it checks what the parsers promise: a decoded
 * xtext is printable ASCII and fits; a NOTIFY that parses is valid; an
 * ORCPT that parses is one smtp_orcpt_valid accepts and fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ingress/smtp_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);   /* reads past size are caught */
    char out[DSN_ORCPT_MAX + 1];

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (smtp_xtext_decode(copy, size, out, DSN_ENVID_MAX + 1)) {
        size_t n = strnlen(out, DSN_ENVID_MAX + 1);
        if (n > DSN_ENVID_MAX)
            abort();
        for (size_t i = 0; i < n; i++)
            if (out[i] < 0x20 || out[i] > 0x7e)
                abort();
    }
    unsigned notify = smtp_parse_notify(copy, size);
    if (notify && !smtp_notify_valid(notify))
        abort();
    if (smtp_parse_orcpt(copy, size, out, sizeof out)
        && (strnlen(out, sizeof out) > DSN_ORCPT_MAX || !smtp_orcpt_valid(out)))
        abort();
    free(copy);
    return 0;
}
