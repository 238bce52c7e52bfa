/* admin.h - the admin socket every stage answers (REQ -> REP), and the
 * client side that `correio` uses.
 *
 * Requests are AdminRequest{command, args}; every stage answers "ping"
 * itself (status 0, text "STAGE NODE pid=N"), and "ready" (status 0, or
 * 1 with the reason, from health.h's check); other commands go to the
 * stage's handler.  Unknown commands get status 2 "unknown command".
 */
#ifndef CORREIO_ADMIN_H
#define CORREIO_ADMIN_H

#include "wire.h"

/* The handler fills reply (status, text, entries) using the helpers
 * below; admin_serve frees what they allocated after sending. */
typedef void (*admin_handler)(void *ctx, const AdminRequest *req, AdminReply *reply);

/* admin_serve - receive one request on a readable REP socket, answer it.
 * Bad frames get status 1 and a text; the stage goes on. */
void admin_serve(void *rep, const char *stage, admin_handler handler, void *ctx);

/* Reply helpers: strings are copied.  A handler may also set an
 * entry's header_from, subject and hits, and a recipient's original,
 * to malloc'ed strings: they are freed with the rest. */
void admin_reply_text(AdminReply *reply, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
QueueEntry *admin_reply_add_entry(AdminReply *reply, const char *queue_id,
                                  const char *state, const char *sender);
void admin_entry_add_rcpt(QueueEntry *entry, const char *address,
                          Correio__RcptState state, const char *status_text);
void admin_entry_set_reason(QueueEntry *entry, const char *reason);

/* admin_call - send command to endpoint and wait up to timeout_ms for the
 * reply.  Returns the reply (free with wire_free_admin_reply) or NULL
 * with *err malloc'ed ("no answer from ENDPOINT within N ms", ...). */
AdminReply *admin_call(void *zctx, const char *endpoint, const char *command,
                       const char *const *args, int timeout_ms, char **err);

#endif
