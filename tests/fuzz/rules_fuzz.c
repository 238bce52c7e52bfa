/* rules_fuzz.c - libFuzzer target for the rules-file parser (rules_parse)
 * and, when the input parses, the evaluator on a fixed small message.
 *
 *   make build-fuzz/rules_fuzz && build-fuzz/rules_fuzz
 *
 * Besides "no crash": an accepted file gives no error text, a refused one
 * an error that starts with "fuzz.cf:", and rules_run never reports more
 * hits than rules_count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../classifier/rules.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool known(const char *name, void *ctx)
{
    (void)ctx;
    return strcmp(name, "GTUBE") == 0;
}

static bool builtin(const char *name, void *ctx)
{
    (void)ctx;
    return strcmp(name, "GTUBE") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mime_header h[] = {
        {"Subject", "Win a free prize!!!", "Win a free prize!!!"},
        {"From", "\"a@b.example\" <c@d.example>", "\"a@b.example\" <c@d.example>"},
        {"To", "x@y.example", "x@y.example"},
    };
#define TEXT "Hello\n\nclick here now\naaaaaaaaaaaaaaaaaaaaaaaaab"
    static mime_part p[] = {
        {.type = "text/plain", .text = TEXT, .text_len = sizeof TEXT - 1,
         .raw = "<p>" TEXT, .raw_len = sizeof TEXT - 1 + 3},
    };
    static mime_uri u[] = {{"http://192.0.2.1/x", "192.0.2.1", false}};
    static const char raw[] = "Subject: Win\r\n\r\nHello\r\n";
    mime_msg m = {.headers = h, .n_headers = 3, .parts = p, .n_parts = 1, .uris = u, .n_uris = 1};
    char *copy = malloc(size ? size : 1);   /* private: reads past size are caught */
    char *err = NULL;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rules_t *r = rules_parse("fuzz.cf", copy, size, known, NULL, &err);
    if (r) {
        if (err)
            abort();
        size_t n = rules_count(r);
        rules_hit *hits = xcalloc(n + 1, sizeof *hits);
        if (rules_run(r, &m, raw, sizeof raw - 1, builtin, NULL, hits) > n)
            abort();
        xfree(&hits);
        rules_free(&r);
    } else {
        if (!err || strncmp(err, "fuzz.cf:", 8) != 0)
            abort();
        xfree(&err);
    }
    free(copy);
    return 0;
}
