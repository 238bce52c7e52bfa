/* imap_response_fuzz.c - libFuzzer target for the IMAP client's response
 * handling (fetcher/imap.c): the input is everything a hostile server
 * says.  First the input goes through the pure parsers (the tokenizer in
 * both modes, value skipping, the literal size at each line's end), then
 * it is the server's side of a scripted session: greeting, CAPABILITY,
 * LOGIN or AUTHENTICATE, SELECT, the listing, fetches of a few messages
 * with a small cap (literals, quoted bodies, NIL), a delete, and close
 * with commit (UID EXPUNGE or EXPUNGE, LOGOUT).
 *
 * Besides "no crash", it checks what the client promises: a fetched
 * message is never longer than the cap, a failed fetch leaves the buffer
 * as it was, uids are decimal, and no error text holds the password.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fetcher/mailbox_int.h"
#include "xalloc.h"

#define FUZZ_MAX_MSG   4096
#define FUZZ_FETCHES   8
#define FUZZ_TOKENS    10000    /* tokens read from the input at most */
#define FUZZ_PASSWORD  "fuzz-Secret-9"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(char **err)
{
    if (*err != NULL && strstr(*err, FUZZ_PASSWORD) != NULL)
        abort();
    xfree(err);
}

/* tokens - run the tokenizer over the whole input, as one response. */
static void tokens(const char *d, size_t size)
{
    for (int bracket = 0; bracket < 2; bracket++) {
        imap_cur c;
        imap_tok t;

        imap_cur_init(&c, d, size);
        for (int i = 0; i < FUZZ_TOKENS; i++) {
            const char *before = c.p;
            imap_tok_kind k = imap_next(&c, &t, bracket);

            if (c.p < before || c.p > c.end)
                abort();
            if (k == IMAP_T_END || k == IMAP_T_BAD)
                break;
            if ((k == IMAP_T_ATOM || k == IMAP_T_STRING) && t.len > 0 && t.s == NULL)
                abort();
            if (k == IMAP_T_LPAREN && !imap_skip_value(&c, &t))
                break;
        }
        imap_cur_free(&c);
    }
}

static void literal_sizes(const char *d, size_t size)
{
    const char *end = d + size;

    while (d < end) {
        const char *lf = memchr(d, '\n', (size_t)(end - d));
        size_t len = lf ? (size_t)(lf - d) : (size_t)(end - d);
        uint64_t n;
        bool bad;

        if (len > 0 && d[len - 1] == '\r')
            len--;
        (void)imap_literal_size(d, len, &n, &bad);
        d = lf ? lf + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mailbox_server srv = {
        .host = "imap.fuzz.test", .port = 143, .protocol = MAILBOX_IMAP, .verify = true,
        .user = "user", .password = FUZZ_PASSWORD, .folder = "INBOX", .timeout_ms = 1000,
    };
    mailbox_status st;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char uv[32], *err = NULL;
    mailbox_t *m;

    if (size > 300000)
        return 0;
    tokens((const char *)data, size);
    literal_sizes((const char *)data, size);
    m = mailbox_open_scripted(&srv, (const char *)data, size, &st, &err);
    check_err(&err);
    if (m == NULL)
        return 0;
    if (mailbox_list(m, &msgs, &n, uv, &err) == MAILBOX_OK) {
        if (uv[0] == 0 || strspn(uv, "0123456789") != strlen(uv))
            abort();
        for (size_t i = 0; i < n && i < FUZZ_FETCHES; i++) {
            buf_t out = BUF_INIT;

            buf_append_str(&out, "pre");
            if (strspn(msgs[i].uid, "0123456789") != strlen(msgs[i].uid))
                abort();
            st = mailbox_fetch(m, &msgs[i], FUZZ_MAX_MSG, &out, &err);
            if (st == MAILBOX_OK ? out.len > FUZZ_MAX_MSG + 3 : out.len != 3)
                abort();
            check_err(&err);
            buf_free(&out);
        }
        if (n > 0) {
            (void)mailbox_delete(m, &msgs[0], &err);
            check_err(&err);
        }
    }
    check_err(&err);
    mailbox_msgs_free(&msgs, n);
    (void)mailbox_close(&m, true, &err);
    check_err(&err);
    return 0;
}
