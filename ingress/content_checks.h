/* content_checks.h - header_checks and body_checks (Postfix's
 * header_checks(5)) applied while a message is received, so that REJECT
 * answers the DATA itself and nothing is queued.
 *
 * The scanner works on the body buffer the DATA parser fills (CRLF line
 * ends): after each chunk it looks at the complete lines that arrived.
 * Each logical header (with its folded continuation lines, joined by
 * "\n") goes through header_checks; each body line, up to
 * body_checks_size_limit bytes of body, through body_checks.  IGNORE
 * removes the header or line from the buffer.  The first REJECT or
 * DISCARD ends the checking of that message.
 */
#ifndef CORREIO_CONTENT_CHECKS_H
#define CORREIO_CONTENT_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

typedef struct content_checks content_checks_t;

/* content_checks_open - open the header_checks and body_checks tables of
 * cfg; NULL when there are none (nothing to do).  On a bad table: NULL
 * with *err set (malloc'd). */
content_checks_t *content_checks_open(const config_t *cfg, char **err);
void content_checks_free(content_checks_t **c);

typedef enum { CONTENT_PASS, CONTENT_REJECT, CONTENT_DISCARD } content_verdict;

/* One message's scan. */
typedef struct content_scan {
    size_t line_start;              /* first byte not yet scanned */
    size_t hdr_start;               /* the logical header being collected */
    bool   hdr_open;
    bool   in_body;
    content_verdict verdict;
    bool   hold;
    char   reply[512];              /* REJECT: "550 5.7.1 text" */
    char   what[600];               /* for the log: "header Subject: x" */
    char   text[512];               /* the action's text, "" if none */
    unsigned warnings;
} content_scan;

/* content_scan_start - a new message. */
void content_scan_start(content_scan *cs);
/* content_scan_run - scan the complete lines of body not yet scanned; at
 * the end of the data (final) also the last header.  warn(arg, text)
 * logs WARN and HOLD matches. */
void content_scan_run(content_checks_t *c, content_scan *cs, buf_t *body, bool final,
                      void (*warn)(void *arg, const char *what), void *arg);

#endif
