/* smtp_session.h - one SMTP session's state machine, independent of
 * sockets: the server feeds it the client's bytes and sends what it
 * appends to the output buffer.
 *
 * Commands are dispatched from a table of {verb, allowed states, handler}.
 * A message that finished DATA goes to the spool; until its commit comes
 * back (smtp_session_committed) the session is "waiting" and takes no more
 * input, so pipelined commands after the data are answered in order.
 */
#ifndef CORREIO_SMTP_SESSION_H
#define CORREIO_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "buf.h"
#include "ingress.h"

typedef struct smtp_session smtp_session_t;

/* smtp_session_new - a session for a client at peer; replies go to out
 * (owned by the caller, which must outlive the session); cookie is what
 * the spool hands back with this session's commits (the server's
 * connection).  Logs "connect from". */
smtp_session_t *smtp_session_new(ingress_t *ig, const struct sockaddr *peer,
                                 socklen_t peerlen, buf_t *out, void *cookie);
/* smtp_session_free - logs "disconnect from" with the command counts. */
void smtp_session_free(smtp_session_t **s);

/* smtp_session_greet - the 220 banner. */
void smtp_session_greet(smtp_session_t *s);
/* smtp_session_input - process bytes p[0..n) from the client: whole
 * command lines and DATA content.  Returns how many were consumed; the
 * caller keeps the rest (a partial line) and offers it again with more.
 * Consumes nothing while waiting or closing. */
size_t smtp_session_input(smtp_session_t *s, const char *p, size_t n);
/* smtp_session_waiting - is a message of this session being committed? */
bool smtp_session_waiting(const smtp_session_t *s);
/* smtp_session_closing - should the server hang up once out is sent? */
bool smtp_session_closing(const smtp_session_t *s);
/* smtp_session_committed - the spool finished the waiting message: rc 0
 * durable (answer 250 with the queue id) or an LMDB error (451). */
void smtp_session_committed(smtp_session_t *s, int rc);
/* smtp_session_timeout - idle too long: 421 and closing. */
void smtp_session_timeout(smtp_session_t *s);
/* smtp_session_shutdown - the ingress is stopping: 421 and closing. */
void smtp_session_shutdown(smtp_session_t *s);
/* smtp_session_lost - the client went away (logged at free). */
void smtp_session_lost(smtp_session_t *s, const char *why);

#endif
