/* spf_record_fuzz.c - lib/spf.c's record parser and macro expander on
 * arbitrary bytes: the input is parsed as a TXT record ("v=spf1 " is put
 * in front half the time, so the fuzzer reaches the terms), dumped, and
 * expanded as a domain-spec and as explanation text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spf.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const spf_macro_env env = {
        .s = "strong-bad@email.example.com", .l = "strong-bad", .o = "email.example.com",
        .d = "email.example.com", .i = "192.0.2.3", .p = "unknown", .v = "in-addr",
        .h = "mx.example.org", .c = "192.0.2.3", .r = "mx.example.net", .t = "1700000000",
    };
    char *text, *out = NULL, *err = NULL;
    spf_record_t *r;

    if (size > 8192)
        return 0;
    text = xmemdup(data, size);
    if (size > 0 && (data[0] & 1)) {
        char *with = xasprintf("v=spf1 %s", text + 1);
        xfree(&text);
        text = with;
    }
    r = spf_record_parse(text, &err);
    if (r != NULL) {
        char *dump = spf_record_dump(r);
        char *rec = xasprintf("v=spf1 %s", dump);
        spf_record_t *again = spf_record_parse(rec, &err);
        char *dump2;

        if (again == NULL)
            __builtin_trap();       /* the canonical form must parse ... */
        dump2 = spf_record_dump(again);
        if (strcmp(dump, dump2) != 0)
            __builtin_trap();       /* ... to itself */
        spf_record_free(&again);
        xfree(&dump2);
        xfree(&rec);
        xfree(&dump);
        spf_record_free(&r);
    }
    xfree(&err);
    for (int explain = 0; explain < 2; explain++) {
        if (spf_macro_expand(&env, text, explain, &out, &err)) {
            spf_domain_truncate(out);
            if (strlen(out) > 253)
                __builtin_trap();
        }
        xfree(&out);
        xfree(&err);
    }
    xfree(&text);
    return 0;
}
