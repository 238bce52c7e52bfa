/* auth_pool.h - password checks off the event loop.  A crypt(3) hash
 * such as yescrypt costs milliseconds of CPU on purpose; a few threads do
 * that work so that the one thread serving every SMTP session never waits
 * for it.  Results come back through an eventfd the loop watches.
 */
#ifndef CORREIO_AUTH_POOL_H
#define CORREIO_AUTH_POOL_H

#include <stdbool.h>

typedef struct auth_pool auth_pool_t;
typedef struct auth_job auth_job_t;

/* auth_pool_new - start threads workers; fatal if they cannot start. */
auth_pool_t *auth_pool_new(unsigned threads);
/* auth_pool_free - stop the workers; results not yet taken are dropped. */
void auth_pool_free(auth_pool_t **p);
/* auth_pool_fd - readable when results wait for auth_pool_run. */
int auth_pool_fd(const auth_pool_t *p);

/* auth_pool_check - check password against stored ("{SCHEME}hash" as in
 * the users file; NULL for an unknown user, which is checked against a
 * dummy hash so that it costs the same time).  Both are copied.  The
 * result goes to the done callback of auth_pool_run with cookie. */
auth_job_t *auth_pool_check(auth_pool_t *p, const char *stored, const char *password,
                            void *cookie);
/* auth_job_abandon - the asker went away: its result is dropped. */
void auth_job_abandon(auth_job_t **job);

/* auth_pool_run - hand every finished check to done(cookie, ok). */
void auth_pool_run(auth_pool_t *p, void (*done)(void *cookie, bool ok));

#endif
