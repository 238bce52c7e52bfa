/* smtpd_dns.h - the DNS facts one SMTP session's checks need: the
 * client's name (PTR, confirmed by a forward lookup, as Postfix's
 * "name[address]") and whether domains have MX or address records.  Each
 * name is looked up once per session; callers that find a fact pending
 * wait for the done callback and ask again.
 */
#ifndef CORREIO_SMTPD_DNS_H
#define CORREIO_SMTPD_DNS_H

#include <stdbool.h>
#include "dns.h"
#include "smtpd_check.h"

typedef struct smtpd_dns smtpd_dns_t;

/* smtpd_dns_new - lookups through dns (NULL: none, every fact is
 * FACT_TEMPFAIL); done(arg) runs each time a fact becomes known. */
smtpd_dns_t *smtpd_dns_new(dns_t *dns, void (*done)(void *arg), void *arg);
/* smtpd_dns_free - abandon what is still running. */
void smtpd_dns_free(smtpd_dns_t **d);

/* smtpd_dns_client - start the client name lookup for ip. */
void smtpd_dns_client(smtpd_dns_t *d, const char *ip);
/* smtpd_dns_client_fact - FACT_PENDING until known; then the names
 * ("unknown" when not found) and facts for the verified and the reverse
 * name. */
dns_fact smtpd_dns_client_fact(const smtpd_dns_t *d, const char **name, dns_fact *name_fact,
                               const char **reverse, dns_fact *reverse_fact);

/* smtpd_dns_domain - does domain have MX (or, lacking one, A/AAAA)
 * records?  Starts the lookup the first time (FACT_PENDING). */
dns_fact smtpd_dns_domain(smtpd_dns_t *d, const char *domain);

#endif
