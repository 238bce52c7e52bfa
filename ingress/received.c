/* received.c - the Received: header fields (see received.h). */
#include <string.h>
#include "log.h"
#include "received.h"
#include "timeutil.h"

void received_header(buf_t *out, const received_info *ri)
{
    char h[256], r[300], u[300], date[64];

    log_printable(h, sizeof(h), ri->helo, strlen(ri->helo));
    time_rfc5322(date, sizeof(date), ri->when);
    buf_printf(out, "Received: from %s (%s [%s%s])\r\n",
               h[0] ? h : "unknown", ri->client_name, ri->ipv6 ? "IPv6:" : "", ri->ip);
    if (ri->tls_protocol)
        buf_printf(out, "\t(using %s with cipher %s (%d/%d bits))\r\n",
                   ri->tls_protocol, ri->tls_cipher, ri->tls_bits, ri->tls_bits);
    if (ri->auth_user) {
        log_printable(u, sizeof(u), ri->auth_user, strlen(ri->auth_user));
        buf_printf(out, "\t(Authenticated sender: %s)\r\n", u);
    }
    buf_printf(out, "\tby %s (correio) with %s id %s", ri->host, ri->protocol, ri->qid);
    if (ri->rcpt) {
        log_printable(r, sizeof(r), ri->rcpt, strlen(ri->rcpt));
        buf_printf(out, "\r\n\tfor <%s>; %s\r\n", r, date);
    } else {
        buf_printf(out, ";\r\n\t%s\r\n", date);
    }
}

void received_local_header(buf_t *out, const char *host, const char *qid, const char *rcpt,
                           int64_t when)
{
    char r[300], date[64];

    time_rfc5322(date, sizeof(date), when);
    buf_printf(out, "Received: by %s (correio) id %s", host, qid);
    if (rcpt) {
        log_printable(r, sizeof(r), rcpt, strlen(rcpt));
        buf_printf(out, "\r\n\tfor <%s>; %s\r\n", r, date);
    } else {
        buf_printf(out, ";\r\n\t%s\r\n", date);
    }
}
