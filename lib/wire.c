/* wire.c - encoding and strict decoding of correio.proto messages.
 *
 * A frame from another process is outside input: anything that does not
 * decode, carries another version, or lacks what receivers rely on is
 * logged (size and source) and dropped, never trusted.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "qid.h"
#include "wire.h"
#include "xalloc.h"

/* pack - any message into fresh memory. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    uint8_t *out = xmalloc(size ? size : 1);
    size_t done = protobuf_c_message_pack(m, out);

    if (done != size)
        log_panic("wire pack %s: packed %zu of %zu bytes", m->descriptor->name, done, size);
    *len = size;
    return out;
}

uint8_t *wire_pack_envelope(const Envelope *e, size_t *len)
{
    return pack(&e->base, len);
}

uint8_t *wire_pack_event(const Event *e, size_t *len)
{
    return pack(&e->base, len);
}

uint8_t *wire_pack_admin_request(const AdminRequest *r, size_t *len)
{
    return pack(&r->base, len);
}

uint8_t *wire_pack_admin_reply(const AdminReply *r, size_t *len)
{
    return pack(&r->base, len);
}

uint8_t *wire_pack_submit_request(const SubmitRequest *r, size_t *len)
{
    return pack(&r->base, len);
}

uint8_t *wire_pack_submit_reply(const SubmitReply *r, size_t *len)
{
    return pack(&r->base, len);
}

uint8_t *wire_pack_policy_request(const PolicyRequest *r, size_t *len)
{
    return pack(&r->base, len);
}

uint8_t *wire_pack_policy_reply(const PolicyReply *r, size_t *len)
{
    return pack(&r->base, len);
}

static void dropped(const char *what, const char *from, size_t len, const char *reason)
{
    log_warn("dropped bad frame from %s: %zu bytes: %s: %s",
             from ? from : "(unknown)", len, what, reason);
}

/* unpack - decode and check the version; NULL after a warning. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *desc, const char *what,
                                const void *data, size_t len, const char *from)
{
    ProtobufCMessage *m;

    if (data == NULL && len > 0) {
        dropped(what, from, len, "no data");
        return NULL;
    }
    m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m == NULL) {
        dropped(what, from, len, "does not decode");
        return NULL;
    }
    return m;
}

static bool version_ok(ProtobufCMessage *m, uint32_t version, const char *what,
                       const char *from, size_t len)
{
    char reason[64];

    if (version == WIRE_VERSION)
        return true;
    snprintf(reason, sizeof(reason), "version %u, expected %u", version, WIRE_VERSION);
    dropped(what, from, len, reason);
    protobuf_c_message_free_unpacked(m, NULL);
    return false;
}

static bool qid_ok(ProtobufCMessage *m, const char *qid, const char *what,
                   const char *from, size_t len)
{
    if (qid && qid_valid(qid, strlen(qid)))
        return true;
    dropped(what, from, len, "missing or malformed queue_id");
    protobuf_c_message_free_unpacked(m, NULL);
    return false;
}

Envelope *wire_unpack_envelope(const void *data, size_t len, const char *from)
{
    Envelope *e = (Envelope *)unpack(&correio__envelope__descriptor, "envelope",
                                     data, len, from);

    if (e == NULL || !version_ok(&e->base, e->version, "envelope", from, len)
        || !qid_ok(&e->base, e->queue_id, "envelope", from, len))
        return NULL;
    if (e->n_rcpt == 0) {
        dropped("envelope", from, len, "no recipients");
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return NULL;
    }
    return e;
}

Event *wire_unpack_event(const void *data, size_t len, const char *from)
{
    Event *e = (Event *)unpack(&correio__event__descriptor, "event", data, len, from);

    if (e == NULL || !version_ok(&e->base, e->version, "event", from, len)
        || !qid_ok(&e->base, e->queue_id, "event", from, len))
        return NULL;
    return e;
}

AdminRequest *wire_unpack_admin_request(const void *data, size_t len, const char *from)
{
    AdminRequest *r = (AdminRequest *)unpack(&correio__admin_request__descriptor,
                                             "admin request", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "admin request", from, len))
        return NULL;
    return r;
}

AdminReply *wire_unpack_admin_reply(const void *data, size_t len, const char *from)
{
    AdminReply *r = (AdminReply *)unpack(&correio__admin_reply__descriptor,
                                         "admin reply", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "admin reply", from, len))
        return NULL;
    return r;
}

SubmitRequest *wire_unpack_submit_request(const void *data, size_t len, const char *from)
{
    SubmitRequest *r = (SubmitRequest *)unpack(&correio__submit_request__descriptor,
                                               "submit request", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "submit request", from, len))
        return NULL;
    if (!r->envelope || r->envelope->n_rcpt == 0) {
        dropped("submit request", from, len, "no envelope or no recipients");
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return NULL;
    }
    return r;
}

SubmitReply *wire_unpack_submit_reply(const void *data, size_t len, const char *from)
{
    SubmitReply *r = (SubmitReply *)unpack(&correio__submit_reply__descriptor,
                                           "submit reply", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "submit reply", from, len))
        return NULL;
    return r;
}

PolicyRequest *wire_unpack_policy_request(const void *data, size_t len, const char *from)
{
    PolicyRequest *r = (PolicyRequest *)unpack(&correio__policy_request__descriptor,
                                               "policy request", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "policy request", from, len))
        return NULL;
    if (r->kind == CORREIO__POLICY_KIND__POLICY_UNSPECIFIED) {
        dropped("policy request", from, len, "no kind");
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return NULL;
    }
    return r;
}

PolicyReply *wire_unpack_policy_reply(const void *data, size_t len, const char *from)
{
    PolicyReply *r = (PolicyReply *)unpack(&correio__policy_reply__descriptor,
                                           "policy reply", data, len, from);

    if (r == NULL || !version_ok(&r->base, r->version, "policy reply", from, len))
        return NULL;
    return r;
}

#define WIRE_FREE(fn, type)                                         \
    void fn(type **p)                                               \
    {                                                               \
        if (p && *p) {                                              \
            protobuf_c_message_free_unpacked(&(*p)->base, NULL);    \
            *p = NULL;                                              \
        }                                                           \
    }

WIRE_FREE(wire_free_envelope, Envelope)
WIRE_FREE(wire_free_event, Event)
WIRE_FREE(wire_free_admin_request, AdminRequest)
WIRE_FREE(wire_free_admin_reply, AdminReply)
WIRE_FREE(wire_free_submit_request, SubmitRequest)
WIRE_FREE(wire_free_submit_reply, SubmitReply)
WIRE_FREE(wire_free_policy_request, PolicyRequest)
WIRE_FREE(wire_free_policy_reply, PolicyReply)
