/* events.h - events from delivery back to the ingress that owns each
 * envelope's spool entry (Envelope.origin): one PUSH socket per distinct
 * origin, connected on first use and kept.  Sends never block: an event
 * that cannot be sent is lost, the ingress sends the envelope again after
 * pipeline_ack_timeout and delivery acks it again. */
#ifndef CORREIO_DELIVERY_EVENTS_H
#define CORREIO_DELIVERY_EVENTS_H

#include "wire.h"

typedef struct events events_t;

/* events_new - stage and node go into every event; hwm per socket.
 * zctx must outlive the result. */
events_t *events_new(void *zctx, int hwm, const char *stage, const char *node);
/* events_send - send {queue_id, kind, text} to origin.  Returns 0, or -1
 * when it could not be sent (logged at debug level, or warned for a bad
 * origin). */
int events_send(events_t *ev, const char *origin, const char *queue_id,
                Correio__EventKind kind, const char *text);
/* events_free - close every socket. */
void events_free(events_t **ev);

#endif
