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

/* endpoints_name - for tcp://NAME:PORT whose NAME must be looked up
 * (not an IP literal, not "localhost", not "*"): 1 with *host and *port
 * (malloc'd).  0 for an endpoint that stands for itself or for fixed
 * addresses (ipc://, inproc://, IP literals, localhost: endpoints_resolve
 * gives them without DNS).  -1 and *err (malloc'd) when it is malformed
 * or a wildcard. */
int endpoints_name(const char *endpoint, char **host, char **port, char **err);

/* endpoints_join - "tcp://ADDR:PORT" ("tcp://[v6]:PORT"), malloc'd. */
char *endpoints_join(const char *addr, const char *port);

/* endpoints_bind_form - what a consumer binds for endpoint (malloc'd):
 * tcp://NAME:PORT with NAME not an IP literal, "*" or "localhost" binds
 * host "*" (every interface) on PORT, since NAME names the service this host is one replica of
 * (the same parameter then serves the consumer and its producers);
 * anything else as it is. */
char *endpoints_bind_form(const char *endpoint);

/* endpoints_advertise - the endpoint producers elsewhere reach this
 * process at, for a consumer bound on endpoint (malloc'd): advertise
 * when it is not empty; endpoint itself when it is an ipc://, inproc://
 * or an IP literal; for tcp://NAME:PORT (or a wildcard) this host's own
 * address with PORT.  The own address is the one the kernel would send
 * from to NAME's first address (a UDP connect, no packet sent: the
 * address the replicas see us by); when NAME does not resolve, the first
 * non-loopback address of gethostname(); then of any interface that is
 * up; 127.0.0.1 at last (logged).  Blocks while it resolves: call it at
 * start. */
char *endpoints_advertise(const config_t *cfg, const char *endpoint, const char *advertise);

/* endpoints_free - free a list from the functions above; *list becomes NULL. */
void endpoints_free(char ***list);

#endif
