/* notices.h - the notices delivery sends to a message's sender (RFC 3464
 * DSNs): which recipient needs which notice now, composing it
 * (bounce.c), handing it to an ingress over the submit socket, and
 * marking it sent only once that ingress holds it durably.  So a notice
 * is never lost: a crash before the ingress's answer sends it again (at
 * worst twice).
 *
 * Who gets a notice (Postfix's and RFC 3461's rules):
 *   failed     a recipient failed (or expired in the queue), unless
 *              NOTIFY=NEVER or NOTIFY without FAILURE
 *   delayed    a recipient still deferred delay_warning_time after
 *              arrival (when that is not 0), once, unless NOTIFY excludes
 *              DELAY
 *   delivered  NOTIFY=SUCCESS and the copy was delivered here (Maildir,
 *   relayed    LMTP) or handed to a server without DSN support
 * Never to the null sender; with bounce_only_local_senders only to
 * senders in mydestination and authenticated ones.  The recipients of
 * one message that need the same kind of notice share one.
 *
 * Everything runs on delivery's main thread.
 */
#ifndef CORREIO_DELIVERY_NOTICES_H
#define CORREIO_DELIVERY_NOTICES_H

#include <stdbool.h>
#include <stdint.h>
#include "queue.h"
#include "stage.h"

typedef struct notices notices_t;

notices_t *notices_new(stage_t *st, queue_t *q);
void notices_free(notices_t **n);

/* notices_store - write r back in t: finished (moved to "done") when
 * every recipient is final and no notice is due, else stored.  *pending
 * says some notice is due: call notices_want after the commit.  0, or -1
 * when LMDB refused (abort t). */
int notices_store(const notices_t *n, queue_txn *t, const queue_rec *r, uint64_t now_us,
                  bool *finished, bool *pending);
/* notices_withheld - does bounce_only_local_senders keep notices from
 * env's sender (a sender that is neither <> nor local)? */
bool notices_withheld(const notices_t *n, const Envelope *env);
/* notices_due_any - does some recipient of r need a notice now? */
bool notices_due_any(const notices_t *n, const queue_rec *r, uint64_t now_us);
/* notices_want - qid's record (committed) has notices due: send them. */
void notices_want(notices_t *n, const char *qid);

/* For the main loop: the submit socket to poll, its replies, the timers
 * (sending what is wanted, sending again what got no answer). */
void *notices_socket(notices_t *n);
void notices_receive(notices_t *n);
void notices_run(notices_t *n);
long notices_timeout_ms(const notices_t *n);
/* notices_outstanding - notices wanted or waiting for an answer. */
size_t notices_outstanding(const notices_t *n);

#endif
