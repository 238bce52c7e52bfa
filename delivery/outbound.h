/* outbound.h - the SMTP and LMTP client engine of the delivery stage: one
 * thread with an epoll loop that resolves next hops (MX with c-ares,
 * then A/AAAA), keeps per-destination queues under a concurrency limit,
 * opens, reuses and caches connections, runs smtp_client sessions on
 * them, and posts one work_result per recipient into the result box.
 *
 * The scheduler hands it jobs: some recipients of one envelope that share
 * a route (ROUTE_RELAY or ROUTE_LMTP) and a next hop.  A job always ends
 * with exactly one result per recipient, however it ends (delivered,
 * deferred with the reason, failed with the peer's reply), unless
 * outbound_stop cuts it: then no result comes and the recipients stay
 * pending in the queue, tried again after a restart.
 *
 * Destinations (Recipient.nexthop, see relayhost.h):
 *   ROUTE_RELAY "domain" or "host[:port]"  MX lookup; no MX: A/AAAA of the
 *                                         name; null MX: fails 5.1.10
 *   ROUTE_RELAY "[host]:port"             that host, no MX lookup
 *   ROUTE_LMTP  "unix:/path"              LMTP over a UNIX socket
 *   ROUTE_LMTP  "[host]:port", "host:port" LMTP over TCP (no MX lookup)
 * An MX host whose address is this host's (smtpd_listen addresses, every
 * interface address when listening on a wildcard, proxy_interfaces) ends
 * the MX list there: it and every less preferred MX are dropped; when this
 * host is the best MX the recipients fail with "5.4.6 mail for DOMAIN
 * loops back to myself", or with best_mx_transport = local come back with
 * loops_to_local set.
 */
#ifndef CORREIO_DELIVERY_OUTBOUND_H
#define CORREIO_DELIVERY_OUTBOUND_H

#include <stddef.h>
#include "config.h"
#include "results.h"

typedef struct outbound outbound_t;
typedef struct outbound_settings outbound_settings;

/* outbound_settings_new - everything the engine reads from the
 * configuration, resolved now: timeouts, limits, the TLS client context,
 * smtp_tls_policy_maps, smtp_sasl_password_maps, relayhost credentials,
 * this host's addresses, DNS servers.  NULL and *err (malloc'ed, names
 * the parameter) when something cannot be used. */
outbound_settings *outbound_settings_new(const config_t *cfg, char **err);
void outbound_settings_free(outbound_settings **s);

/* outbound_start - start the engine thread with settings (moved in),
 * posting into box.  Fatal when the thread cannot start. */
outbound_t *outbound_start(outbound_settings *settings, results_t *box);
/* outbound_reconfigure - use settings (moved in) for what starts from now
 * on (SIGHUP); sessions under way finish with the old ones. */
void outbound_reconfigure(outbound_t *o, outbound_settings *settings);
/* outbound_submit - deliver recipients rcpt[0..n) of m (their route and
 * nexthop are in m's envelope and are the same for all n); adds its own
 * reference of m (work_msg_ref), as workers_submit does.  Every result carries tag. */
void outbound_submit(outbound_t *o, work_msg *m, const unsigned *rcpt, size_t n, unsigned tag);
/* outbound_stats - one line for the "stats" admin command:
 * "connections=N idle=N destinations=N jobs=N". */
void outbound_stats(outbound_t *o, char *buf, size_t size);
/* outbound_stop - stop the thread: connections are closed (QUIT not
 * awaited), jobs not finished post nothing. */
void outbound_stop(outbound_t *o);
void outbound_free(outbound_t **o);

#endif
