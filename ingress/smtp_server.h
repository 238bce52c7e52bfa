/* smtp_server.h - the ingress's event loop: one epoll set over the SMTP
 * listeners and sessions, the spool writer's eventfd, the signal pipe and
 * the ZeroMQ sockets (events PULL, admin REP, classifier PUSH), with the
 * timers (session idle timeouts, pipeline resends) in the epoll_wait
 * timeout.  No thread per connection.
 */
#ifndef CORREIO_SMTP_SERVER_H
#define CORREIO_SMTP_SERVER_H

#include "ingress.h"

typedef struct smtp_server smtp_server_t;

/* smtp_server_new - an epoll set that watches the stage's signals, and
 * the resolver (ig->dns) whose sockets it watches; the listeners and the
 * pipeline are added by the two calls below. */
smtp_server_t *smtp_server_new(ingress_t *ig);
/* smtp_server_watch_pipeline - add ig's spool and ZeroMQ sockets, once
 * they are open. */
void smtp_server_watch_pipeline(smtp_server_t *srv);
/* smtp_server_listen - bind and listen on every "host:port" or
 * "[v6addr]:port" of addrs (NULL-terminated; the value of param) for
 * listeners of role; fatal on failure. */
void smtp_server_listen(smtp_server_t *srv, listener_role role, const char *param,
                        const char *const *addrs);
/* smtp_server_run - serve until SIGTERM/SIGINT; then stop accepting, say
 * 421 to every session and wait for the spool commits in progress. */
void smtp_server_run(smtp_server_t *srv);
void smtp_server_free(smtp_server_t **srv);

#endif
