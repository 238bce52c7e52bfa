/* submit_server.h - the ingress's submit socket: a ROUTER bound on
 * ingress_submit_endpoint where delivery (bounces) and the fetcher hand
 * over whole messages (../DESIGN.md "Sockets"; the client side is
 * lib/submit_client.h).
 *
 * A request is checked like an SMTP transaction would be (recipients,
 * addresses, size, line ends, the DSN fields), gets a queue id and a
 * Received: line, and goes through the same spool group commit as a
 * message received over SMTP.  Only once the spool says it is durable
 * does the caller get status 0 ("250 2.0.0 Ok: queued as QID"), and the
 * message goes down the pipeline.  Refusals: status 5 (the request can
 * never succeed), status 4 (try again: spool full or a write error).
 * A frame that is not a request is logged and dropped.
 *
 * The request's ref is its idempotency key (up to SPOOL_REF_MAX bytes;
 * "" means none): a ref taken in the last SPOOL_REF_LIFETIME_S is
 * answered status 0 with its first queue id, and nothing new is stored.
 * A caller must never reuse a ref for another message.
 *
 * Frames: [identity][empty][SubmitRequest] in, [identity][empty]
 * [SubmitReply] out: what a DEALER that sends an empty delimiter first
 * (submit_client.c) or a REQ socket produces.
 */
#ifndef CORREIO_SUBMIT_SERVER_H
#define CORREIO_SUBMIT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include "ingress.h"
#include "spool.h"

typedef struct submit_server submit_server_t;

/* submit_server_new - a ROUTER (hwm) bound on endpoint; fatal when it
 * cannot bind.  Uses ig's spool, pipeline and limits. */
submit_server_t *submit_server_new(ingress_t *ig, void *zctx, const char *endpoint, int hwm);
/* submit_server_free - close the socket; requests still being committed
 * get no reply (their callers send them again). */
void submit_server_free(submit_server_t **ss);
/* submit_server_socket - for ZMQ_FD / ZMQ_EVENTS. */
void *submit_server_socket(submit_server_t *ss);
/* submit_server_drain - handle at most max waiting requests; returns how
 * many messages were taken off the socket. */
int submit_server_drain(submit_server_t *ss, int max);
/* submit_server_owns - is this spool completion's cookie one of ours? */
bool submit_server_owns(const submit_server_t *ss, const void *cookie);
/* submit_server_committed - the spool finished the put d (ours): answer
 * the caller and, when durable, hand the envelope to the pipeline (d's
 * data is taken over then, and set to NULL).  d stays the caller's. */
void submit_server_committed(submit_server_t *ss, spool_done *d);
/* submit_server_pending - requests written to the spool but not answered. */
size_t submit_server_pending(const submit_server_t *ss);

#endif
