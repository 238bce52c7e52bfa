/* status_code.h - RFC 3463 enhanced status codes ("5.1.1") at the start
 * of a text: an SMTP reply's text, a transport's error: text, a delivery
 * result, a DSN field.  One reader for all of them; each caller adds what
 * it needs of the class (2, 4, 5; or the reply code's) and of what
 * follows. */
#ifndef CORREIO_STATUS_CODE_H
#define CORREIO_STATUS_CODE_H

#include <stddef.h>

/* status_code_len - the length of "C.SSS.DDD" at the start of s (C one
 * digit, SSS and DDD one to three digits) when a space or the end follows
 * it; 0 when s does not start with one. */
size_t status_code_len(const char *s);

#endif
