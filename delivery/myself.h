/* myself.h - the addresses of this host, as the SMTP client must know
 * them to notice that an MX host is this host ("mail loops back to
 * myself"): every smtpd_listen address (a wildcard 0.0.0.0, [::] or an
 * empty host stands for every interface address), and proxy_interfaces
 * (addresses that reach this host through NAT or a proxy).
 *
 * A listener's port counts: an MX at this host's address but on another
 * port is another server (tests and multi-instance hosts run like that).
 * proxy_interfaces have no port and match any port.
 */
#ifndef CORREIO_DELIVERY_MYSELF_H
#define CORREIO_DELIVERY_MYSELF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct myself myself_t;

/* myself_new - from the smtpd_listen items ("host:port", "[v6]:port",
 * ":port", "*:port") and the proxy_interfaces items (addresses, bracketed
 * or not; "localhost" is 127.0.0.1 and ::1).  Other host names are
 * skipped with a warning (this module never resolves).  NULL and *err
 * (malloc'ed, names the parameter) on a malformed item. */
myself_t *myself_new(const char *const *listen, const char *const *proxy, char **err);
void myself_free(myself_t **m);

/* myself_has - is sa (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as
 * IPv4) one of this host's addresses with the given port? */
bool myself_has(const myself_t *m, const struct sockaddr *sa);
/* myself_has_text - the same for an address in text form and a port. */
bool myself_has_text(const myself_t *m, const char *addr, unsigned port);
/* myself_count - how many addresses the set holds (for logs and tests). */
size_t myself_count(const myself_t *m);

#endif
