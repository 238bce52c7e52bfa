/* fetch_session.h - one session with one remote account, run by a
 * worker thread (fetch_run.c):
 *
 *   take the account's lease -> mailbox_open -> mailbox_list -> for each
 *   message not taken yet: mailbox_fetch (at most the size limit) ->
 *   prepend our Received: -> submit to the ingress with ref
 *   "fetch:ACCOUNT:UIDVALIDITY:UID" (see fetch_session_ref) -> on status 0 record it taken (LMDB
 *   commit), then, unless keep, mailbox_delete -> mailbox_close(commit)
 *   -> store the status (counts, error, when to run next).
 *
 * Submissions are pipelined (a window of several in flight); one that
 * gets no answer is sent again with the same ref, which the ingress takes
 * once (submit_server.h).  A crash anywhere re-fetches at worst; the
 * ingress then answers with the first queue id and stores nothing, and a
 * message is deleted remotely only once the ingress holds it durably.
 */
#ifndef CORREIO_FETCHER_FETCH_SESSION_H
#define CORREIO_FETCHER_FETCH_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "accounts.h"
#include "fetch_state.h"
#include "submit_client.h"
#include "users.h"

/* What every session shares; read-only during sessions except users
 * (under users_mu). */
typedef struct fetch_env {
    fetch_state_t   *state;
    const char      *node;          /* myhostname: the Received: line, the lease */
    size_t           size_limit;    /* fetch_message_size_limit */
    size_t           rcpt_limit;    /* Domain POP recipients per message */
    users_t         *users;         /* local users, for Domain POP */
    pthread_mutex_t *users_mu;
} fetch_env;

typedef struct fetch_outcome {
    bool   ran;                     /* false: the lease is held elsewhere */
    bool   ok;
    size_t taken;                   /* handed to the ingress in this session */
    uint64_t next_try;              /* when to run again (us since the epoch) */
} fetch_outcome;

/* fetch_session - run one session of ac (a private copy) with the
 * worker's own submit client; fills out.  stop() true ends it early (at
 * the next message). */
void fetch_session(const fetch_env *env, const fetch_account *ac, submit_client_t *submit,
                   bool (*stop)(void), fetch_outcome *out);

/* fetch_session_ref - the submission ref of one message into dst:
 * "fetch:ACCOUNT:UIDVALIDITY:UID", or after a reset
 * "fetch:ACCOUNT~GENERATION:UIDVALIDITY:UID" (so that the ingress takes
 * again what `fetch reset` asks to fetch again). */
void fetch_session_ref(char *dst, size_t size, const char *account, uint64_t generation,
                       const char *uidvalidity, const char *uid);

#endif
