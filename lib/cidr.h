/* cidr.h - lists of networks (mynetworks): "127.0.0.0/8", "192.0.2.1",
 * "[::1]/128", "::1", "2001:db8::/32".  IPv4-mapped IPv6 clients
 * (::ffff:192.0.2.1) match IPv4 entries. */
#ifndef CORREIO_CIDR_H
#define CORREIO_CIDR_H

#include <stdbool.h>
#include <sys/socket.h>

typedef struct cidr_list cidr_list_t;

/* cidr_list_parse - items is NULL-terminated; on a bad item returns NULL
 * and *err (malloc'ed) names it. */
cidr_list_t *cidr_list_parse(const char *const *items, char **err);
bool cidr_list_match(const cidr_list_t *list, const struct sockaddr *addr);
/* cidr_list_match_text - the same for a textual address. */
bool cidr_list_match_text(const cidr_list_t *list, const char *ip);
void cidr_list_free(cidr_list_t **list);

#endif
