/* transport.h - transport specifications, as transport_maps values and
 * local_transport write them (Postfix's transport(5) "transport:nexthop"):
 *
 *   local, maildir             the local Maildir (no next hop)
 *   smtp:, relay:              SMTP to the MX hosts of the recipient's domain
 *   smtp:[host]:port, smtp:host, smtp:host:port, smtp:[host]
 *                              SMTP to that next hop (relayhost.h forms,
 *                              never with credentials); relay: is the same
 *   lmtp:unix:/path            LMTP over a UNIX socket (absolute path)
 *   lmtp:[host]:port, lmtp:host:port, lmtp:inet:host:port
 *                              LMTP over TCP (no MX lookup)
 *   error:5.1.1 text           fail the recipient with that text; a text
 *                              without a 5.X.Y status gets "5.0.0 " in
 *                              front, an empty one a default text
 *   discard:, discard:text     drop the recipient's copy (text is logged)
 *
 * Transport names are case-insensitive; white space around the whole
 * specification is ignored.
 */
#ifndef CORREIO_TRANSPORT_H
#define CORREIO_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TRANSPORT_MAILDIR,
    TRANSPORT_SMTP,
    TRANSPORT_LMTP,
    TRANSPORT_ERROR,
    TRANSPORT_DISCARD,
} transport_kind;

/* A bit per kind, for the kinds a parameter allows (config_params.c puts
 * such a mask in a PARAM_TRANSPORT row's max; 0 allows every kind). */
#define TRANSPORT_ALLOW(kind) (1LL << (kind))

#define TRANSPORT_NEXTHOP_MAX 300
#define TRANSPORT_TEXT_MAX    512

/* The text error: uses when the table gives none (Postfix's error(8)
 * default has no better words either). */
#define TRANSPORT_ERROR_DEFAULT "5.0.0 recipient address rejected by the transport table"

typedef struct transport {
    transport_kind kind;
    /* SMTP: "" (the recipient's domain, MX lookup), "[host]:port",
     *       "[host]", "host:port" or "host", as relayhost_nexthop writes it;
     * LMTP: "unix:/path", "[host]:port" or "host:port";
     * otherwise "". */
    char nexthop[TRANSPORT_NEXTHOP_MAX + 1];
    /* ERROR: "5.X.Y text"; DISCARD: the text given, maybe ""; else "". */
    char text[TRANSPORT_TEXT_MAX + 1];
} transport_t;

/* transport_parse - parse spec into *out.  Returns 0, or -1 with a reason
 * in err ("unknown transport \"foo\"", "lmtp: needs a next hop", "smtp:
 * bad port 99999") when spec is malformed; *out is then undefined. */
int transport_parse(const char *spec, transport_t *out, char *err, size_t errsize);

/* transport_kind_name - "maildir", "smtp", "lmtp", "error", "discard". */
const char *transport_kind_name(transport_kind kind);

#endif
