/* spam_history.h - tell the policy service which clients send spam, for
 * adaptive greylisting (greylist_adaptive): when the router sees an
 * envelope the classifier marked as spam, it sends POLICY_SPAM_SEEN for
 * the client's IP to the router that owns that key (maybe itself),
 * fire-and-forget.  Nothing is sent while greylist_adaptive is off.
 */
#ifndef CORREIO_ROUTER_SPAM_HISTORY_H
#define CORREIO_ROUTER_SPAM_HISTORY_H

#include "config.h"
#include "wire.h"

typedef struct spam_history spam_history_t;

/* spam_history_new - NULL when greylist_adaptive is off, or (logged)
 * when policy_endpoints cannot be resolved: the router then routes on
 * without reporting. */
spam_history_t *spam_history_new(void *zctx, const config_t *cfg);
void spam_history_free(spam_history_t **h);

/* spam_history_note - report env's client when env is spam from a
 * client that did not authenticate.  NULL h: nothing. */
void spam_history_note(spam_history_t *h, const Envelope *env);

#endif
