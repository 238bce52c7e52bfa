/* policy_client.h - asking the routers' policy service (DESIGN.md
 * "Sockets": ingress -> router, DEALER -> ROUTER).
 *
 * One DEALER per router address, each with ZMQ_IMMEDIATE so that a
 * request is never queued inside libzmq for a router that is not
 * connected: the client keeps it and tries again until its timeout.  A request
 * goes to the router that owns its key: rendezvous hashing (highest
 * hash64(address, key) wins) over the addresses the configured endpoints
 * resolve to (policy_endpoints; tcp://NAME:PORT is every address of
 * NAME, looked up again every discovery_interval: lib/discovery.h).  When
 * a router joins, the keys it now owns go to it; when one leaves, its
 * unanswered requests are sent to their keys' new owners.  Replies are
 * matched by request id; a reply that comes after its request timed out
 * is dropped.
 *
 * The caller's event loop watches policy_client_fds() (one epoll fd that
 * holds the routers' ZMQ_FDs and the resolvers' sockets: call
 * policy_client_process after every wake-up) and sleeps at most
 * policy_client_timeout_ms().  Callbacks run only from
 * policy_client_process, never from inside policy_client_ask.
 */
#ifndef CORREIO_POLICY_CLIENT_H
#define CORREIO_POLICY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "wire.h"

typedef struct policy_client policy_client_t;
typedef struct policy_call policy_call_t;

/* The answer to one request: reply NULL when no router answered within
 * the timeout or the request could not be sent (the caller then answers
 * 4xx: never accept what could not be checked).  reply and its strings
 * are valid only during the call. */
typedef void (*policy_cb)(void *arg, const PolicyReply *reply);

/* policy_client_new - DEALERs connected to every address of endpoints
 * (NULL-terminated), names resolved with cfg's dns_* parameters (the
 * first lookup waits; a name that does not resolve yet leaves requests
 * unsent until it does or they time out).  NULL and *err (malloc'd) when
 * an endpoint is malformed or none is given. */
policy_client_t *policy_client_new(void *zctx, const config_t *cfg,
                                   const char *const *endpoints, int64_t timeout_ms,
                                   char **err);
void policy_client_free(policy_client_t **c);

/* policy_client_fds - the descriptors to watch for input (count in *n;
 * today one epoll fd, whatever the number of routers). */
const int *policy_client_fds(const policy_client_t *c, size_t *n);

/* policy_client_ask - send req (its id and version are set here) to the
 * router that owns req->key; cb(arg, reply) runs later.  The handle is
 * valid until cb has run or policy_call_abandon.  With req->no_reply the
 * request is fire-and-forget: no handle (NULL), cb unused. */
policy_call_t *policy_client_ask(policy_client_t *c, PolicyRequest *req, policy_cb cb,
                                 void *arg);
/* policy_call_abandon - the caller no longer wants the answer: cb will
 * not run; *call becomes NULL.  NULL is fine. */
void policy_call_abandon(policy_call_t **call);

/* policy_client_process - read every waiting reply, run callbacks, and
 * fail (cb with NULL) the requests whose time is up. */
void policy_client_process(policy_client_t *c);
/* policy_client_timeout_ms - how long the loop may sleep before
 * policy_client_process must run for timeouts; -1 when nothing waits. */
int64_t policy_client_timeout_ms(const policy_client_t *c);

/* policy_client_owner - the address (endpoint) that owns key, for logs
 * and tests. */
const char *policy_client_owner(const policy_client_t *c, const char *key);

/* policy_rendezvous_score - node's weight for key: the owner has the
 * highest, the next-highest takes over when the owner is unreachable. */
uint64_t policy_rendezvous_score(const char *node, const char *key);
/* policy_rendezvous - index of the node among n that owns key (highest
 * 64-bit hash of node and key; ties impossible in practice).  Shared by
 * every place that spreads keys over replicas (fetcher accounts too). */
size_t policy_rendezvous(const char *const *nodes, size_t n, const char *key);

/* policy_clock_now - the policy clock in µs since the epoch: the real
 * time, plus the whole seconds written in the file named by the
 * environment variable CORREIO_TEST_CLOCK when it is set (tests move time
 * forward without waiting; the file is read at every call, since tests
 * rewrite it with values of the same length).  The routers decide by it;
 * `correio` shows times left by it. */
int64_t policy_clock_now(void);

#endif
