/* alias.h - virtual_alias_maps and alias_maps expansion: the router
 * expands each recipient before routing it, the ingress asks whether a
 * local address is an alias (reject_unlisted_recipient).
 *
 * One recipient becomes zero or more final addresses, as Postfix's
 * virtual(5) and aliases(5):
 *   virtual_alias_maps (any domain): the full address, then (when
 *     recipient_delimiter is set and the local part has an extension) the
 *     address without it, then "@domain".  A match on a key without the
 *     extension carries the extension over to every result
 *     (user+foo -> bob@y gives bob+foo@y), as Postfix's
 *     propagate_unmatched_extensions = virtual;
 *   alias_maps (domains in mydestination only, asked when no virtual
 *     alias matched): the local part, then the local part without the
 *     extension.  A result without '@' is a local name at the same domain.
 * A value is addresses separated by commas and/or white space.  Every
 * result is expanded again.  A result equal to the address being expanded
 * ("a@x  a@x, b@y", keep a copy) is final; a result equal to an address
 * higher up the path is final when that address kept a copy of itself,
 * else a loop.  The final list holds each address once.
 */
#ifndef CORREIO_ROUTER_ALIAS_H
#define CORREIO_ROUTER_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"

#define ALIAS_TOO_DEEP_TEXT  "5.4.6 alias expansion too deep"
#define ALIAS_TOO_LARGE_TEXT "5.4.6 alias expansion too large"

/* The tables: virtual_alias_maps and alias_maps. */
typedef struct alias alias_t;

/* alias_open - open the tables cfg names; NULL with *err (malloc'ed, the
 * caller frees it) naming the table when one cannot be opened. */
alias_t *alias_open(const config_t *cfg, char **err);
/* alias_close - free *a and set it to NULL; NULL is fine. */
void alias_close(alias_t **a);

/* What one recipient expanded to; every string is malloc'ed, owned here. */
typedef struct alias_expansion {
    char  **addr;       /* final addresses, in order, no duplicates */
    size_t  n;
    bool    expanded;   /* a table answered for the address */
    char   *error;      /* NULL, or why it cannot be delivered (5.4.6 ...);
                         * then n is 0 */
    const char *table;  /* the kind of table that answered first:
                         * "virtual_alias_maps" or "alias_maps"; or "" */
} alias_expansion;

/* alias_expand - expand address under cfg.  An address without a domain
 * is taken as being at myhostname for the lookups.  Returns 0 with *out
 * filled (an address no table knows expands to itself), or -1 (a warning
 * logged, *out empty) when a table cannot be read now or holds a value
 * that is not allowed: the recipient waits until that is fixed. */
int alias_expand(alias_t *a, const config_t *cfg, const char *address, alias_expansion *out);
void alias_expansion_free(alias_expansion *x);

/* alias_extension - the delimiter that starts local's extension (the
 * first byte of delims in local, not its first byte), or NULL when local
 * (n bytes) has none or delims is empty. */
const char *alias_extension(const char *local, size_t n, const char *delims);

#endif
