/* awl.h - the auto-whitelist (spam_auto_whitelist): the addresses each
 * of our users has written to.  The state lives in the policy service
 * (POLICY_AWL_NOTE / POLICY_AWL_CHECK, key "awl:USER", router/
 * policy_state.c), so every router asks the one that owns the user,
 * whichever router routes the message.
 *
 *   awl_t *a = awl_new(zctx, cfg);         NULL when spam_auto_whitelist = no
 *   awl_note_outbound(a, env);             our user's mail: note each recipient
 *   if (awl_check(a, user, sender)) ...    user wrote to sender lately
 *   awl_free(&a);
 *
 * Every function takes a NULL handle and then does nothing (check: false).
 */
#ifndef CORREIO_ROUTER_AWL_H
#define CORREIO_ROUTER_AWL_H

#include <stdbool.h>
#include "config.h"
#include "wire.h"

typedef struct awl awl_t;

awl_t *awl_new(void *zctx, const config_t *cfg);
void awl_free(awl_t **a);
/* awl_note_outbound - env comes from one of our users (authenticated, or
 * verdict->outbound): remember that its sender wrote to each recipient
 * (fire and forget: never waits). */
void awl_note_outbound(awl_t *a, const Envelope *env);
/* awl_check - has user (a final local recipient, "user@domain") written
 * to sender within spam_auto_whitelist_lifetime?  Waits at most
 * policy_timeout for the owning router; false on no answer. */
bool awl_check(awl_t *a, const char *user, const char *sender);

#endif
