/* policy_state.h - the router's durable policy memory: greylisting
 * triplets, intrusion prevention per client IP, daily sending counters,
 * the spam history of client IPs and the auto-whitelist (the addresses
 * each of our users wrote to), in one LMDB environment under
 * data_directory/router/ (one database each).
 *
 * Every decision is a pure function of the stored record, the request,
 * the settings and `now`, so that tests drive the clock.  The caller
 * (policy_server.c) batches the requests it has in one write transaction
 * (policy_state_begin / _commit) and answers them after the commit.
 * The environment is opened MDB_NOSYNC and flushed every
 * policy_sync_interval: a kill -9 of the router loses nothing that was
 * committed (the data is in the page cache), a power failure at most
 * that interval.
 */
#ifndef CORREIO_ROUTER_POLICY_STATE_H
#define CORREIO_ROUTER_POLICY_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "policy_client.h"      /* policy_clock_now */
#include "wire.h"

/* The numbers the decisions use, read from the configuration (and again
 * after SIGHUP).  Times in microseconds. */
typedef struct policy_settings {
    int64_t  greylist_delay, greylist_retry_window, greylist_pass_lifetime;
    int64_t  adaptive_memory;
    int64_t  block_time, spamtrap_block_time, window;
    bool     intrusion;           /* intrusion_prevention: off, CONNECT only
                                   * answers spam_history and EVENTs are OK */
    unsigned unknown_rcpt_limit, conn_rate_limit, relay_failure_limit, auth_failure_limit;
    unsigned rset_limit;          /* only "is the RSET rule on" (0: off) */
    long long size_limit;         /* only "is the SIZE rule on" (0: off) */
    bool     block_on_dnsbl;
    int64_t  awl_lifetime;        /* spam_auto_whitelist_lifetime */
    unsigned awl_max;             /* addresses kept per user (AWL_PER_USER_MAX) */
} policy_settings;

/* Addresses the auto-whitelist keeps per user: past it, the ones written
 * to longest ago go. */
#define AWL_PER_USER_MAX 10000

/* policy_settings_read - from cfg (greylist_*, intrusion_*,
 * spam_auto_whitelist_lifetime). */
void policy_settings_read(policy_settings *ps, const config_t *cfg);

typedef struct policy_state policy_state_t;

/* policy_state_open - open (create) the environment in dir with the
 * given map size.  NULL and *err (malloc'd) on failure. */
policy_state_t *policy_state_open(const char *dir, size_t map_size, char **err);
void policy_state_close(policy_state_t **s);

/* policy_state_begin / policy_state_commit - one write transaction
 * around a batch of policy_state_apply calls.  commit returns 0 or an
 * LMDB error (the batch's answers must then be POLICY_ERROR). */
int policy_state_begin(policy_state_t *s);
int policy_state_commit(policy_state_t *s);
/* policy_state_sync - flush to disk (mdb_env_sync). */
void policy_state_sync(policy_state_t *s);

/* policy_state_apply - decide req at now (µs since the epoch) inside the
 * open transaction and fill reply (action, reason, text, until, count,
 * entries for the admin kinds; strings malloc'd, freed by
 * policy_reply_clear).  node is this router's name for PolicyEntry.node
 * and the host in the 421 texts.  A block's reply reason is the rule's
 * code (CONN_RATE, UNKNOWN_RCPT, RELAY, AUTH, SIZE, RSET, DNSBL,
 * SPAMTRAP, MANUAL).  Intrusion keys must be IP addresses (an IPv6 one is
 * reduced to its /64); LIST takes a non-empty key as a key prefix.  A bad
 * request gets POLICY_ERROR with a text saying why.
 * Logs one line per decision that is not a plain OK:
 *   "policy: SESSION: greylist: defer triplet=<...> reason=GREYLIST_NEW"
 *   "policy: SESSION: intrusion: block ip=1.2.3.4 reason=UNKNOWN_RCPT count=6 until=..."
 * Auto-whitelist: AWL_NOTE and AWL_CHECK take key "awl:USER" and the
 * address in recipient (NOTE) or sender (CHECK), both compared in lower
 * case; NOTE answers OK with reason AWL_NEW, AWL_REFRESHED or SELF (the
 * user's own address is never kept: spam forges it); CHECK answers OK
 * (reason AUTO_WHITELIST, until, count) when USER wrote to the address
 * within awl_lifetime, else DEFER; a null sender is never on it.  Past
 * awl_max addresses per user the oldest go (logged "awl: prune").
 * The awl table's records are keyed "USER ADDRESS" (LIST prefix "USER "
 * lists one user's; DELETE takes that key).
 */
void policy_state_apply(policy_state_t *s, const policy_settings *ps, const PolicyRequest *req,
                        int64_t now, const char *node, PolicyReply *reply);
void policy_reply_clear(PolicyReply *reply);

/* policy_state_sweep - delete records that can no longer matter (greylist
 * triplets past their window or lifetime, intrusion records neither
 * blocked nor counting, counters of past windows, auto-whitelist
 * addresses past awl_lifetime), at most max of them;
 * in its own transaction.  Returns how many went. */
unsigned policy_state_sweep(policy_state_t *s, const policy_settings *ps, int64_t now,
                            unsigned max);


#endif
