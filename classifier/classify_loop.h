/* classify_loop.h - the classifier's own loop: PULL envelopes, score them
 * (the table's synchronous tests at once, the DNS tests of test_dns.h
 * over one cached resolver), PUSH each one on when its last answer is in
 * or when spam_scan_time_limit is over (then with a SCAN_TIMEOUT hit for
 * the lookups that did not answer).
 *
 * At most classifier_concurrency messages are in flight; input is not
 * read while that many wait for answers, nor while a finished frame waits
 * for room downstream (the backpressure of pass_stage.h: a slow router
 * slows the classifier, which never drops or spins).  Output order need
 * not follow input order.  The loop answers "ping" and "stats" on the
 * admin socket.  It owns nothing: an envelope lost here (a stop with
 * messages in flight, a frame that does not decode) is sent again by the
 * ingress.
 */
#ifndef CORREIO_CLASSIFIER_CLASSIFY_LOOP_H
#define CORREIO_CLASSIFIER_CLASSIFY_LOOP_H

#include "config.h"
#include "scoring.h"
#include "stage.h"

/* classify_loop_run - make the sockets and the resolver, loop until
 * SIGTERM, close them.  reload(ctx, cfg) runs after a SIGHUP reload (the
 * caller refreshes scoring there); the loop itself takes the DNS lists,
 * the time limit and the concurrency again.  Returns for stage_finish(). */
void classify_loop_run(stage_t *st, scoring_t *scoring,
                       void (*reload)(void *ctx, const config_t *cfg), void *ctx);

#endif
