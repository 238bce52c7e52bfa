/* routing.h - where each recipient's copy goes.
 *
 * Today: a recipient whose domain is in mydestination goes to a local
 * Maildir (mail_root/DOMAIN/LOCALPART, both lower-cased, as the users map
 * is case-insensitive); any other domain is relayed over SMTP to that
 * domain.  A local part that cannot safely be a directory name (empty,
 * starting with '.', holding '/', white space, control or non-ASCII
 * bytes) is never turned into a path: the recipient gets ROUTE_ERROR
 * "5.1.3 unsafe mailbox name".  Aliases, virtual maps and the routing
 * table are later issues; they slot in before routing_decide's domain
 * test.
 */
#ifndef CORREIO_ROUTER_ROUTING_H
#define CORREIO_ROUTER_ROUTING_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "wire.h"

#define ROUTING_UNSAFE_TEXT "5.1.3 unsafe mailbox name"

/* One recipient's route; every string is malloc'ed and owned by it. */
typedef struct routing_decision {
    Correio__RouteKind route;   /* ROUTE_MAILDIR, ROUTE_RELAY or ROUTE_ERROR */
    char *nexthop;              /* maildir: the address; relay: the domain */
    char *mailbox;              /* maildir: "domain/localpart", else "" */
    char *status_text;          /* error: why, else "" */
} routing_decision;

/* routing_decide - route address.  mydestination is the NULL-terminated
 * list of local domains; an address without a domain (RCPT TO:<postmaster>)
 * is taken as being at myhostname. */
void routing_decide(const char *const *mydestination, const char *myhostname,
                    const char *address, routing_decision *out);
void routing_decision_free(routing_decision *d);

/* routing_mailbox_safe - can local (a lower-cased, unquoted local part)
 * be used as one directory name under mail_root/DOMAIN/? */
bool routing_mailbox_safe(const char *local);

/* routing_route_envelope - decide every recipient of env (logging one
 * line per recipient) and encode env with the routes filled in.  env is
 * not changed.  Returns fresh memory (free it), *len its size. */
uint8_t *routing_route_envelope(const Envelope *env, const config_t *cfg, size_t *len);

#endif
