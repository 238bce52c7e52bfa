/* qid.h - queue ids, unique across hosts and restarts.
 *
 * A queue id is QID_LEN characters of Crockford base32 (0-9, A-Z without
 * I L O U): 11 characters of wall-clock microseconds, 4 characters of a
 * node number (a hash of the host name and the process id, so two
 * processes or two hosts do not collide), 2 characters of a counter for
 * ids made in the same microsecond.  Ids from one process sort by time.
 */
#ifndef CORREIO_QID_H
#define CORREIO_QID_H

#include <stdbool.h>
#include <stddef.h>

#define QID_LEN 17

/* qid_init - seed the node number from host and pid; call once. */
void qid_init(const char *hostname);
/* qid_next - write the next id and a NUL into out[QID_LEN + 1]. */
void qid_next(char out[QID_LEN + 1]);
/* qid_valid - is s (len bytes) a syntactically valid queue id? */
bool qid_valid(const char *s, size_t len);

#endif
