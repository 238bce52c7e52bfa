/* pop3_reply_fuzz.c - libFuzzer target for the POP3 client's reply
 * handling (fetcher/pop3.c): the input is everything a hostile server
 * says.  Each line goes through the pure parsers (status, UIDL, LIST,
 * response code), then the whole input is the server's side of a
 * scripted session: open (CAPA, AUTH PLAIN or USER/PASS), list, fetch a
 * few messages with a small cap, delete one, close with commit.
 *
 * Besides "no crash", it checks what the client promises: a listing's
 * uids are 1 to 70 printable bytes, a fetched message is never longer
 * than the cap, a failed fetch leaves the buffer as it was, and every
 * failure comes with a text that never holds the password.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fetcher/mailbox_int.h"
#include "xalloc.h"

#define FUZZ_MAX_MSG   4096     /* the fetch cap */
#define FUZZ_FETCHES   8        /* messages fetched at most */
#define FUZZ_PASSWORD  "fuzz-Secret-9"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(char **err)
{
    if (*err != NULL && strstr(*err, FUZZ_PASSWORD) != NULL)
        abort();
    xfree(err);
}

static void parse_lines(const char *d, size_t size)
{
    const char *end = d + size;

    while (d < end) {
        const char *lf = memchr(d, '\n', (size_t)(end - d));
        size_t len = lf ? (size_t)(lf - d) : (size_t)(end - d);
        char uid[POP3_UID_MAX + 1], code[32], *copy = xmemdup(d, len);
        const char *text;
        uint64_t num, sz;

        if (pop3_parse_status(copy, len, &text) != POP3_BAD) {
            if (text < copy || text > copy + len)
                abort();
            pop3_resp_code(text, code, sizeof(code));
        }
        if (pop3_parse_uidl(copy, len, &num, uid) && (strlen(uid) == 0 || strlen(uid) > 70))
            abort();
        (void)pop3_parse_list(copy, len, &num, &sz);
        xfree(&copy);
        d += len + (lf != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mailbox_server srv = {
        .host = "pop.fuzz.test", .port = 110, .protocol = MAILBOX_POP3, .verify = true,
        .user = "user", .password = FUZZ_PASSWORD, .timeout_ms = 1000,
    };
    mailbox_status st;
    mailbox_msg *msgs = NULL;
    size_t n = 0;
    char uv[32], *err = NULL;
    mailbox_t *m;

    if (size > 200000)
        return 0;
    parse_lines((const char *)data, size);
    m = mailbox_open_scripted(&srv, (const char *)data, size, &st, &err);
    check_err(&err);
    if (m == NULL)
        return 0;
    if (mailbox_list(m, &msgs, &n, uv, &err) == MAILBOX_OK) {
        if (uv[0] != 0)
            abort();
        for (size_t i = 0; i < n && i < FUZZ_FETCHES; i++) {
            buf_t out = BUF_INIT;

            buf_append_str(&out, "pre");
            if (msgs[i].uid == NULL || strlen(msgs[i].uid) == 0 || strlen(msgs[i].uid) > 70)
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
