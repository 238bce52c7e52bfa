/* nexthop.h - where one recipient's copy goes over SMTP or LMTP: from its
 * route and Recipient.nexthop to a destination (protocol, host or UNIX
 * socket, port, MX lookup or not, TLS level, AUTH credentials) and the
 * destination key that groups jobs for concurrency and connection reuse.
 *
 *   ROUTE_RELAY "example.com"        smtp:example.com        MX lookup
 *   ROUTE_RELAY "example.com:2525"   smtp:example.com:2525   MX lookup
 *   ROUTE_RELAY "[10.0.0.1]:25"      smtp:[10.0.0.1]:25      that host
 *   ROUTE_RELAY ""                   the recipient's domain, MX lookup
 *   ROUTE_LMTP  "unix:/run/lmtp"     lmtp:unix:/run/lmtp
 *   ROUTE_LMTP  "[10.0.0.2]:24"      lmtp:[10.0.0.2]:24      (a port is required)
 *
 * TLS: smtp_tls_security_level, unless smtp_tls_policy_maps has
 * "[host]:port" (hosts without MX lookup) or "host" (the host or the
 * domain): the first word of the value, none, may, encrypt or verify.
 * LMTP uses no TLS unless the policy maps say otherwise for its host.
 * AUTH: the relayhost's own credentials when the destination is the
 * relayhost; else smtp_sasl_password_maps, "[host]:port" then "host",
 * value "user:password".  LMTP over a UNIX socket: neither.
 */
#ifndef CORREIO_DELIVERY_NEXTHOP_H
#define CORREIO_DELIVERY_NEXTHOP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>
#include "map.h"
#include "relayhost.h"
#include "smtp_client.h"
#include "wire.h"

#define NEXTHOP_KEY_MAX 300

typedef struct nexthop_policy {
    unsigned           default_port;    /* smtp_default_port */
    smtp_tls_level     tls_level;       /* smtp_tls_security_level */
    map_t *const      *tls_maps;        /* smtp_tls_policy_maps, NULL-terminated or NULL */
    map_t *const      *sasl_maps;       /* smtp_sasl_password_maps, likewise */
    const relayhost_t *relayhost;       /* NULL when relayhost is empty */
} nexthop_policy;

typedef struct nexthop_dest {
    bool           lmtp;
    char           host[256];   /* name or address (no brackets); "" for UNIX */
    char           path[sizeof(((struct sockaddr_un *)0)->sun_path)];  /* UNIX socket, or "" */
    unsigned       port;        /* TCP port; 0 for UNIX */
    bool           mx;          /* look up the MX records of host */
    smtp_tls_level tls_level;
    char           user[256];   /* "" when no AUTH */
    char           pass[256];
    char           key[NEXTHOP_KEY_MAX];    /* "smtp:[10.0.0.1]:25", "smtp:example.com" */
} nexthop_dest;

typedef enum {
    NEXTHOP_OK,
    NEXTHOP_BAD,        /* the next hop cannot be used (malformed): a
                         * configuration error, the mail waits (4.3.5) */
    NEXTHOP_TRYLATER,   /* a map could not be read or holds a bad value (4.3.0) */
} nexthop_status;

/* nexthop_resolve - the destination of a recipient (address rcpt, for the
 * domain when nexthop is empty) routed by route with nexthop.  On a
 * status other than NEXTHOP_OK, err says why (for the recipient's status
 * text). */
nexthop_status nexthop_resolve(const nexthop_policy *p, Correio__RouteKind route,
                               const char *nexthop, const char *rcpt, nexthop_dest *out,
                               char *err, size_t errsize);

/* nexthop_tls_level_parse - "none", "may", "encrypt", "verify"; -1 if none of them. */
int nexthop_tls_level_parse(const char *word);
/* nexthop_tls_level_name - the word for a level. */
const char *nexthop_tls_level_name(smtp_tls_level level);

#endif
