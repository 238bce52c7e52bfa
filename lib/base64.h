/* base64.h - RFC 4648 base64 for SMTP AUTH exchanges, strict on input. */
#ifndef CORREIO_BASE64_H
#define CORREIO_BASE64_H

#include <stddef.h>
#include "buf.h"

/* base64_encode - append the encoding of p[0..n) to out. */
void base64_encode(buf_t *out, const void *p, size_t n);
/* base64_decode - decode s[0..n) into out (replacing its contents; a NUL
 * follows the data).  Returns 0, or -1 when s is not canonical base64
 * (bad character, bad length or misplaced padding). */
int base64_decode(buf_t *out, const char *s, size_t n);

#endif
