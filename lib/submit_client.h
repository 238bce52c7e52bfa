/* submit_client.h - handing a message to an ingress over its submit
 * socket (DEALER -> ROUTER, ../DESIGN.md "Sockets"): delivery's bounces,
 * the fetcher's messages.  The caller polls the socket (ZMQ_POLLIN) and
 * matches replies to requests by ref; a request with no reply in time is
 * simply sent again (the ingress may then hold two copies: at-least-once,
 * as everywhere in the pipeline). */
#ifndef CORREIO_SUBMIT_CLIENT_H
#define CORREIO_SUBMIT_CLIENT_H

#include "config.h"
#include "wire.h"

typedef struct submit_client submit_client_t;

/* submit_client_new - a DEALER connected to every ingress endpoint
 * stands for (hwm messages queued at most); tcp://NAME:PORT is looked up
 * again every discovery_interval, as sends and receives happen
 * (lib/discovery.h).  cfg: the dns_* parameters; NULL for the defaults;
 * only read here. */
submit_client_t *submit_client_new(void *zctx, const config_t *cfg, const char *endpoint,
                                   int hwm);
void submit_client_free(submit_client_t **c);
/* submit_client_socket - for zmq_poll. */
void *submit_client_socket(submit_client_t *c);
/* submit_client_send - send env under ref without blocking: 0, or -1
 * when it cannot go now (no ingress connected, queue full; debug log). */
int submit_client_send(submit_client_t *c, const char *ref, const Envelope *env);
/* submit_client_receive - one waiting reply, or NULL when there is none
 * (a bad frame is logged and skipped).  Free with wire_free_submit_reply. */
SubmitReply *submit_client_receive(submit_client_t *c);

#endif
