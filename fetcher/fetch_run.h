/* fetch_run.h - the fetcher's scheduler: which accounts are due, and
 * fetch_concurrency worker threads that run one session each
 * (fetch_session.h), never two of one account at a time.
 *
 * The scheduler lives in the main thread (main.c's loop): fetch_run_tick
 * reaps finished sessions and hands due accounts to the workers;
 * fetch_run_timeout_ms says how long the loop may sleep; a worker that
 * finishes makes fetch_run_fd readable.
 *
 * Accounts are spread over replicas by static ownership: fetcher_nodes
 * lists every replica's node name (myhostname), and an account is
 * fetched only by the node that rendezvous hashing of its name picks
 * (policy_rendezvous).  An empty fetcher_nodes means this node fetches
 * every account.  The session lease in the state (fetch_state.h) keeps
 * two sessions of one account apart across restarts.
 */
#ifndef CORREIO_FETCHER_FETCH_RUN_H
#define CORREIO_FETCHER_FETCH_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include "stage.h"
#include "wire.h"

typedef struct fetch_run fetch_run_t;

/* fetch_run_new - open the state (data_directory/fetcher), read the
 * accounts file and start the workers.  A bad accounts file is logged
 * and leaves no accounts (fetch list shows why); a state that cannot be
 * opened is fatal. */
fetch_run_t *fetch_run_new(stage_t *st);
/* fetch_run_free - ask running sessions to stop, join the workers. */
void fetch_run_free(fetch_run_t **fr);

int     fetch_run_fd(const fetch_run_t *fr);
void    fetch_run_tick(fetch_run_t *fr);
int64_t fetch_run_timeout_ms(const fetch_run_t *fr);

/* fetch_run_reload - SIGHUP (after stage_reload has the new config):
 * re-read the accounts file; a bad one keeps the accounts in use. */
bool fetch_run_reload(void *fr);

/* fetch_run_admin - "fetch-list", "fetch-now ACCOUNT", "fetch-reset
 * ACCOUNT" (fetch_admin.c). */
void fetch_run_admin(void *fr, const AdminRequest *req, AdminReply *reply);

#endif
