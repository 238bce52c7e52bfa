/* smtp_data.h - the DATA stream parser: a pure, incremental function over
 * the bytes a client sends after "354", independent of sockets.
 *
 * Only CRLF ends a line.  The line "." ends the data; a line starting with
 * "." loses exactly that dot (RFC 5321 4.5.2).  A bare CR or bare LF
 * anywhere is ordinary content for finding the end (so "\n.\r\n",
 * "\r.\r\n", "\r\n.\n", "\n.\n" never end the data) but refuses the message
 * (SMTP smuggling).  A line over 1000 octets with its CRLF, or a body over
 * the size limit, refuses it too; parsing always goes on to the real
 * CRLF.CRLF so the session stays in step with the client.
 */
#ifndef CORREIO_SMTP_DATA_H
#define CORREIO_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define SMTP_DATA_LINE_MAX 1000   /* octets, CRLF included (RFC 5321 4.5.3.1.6) */

/* Why a message is refused (bits of smtp_data_t.refused). */
#define SMTP_DATA_BARE     0x1    /* bare CR or LF */
#define SMTP_DATA_LONGLINE 0x2
#define SMTP_DATA_TOOBIG   0x4

typedef struct smtp_data {
    int    state;      /* private */
    size_t line_len;   /* raw octets of the current line so far */
    size_t limit;      /* largest body stored */
    size_t size;       /* body octets seen (also counted after TOOBIG) */
    unsigned refused;  /* SMTP_DATA_* bits */
    bool   done;       /* the terminating CRLF.CRLF was seen */
} smtp_data_t;

/* smtp_data_init - start a message whose body may hold limit octets. */
void smtp_data_init(smtp_data_t *d, size_t limit);

/* smtp_data_feed - parse n bytes at p, appending the unstuffed body (CRLF
 * line ends, the final CRLF before "." included) to body while the message
 * is not refused.  Returns how many bytes were consumed: all of them, or
 * fewer when the end of data came first (d->done is then true and the rest
 * belongs to the next command).  Must not be called after done. */
size_t smtp_data_feed(smtp_data_t *d, const char *p, size_t n, buf_t *body);

/* smtp_data_reply - the SMTP reply for a refused message ("554 5.5.2 ..."),
 * without CRLF; NULL when the message is acceptable. */
const char *smtp_data_reply(const smtp_data_t *d);

#endif
