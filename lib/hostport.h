/* hostport.h - "host:port", "[v6addr]:port" and ":port", as the
 * smtpd_listen family of parameters writes a listener.  Read by the
 * ingress (to bind) and by delivery (to know this host's addresses). */
#ifndef CORREIO_HOSTPORT_H
#define CORREIO_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/* hostport_split - spec into host (brackets removed, "" for ":port";
 * size bytes with the NUL) and *port, pointing at the text after the
 * colon in spec (not checked: a number or a service name).  false when
 * spec has no ":port", a '[' without "]:", or a host longer than fits. */
bool hostport_split(const char *spec, char *host, size_t size, const char **port);

#endif
