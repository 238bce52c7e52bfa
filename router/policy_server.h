/* policy_server.h - the router's policy service: a thread with a ROUTER
 * socket bound on router_policy_endpoint that answers PolicyRequests
 * from every ingress, from the routers' auto-whitelist (router/awl.c)
 * and from `correio greylist|intrusion|limits|awl`, out of
 * policy_state.  It drains what is waiting, decides the whole batch in
 * one LMDB transaction, commits, then answers; a bad frame is logged
 * and dropped.  Every minute it sweeps expired records; every
 * policy_sync_interval it flushes the environment.
 */
#ifndef CORREIO_ROUTER_POLICY_SERVER_H
#define CORREIO_ROUTER_POLICY_SERVER_H

#include "stage.h"

typedef struct policy_server policy_server_t;

/* policy_server_start - open the state (fatal on failure, naming the
 * directory), bind the socket, start the thread. */
policy_server_t *policy_server_start(stage_t *st);
/* policy_server_reload - the configuration changed (called from the
 * main thread after SIGHUP): the thread takes the new settings. */
void policy_server_reload(policy_server_t *ps, const config_t *cfg);
/* policy_server_stop - stop the thread, flush, close; *ps NULL. */
void policy_server_stop(policy_server_t **ps);

#endif
