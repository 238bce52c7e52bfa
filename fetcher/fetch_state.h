/* fetch_state.h - what the fetcher remembers, in its LMDB environment
 * data_directory/fetcher (owned by this fetcher alone):
 *
 *   "taken"   key ACCOUNT\0UIDVALIDITY\0UID, value the time it was taken
 *             (8 bytes, microseconds since the epoch).  UIDVALIDITY is
 *             "" for POP3.  A message is written here only after the
 *             ingress said it is durable.
 *   "status"  key ACCOUNT, value a fetch_status: last run, last error,
 *             counts, consecutive failures, when to try next, and the
 *             generation (the time of the last reset).
 *   "lease"   key ACCOUNT, value pid, node, expiry: the one session of
 *             the account that runs now.  Another may take it over when
 *             it expired or when its pid is dead on this node.
 *
 * Every function may be called from any thread (each opens its own
 * transaction).  Write failures are logged and reported to the caller.
 */
#ifndef CORREIO_FETCHER_FETCH_STATE_H
#define CORREIO_FETCHER_FETCH_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FETCH_ERROR_MAX 240

typedef struct fetch_status {
    uint64_t last_run;          /* start of the last session (us since the epoch), 0 never */
    uint64_t last_success;      /* end of the last session that worked */
    uint64_t next_try;          /* not before (backoff after errors), 0 any time */
    uint64_t taken_total;       /* messages handed to the ingress, ever (since a reset) */
    uint64_t taken_last;        /* in the last session */
    uint64_t too_big;           /* in the last session: left on the server, too big */
    uint64_t runs;              /* sessions run (since a reset) */
    uint64_t generation;        /* time of the last reset, 0 never: part of the refs, so
                                 * that the ingress takes messages fetched again */
    uint32_t failures;          /* consecutive failed sessions */
    uint32_t auth_failed;       /* the last failure was a refused login */
    char     last_error[FETCH_ERROR_MAX];   /* "" after a good session */
    char     uidvalidity[32];   /* IMAP: of the last session */
} fetch_status;

typedef struct fetch_state fetch_state_t;

/* fetch_state_open - open (creating) dir; fatal when it cannot. */
fetch_state_t *fetch_state_open(const char *dir, size_t map_size);
void fetch_state_close(fetch_state_t **fs);

/* fetch_state_is_taken - was this message handed over already? */
bool fetch_state_is_taken(fetch_state_t *fs, const char *account, const char *uidvalidity,
                          const char *uid);
/* fetch_state_mark_taken - record n messages (uids) as taken in one
 * commit (fsync).  0, or -1 (logged). */
int fetch_state_mark_taken(fetch_state_t *fs, const char *account, const char *uidvalidity,
                           const char *const *uids, size_t n);
/* fetch_state_forget_other_uidvalidity - drop the account's taken
 * entries whose UIDVALIDITY is not uidvalidity (the folder was
 * recreated); returns how many. */
size_t fetch_state_forget_other_uidvalidity(fetch_state_t *fs, const char *account,
                                            const char *uidvalidity);
/* fetch_state_reset - forget every taken message and the status of
 * account, and start a new generation (fetch_status.generation = now);
 * returns how many messages were forgotten, -1 on error. */
long fetch_state_reset(fetch_state_t *fs, const char *account);

/* fetch_state_status - the account's status (zeros when none). */
void fetch_state_status(fetch_state_t *fs, const char *account, fetch_status *out);
/* fetch_state_set_status - store it; 0 or -1. */
int fetch_state_set_status(fetch_state_t *fs, const char *account, const fetch_status *st);

/* fetch_state_lease_take - make (node, pid) the account's session for
 * ttl_ms: true when there was no lease, it expired, it is ours already,
 * or it belongs to a pid that is no longer alive on this node.  False
 * (with the holder in holder, "NODE pid N") when another session holds
 * it. */
bool fetch_state_lease_take(fetch_state_t *fs, const char *account, const char *node, long pid,
                            int64_t ttl_ms, char *holder, size_t holder_size);
/* fetch_state_lease_release - drop the lease if (node, pid) holds it. */
void fetch_state_lease_release(fetch_state_t *fs, const char *account, const char *node,
                               long pid);

#endif
