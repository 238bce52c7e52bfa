/* relayhost.h - next-hop specifications, as relayhost, transport_maps
 * and the envelope's Recipient.nexthop write them:
 *
 *   [host]:port   [host]          the host itself, no MX lookup
 *   host:port     host            MX lookup of host (Postfix's forms)
 *   [2001:db8::1]:587             an IPv6 literal
 *   user:password@host:port       IceWarp's form: AUTH credentials for
 *   user@domain:password@[host]:587   that relay (the host part is after
 *                                 the last '@', the user before the first
 *                                 ':' of what precedes it)
 *
 * port 0 means "the default" (smtp_default_port).  Credentials never go
 * into an envelope: relayhost_nexthop writes the form without them, and
 * delivery finds them again by next hop.
 */
#ifndef CORREIO_RELAYHOST_H
#define CORREIO_RELAYHOST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct relayhost {
    char     host[256];     /* name or address, without brackets */
    unsigned port;          /* 0: the default */
    bool     mx;            /* look up MX records of host */
    char     user[256];     /* "" when no credentials */
    char     pass[256];
} relayhost_t;

/* relayhost_parse - parse spec into *out.  -1 with a reason in err
 * ("bad port 99999", "empty host name", "credentials without a host")
 * when it is malformed; 0 otherwise.  allow_credentials false refuses
 * the user:password@ forms (they belong in relayhost only). */
int relayhost_parse(const char *spec, bool allow_credentials, relayhost_t *out,
                    char *err, size_t errsize);
/* relayhost_nexthop - spec without credentials: "[host]:port", "[host]",
 * "host:port" or "host"; IPv6 literals stay bracketed. */
void relayhost_nexthop(const relayhost_t *r, char *dst, size_t size);

#endif
