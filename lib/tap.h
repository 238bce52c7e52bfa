/* tap.h - a stage shows what it emits, and what passes through it, to
 * whoever asks (../DESIGN.md "Seeing inside"): `correio tap STAGE`.
 *
 * Each stage binds a ZMQ_XPUB socket on <stage>_tap_endpoint and
 * publishes there a copy of every frame it sends on, but only while a
 * subscriber is connected: XPUB hands the stage each subscription and
 * unsubscription, and tap_publish looks at that count before copying
 * anything.  Without a tap the cost is one non-blocking zmq_recv per
 * frame (no copy, no allocation).  ZMQ_XPUB_NODROP is off and the send
 * HWM small (tap_hwm): a slow or stuck tap loses copies, it never slows
 * the stage or changes what goes downstream.
 *
 * A published message has two frames: the kind (TAP_ENVELOPE: a packed
 * Envelope as sent downstream; TAP_EVENT: a packed Event sent to an
 * ingress; TAP_RESULT: a delivery result line, text), then the payload.
 *
 * One tap per process, used from the stage's main thread only (ZeroMQ
 * sockets are not thread-safe).  With -v, tap_publish and tap_trace_in
 * also log one debug line per message: the foreground trace.
 */
#ifndef CORREIO_TAP_H
#define CORREIO_TAP_H

#include <stddef.h>
#include "stage.h"
#include "wire.h"

#define TAP_ENVELOPE "envelope"
#define TAP_EVENT    "event"
#define TAP_RESULT   "result"

/* tap_open - bind st's tap on <st->name>_tap_endpoint.  Nothing happens
 * for a stage without such a parameter or when it is empty; a failed
 * bind is a warning and the stage runs without a tap.  The endpoint is
 * read once: a change needs a restart.  stage_start() calls it. */
void tap_open(stage_t *st);
/* tap_publish - data (len bytes, the caller's; copied only while a tap
 * listens) was just sent on; kind is one of TAP_*.  Never blocks. */
void tap_publish(const char *kind, const void *data, size_t len);
/* tap_trace_in - with -v, one debug line for an envelope the stage just
 * took in: queue id, sender, recipients, size, send count. */
void tap_trace_in(const Envelope *env);
/* tap_close - close the socket (before the ZeroMQ context goes);
 * stage_finish() calls it. */
void tap_close(void);

#endif
