/* wire.h - encoding and strict decoding of correio.proto messages.
 *
 * Decoding checks the frame decodes, that `version` is one this build
 * knows, and the fields every receiver relies on (an envelope has a valid
 * queue id and at least one recipient).  A frame that fails is logged
 * with its size and source and dropped: the caller gets NULL and goes on.
 */
#ifndef CORREIO_WIRE_H
#define CORREIO_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "correio.pb-c.h"

#define WIRE_VERSION 1

typedef Correio__Envelope     Envelope;
typedef Correio__Recipient    Recipient;
typedef Correio__Client       Client;
typedef Correio__Verdict      Verdict;
typedef Correio__Event        Event;
typedef Correio__AdminRequest AdminRequest;
typedef Correio__AdminReply   AdminReply;
typedef Correio__QueueEntry   QueueEntry;
typedef Correio__SubmitRequest SubmitRequest;
typedef Correio__SubmitReply  SubmitReply;
typedef Correio__PolicyRequest PolicyRequest;
typedef Correio__PolicyReply  PolicyReply;
typedef Correio__PolicyEntry  PolicyEntry;

/* wire_pack_* - encode into fresh memory (xmalloc); *len gets the size. */
uint8_t *wire_pack_envelope(const Envelope *e, size_t *len);
uint8_t *wire_pack_event(const Event *e, size_t *len);
uint8_t *wire_pack_admin_request(const AdminRequest *r, size_t *len);
uint8_t *wire_pack_admin_reply(const AdminReply *r, size_t *len);
uint8_t *wire_pack_submit_request(const SubmitRequest *r, size_t *len);
uint8_t *wire_pack_submit_reply(const SubmitReply *r, size_t *len);
uint8_t *wire_pack_policy_request(const PolicyRequest *r, size_t *len);
uint8_t *wire_pack_policy_reply(const PolicyReply *r, size_t *len);

/* wire_unpack_* - strict decode; NULL (after log_warn naming `from`) on a
 * bad frame.  Free the result with wire_free_*. */
Envelope     *wire_unpack_envelope(const void *data, size_t len, const char *from);
Event        *wire_unpack_event(const void *data, size_t len, const char *from);
AdminRequest *wire_unpack_admin_request(const void *data, size_t len, const char *from);
AdminReply   *wire_unpack_admin_reply(const void *data, size_t len, const char *from);
/* A submit request's envelope has no queue id yet (the ingress makes it),
 * but at least one recipient. */
SubmitRequest *wire_unpack_submit_request(const void *data, size_t len, const char *from);
SubmitReply  *wire_unpack_submit_reply(const void *data, size_t len, const char *from);
/* a policy request must name a kind it knows */
PolicyRequest *wire_unpack_policy_request(const void *data, size_t len, const char *from);
PolicyReply  *wire_unpack_policy_reply(const void *data, size_t len, const char *from);

void wire_free_envelope(Envelope **e);
void wire_free_event(Event **e);
void wire_free_admin_request(AdminRequest **r);
void wire_free_admin_reply(AdminReply **r);
void wire_free_submit_request(SubmitRequest **r);
void wire_free_submit_reply(SubmitReply **r);
void wire_free_policy_request(PolicyRequest **r);
void wire_free_policy_reply(PolicyReply **r);

#endif
