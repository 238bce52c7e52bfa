/* address.h - RFC 5321 paths and addresses.
 *
 * smtp_path_parse() reads the argument of MAIL FROM: / RCPT TO: up to the
 * closing '>' (the ESMTP parameters after it are the caller's business):
 *   <>                                 null reverse-path (if allowed)
 *   <user@example.com>
 *   <"john doe"@example.com>           quoted local part (RFC 5321 4.1.2)
 *   <@relay1,@relay2:user@example.com> source route, accepted and ignored
 *   <user@[192.0.2.1]> <user@[IPv6:2001:db8::1]>  address literals
 * Limits (RFC 5321 4.5.3.1): local part 64 octets, domain 255, path 256.
 * Only ASCII is accepted (SMTPUTF8 is for a later issue).
 */
#ifndef CORREIO_ADDRESS_H
#define CORREIO_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX  64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX   256

typedef enum {
    PATH_OK = 0,
    PATH_SYNTAX,       /* 501 5.1.3 / 5.1.7: bad syntax */
    PATH_TOO_LONG,     /* 501 5.1.3 (RFC says 553 or 501) */
    PATH_NULL_REFUSED, /* <> where a mailbox is required */
} path_status;

typedef struct smtp_path {
    bool null;                         /* <> */
    char local[ADDR_LOCAL_MAX + 3];    /* as written, quotes included */
    char domain[ADDR_DOMAIN_MAX + 1];  /* as written, literal brackets included */
    char address[ADDR_PATH_MAX + 1];   /* local@domain, "" for <> */
} smtp_path;

/* smtp_path_parse - parse a path starting at s (len bytes; leading spaces
 * are not skipped).  On PATH_OK, *consumed is the number of bytes up to
 * and including '>'.  allow_null: accept <> (MAIL FROM). */
path_status smtp_path_parse(const char *s, size_t len, bool allow_null,
                            smtp_path *out, size_t *consumed);

/* address_domain - pointer to the domain part of "local@domain" (after
 * the last '@'), or "" when there is none. */
const char *address_domain(const char *address);

/* domain_list_match - is domain (case-insensitive) one of the items? */
bool domain_list_match(const char *const *list, const char *domain);

/* address_lower - lower-case copy for lookups (malloc'ed). */
char *address_lower(const char *address);

#endif
