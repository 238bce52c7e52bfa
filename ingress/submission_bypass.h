/* submission_bypass.h - who may send on the submission listeners without
 * authenticating (IceWarp's bypass list).  One entry a line (or several
 * separated by ';'), '#' starts a comment:
 *   i:192.0.2.0/24     clients in this network (an address alone is /32 or /128)
 *   s:app@example.com  this sender address
 *   s:@example.com     any sender in this domain
 *   l:                 any sender that is a local account (users_file)
 */
#ifndef CORREIO_SUBMISSION_BYPASS_H
#define CORREIO_SUBMISSION_BYPASS_H

#include <stdbool.h>
#include <sys/socket.h>
#include "ingress.h"

typedef struct bypass bypass_t;

/* bypass_open - read path; NULL and *err (malloc'd, "PATH:LINE: problem")
 * on a bad line or an unreadable file. */
bypass_t *bypass_open(const char *path, char **err);
void bypass_free(bypass_t **b);

/* bypass_match - may this client send as sender without AUTH? */
bool bypass_match(const bypass_t *b, ingress_t *ig, const struct sockaddr *client,
                  const char *sender);

#endif
