/* received.h - the Received: header field the ingress adds (RFC 5321
 * 4.4), Postfix's layout. */
#ifndef CORREIO_RECEIVED_H
#define CORREIO_RECEIVED_H

#include <stdbool.h>
#include <stdint.h>
#include "buf.h"

/* received_header - append to out:
 *   Received: from HELO (unknown [IP])
 *   \tby HOST (correio) with ESMTP id QID
 *   \tfor <RCPT>; DATE
 * each line ending in CRLF; "for" only when rcpt is not NULL (exactly one
 * recipient); SMTP instead of ESMTP when esmtp is false.  helo and rcpt
 * come from the client and are made printable. */
void received_header(buf_t *out, const char *helo, const char *ip, bool ipv6,
                     const char *host, bool esmtp, const char *qid,
                     const char *rcpt, int64_t when);

#endif
