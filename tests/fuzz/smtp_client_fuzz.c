/* smtp_client_fuzz.c - libFuzzer target for the SMTP/LMTP client's reply
 * handling: the input is everything a hostile server says, fed over a
 * socketpair while the client runs a transaction (with AUTH, DSN
 * parameters, two recipients) and, if it gets that far, a second one on
 * the same connection.
 *
 * Besides "no crash", it checks what the client promises: it ends
 * (FAILED, CLOSED or READY once the server has nothing more to say), and
 * after a transaction every recipient has a reply with a code of 0 or
 * 200-599 and a NUL-terminated text.  The first input byte picks SMTP or
 * LMTP.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../delivery/smtp_client.h"

#define FUZZ_STEPS 10000         /* io calls at most: the client must end well before */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* drain - read and drop what the client wrote. */
static void drain(int fd)
{
    char sink[65536];
    while (read(fd, sink, sizeof sink) > 0)
        ;
}

static void check_replies(const smtp_client_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const smtp_reply *r = smtp_client_rcpt_reply(c, i);
        if (!r || (r->code != 0 && (r->code < 200 || r->code > 599))
            || memchr(r->text, '\0', sizeof r->text) == NULL
            || memchr(r->status, '\0', sizeof r->status) == NULL)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (size == 0 || size > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    bool lmtp = data[0] & 1;
    data++, size--;
    /* the server's whole say goes into the socket buffer, then EOF */
    int buf = 256 * 1024;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (size && write(sv[1], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    shutdown(sv[1], SHUT_WR);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);

    smtp_client_opts opts = {
        .lmtp = lmtp, .helo_name = "client.example", .tls_level = SMTP_TLS_NONE,
        .auth_user = "user@example.com", .auth_pass = "secret", .auth_needs_tls = false,
        .peer = "fuzz[127.0.0.1]:25",
        .timeouts = {60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000},
    };
    const char *rcpt[2] = {"a@example.com", "b@example.net"};
    const uint32_t notify[2] = {6, 1};
    const char *orcpt[2] = {"rfc822;a+2B@example.com", ""};
    ProtobufCBinaryData hdr = {11, (uint8_t *)"X-Fuzz: 1\r\n"};
    static const char body[] = "Subject: t\r\n\r\n.dot\r\nend\xc3\xa9";
    smtp_txn txn = {
        .sender = "s@example.org", .n_rcpt = 2, .rcpt = rcpt, .notify = notify,
        .orcpt = orcpt, .body_type = CORREIO__BODY_TYPE__BODY_8BITMIME, .ret = 1,
        .envid = "id+1", .headers = &hdr, .n_headers = 1,
        .body = body, .body_len = sizeof body - 1,
    };

    smtp_client_t *c = smtp_client_new(sv[0], &opts);
    int transactions = 0;
    smtp_client_status st = SMTP_CLIENT_RUNNING;
    int steps;
    for (steps = 0; steps < FUZZ_STEPS; steps++) {
        st = smtp_client_io(c, true, true);
        drain(sv[1]);
        if (st == SMTP_CLIENT_DONE) {
            check_replies(c, txn.n_rcpt);
            continue;
        }
        if (st == SMTP_CLIENT_READY) {
            if (transactions++ < 2)
                smtp_client_start(c, &txn);
            else
                smtp_client_quit(c);
            continue;
        }
        if (st == SMTP_CLIENT_FAILED || st == SMTP_CLIENT_CLOSED)
            break;
    }
    if (steps == FUZZ_STEPS)
        abort();                 /* EOF came and the client never ended */
    smtp_client_free(&c);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
