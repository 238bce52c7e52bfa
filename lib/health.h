/* health.h - is this stage ready for work?  One answer for both the
 * admin command "ready" (`correio health --ready`) and the HTTP /ready
 * endpoint (which asks the admin socket), so they never disagree.
 *
 * A stage registers its check once; admin_serve answers "ready" by
 * calling it in the stage's own thread, so the check may look at the
 * stage's state without locks.  Without a check a stage that answers is
 * ready.
 */
#ifndef CORREIO_HEALTH_H
#define CORREIO_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

/* A check returns true when ready; otherwise it writes why (a short
 * line) into why[size]. */
typedef bool (*health_check_fn)(void *ctx, char *why, size_t size);

void health_set_ready_check(health_check_fn fn, void *ctx);
/* health_ready - run the registered check (stage thread only). */
bool health_ready(char *why, size_t size);

#endif
