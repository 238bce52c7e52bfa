/* smtp_data.c - the DATA stream parser (see smtp_data.h): a small state
 * machine that carries its position across reads, copies runs of ordinary
 * bytes in one append, and never takes anything but CRLF for a line end.
 */
#include <string.h>
#include "smtp_data.h"

enum {
    D_BOL,      /* at the beginning of a line */
    D_MID,      /* inside a line */
    D_CR,       /* inside a line, after a CR (stored only once we know) */
    D_DOT,      /* beginning of a line, after its first "." */
    D_DOTCR,    /* "." then CR at the beginning of a line */
};

void smtp_data_init(smtp_data_t *d, size_t limit)
{
    memset(d, 0, sizeof(*d));
    d->state = D_BOL;
    d->limit = limit;
}

/* store - append body bytes unless refused; enforce the size limit. */
static void store(smtp_data_t *d, buf_t *body, const char *p, size_t n)
{
    d->size += n;
    if (d->size > d->limit)
        d->refused |= SMTP_DATA_TOOBIG;
    if (d->refused == 0)
        buf_append(body, p, n);
}

/* count - n more raw octets on the current line. */
static void count(smtp_data_t *d, size_t n)
{
    d->line_len += n;
    if (d->line_len > SMTP_DATA_LINE_MAX)
        d->refused |= SMTP_DATA_LONGLINE;
}

size_t smtp_data_feed(smtp_data_t *d, const char *p, size_t n, buf_t *body)
{
    size_t i = 0;

    while (i < n) {
        char c = p[i];

        switch (d->state) {
        case D_BOL:
            d->line_len = 0;
            if (c == '.') {
                count(d, 1);
                d->state = D_DOT;
                i++;
                continue;
            }
            d->state = D_MID;
            continue;               /* same byte, as content */

        case D_MID: {
            /* copy the run up to the next CR or LF in one go */
            size_t j = i;
            while (j < n && p[j] != '\r' && p[j] != '\n')
                j++;
            if (j > i) {
                count(d, j - i);
                store(d, body, p + i, j - i);
                i = j;
                continue;
            }
            count(d, 1);
            if (c == '\r') {
                d->state = D_CR;
            } else {                /* bare LF: content, and refused */
                d->refused |= SMTP_DATA_BARE;
                store(d, body, p + i, 1);
            }
            i++;
            continue;
        }

        case D_CR:
            if (c == '\n') {
                count(d, 1);
                store(d, body, "\r\n", 2);
                d->state = D_BOL;
                i++;
                continue;
            }
            /* the CR before was bare */
            d->refused |= SMTP_DATA_BARE;
            store(d, body, "\r", 1);
            d->state = D_MID;
            continue;               /* same byte again, from D_MID */

        case D_DOT:
            if (c == '\r') {
                count(d, 1);
                d->state = D_DOTCR;
                i++;
                continue;
            }
            /* a stuffed dot: drop it, the rest of the line is content */
            d->state = D_MID;
            continue;

        case D_DOTCR:
            if (c == '\n') {
                d->done = true;
                return i + 1;
            }
            /* "." CR something: the dot was stuffing, the CR bare */
            d->refused |= SMTP_DATA_BARE;
            store(d, body, "\r", 1);
            d->state = D_MID;
            continue;
        }
    }
    return n;
}

const char *smtp_data_reply(const smtp_data_t *d)
{
    if (d->refused & SMTP_DATA_BARE)
        return "554 5.5.2 Error: bare <CR> or <LF> received";
    if (d->refused & SMTP_DATA_TOOBIG)
        return "552 5.3.4 Message size exceeds fixed limit";
    if (d->refused & SMTP_DATA_LONGLINE)
        return "554 5.6.0 Error: message line longer than 998 characters";
    return NULL;
}
