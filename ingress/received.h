/* received.h - the Received: header field the ingress adds (RFC 5321
 * 4.4), Postfix's layout. */
#ifndef CORREIO_RECEIVED_H
#define CORREIO_RECEIVED_H

#include <stdbool.h>
#include <stdint.h>
#include "buf.h"

typedef struct received_info {
    const char *helo;           /* as the client gave it, "" if none */
    const char *client_name;    /* verified name or "unknown" */
    const char *ip;
    bool        ipv6;
    const char *host;           /* myhostname */
    const char *protocol;       /* RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPSA, ... */
    const char *tls_protocol;   /* NULL without TLS */
    const char *tls_cipher;
    int         tls_bits;
    const char *auth_user;      /* NULL if not authenticated */
    const char *qid;
    const char *rcpt;           /* the only recipient, or NULL */
    int64_t     when;           /* seconds since the epoch */
} received_info;

/* received_header - append to out:
 *   Received: from HELO (NAME [IP])
 *   \t(using TLSv1.3 with cipher C (256/256 bits))     with TLS
 *   \t(Authenticated sender: USER)                     with AUTH
 *   \tby HOST (correio) with PROTOCOL id QID
 *   \tfor <RCPT>; DATE
 * each line ending in CRLF; "for" only with exactly one recipient.  Text
 * from the client is made printable. */
void received_header(buf_t *out, const received_info *ri);

/* received_local_header - append the field of a message handed over on
 * the submit socket (a bounce, a fetched message):
 *   Received: by HOST (correio) id QID
 *   \tfor <RCPT>; DATE
 * "for" only when rcpt is not NULL (exactly one recipient); rcpt is made
 * printable. */
void received_local_header(buf_t *out, const char *host, const char *qid, const char *rcpt,
                           int64_t when);

#endif
