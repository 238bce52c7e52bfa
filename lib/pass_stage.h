/* pass_stage.h - the loop of a stage that owns nothing and passes
 * envelopes on: PULL an envelope, transform it, PUSH the result
 * downstream (the classifier and the router are such stages).
 *
 * Backpressure: at most one transformed frame waits for the downstream
 * socket; while it waits, input is not read and the loop polls for room
 * downstream instead, so a slow or absent next stage slows this one down
 * and never makes it drop or spin.  A frame that does not decode is
 * dropped (wire logs it), and anything lost here is sent again by the
 * ingress, which keeps every message until delivery owns it.
 */
#ifndef CORREIO_PASS_STAGE_H
#define CORREIO_PASS_STAGE_H

#include "admin.h"
#include "buf.h"
#include "stage.h"
#include "wire.h"

typedef struct pass_stage_ops {
    const char *input_param;   /* parameter naming the endpoint to bind (PULL) */
    const char *output_param;  /* parameter naming the endpoint to connect (PUSH) */
    const char *admin_param;   /* parameter naming the admin endpoint (REP) */
    /* transform - the packed frame (xmalloc'ed, *len its size) to send on
     * for env, or NULL to drop it.  env is the caller's; leave it as is. */
    uint8_t *(*transform)(void *ctx, const Envelope *env, size_t *len);
    /* reload - optional: the configuration in st->cfg was reloaded. */
    void (*reload)(void *ctx, const config_t *cfg);
    /* stats - optional: append " key=value" pairs to the "stats" reply. */
    void (*stats)(void *ctx, buf_t *out);
} pass_stage_ops;

/* pass_stage_run - make the three sockets, then loop until SIGTERM;
 * answers "ping" and "stats" on the admin socket.  Returns after closing
 * its sockets; the caller then calls stage_finish(). */
void pass_stage_run(stage_t *st, const pass_stage_ops *ops, void *ctx);

#endif
