/* smtpd_rbl.h - one SMTP session's DNS list lookups (reject_rbl_client,
 * reject_rhsbl_sender, permit_dnswl_client): the A record of NAME.ZONE,
 * where NAME is the client's address reversed (IPv4 octets, IPv6
 * nibbles) or the sender's domain, and in parallel its TXT record for
 * the reason text.  Lookups go through the resolver given (rbl_dns_servers,
 * rbl_timeout, with the process's DNS cache attached); each name is asked
 * once per session.  A lookup that fails or times out counts as "not
 * listed", with a warning in the log.  Callers that find an answer
 * pending wait for the done callback and ask again (as smtpd_dns).
 */
#ifndef CORREIO_SMTPD_RBL_H
#define CORREIO_SMTPD_RBL_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

#define RBL_TEXT_MAX 200            /* of a TXT reason put into a reply */
#define RBL_NAME_MAX 254            /* a query name */

typedef struct smtpd_rbl smtpd_rbl_t;

typedef enum {
    RBL_PENDING,        /* started (or running); done() runs when it ends */
    RBL_LISTED,         /* A records came */
    RBL_NOT_LISTED,     /* no such name, or the lookup failed (logged) */
} rbl_status;

/* What a list said about one name; valid until smtpd_rbl_free. */
typedef struct rbl_answer {
    size_t       n;
    char       **addrs;             /* the A records, text */
    const char  *text;              /* the TXT reason, printable; "" if none */
} rbl_answer;

/* smtpd_rbl_new - lookups through dns (NULL: nothing is ever listed);
 * done(arg) runs each time an answer becomes known. */
smtpd_rbl_t *smtpd_rbl_new(dns_t *dns, void (*done)(void *arg), void *arg);
/* smtpd_rbl_free - abandon what is still running; *r becomes NULL. */
void smtpd_rbl_free(smtpd_rbl_t **r);

/* smtpd_rbl_lookup - the answer for name (a full query name, see
 * smtpd_rbl_client_name); starts the lookup the first time.  On
 * RBL_LISTED *ans says what came. */
rbl_status smtpd_rbl_lookup(smtpd_rbl_t *r, const char *name, const rbl_answer **ans);

/* smtpd_rbl_client_name - "4.3.2.1.zone" for 1.2.3.4, the 32 nibbles of
 * an IPv6 address (an IPv4-mapped one as IPv4), then zone, into out
 * (RBL_NAME_MAX + 1 bytes).  False when ip is not an address or the name
 * would be too long. */
bool smtpd_rbl_client_name(const char *ip, const char *zone, char *out);
/* smtpd_rbl_domain_name - "domain.zone" (false when too long or empty). */
bool smtpd_rbl_domain_name(const char *domain, const char *zone, char *out);

#endif
