/* restriction.h - Postfix-style SMTP restriction lists, parsed.
 *
 * A list is the value of smtpd_client_restrictions and its siblings:
 * names separated by commas or white space, where the check_*_access
 * names take the next item as their lookup table ("type:path"), and the
 * DNS list names (reject_rbl_client, reject_rhsbl_sender,
 * permit_dnswl_client) take the next item as their zone, optionally with
 * the answers that count: "zen.example", "zen.example=127.0.0.2",
 * "zen.example=127.0.[0..255].[2;4..11]" (Postfix's syntax).  This
 * module knows the vocabulary and the syntax, so that a configuration is
 * checked when it is loaded (by every program, ctl included); what each
 * name does is the SMTP server's business (ingress/smtpd_check.c).
 */
#ifndef CORREIO_RESTRICTION_H
#define CORREIO_RESTRICTION_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    R_PERMIT,
    R_REJECT,
    R_DEFER,
    R_WARN_IF_REJECT,               /* modifier: the next reject only logs */
    R_PERMIT_MYNETWORKS,
    R_PERMIT_SASL_AUTHENTICATED,
    R_PERMIT_TLS_CLIENT,            /* any client that uses TLS */
    R_REJECT_UNAUTH_DESTINATION,
    R_DEFER_UNAUTH_DESTINATION,
    R_PERMIT_AUTH_DESTINATION,
    R_REJECT_UNAUTH_PIPELINING,
    R_REJECT_NON_FQDN_SENDER,
    R_REJECT_NON_FQDN_RECIPIENT,
    R_REJECT_UNKNOWN_SENDER_DOMAIN,
    R_REJECT_UNKNOWN_RECIPIENT_DOMAIN,
    R_REJECT_SENDER_LOGIN_MISMATCH,
    R_REJECT_INVALID_HELO_HOSTNAME,
    R_REJECT_NON_FQDN_HELO_HOSTNAME,
    R_REJECT_UNKNOWN_HELO_HOSTNAME,
    R_REJECT_UNKNOWN_CLIENT_HOSTNAME,
    R_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME,
    R_REJECT_UNLISTED_RECIPIENT,
    R_REJECT_UNLISTED_SENDER,
    R_REJECT_RBL_CLIENT,            /* these three take a zone */
    R_REJECT_RHSBL_SENDER,
    R_PERMIT_DNSWL_CLIENT,
    R_CHECK_CLIENT_ACCESS,          /* these four take a table */
    R_CHECK_HELO_ACCESS,
    R_CHECK_SENDER_ACCESS,
    R_CHECK_RECIPIENT_ACCESS,
    R_COUNT
} restriction_kind;

#define RESTRICTION_ZONE_MAX 200     /* leaves room for an IPv6 address's nibbles */

typedef struct restriction {
    restriction_kind kind;
    const char      *table;         /* the "type:path" of a check_*_access */
    char             zone[RESTRICTION_ZONE_MAX + 1];   /* a DNS list's zone, lower case */
    const char      *filter;        /* its "=ADDR" pattern without "=", NULL: any answer */
} restriction;

/* restriction_name - the Postfix name of kind. */
const char *restriction_name(restriction_kind kind);

/* restriction_parse - items is a NULL-terminated list as the configuration
 * splits it.  Returns the number of restrictions written to out (malloc'd
 * array, caller frees; its table pointers point into items), or -1 with
 * *err (malloc'd) naming the item that is wrong. */
long restriction_parse(const char *const *items, restriction **out, char **err);

/* restriction_filter_match - does the DNS list answer addr (an IPv4
 * address in text form) match filter ("d.d.d.d", each d a number or
 * "[n;n..m;...]")?  A NULL filter matches any answer. */
bool restriction_filter_match(const char *filter, const char *addr);

/* restriction_table_spec_ok - is spec a "type:path" with a known type? */
int restriction_table_spec_ok(const char *spec);

#endif
