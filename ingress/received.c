/* received.c - the Received: header field (see received.h). */
#include <string.h>
#include "log.h"
#include "received.h"
#include "timeutil.h"

void received_header(buf_t *out, const char *helo, const char *ip, bool ipv6,
                     const char *host, bool esmtp, const char *qid,
                     const char *rcpt, int64_t when)
{
    char h[256], r[300], date[64];

    log_printable(h, sizeof(h), helo, strlen(helo));
    time_rfc5322(date, sizeof(date), when);
    buf_printf(out, "Received: from %s (unknown [%s%s])\r\n"
                    "\tby %s (correio) with %s id %s",
               h[0] ? h : "unknown", ipv6 ? "IPv6:" : "", ip, host,
               esmtp ? "ESMTP" : "SMTP", qid);
    if (rcpt) {
        log_printable(r, sizeof(r), rcpt, strlen(rcpt));
        buf_printf(out, "\r\n\tfor <%s>; %s\r\n", r, date);
    } else {
        buf_printf(out, ";\r\n\t%s\r\n", date);
    }
}
