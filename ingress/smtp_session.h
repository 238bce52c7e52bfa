/* smtp_session.h - one SMTP session's state machine, independent of
 * sockets: the server feeds it the client's bytes and sends what it
 * appends to the output buffer.
 *
 * Commands are dispatched from a table of {verb, allowed states, handler}.
 * Whenever an answer depends on something slow - the spool commit after
 * DATA, a DNS lookup for a restriction, a password check, a TLS handshake
 * - the session "waits" and takes no more input, so pipelined commands are
 * answered in order; a command that waited for DNS runs again when the
 * answer is there.
 */
#ifndef CORREIO_SMTP_SESSION_H
#define CORREIO_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "buf.h"
#include "ingress.h"

typedef struct smtp_session smtp_session_t;

/* smtp_session_new - a session for a client at peer on a listener of the
 * given role; replies go to out (owned by the caller, which must outlive
 * the session); cookie is what the session hands back to the server
 * (ig->resume, ig->sleep_until) and the spool with its commits. */
smtp_session_t *smtp_session_new(ingress_t *ig, listener_role role,
                                 const struct sockaddr *peer, socklen_t peerlen,
                                 buf_t *out, void *cookie);
/* smtp_session_free - logs "disconnect from" with the command counts and
 * abandons lookups and password checks still running. */
void smtp_session_free(smtp_session_t **s);

/* smtp_session_start - look the client's name up (smtpd_peername_lookup),
 * then send the 220 banner (at once, or when the lookup ends: the session
 * waits meanwhile). */
void smtp_session_start(smtp_session_t *s);
/* smtp_session_input - process bytes p[0..n) from the client: whole
 * command lines, AUTH responses and DATA content.  Returns how many were
 * consumed; the caller keeps the rest (a partial line) and offers it again
 * with more.  Consumes nothing while waiting or closing. */
size_t smtp_session_input(smtp_session_t *s, const char *p, size_t n);
/* smtp_session_waiting - is the session waiting (spool commit, DNS, a
 * password check, a failure delay, a TLS handshake)?  The server feeds it
 * no input meanwhile; ig->resume says when the wait is over. */
bool smtp_session_waiting(const smtp_session_t *s);
/* smtp_session_committing - is a message of this session in the spool
 * writer's hands (the connection must outlive a hang-up until then)? */
bool smtp_session_committing(const smtp_session_t *s);
/* smtp_session_closing - should the server hang up once out is sent? */
bool smtp_session_closing(const smtp_session_t *s);
/* smtp_session_committed - the spool finished the waiting message: rc 0
 * durable (answer 250 with the queue id) or an LMDB error (451). */
void smtp_session_committed(smtp_session_t *s, int rc);
/* smtp_session_wake - the time asked for with ig->sleep_until came. */
void smtp_session_wake(smtp_session_t *s);
/* smtp_session_auth_done - auth_pool_run's callback (cookie: the session). */
void smtp_session_auth_done(void *session, bool ok);

/* smtp_session_wants_tls - the session said "220 Ready to start TLS":
 * the server sends what is in out, throws away any input the client sent
 * after STARTTLS (RFC 3207 section 6), and runs the handshake. */
bool smtp_session_wants_tls(const smtp_session_t *s);
/* smtp_session_tls_started - the handshake is done: the session forgets
 * everything it knew from the client (HELO, transaction, AUTH) as RFC
 * 3207 requires. */
void smtp_session_tls_started(smtp_session_t *s, const char *protocol, const char *cipher,
                              int bits);
/* smtp_session_tls_failed - the handshake failed (logged once). */
void smtp_session_tls_failed(smtp_session_t *s, const char *why);

/* smtp_session_timeout - idle too long: 421 and closing. */
void smtp_session_timeout(smtp_session_t *s);
/* smtp_session_shutdown - the ingress is stopping: 421 and closing. */
void smtp_session_shutdown(smtp_session_t *s);
/* smtp_session_in_data - between DATA's 354 and the end of the content:
 * a stopping server lets it finish (shutdown_timeout). */
bool smtp_session_in_data(const smtp_session_t *s);
/* smtp_session_lost - the client went away (logged at free). */
void smtp_session_lost(smtp_session_t *s, const char *why);

#endif
