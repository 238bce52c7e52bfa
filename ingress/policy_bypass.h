/* policy_bypass.h - the bypass lists of the policy checks (rbl_bypass,
 * greylist_bypass, intrusion_bypass): who a check leaves alone.
 *
 * The value is a list; each item is one of
 *   192.0.2.0/24, 192.0.2.7, [2001:db8::]/32   the client's address
 *   mx.example.com                             the client's verified name
 *   .example.com                               ... or any name under it
 *   user@example.com                           the envelope sender (any case)
 *   @example.com                               any sender in that domain
 *   /path/file                                 more items, one a line, '#' comments
 * Recipient items (greylist_bypass) are written like sender items; the
 * caller says which address it asks about.
 */
#ifndef CORREIO_INGRESS_POLICY_BYPASS_H
#define CORREIO_INGRESS_POLICY_BYPASS_H

#include <stdbool.h>
#include <sys/socket.h>

typedef struct policy_bypass policy_bypass_t;

/* policy_bypass_open - parse the items of param (NULL-terminated, as
 * config_list gives them).  NULL and *err (malloc'd, "PARAM: item: what"
 * or "FILE:LINE: what") on a bad item or an unreadable file.  An empty
 * list gives an empty (never matching) bypass, not NULL. */
policy_bypass_t *policy_bypass_open(const char *param, const char *const *items, char **err);
void policy_bypass_free(policy_bypass_t **b);

/* policy_bypass_client - does the list name this client (address, or
 * verified name; name may be NULL or "unknown")? */
bool policy_bypass_client(const policy_bypass_t *b, const struct sockaddr *addr,
                          const char *name);
/* policy_bypass_address - does the list name this address (a sender or
 * a recipient; "" for <> never matches)? */
bool policy_bypass_address(const policy_bypass_t *b, const char *address);

#endif
