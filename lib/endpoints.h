/* endpoints.h - what a configured list of ZeroMQ endpoints stands for
 * (DESIGN.md "Sockets"): tcp://NAME:PORT is every address NAME has (A
 * and AAAA, asked with the dns_* parameters, since libzmq would connect
 * to the first one only), one connectable endpoint each.  An IP literal
 * ("tcp://192.0.2.1:7000", "tcp://[2001:db8::1]:7000"), an ipc:// or any
 * other endpoint passes as it is; "localhost" is never looked up (RFC
 * 6761): it is 127.0.0.1 and ::1.  Shared by `correio` (admin_nodes.c)
 * and the policy client, so both see the same replicas.
 */
#ifndef CORREIO_ENDPOINTS_H
#define CORREIO_ENDPOINTS_H

#include "config.h"
#include "dns.h"

/* endpoints_resolve - the endpoints one configured endpoint stands for
 * (NULL-terminated, malloc'd, free with endpoints_free).  *resolver is
 * made on first need with cfg's dns_servers, dns_timeout and dns_tries,
 * and kept for the next call (the caller dns_frees it).  Blocks while it
 * resolves.  NULL and *err (malloc'd) when the endpoint is malformed, is
 * a wildcard, or the name has no address (or cannot be looked up now). */
char **endpoints_resolve(const config_t *cfg, dns_t **resolver, const char *endpoint,
                         char **err);

/* endpoints_expand - every endpoint of the list (NULL-terminated),
 * resolved, each address once, in the order given.  NULL and *err
 * ("ENDPOINT: what") at the first one that does not resolve. */
char **endpoints_expand(const config_t *cfg, const char *const *endpoints, char **err);

/* endpoints_free - free a list from the functions above; *list becomes NULL. */
void endpoints_free(char ***list);

#endif
